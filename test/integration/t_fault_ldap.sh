#!/bin/bash
# SPDX-License-Identifier: MIT
# Fault injection against the LDAP backend, through a real Postfix and a
# real slapd reached through slowproxy.py (a loopback proxy of our own):
# the directory killed (SIGKILL) in the middle of a burst and restarted,
# made slow, and its connections reset. For each: no crash, no existing
# recipient rejected, recovery without restarting rcptgate, and the log
# line that names the fault. Bounded: every burst has a session count
# and a time limit; the proxy has a lifetime; everything is stopped at
# exit by lib.sh's trap.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
. "$RG_SOURCE_DIR/test/integration/lib_slapd.sh"
rg_setup

NUSERS=3000
PROXY=$RG_SOURCE_DIR/test/integration/slowproxy.py

rg_slapd_init a || exit 1
rg_slapd_gen_users "$NUSERS" example.com >"$T/users.ldif"
rg_slapd_load a "$T/users.ldif" || exit 1
rg_slapd_start a || exit 1

"$RG_PY" "$PROXY" serve "$SLAPD_PORT_a" --lifetime 300 >"$T/proxy.ports" &
rg_track $!
for ((i = 0; i < 50; i++)); do [ -s "$T/proxy.ports" ] && break; sleep 0.1; done
read -r PXPORT PXCTL <"$T/proxy.ports"
proxy() { "$RG_PY" "$PROXY" ctl "$PXCTL" "$@"; }

# Short cache lifetimes so that each phase asks the directory itself.
cat >"$T/rcptgate.conf" <<-EOT
	[milter]
	socket = unix:$T/rcptgate.sock
	user =
	socket_mode = 0666
	log_level = info
	[policy]
	domains = example.com
	backends = corp
	deadline = 3s
	[cache]
	positive_ttl = 1s
	negative_ttl = 1s
	stale_ttl = 1s
	[harvest]
	max_unknown = 0
	max_unknown_per_session = 0
	state =
	[backend corp]
	type = ldap
	uri = ldap://127.0.0.1:$PXPORT/
	base = dc=example,dc=com
	timeout = 1s
	pool_size = 4
EOT
for ((i = 0; i < NUSERS; i++)); do echo "u$i@example.com"; done >"$T/known"

# mix FIRST LAST: known u<i> and unknown nx<i> alternating, one a line.
mix() {
	local i
	for ((i = $1; i <= $2; i++)); do
		echo "u$i@example.com"
		echo "nx$i@example.com"
	done
}

umask 000
rg_start_rcptgate "$T/rcptgate.conf" || { rg_notok "rcptgate start"; rg_done; }
umask 022
rg_start_postfix mx "unix:$T/rcptgate.sock" "mydestination = example.com" ||
	{ rg_notok "postfix start"; rg_done; }
P=$PORT_mx
log=$T/rcptgate.log

# no_wrong NAME JUDGEMENT: no existing recipient rejected, no unknown one
# accepted.
no_wrong() {
	rg_expect_eq "$1: no existing recipient rejected" \
	    "$(rg_field known_550 "$2")" 0
	rg_expect_eq "$1: no unknown recipient accepted" \
	    "$(rg_field unknown_250 "$2")" 0
}

# recovered NAME I: a fresh known u<I> gets 250 and a fresh unknown 550,
# with the same rcptgate process.
recovered() {
	local i
	for ((i = 0; i < 50; i++)); do	# at most ~10 s for the pool to heal
		[[ $(rg_rcpt "$P" "u$2@example.com") =~ ^250 ]] && break
		sleep 0.2
	done
	rg_expect_match "$1: recovered, known 250" \
	    "$(rg_rcpt "$P" "u$2@example.com")" '^250 '
	rg_expect_match "$1: recovered, unknown 550 5.1.1" \
	    "$(rg_rcpt "$P" "nx$2@example.com")" '^550 5\.1\.1 '
	rg_check "$1: rcptgate still running" kill -0 "$RG_PID"
}

