#!/bin/bash
# SPDX-License-Identifier: MIT
# How the fixtures beside this script were made, with the release before
# distinct counting (main at 08e8620; RCPTGATE=that binary): through a
# real Postfix, 127.0.0.9 is blocked (5 unknowns) and 127.0.0.10 has a
# counter of 2, once with the SQLite state file (harvest.db) and once
# with Redis (redis-keys.txt: "TYPE KEY VALUE" as that release wrote
# them). Not run by the suite; t_harvest_counting.sh reads the output.
#
# Usage: RCPTGATE=/path/to/old/rcptgate RCPTGATE_TABLE=... bash gen.sh OUTDIR
: "${RG_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}"
out=$(cd "${1:?OUTDIR}" && pwd)
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

rg_make_table "$T/recipients.db" alice@example.com || exit 1
rport=$(rg_free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
	--dir "$T" >"$T/redis.log" 2>&1 &
rg_track $!
rg_wait_port "$rport" 10 || exit 1

for state in "$T/harvest.db" "redis://127.0.0.1:$rport/0"; do
	cat >"$T/old.conf" <<-EOT
		[milter]
		socket = unix:$T/rg.sock
		user =
		socket_mode = 0666
		[policy]
		domains = example.com
		backends = local
		[backend local]
		type = sqlite
		path = $T/recipients.db
		[harvest]
		max_unknown = 5
		max_unknown_per_session = 0
		window = 30d
		block_time = 365d
		state = $state
	EOT
	rg_start_rcptgate "$T/old.conf" || exit 1
	rg_start_postfix mx "unix:$T/rg.sock" || exit 1
	rg_rcpt -s 127.0.0.9 "$PORT_mx" n1@example.com n2@example.com n3@example.com n4@example.com n5@example.com
	rg_rcpt -s 127.0.0.10 "$PORT_mx" m1@example.com m2@example.com
	sleep 1.5
	rg_stop_rcptgate
	rg_stop_postfix mx
done
rm -f "$out/harvest.db"
# .backup: the rows may still be in the WAL file
sqlite3 "$T/harvest.db" ".backup '$out/harvest.db'"
sqlite3 "$out/harvest.db" .dump >"$out/harvest.sql"
redis-cli -p "$rport" --scan --pattern 'rcptgate:*' | sort | while read -r k; do
	echo "$(redis-cli -p "$rport" TYPE "$k") $k $(redis-cli -p "$rport" GET "$k")"
done >"$out/redis-keys.txt"
rg_done
