#!/bin/bash
# SPDX-License-Identifier: MIT
# Call-ahead throughput: N lookups of distinct addresses (half of them
# known) against a private Postfix as the internal server, once with
# connection reuse (idle_timeout = 30s) and once without (idle_timeout =
# 0), in one run. Prints lookups/s and the connections the internal
# server logged for each. Usage: bench_callahead.sh [N] [THREADS]
. "${RG_SOURCE_DIR:=$(cd "$(dirname "$0")/../.." && pwd)}/test/integration/lib.sh"
N=${1:-10000}
THREADS=${2:-8}
rg_setup
S=$RG_SOURCE_DIR

gcc -std=c11 -D_GNU_SOURCE -O2 -I"$S/lib" -I"$S/lib/backend" "$S/lib/rg_error.c" \
    "$S/lib/rg_time.c" "$S/lib/log.c" "$S"/lib/conf*.c "$S/lib/netprefix.c" \
    "$S/lib/pool.c" "$S/lib/backend/smtp_client.c" \
    "$S/lib/backend/backend_callahead.c" "$S/lib/backend/callahead_conn.c" \
    "$S/lib/backend/callahead_conf.c" \
    "$S/test/bench/bench_callahead.c" -o "$T/bench" -lpthread ||
	exit 1

for ((i = 0; i < N; i += 2)); do echo "user$i@example.test x"; done >"$T/users"
# Postfix counts RSETs as junk commands and 550s as errors; a kept
# connection would be dropped at the limits (the driver reconnects, but
# the bench measures reuse, so lift them). Every accepted RCPT opens a
# queue file that RSET drops: with no real mail flowing, cleanup's flow
# control (in_flow_delay, 1s) soon paces each transaction to one a second.
rg_start_postfix internal "" "local_recipient_maps = texthash:$T/users" \
    "smtpd_junk_command_limit = 10000000" \
    "smtpd_soft_error_limit = 10000000" "smtpd_hard_error_limit = 10000000" \
    "smtpd_client_connection_count_limit = 0" "default_process_limit = 200" \
    "in_flow_delay = 0" ||
	exit 1

connects() {
	grep -c 'smtpd\[[0-9]*\]: connect from' "$T/internal/postfix.log" || true
}

for idle in 30s 0; do
	before=$(connects)
	"$T/bench" "127.0.0.1:$PORT_internal" "$idle" "$N" "$THREADS" example.test
	sleep 2
	echo "internal server connections (idle_timeout=$idle): $(($(connects) - before))"
done
