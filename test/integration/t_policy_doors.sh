#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 16: both doors of one daemon. One rcptgate with a milter socket
# and a policy socket (inet) serves a Postfix asking through
# smtpd_milters and another through check_policy_service, at once; a
# third Postfix uses both doors, and a recipient the policy door
# rejected, which Postfix then reports to the milter as rejected
# (SMFIP_RCPT_REJ, {rcpt_host} 5.1.1), is counted once for harvest
# (harvest counts distinct addresses, so this holds as long as both
# doors name the address alike: quoted local parts, which Postfix gives
# the policy server unquoted, are checked too); the block holds at every
# door. Then: -p none turns the milter door off; SIGUSR1 applies config
# to new policy connections and warns about a changed policy socket;
# with the milter off, metrics, rcptgate-ctl status, SIGUSR2, rcptgate-
# ctl reload and SIGHUP work; an inet6 policy socket answers.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
rg_make_table "$db" alice@example.com bob@example.com || exit 1
pport=$(rg_free_port)
PS=inet:$pport@127.0.0.1

# Harvest on for 127.0.0.N (exempt elsewhere): 4 distinct unknowns block
# a client, no per-session limit.
rg_write_conf "$T/rcptgate.conf" "unix:$T/milter.sock" "$db" \
	"[postfix_policy]" "socket = $PS"
sed -i 's/^max_unknown = 0/max_unknown = 4\nwindow = 10m\nblock_time = 1h\nipv4_prefix = 32\naction = tempfail\nexempt = 192.0.2.0\/24/' \
	"$T/rcptgate.conf"
rg_expect_match "-n shows both doors" "$("$RCPTGATE" -c "$T/rcptgate.conf" -n 2>&1)" \
	"postfix_policy: socket=inet:$pport@127\\.0\\.0\\.1 "
rg_start_rcptgate "$T/rcptgate.conf" || { rg_notok "rcptgate start"; rg_done; }
rg_check "policy socket (inet) accepts" rg_policy_wait "$PS" 10
rg_check "start-up line for the policy door" \
	grep -Eq "postfix policy server listening on (inet:)?$pport@127\\.0\\.0\\.1" "$T/rcptgate.log"

rg_start_postfix mxm "unix:$T/milter.sock" "mydestination = example.com" ||
	{ rg_notok "postfix (milter) start"; rg_done; }
rg_start_postfix mxp "" "mydestination = example.com" \
	"smtpd_recipient_restrictions = reject_unauth_destination, check_policy_service inet:127.0.0.1:$pport" ||
	{ rg_notok "postfix (policy) start"; rg_done; }
rg_start_postfix mxb "unix:$T/milter.sock" "mydestination = example.com" \
	"smtpd_recipient_restrictions = reject_unauth_destination, check_policy_service inet:127.0.0.1:$pport" ||
	{ rg_notok "postfix (both) start"; rg_done; }

unknown='550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown'
rg_expect_match "milter door: known accepted" "$(rg_rcpt -s 127.0.0.21 $PORT_mxm alice@example.com)" '^250 '
rg_expect_eq "milter door: unknown rejected" "$(rg_rcpt -s 127.0.0.21 $PORT_mxm nobody@example.com)" "$unknown"
rg_expect_match "policy door: known accepted" "$(rg_rcpt -s 127.0.0.22 $PORT_mxp alice@example.com)" '^250 '
rg_expect_eq "policy door: unknown rejected" "$(rg_rcpt -s 127.0.0.22 $PORT_mxp nobody@example.com)" "$unknown"
rg_check "policy door's reject logged by Postfix as a policy reject" rg_wait_grep \
	'NOQUEUE: reject: RCPT from .*127.0.0.22.*550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown' \
	"$T/mxp/postfix.log"

