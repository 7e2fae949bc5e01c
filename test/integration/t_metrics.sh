#!/bin/bash
# SPDX-License-Identifier: MIT
# The Prometheus endpoint of the real daemon behind a private Postfix:
# the counters move with real RCPTs (decisions by verdict and backend,
# cache, backend lookups and latency histogram, connections, harvest),
# the page passes `promtool check metrics` (skipped when promtool is not
# installed), other paths get 404, and a scrape answers at once while a
# backend hangs (a call-ahead target that accepts and never speaks).
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
rg_make_table "$db" alice@example.com
chmod 644 "$db"
mport=$(rg_free_port)
# a call-ahead "server" that accepts connections and never answers
hang=$(rg_free_port)
"$RG_PY" -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
held = []
while True:
    c, _ = s.accept(); held.append(c)
' "$hang" &
rg_track $!
rg_wait_port "$hang" 5 || exit 1

rg_write_conf "$T/rcptgate.conf" "unix:$T/rcptgate.sock" "$db"
cat >>"$T/rcptgate.conf" <<-EOT
	[domain example.net]
	backends = hang
	deadline = 6s

	[backend hang]
	type = callahead
	hosts = 127.0.0.1:$hang
	helo = gw.example.test
	timeout = 5s

	[metrics]
	listen = 127.0.0.1:$mport
EOT
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_wait_port "$mport" 5 || exit 1
rg_start_postfix mx "unix:$T/rcptgate.sock" || exit 1
URL=http://127.0.0.1:$mport/metrics
scrape() { curl -s --max-time 5 "$URL"; }

rg_rcpt $PORT_mx alice@example.com alice@example.com nobody@example.com >/dev/null
page=$(scrape)
printf '%s\n' "$page" >"$T/scrape.txt"
rg_expect_match "accepts by the backend" "$page" $'\nrcptgate_decisions_total\\{verdict="accept",decided_by="local"\\} 1\n'
rg_expect_match "accepts from the cache" "$page" $'\nrcptgate_decisions_total\\{verdict="accept",decided_by="cache"\\} 1\n'
rg_expect_match "rejects by the backend" "$page" $'\nrcptgate_decisions_total\\{verdict="reject",decided_by="local"\\} 1\n'
rg_expect_match "cache hits" "$page" $'\nrcptgate_cache_hits_total 1\n'
rg_expect_match "backend lookups found" "$page" 'rcptgate_backend_lookups_total\{backend="local",type="sqlite",result="found"\} 1'
rg_expect_match "histogram count" "$page" 'rcptgate_backend_lookup_duration_seconds_count\{backend="local"\} [1-9]'
rg_expect_match "histogram +Inf bucket" "$page" 'rcptgate_backend_lookup_duration_seconds_bucket\{backend="local",le="\+Inf"\} [1-9]'
rg_expect_match "milter connections counted" "$page" $'\nrcptgate_milter_connections_total [1-9]'
rg_expect_match "process metrics" "$page" $'\nprocess_resident_memory_bytes [1-9]'
rg_expect_match "types declared" "$page" '# TYPE rcptgate_backend_lookup_duration_seconds histogram'
if command -v promtool >/dev/null; then
	rg_check "promtool check metrics" bash -c "promtool check metrics <'$T/scrape.txt' >'$T/promtool.out' 2>&1 || { cat '$T/promtool.out'; false; }"
else
	echo "ok - promtool check metrics # SKIP promtool not installed"
fi
rg_expect_eq "other paths: 404" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/")" 404

# a scrape while a lookup hangs on the call-ahead target
rg_rcpt $PORT_mx someone@example.net >"$T/hang.out" 2>&1 &
rcpt_pid=$!
sleep 1
t0=$(date +%s%N)
page=$(scrape)
ms=$((($(date +%s%N) - t0) / 1000000))
rg_check "scrape during a hanging lookup took ${ms} ms (< 1000)" test "$ms" -lt 1000
rg_expect_match "scrape during the hang is complete" "$page" 'process_max_fds'
wait "$rcpt_pid"
page=$(scrape)
rg_expect_match "the hung lookup counted as a failure" "$page" 'rcptgate_backend_failures_total\{backend="hang"\} 1'
rg_expect_match "backend down" "$page" 'rcptgate_backend_up\{backend="hang"\} 0'
rg_expect_match "tempfail decision counted" "$page" 'rcptgate_decisions_total\{verdict="tempfail"'
rg_expect_match "a slow bucket" "$page" 'rcptgate_backend_lookup_duration_seconds_bucket\{backend="hang",le="2.5"\} 0'
echo "--- scrape excerpt"; grep -E '^rcptgate_(decisions|backend_lookups|backend_up|cache_hits)' <<<"$page"
rg_done