rg_expect_match "baseline known 250" "$(rg_rcpt "$P" u1@example.com)" '^250 '
rg_expect_match "baseline unknown 550" "$(rg_rcpt "$P" nx1@example.com)" \
    '^550 5\.1\.1 '

# ---- slapd killed (SIGKILL) mid-burst, restarted -> 250/550 before,
# 451 4.4.3 while down (never 550), 250/550 again after, same rcptgate ----
mix 10 1009 >"$T/addrs1"
rg_burst "$P" "$T/addrs1" "$T/out1" -c 16 -t 10 -n 20000 -r 2 >"$T/sum1" &
bp=$!
sleep 3
kill -KILL "$SLAPD_PID_a"
wait "$SLAPD_PID_a" 2>/dev/null
sleep 3
rg_slapd_start a || rg_notok "slapd restart"
wait "$bp"
j=$(rg_judge "$T/out1" "$T/known")
echo "# kill mid-burst: $(cat "$T/sum1")"
echo "# kill mid-burst: $j"
no_wrong "slapd killed" "$j"
rg_check "slapd killed: some recipients tempfailed (the fault was seen)" \
    test "$(rg_field known_451 "$j")" -gt 0
rg_check "slapd killed: some recipients accepted" \
    test "$(rg_field known_250 "$j")" -gt 0
rg_check "slapd killed: the failure is logged" grep -Eq \
    'backend corp: lookup of <[^>]+> failed: ' "$log"
recovered "slapd killed" 2001

# ---- slow directory: every reply held 20 s by the proxy -> 451 4.4.3
# within the 3 s deadline, never 550 ----
sleep 1.5	# cache entries from the burst expire
proxy delay 20000 >/dev/null
mix 2100 2109 >"$T/addrs2"
t0=$(date +%s%N)
rg_burst "$P" "$T/addrs2" "$T/out2" -c 10 -t 40 -n 10 -r 2 >"$T/sum2"
ms=$((($(date +%s%N) - t0) / 1000000))
j=$(rg_judge "$T/out2" "$T/known")
echo "# slow directory: $(cat "$T/sum2") (${ms} ms for 10 parallel sessions)"
echo "# slow directory: $j"
no_wrong "slow directory" "$j"
rg_expect_eq "slow directory: every recipient tempfailed" \
    "$(rg_field known_451 "$j")/$(rg_field unknown_451 "$j")" "10/10"
# 20 recipients, two per session, 3 s deadline each: far below the 20 s
# the proxy holds a reply; a wait for the directory would show here.
rg_check "slow directory: answered without waiting for it (${ms} ms)" \
    test "$ms" -lt 15000
rg_check "slow directory: timeout logged" grep -Eq \
    'lookup of <(u|nx)21[0-9]{2}@example\.com> failed: .*Timed out' "$log"
grep -E 'lookup of <(u|nx)21[0-9]{2}@' "$log" | head -n 1 | sed 's/^/# /'
proxy pass >/dev/null
recovered "slow directory" 2200

# ---- connections reset (proxy drop) mid-burst for 2 s -> 451, then
# 250/550 again without a restart ----
mix 2300 2899 >"$T/addrs3"
rg_burst "$P" "$T/addrs3" "$T/out3" -c 16 -t 7 -n 20000 -r 2 >"$T/sum3" &
bp=$!
sleep 2
proxy drop >/dev/null
sleep 2
proxy pass >/dev/null
wait "$bp"
j=$(rg_judge "$T/out3" "$T/known")
echo "# reset mid-burst: $(cat "$T/sum3")"
echo "# reset mid-burst: $j"
no_wrong "connections reset" "$j"
rg_check "connections reset: some recipients tempfailed" \
    test "$(rg_field known_451 "$j")" -gt 0
rg_check "connections reset: logged" grep -Eq \
    "lookup of <(u|nx)2[3-8][0-9]{2}@example\\.com> failed: .*Can't contact" "$log"
recovered "connections reset" 2901

rg_stop_postfix mx
rg_stop_rcptgate
rg_done
