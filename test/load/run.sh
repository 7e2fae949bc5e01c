#!/bin/bash
# SPDX-License-Identifier: MIT
# The load test (issue 8 item 4), not part of CI: CONCURRENCY (default
# 500) concurrent SMTP sessions through a real Postfix (process limits
# raised) with rcptgate in front, for SECONDS (default 60) per phase:
#   phase "up":   both backends answer (SQLite "local", slapd "corp");
#   phase "down": slapd stopped (SQLite still answers).
# Each session: EHLO, MAIL, 3 RCPT (a mix of SQLite users, LDAP users and
# unknown addresses), DATA when a recipient was accepted, QUIT.
# Reports throughput, the answers by class, rcptgate's RSS and threads
# before, during (max) and after, and checks that nothing was lost:
#   - no existing recipient got 550 (each got 250 or a 4xx tempfail),
#   - no unknown recipient got 250,
#   - every recipient Postfix delivered (its log) is in the table or the
#     directory, and their number equals the 250s of messages queued.
# Usage (as root, after scripts/build.sh):
#   bash test/load/run.sh [BUILD_DIR]    env: CONCURRENCY, SECONDS_PER_PHASE
# Exit status 0 when nothing was lost.
set -u
RG_SOURCE_DIR=$(cd "$(dirname "$0")/../.." && pwd)
RG_BUILD_DIR=${1:-$RG_SOURCE_DIR/build}
RCPTGATE=$RG_BUILD_DIR/rcptgate
RCPTGATE_TABLE=$RG_BUILD_DIR/rcptgate-table
export RG_SOURCE_DIR RG_BUILD_DIR RCPTGATE RCPTGATE_TABLE
. "$RG_SOURCE_DIR/test/integration/lib.sh"
. "$RG_SOURCE_DIR/test/integration/lib_slapd.sh"
rg_setup

C=${CONCURRENCY:-500}
SECS=${SECONDS_PER_PHASE:-60}
NSQL=20000
NLDAP=20000

echo "# load: $C sessions at once, ${SECS}s per phase, $(nproc) cores," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg) at start (shared machine)"

# ---- the backends ----
for ((i = 0; i < NSQL; i++)); do echo "a$i@example.com"; done >"$T/sql.txt"
"$RCPTGATE_TABLE" -d "$T/recipients.db" replace "$T/sql.txt" >/dev/null || exit 1
rg_slapd_init corp || exit 1
rg_slapd_gen_users "$NLDAP" example.com >"$T/users.ldif"
rg_slapd_load corp "$T/users.ldif" || exit 1
rg_slapd_start corp || exit 1
{ cat "$T/sql.txt"; for ((i = 0; i < NLDAP; i++)); do echo "u$i@example.com"; done; } \
    >"$T/known"
# Recipients in turn: SQLite user, LDAP user, unknown, over 60000 lines.
for ((i = 0; i < 20000; i++)); do
	echo "a$((i * 7 % NSQL))@example.com"
	echo "u$((i * 13 % NLDAP))@example.com"
	echo "nx$i@example.com"
done >"$T/addrs"

cat >"$T/rcptgate.conf" <<-EOT
	[milter]
	socket = unix:$T/rcptgate.sock
	user =
	socket_mode = 0666
	log_level = warning
	[policy]
	domains = example.com
	backends = local, corp
	deadline = 5s
	[cache]
	positive_ttl = 30s
	negative_ttl = 30s
	stale_ttl = 1m
	[harvest]
	max_unknown = 0
	max_unknown_per_session = 0
	state =
	[backend local]
	type = sqlite
	path = $T/recipients.db
	[backend corp]
	type = ldap
	uri = $SLAPD_URI_corp
	base = dc=example,dc=com
	timeout = 2s
	pool_size = 8
EOT

ulimit -n "$(ulimit -Hn)"	# one descriptor per milter connection and more
umask 000
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
umask 022
rg_start_postfix mx "unix:$T/rcptgate.sock" "mydestination = example.com" \
    "default_process_limit = $((C + 50))" \
    "smtpd_client_connection_count_limit = 0" \
    "smtpd_client_message_rate_limit = 0" \
    "smtpd_peername_lookup = no" \
    "in_flow_delay = 0" \
    "milter_connect_timeout = 10s" || exit 1
P=$PORT_mx
PFDIR=$T/mx

