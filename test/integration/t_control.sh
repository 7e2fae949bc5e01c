#!/bin/bash
# SPDX-License-Identifier: MIT
# The control socket and rcptgate-ctl against the real daemon behind a
# private Postfix: status, flush (a cached positive outlives its table
# row until flushed), explain (counts nothing: many explains of unknown
# addresses for one client never block it; writes no cache entry), blocks
# and unblock on a block the daemon really imposed, reload, --json, and
# the failures: bad command, daemon not running, no permission.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
: "${RCPTGATE_CTL:=$RG_BUILD_DIR/rcptgate-ctl}"
rg_setup

db=$T/recipients.db
rg_make_table "$db" alice@example.com carol@example.com
chmod 644 "$db"
ctl=$T/run/control.sock
mkdir -p "$T/run"
rg_write_conf "$T/rcptgate.conf" "unix:$T/rcptgate.sock" "$db"
# harvest on, file state, loopback sources counted (127.0.0.N)
sed -i '/^\[harvest\]/,$d' "$T/rcptgate.conf"
cat >>"$T/rcptgate.conf" <<-EOT
	[harvest]
	max_unknown = 4
	max_unknown_per_session = 0
	window = 10m
	block_time = 1h
	state = $T/harvest.db
	exempt =

	[control]
	socket = unix:$ctl
	group = daemon
EOT
C() { "$RCPTGATE_CTL" -c "$T/rcptgate.conf" "$@"; }

C status >"$T/out" 2>&1
rg_expect_eq "not running: exit 69" "$?" 69
rg_expect_match "not running: said" "$(cat "$T/out")" "^rcptgate-ctl: .*control.sock: rcptgate is not running"
rg_expect_eq "not running: one line" "$(wc -l <"$T/out")" 1

rg_start_rcptgate "$T/rcptgate.conf" || exit 1
for i in $(seq 50); do [ -S "$ctl" ] && break; sleep 0.1; done
rg_expect_eq "control socket mode 660, group daemon" "$(stat -c '%a %G' "$ctl")" "660 daemon"
rg_start_postfix mx "unix:$T/rcptgate.sock" || exit 1

out=$(C status)
rg_expect_eq "status exit 0" "$?" 0
rg_expect_match "status: version" "$out" "^rcptgate [0-9]+\.[0-9]+\.[0-9]+, up [0-9]+s"
rg_expect_match "status: config" "$out" "config: $T/rcptgate.conf"
rg_expect_match "status: backend before any lookup" "$out" "backend local \(sqlite\): unknown"

# flush: a cached positive stays after its row is gone, until flushed
rg_expect_match "alice accepted" "$(rg_rcpt $PORT_mx alice@example.com)" '^250 '
rg_make_table "$db" carol@example.com
rg_expect_match "alice still accepted from the cache" "$(rg_rcpt $PORT_mx alice@example.com)" '^250 '
out=$(C explain alice@example.com)
rg_expect_match "explain shows the cached positive" "$out" "cache: found \(from local"
rg_expect_match "explain shows what the backend says now" "$out" "backend local: alice@example.com -> notfound"
rg_expect_eq "flush one address" "$(C flush Alice@Example.COM)" "alice@example.com: flushed"
rg_expect_match "alice rejected after the flush" "$(rg_rcpt $PORT_mx alice@example.com)" '^550 5\.1\.1 '
rg_expect_match "flush --all" "$(C flush --all)" '^flushed [1-9][0-9]* entries$'
rg_expect_match "status: backend up" "$(C status)" "backend local \(sqlite\): up since 20"
rg_expect_match "status: the file, up" "$(C status)" "  $db up since 20"