# Both doors busy at once: 8 sessions on each, in parallel.
pids=()
for i in $(seq 8); do
	timeout 60 "$RG_PY" "$RG_SOURCE_DIR/test/integration/smtp_rcpt.py" -s 127.0.0.23 $PORT_mxm \
		alice@example.com nobody@example.com bob@example.com >"$T/par.m.$i" &
	pids+=($!)
	timeout 60 "$RG_PY" "$RG_SOURCE_DIR/test/integration/smtp_rcpt.py" -s 127.0.0.24 $PORT_mxp \
		bob@example.com nobody@example.com alice@example.com >"$T/par.p.$i" &
	pids+=($!)
done
wait "${pids[@]}"
rg_expect_eq "parallel: every milter-door session 250 550 250" \
	"$(cat "$T"/par.m.* | cut -c1-3 | tr '\n' ' ')" "$(printf '250 550 250 %.0s' $(seq 8))"
rg_expect_eq "parallel: every policy-door session 250 550 250" \
	"$(cat "$T"/par.p.* | cut -c1-3 | tr '\n' ' ')" "$(printf '250 550 250 %.0s' $(seq 8))"

# ---- one Postfix, both doors: counted once ----
p=$PORT_mxb
out=$(rg_rcpt -s 127.0.0.31 $p u1@example.com u2@example.com u3@example.com alice@example.com)
rg_expect_eq "both doors: three unknowns rejected by the policy door, known accepted" \
	"$(echo "$out" | cut -c1-9 | tr '\n' ' ')" "550 5.1.1 550 5.1.1 550 5.1.1 250 2.1.5 "
rg_check "Postfix logged the policy reject (not a milter-reject)" rg_wait_grep \
	'NOQUEUE: reject: RCPT from .*127.0.0.31.*550 5.1.1 <u1@example.com>: Recipient address rejected: User unknown' \
	"$T/mxb/postfix.log"
rg_check "the milter was told of the rejected recipient (SMFIP_RCPT_REJ, 5.1.1)" \
	rg_wait_log 'mta-reject rcpt=<u3@example\.com> status=5\.1\.1' 1 5
grep -a 'mta-reject rcpt=<u[0-9]@example' "$T/rcptgate.log" | sed 's/^/# /'
rg_expect_match "both doors: 3 unknowns (each seen by both doors) do not block at max_unknown = 4" \
	"$(rg_rcpt -s 127.0.0.31 $p alice@example.com bob@example.com)" $'^250 [^\n]*\n250 '
rg_expect_match "both doors: the fourth unknown still gets its 550" \
	"$(rg_rcpt -s 127.0.0.31 $p u4@example.com)" '^550 5\.1\.1 '
rg_expect_match "both doors: and then the client is blocked" \
	"$(rg_rcpt -s 127.0.0.31 $p alice@example.com)" '^421 4\.7\.0 '
rg_check "block logged with count=4" grep -Eq \
	'harvest: block client=127\.0\.0\.31 prefix=127\.0\.0\.31/32 count=4 ' "$T/rcptgate.log"
rg_expect_match "other client through both doors unaffected" \
	"$(rg_rcpt -s 127.0.0.32 $p alice@example.com nobody@example.com)" $'^250 [^\n]*\n550 5\\.1\\.1 '

# Quoted local parts: Postfix gives the policy door the unquoted form
# (a b@x) and the milter the quoted one ("a b"@x): still one address.
out=$(rg_rcpt -s 127.0.0.33 $p '"a b"@example.com' '"c d"@example.com' '"e f"@example.com')
rg_expect_eq "both doors, quoted local parts: three rejected" \
	"$(echo "$out" | cut -c1-3 | tr '\n' ' ')" "550 550 550 "
grep -a -E 'rcpt=<("?(a b|c d|e f)"?@example\.com)>' "$T/rcptgate.log" | sed 's/^/# /'
rg_expect_match "both doors, quoted local parts: 3 unknowns do not block at max_unknown = 4" \
	"$(rg_rcpt -s 127.0.0.33 $p alice@example.com)" '^250 '

# The block holds on the other doors and Postfixes too: one limiter.
rg_expect_match "the block holds at the milter-only Postfix" \
	"$(rg_rcpt -s 127.0.0.31 $PORT_mxm alice@example.com)" '^421 4\.7\.0 '