# sample: "epoch rss_kb threads" of rcptgate every second into $T/samples
sample() {
	while kill -0 "$RG_PID" 2>/dev/null; do
		echo "$(date +%s) $(awk '/^VmRSS:/ { print $2 }' "/proc/$RG_PID/status" 2>/dev/null) $(rg_threads "$RG_PID")"
		sleep 1
	done
}
sample >"$T/samples" &
rg_track $!

# drain: wait (at most 120 s) until Postfix's queue is empty.
drain() {
	local i
	for ((i = 0; i < 240; i++)); do
		[ -z "$(find "$PFDIR/spool/incoming" "$PFDIR/spool/active" \
		    "$PFDIR/spool/deferred" "$PFDIR/spool/maildrop" -type f 2>/dev/null | head -n1)" ] &&
			return 0
		sleep 0.5
	done
	echo "# queue did not drain" >&2
	return 1
}

stat_line() {
	awk -v a="$1" -v b="$2" '$1 >= a && $1 <= b && $2 != "" {
		if ($2 > rss) rss = $2; if ($3 > th) th = $3 }
	    END { printf "rss_max=%dKiB threads_max=%d", rss, th }' "$T/samples"
}

now_sample() {
	echo "rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$RG_PID/status")KiB threads=$(rg_threads "$RG_PID")"
}

FAILED=0
# phase NAME
phase() {
	local name=$1 t0 t1 j sum acc del bad lines
	echo "# [$name] before: $(now_sample)"
	: >"$T/mx.log.mark"
	lines=$(wc -l <"$PFDIR/postfix.log")
	t0=$(date +%s)
	sum=$(rg_burst "$P" "$T/addrs" "$T/out.$name" -c "$C" -t "$SECS" -r 3 -d \
	    -o $((RANDOM * 3)))
	t1=$(date +%s)
	echo "# [$name] during: $(stat_line "$t0" "$t1")"
	echo "# [$name] client: $sum"
	awk -v s="$(rg_field seconds "$sum")" '/^RCPT/ { r++ } /^DATA 250/ { m++ }
	    END { printf "# [%s] throughput: %.1f recipients/s, %.1f messages/s\n",
	        "'"$name"'", r / s, m / s }' "$T/out.$name"
	j=$(rg_judge "$T/out.$name" "$T/known")
	echo "# [$name] answers: $j"
	drain
	tail -n +"$((lines + 1))" "$PFDIR/postfix.log" >"$T/pf.$name"
	# Accepted recipients of queued messages, from the client's side.
	# (smtpload.py writes each session's lines together; a session
	# ends at its DATA line or, without one, before the next RCPT run)
	acc=$(awk '/^RCPT/ && $3 == 250 { n++ } /^DATA/ { if ($2 == 250) t += n; n = 0 }
	    /^ERR/ { n = 0 } END { print t + 0 }' "$T/out.$name")
	# Delivered recipients, from Postfix's log.
	sed -n 's/.* to=<\([^>]*\)>,.*status=sent.*/\1/p' "$T/pf.$name" >"$T/del.$name"
	del=$(wc -l <"$T/del.$name")
	bad=$(grep -vxFf "$T/known" "$T/del.$name" | wc -l)
	echo "# [$name] delivered by Postfix: $del recipients ($bad not existing);" \
	    "accepted in queued messages (client): $acc"
	echo "# [$name] tempfails by rcptgate (451 4.4.3): $(grep -c '^RCPT .* 451 4\.4\.3' "$T/out.$name")," \
	    "by Postfix (milter unavailable, 451 4.7.1): $(grep -c '^RCPT .* 451 4\.7\.1' "$T/out.$name")"
	if [ "$(rg_field known_550 "$j")" != 0 ] || [ "$(rg_field unknown_250 "$j")" != 0 ] ||
	    [ "$bad" != 0 ] || [ "$del" != "$acc" ]; then
		echo "FAIL [$name]: something was lost or wrongly accepted"
		FAILED=1
	else
		echo "ok [$name]: nothing lost"
	fi
	sleep 5
	echo "# [$name] after (5 s idle): $(now_sample)"
}

phase up
rg_slapd_stop corp
phase down
rg_check "rcptgate still running" kill -0 "$RG_PID"
rg_stop_postfix mx
[ "$FAILED" = 0 ] || RG_FAIL=$((RG_FAIL + 1))
rg_done