# explain counts nothing toward harvest and caches nothing
for i in $(seq 8); do C explain "ghost$i@example.com" --client 127.0.0.9 >/dev/null; done
out=$(C explain ghost1@example.com --client 127.0.0.9)
rg_expect_match "8 explains from one client: not blocked" "$out" "harvest: not blocked"
rg_expect_match "explain: verdict" "$out" "verdict: reject \(by local: unknown\)"
rg_expect_match "explain wrote nothing to the cache" "$out" "cache: none"
rg_expect_match "the client is still served" "$(rg_rcpt -s 127.0.0.9 $PORT_mx carol@example.com)" '^250 '

# a real block (4 unknowns from 127.0.0.7), then blocks and unblock
for i in 1 2 3 4; do rg_rcpt -s 127.0.0.7 $PORT_mx "nobody$i@example.com" >/dev/null; done
rg_expect_match "127.0.0.7 blocked" "$(rg_rcpt -s 127.0.0.7 $PORT_mx carol@example.com)" '^4[0-9][0-9] '
rg_expect_match "explain sees the block" "$(C explain carol@example.com --client 127.0.0.7)" "verdict: tempfail \(by harvest: blocked\)"
sleep 1.5	# the state file is written once a second
rg_expect_match "blocks lists it" "$(C blocks)" "127\.0\.0\.7/32	blocked	count=4"
rg_expect_match "blocks --json" "$(C --json blocks)" '"prefix":"127\.0\.0\.7/32","state":"blocked","count":"4"'
rg_expect_eq "unblock" "$(C unblock 127.0.0.7)" "unblocked 127.0.0.7"
sleep 2.5	# the daemon picks an unblock up within two seconds
rg_expect_match "served again after unblock" "$(rg_rcpt -s 127.0.0.7 $PORT_mx carol@example.com)" '^250 '
C unblock 127.0.0.7 >"$T/out" 2>&1
rg_expect_eq "unblock of nothing: exit 1" "$?" 1
rg_expect_eq "unblock of nothing: one line" "$(cat "$T/out")" "rcptgate-ctl: 127.0.0.7: no block or counter"

# --json is JSON
for cmd in status "explain carol@example.com --client 192.0.2.1" "flush carol@example.com" "flush --all" blocks; do
	C --json $cmd >"$T/json" 2>&1
	rg_check "--json $cmd parses" "$RG_PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/json"
done

# reload through the socket
rg_expect_match "reload" "$(C reload)" "^reload requested"
for i in $(seq 30); do grep -q "configuration reloaded" "$T/rcptgate.log" && break; sleep 0.1; done
rg_check "reload took (log)" grep -q "configuration reloaded from $T/rcptgate.conf" "$T/rcptgate.log"

# failures: one line, non-zero exit
C frobnicate >"$T/out" 2>&1
rg_expect_eq "bad command: exit 64" "$?" 64
rg_expect_eq "bad command: one line" "$(wc -l <"$T/out")" 1
C flush >"$T/out" 2>&1
rg_expect_eq "flush without address: exit 64" "$?" 64
C flush 'not an address' >"$T/out" 2>&1
rg_expect_eq "flush of a non-address: exit 1" "$?" 1
rg_expect_match "flush of a non-address: said" "$(cat "$T/out")" "not an address"
chmod 644 "$T/rcptgate.conf"
su -s /bin/bash nobody -c "'$RCPTGATE_CTL' -s unix:$ctl status" >"$T/out" 2>&1
rg_expect_eq "no permission: exit 77" "$?" 77
rg_expect_match "no permission: said" "$(cat "$T/out")" "^rcptgate-ctl: .*permission denied"
rg_expect_eq "no permission: one line" "$(wc -l <"$T/out")" 1
"$RCPTGATE_CTL" -c "$T/nonexistent.conf" status >"$T/out" 2>&1
rg_expect_eq "missing config: exit 78" "$?" 78

# rcptgate -b keeps working beside the socket
rg_check "rcptgate -b list still works" "$RCPTGATE" -c "$T/rcptgate.conf" -b list

rg_stop_rcptgate
rg_check "control socket removed at exit" test ! -e "$ctl"
rg_done