rg_expect_match "the block holds at the policy-only Postfix" \
	"$(rg_rcpt -s 127.0.0.31 $PORT_mxp alice@example.com)" '^421 4\.7\.0 '

# ---- -p none: the milter door off, the policy door on ----
rg_stop_rcptgate
rm -f "$T/milter.sock"
rg_start_rcptgate_on "$PS" "$T/rcptgate.conf" -p none || { rg_notok "rcptgate -p none start"; rg_done; }
rg_check "-p none: no milter socket" test ! -e "$T/milter.sock"
rg_expect_eq "-p none: policy door answers" "$(rg_policy "$PS" nobody@example.com client_address=127.0.0.41)" \
	'action=550 5.1.1 User unknown'
rg_expect_match "-p none: the milter-only Postfix tempfails (milter_default_action)" \
	"$(rg_rcpt -s 127.0.0.41 $PORT_mxm alice@example.com)" '^(MAIL )?451 4\.7\.1 '
rg_expect_eq "-p none: the policy Postfix still decides" \
	"$(rg_rcpt -s 127.0.0.41 $PORT_mxp nobody@example.com)" "$unknown"

# ---- SIGUSR1 with the milter off: config applies to new connections;
# a changed policy socket is warned about and the old one kept ----
sed -i 's/^always_accept = postmaster, abuse/always_accept = postmaster, abuse, nobody/' "$T/rcptgate.conf"
kill -USR1 "$RG_PID"
got=
for ((i = 0; i < 50; i++)); do
	got=$(rg_policy "$PS" nobody@example.com client_address=127.0.0.42)
	[ "$got" = action=DUNNO ] && break
	sleep 0.1
done
rg_expect_eq "SIGUSR1: new always_accept applies to a new policy connection" "$got" action=DUNNO
rg_check "SIGUSR1: daemon still running" kill -0 "$RG_PID"
pport2=$(rg_free_port)
sed -i "s/^socket = inet:$pport@127.0.0.1/socket = inet:$pport2@127.0.0.1/" "$T/rcptgate.conf"
n0=$(rg_log_count '[Rr]estart')
kill -USR1 "$RG_PID"
rg_check "SIGUSR1 with a changed policy socket: a restart is asked for in the log" \
	rg_wait_log '[Rr]estart' $((n0 + 1)) 5
grep -a '[Rr]estart' "$T/rcptgate.log" | tail -n 2 | sed 's/^/# /'
rg_expect_eq "changed policy socket: the old socket still answers" \
	"$(rg_policy "$PS" alice@example.com client_address=127.0.0.42)" action=DUNNO
rg_stop_rcptgate

# ---- operator views with the milter off: metrics, rcptgate-ctl status,
# SIGUSR2 counters, rcptgate-ctl reload, SIGHUP stop ----
: "${RCPTGATE_CTL:=$RG_BUILD_DIR/rcptgate-ctl}"
mport=$(rg_free_port)
rg_write_conf "$T/ops.conf" none "$db" "[postfix_policy]" "socket = unix:$T/policy.sock" \
	"[metrics]" "listen = 127.0.0.1:$mport" "[control]" "socket = unix:$T/control.sock"
rg_start_rcptgate_on "unix:$T/policy.sock" "$T/ops.conf" || { rg_notok "rcptgate ops start"; rg_done; }
rg_wait_port "$mport" 5
# The start-up probe (rg_policy_wait) was a connection too: count from here.
c0=$(curl -s --max-time 5 "http://127.0.0.1:$mport/metrics" | sed -n 's/^rcptgate_policy_connections_total //p')
cat >"$T/ops.py" <<-'PYEOF'
	import sys, time
	sys.path.insert(0, sys.argv[1])
	import policy_client as pc
	a = pc.connect(sys.argv[2]); b = pc.connect(sys.argv[2])
	print(pc.ask(a, "alice@example.com"), pc.ask(a, "nobody@example.com"),
	      pc.ask(b, "bob@example.com"))
	j = pc.connect(sys.argv[2]); j.sendall(b"junk\n\n"); pc.closed(j, 5.0); j.close()
	print("ready")
	sys.stdout.flush()
	sys.stdin.readline()	# hold a and b open while the shell scrapes
PYEOF
coproc OPS { timeout 60 "$RG_PY" -B "$T/ops.py" "$RG_SOURCE_DIR/test/integration" "unix:$T/policy.sock"; }
ops_pid=$OPS_PID
read -r -t 20 got <&"${OPS[0]}"
read -r -t 20 ready <&"${OPS[0]}"
rg_expect_eq "three requests on two connections" "$got" "action=DUNNO action=550 5.1.1 User unknown action=DUNNO"
sleep 0.3
page=$(curl -s --max-time 5 "http://127.0.0.1:$mport/metrics")
echo "$page" | grep '^rcptgate_policy' | sed 's/^/# /'
rg_expect_eq "metrics: policy connections total (3 more)" \
	"$(sed -n 's/^rcptgate_policy_connections_total //p' <<<"$page")" "$((${c0:-0} + 3))"
rg_expect_eq "metrics: policy connections open now (2)" \
	"$(sed -n 's/^rcptgate_policy_connections //p' <<<"$page")" 2
rg_expect_match "metrics: policy requests total (3)" "$page" $'\nrcptgate_policy_requests_total 3\n'
rg_expect_match "metrics: policy protocol errors (1)" "$page" $'\nrcptgate_policy_protocol_errors_total 1\n'
echo >&"${OPS[1]}"
wait "$ops_pid" 2>/dev/null
out=$("$RCPTGATE_CTL" -s "unix:$T/control.sock" status 2>&1)
echo "$out" | grep -i socket | sed 's/^/# /'
rg_expect_match "rcptgate-ctl status: policy socket" "$out" "policy socket:? +unix:$T/policy\\.sock"
out=$("$RCPTGATE_CTL" -s "unix:$T/control.sock" --json status 2>&1)
rg_expect_match "rcptgate-ctl --json status: policy_socket" "$out" "\"policy_socket\": *\"unix:$T/policy\\.sock\""
n0=$(rg_log_count 'counters: accepted=')
kill -USR2 "$RG_PID"
rg_check "SIGUSR2 with the milter off: counters logged" rg_wait_log 'counters: accepted=' $((n0 + 1)) 5
n0=$(rg_log_count 'reload')
rg_check "rcptgate-ctl reload with the milter off" \
	bash -c "'$RCPTGATE_CTL' -s 'unix:$T/control.sock' reload >/dev/null 2>&1"
rg_check "reload logged" rg_wait_log 'reload' $((n0 + 1)) 5
rg_expect_eq "answers after the reload" "$(rg_policy "unix:$T/policy.sock" nobody@example.com)" \
	'action=550 5.1.1 User unknown'
kill -HUP "$RG_PID"
for ((i = 0; i < 100; i++)); do kill -0 "$RG_PID" 2>/dev/null || break; sleep 0.1; done
rg_check "SIGHUP with the milter off: stopped within 10 s" bash -c "! kill -0 $RG_PID 2>/dev/null"
wait "$RG_PID" 2>/dev/null
RG_PID=
rg_check "SIGHUP: policy socket removed" test ! -e "$T/policy.sock"

# ---- an inet6 policy socket ----
pport6=$(rg_free_port)
rg_write_conf "$T/v6.conf" none "$db" "[postfix_policy]" "socket = inet6:$pport6@::1"
rg_start_rcptgate_on "inet6:$pport6@::1" "$T/v6.conf" || { rg_notok "rcptgate inet6 start"; rg_done; }
rg_expect_eq "inet6 policy socket: unknown" "$(rg_policy "inet6:$pport6@::1" nobody@example.com client_address=::1)" \
	'action=550 5.1.1 User unknown'
rg_expect_eq "inet6 policy socket: known" "$(rg_policy "inet6:$pport6@::1" alice@example.com client_address=2001:db8::7)" \
	action=DUNNO
rg_stop_rcptgate
rg_done
