#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 16 end to end: a real Postfix asks rcptgate through the policy
# door (check_policy_service after reject_unauth_destination) with the
# milter door off. -n shows the door, and both doors off is a config
# error (also with -p none). The decisions t_postfix.sh checks through
# the milter, here as Postfix words them (it adds "<addr>: Recipient
# address rejected: " itself, so rcptgate must not; '%' never doubled);
# hostile addresses through Postfix and raw; the table gone or broken
# -> 451 4.4.3; rcptgate killed -> Postfix's default action (451
# 4.3.5); restarted over its stale socket -> decisions again; SIGTERM
# removes the socket. Harvest: the per-session limit -> 421 4.7.0 and
# Postfix hangs up; the next SMTP session (same smtpd, same policy
# connection) starts from zero; a client-wide block; raw requests show
# the session key is client/server address and port plus the smtpd pid,
# not the policy connection; sasl_username skips the check; queue_id
# names the log line; action = reject -> 550 5.7.1.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
PS=unix:$T/policy.sock
rg_make_table "$db" alice@example.com bob@example.com Carol@Example.COM \
	dave@example.com erin@example.com @example.net || exit 1

# ---- configuration: -n shows the door; both doors off is an error ----
rg_write_conf "$T/milter-only.conf" "unix:$T/unused.sock" "$db"
rg_expect_match "-n without [postfix_policy]: the door is off" \
	"$("$RCPTGATE" -c "$T/milter-only.conf" -n 2>&1)" 'postfix_policy: off'
rg_write_conf "$T/none.conf" none "$db"
rg_check "-n: milter socket = none and no policy socket is a config error" \
	bash -c "! '$RCPTGATE' -c '$T/none.conf' -n >'$T/none.out' 2>&1"
rg_check "-n: -p none and no policy socket is a config error" \
	bash -c "! '$RCPTGATE' -c '$T/milter-only.conf' -p none -n >/dev/null 2>&1"
rg_check "the daemon refuses -p none without a policy socket" \
	bash -c "! timeout 10 '$RCPTGATE' -f -c '$T/milter-only.conf' -p none >'$T/pnone.out' 2>&1"
rg_write_conf "$T/rcptgate.conf" none "$db" "[postfix_policy]" "socket = $PS"
out=$("$RCPTGATE" -c "$T/rcptgate.conf" -n 2>&1)
rg_check "-n: policy door alone passes" bash -c "'$RCPTGATE' -c '$T/rcptgate.conf' -n >/dev/null 2>&1"
rg_expect_match "-n prints the policy door with its defaults" "$out" \
	"postfix_policy: socket=unix:$T/policy\\.sock max_connections=1000 idle_timeout=[^ ]+ request_timeout=[^ ]+"
rg_expect_nomatch "-n: no idle_timeout warning at the default (330s)" \
	"$(grep -i 'idle_timeout' <<<"$out" | grep -v '^postfix_policy:')" .

# ---- the daemon, policy door only, and a Postfix asking it ----
: >"$T/policy.sock"	# a stale file where the socket goes: removed at start
rg_start_rcptgate_on "$PS" "$T/rcptgate.conf" || { rg_notok "rcptgate start"; rg_done; }
rg_check "start-up line names the policy socket" grep -Eq \
	"postfix policy server listening on (unix:)?$T/policy\\.sock" "$T/rcptgate.log"
rg_check "policy socket is a socket (stale file replaced)" test -S "$T/policy.sock"
rg_expect_eq "policy socket mode from [milter] socket_mode" \
	"$(stat -c %a "$T/policy.sock")" 666
# Postfix rewrites user%domain@local (allow_percent_hack) and
# reject_unauth_destination refuses such "routed" addresses
# (allow_untrusted_routing) before the policy check: both off here, so
# '%' reaches rcptgate as the milter sees it.
rg_start_postfix mx "" \
	"mydestination = example.com, example.net, example.org, example.test" \
	"allow_percent_hack = no" "allow_untrusted_routing = yes" \
	"smtpd_recipient_restrictions = reject_unauth_destination, check_policy_service $PS" ||
	{ rg_notok "postfix start"; rg_done; }
p=$PORT_mx

unknown='550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown'
rg_expect_match "known recipient accepted" "$(rg_rcpt $p alice@example.com)" '^250 '
out=$(rg_rcpt $p nobody@example.com)
rg_expect_eq "unknown recipient: Postfix's prefix once, rcptgate's text" "$out" "$unknown"
rg_expect_eq "no doubled prefix" "$(grep -o 'Recipient address rejected' <<<"$out" | wc -l)" 1
rg_expect_door_decisions $p

out=$(rg_rcpt -d $p alice@example.com nobody@example.com bob@example.com)
rg_expect_eq "known-unknown-known in one transaction" \
	"$(echo "$out" | cut -c1-3 | tr '\n' ' ')" "250 550 250 DAT "
rg_expect_match "message queued for the known ones" "$out" 'DATA 250 '
for ((i = 0; i < 50; i++)); do
	grep -q 'to=<alice@example.com>.*status=sent' "$T/mx/postfix.log" && break
	sleep 0.1
done
rg_check "delivered to alice" grep -q 'to=<alice@example.com>.*status=sent' "$T/mx/postfix.log"
rg_check "never delivered to the unknown" bash -c "! grep -q 'to=<nobody@example.com>.*status=' '$T/mx/postfix.log'"
rg_check "Postfix logged the policy reject" rg_wait_grep \
	'NOQUEUE: reject: RCPT from .*: 550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown;' \
	"$T/mx/postfix.log"
rg_check "rcptgate logged the decision as the milter does" grep -Eq \
	'reject rcpt=<nobody@example\.com> client=\[127\.0\.0\.1\] backend=local reason=unknown' "$T/rcptgate.log"

# Several messages in one session: each unknown still checked.
out=$(rg_rcpt -d $p alice@example.com + nobody@example.com bob@example.com + nobody2@example.com)
rg_expect_eq "next messages of the session still checked" \
	"$(echo "$out" | cut -c1-3 | tr '\n' ' ')" "250 DAT 550 250 DAT 550 "

# Hostile addresses: a 5xx, never a crash, '%' never doubled.
long=$(printf 'a%.0s' $(seq 300))
rg_expect_match "300-char local part" "$(rg_rcpt $p "$long@example.com")" '^5[0-9][0-9] '
out=$(rg_rcpt $p '%n%s@example.com')
rg_expect_eq "percent signs: rejected, reply intact" "$out" \
	'550 5.1.1 <%n%s@example.com>: Recipient address rejected: User unknown'
rg_expect_nomatch "percent signs: no %% in the reply" "$out" '%%'
out=$(rg_rcpt $p '100%@example.com')
rg_expect_match "lone percent reaches the client intact" "$out" '<100%@example\.com>'
rg_expect_nomatch "no %% in the reply" "$out" '%%'
# Postfix hands the policy server the unquoted form ("a b"@x -> a b@x).
rg_expect_match "quoted local part" "$(rg_rcpt $p '"a b"@example.com')" '^550 5\.1\.[13] '
rg_expect_match "quoted known user" "$(rg_rcpt $p '"alice"@example.com')" '^250 '
rg_expect_match "asterisk" "$(rg_rcpt $p '*@example.com')" '^550 5\.1\.1 '
rg_expect_match "SQL quote" "$(rg_rcpt $p "o'brien'--@example.com")" '^550 5\.1\.1 '
# Postfix parses "(mail=..." as a comment and asks for the unqualified
# "a)": not rcptgate's to check (t_policy_junk.sh sends it raw).
rg_expect_match "LDAP metacharacters" "$(rg_rcpt $p 'a)(mail=*@example.com')" '^(250|5[0-9][0-9]) '
rg_expect_match "equals sign and spaces" "$(rg_rcpt $p '"x=y z"@example.com')" '^550 5\.1\.[13] '
# The same sent raw, as no Postfix would alter them.
for a in '%n%s@example.com' '100%@example.com' 'a)(mail=*@example.com' \
    '"a b"@example.com' "o'brien'--@example.com" '*@example.com'; do
	rg_expect_eq "raw request: <$a> rejected, '%' intact" \
		"$(rg_policy "$PS" "$a")" 'action=550 5.1.1 User unknown'
done
rg_expect_match "raw request: 300-char local part" "$(rg_policy "$PS" "$long@example.com")" \
	'^action=550 5\.1\.[13] '
# Postfix passes control bytes from the SMTP client on to the policy
# server: decided (bad syntax), never a dropped policy connection and
# so never Postfix's 451 4.3.5.
rg_expect_match "control byte from the SMTP client: 550 5.1.3" \
	"$(rg_rcpt $p $'nob\x01dy@example.com')" '^550 5\.1\.3 '
rg_expect_match "DEL from the SMTP client: 550 5.1.3" \
	"$(rg_rcpt $p $'nob\x7fdy@example.com')" '^550 5\.1\.3 '
rg_check "daemon still running after hostile input" kill -0 "$RG_PID"
rg_expect_match "still answering" "$(rg_rcpt $p bob@example.com)" '^250 '
rg_check "no policy connection closed as junk in all this" \
	bash -c "! grep -q 'policy: closing connection' '$T/rcptgate.log'"

# The table disappears, then is garbage: uncached known tempfails (never
# a reject) with Postfix's prefix.
mv "$db" "$db.away"
rg_expect_match "cached known accepted while table is gone" "$(rg_rcpt $p alice@example.com)" '^250 '
rg_expect_eq "uncached known tempfails while table is gone" "$(rg_rcpt $p dave@example.com)" \
	'451 4.4.3 <dave@example.com>: Recipient address rejected: Directory lookup failed, try again later'
mv "$db.away" "$db"
rg_expect_match "table back: works again" "$(rg_rcpt $p dave@example.com)" '^250 '
mv "$db" "$db.good"
echo "this is not an SQLite database, it is junk in its place" >"$db"
rg_expect_match "unreadable table: uncached known tempfails" "$(rg_rcpt $p erin@example.com)" \
	'^451 4\.4\.3 <erin@example\.com>: Recipient address rejected: Directory lookup failed'
rg_expect_match "unreadable table: unknown tempfails too, never 550" "$(rg_rcpt $p nobody3@example.com)" \
	'^451 4\.4\.3 '
mv "$db.good" "$db"
rg_expect_match "table readable again: works" "$(rg_rcpt $p erin@example.com)" '^250 '

# ---- rcptgate killed: Postfix's default action; restarted: back ----
{ kill -KILL "$RG_PID"; wait "$RG_PID"; } 2>/dev/null
RG_PID=
rg_expect_eq "rcptgate killed: Postfix's smtpd_policy_service_default_action" \
	"$(rg_rcpt $p alice@example.com)" \
	'451 4.3.5 <alice@example.com>: Recipient address rejected: Server configuration problem'
rg_check "Postfix logged the policy server problem" rg_wait_grep \
	'warning: .*(policy|'"$T"'/policy\.sock).*' "$T/mx/postfix.log"
rg_check "killed: the socket file is left behind" test -e "$T/policy.sock"
rg_start_rcptgate_on "$PS" "$T/rcptgate.conf" || { rg_notok "rcptgate restart"; rg_done; }
rg_expect_match "restarted over the stale socket: known accepted" "$(rg_rcpt $p alice@example.com)" '^250 '
rg_expect_eq "restarted: unknown rejected" "$(rg_rcpt $p nobody@example.com)" "$unknown"
rg_stop_rcptgate
rg_check "SIGTERM: daemon stopped and removed its socket" test ! -e "$T/policy.sock"

# ---- harvest through the policy door ----
# Loopback is exempt by default: exempt something else so 127.0.0.N is
# counted. Per session 3, per client 20 distinct unknowns.
rg_write_conf "$T/harvest.conf" none "$db" "[postfix_policy]" "socket = $PS"
sed -i 's/^max_unknown = 0/max_unknown = 20\nwindow = 10m\nblock_time = 1h\nipv4_prefix = 32\naction = tempfail\nexempt = 192.0.2.0\/24/;
	s/^max_unknown_per_session = 0/max_unknown_per_session = 3/' "$T/harvest.conf"
rg_check "harvest config passes -n" bash -c "'$RCPTGATE' -c '$T/harvest.conf' -n >/dev/null 2>&1"
rg_start_rcptgate_on "$PS" "$T/harvest.conf" || { rg_notok "rcptgate harvest start"; rg_done; }

out=$(rg_rcpt -k -s 127.0.0.11 $p u1@example.com u2@example.com u3@example.com alice@example.com bob@example.com)
rg_expect_eq "per-session: three unknowns, then the block reply" \
	"$(echo "$out" | head -n4 | cut -c1-9 | tr '\n' ' ')" "550 5.1.1 550 5.1.1 550 5.1.1 421 4.7.0 "
rg_expect_match "per-session: block text behind Postfix's prefix" "$(sed -n 4p <<<"$out")" \
	'^421 4\.7\.0 <alice@example\.com>: Recipient address rejected: Too many unknown recipients, try again later$'
rg_expect_eq "per-session: Postfix closed the session after the 421" "$(sed -n 5p <<<"$out")" CLOSED
rg_check "Postfix logged the 421 reject" rg_wait_grep \
	'reject: RCPT from .*127\.0\.0\.11.*421 4\.7\.0 <alice@example\.com>' "$T/mx/postfix.log"
# The next SMTP session from the same client, very likely through the
# same smtpd and so the same policy connection: a fresh session count.
out=$(rg_rcpt -s 127.0.0.11 $p alice@example.com v1@example.com v2@example.com bob@example.com)
rg_expect_eq "per-session: the next session starts from zero" \
	"$(echo "$out" | cut -c1-3 | tr '\n' ' ')" "250 550 550 250 "

# Client-wide: 127.0.0.12, sessions of two distinct unknowns, 20 block.
for i in $(seq 10); do
	rg_rcpt -s 127.0.0.12 $p "h${i}a@example.com" "h${i}b@example.com" >/dev/null
done
valid=$(rg_rcpt -k -s 127.0.0.12 $p alice@example.com)
invalid=$(rg_rcpt -k -s 127.0.0.12 $p nobody@example.com)
rg_expect_eq "blocked client: 421 4.7.0 and the session closed" "$valid" \
	$'421 4.7.0 <alice@example.com>: Recipient address rejected: Too many unknown recipients, try again later\nCLOSED'
rg_expect_eq "blocked client: valid and invalid get the same answer" \
	"${invalid//nobody@/alice@}" "$valid"
rg_check "block logged as one parseable line" grep -Eq \
	'harvest: block client=127\.0\.0\.12 prefix=127\.0\.0\.12/32 count=20 ' "$T/rcptgate.log"
rg_expect_match "other source unaffected" "$(rg_rcpt -s 127.0.0.13 $p alice@example.com)" '^250 '
rg_expect_eq "other source: unknown still 550" "$(rg_rcpt -s 127.0.0.13 $p nobody@example.com)" "$unknown"

# ---- per-session state is the SMTP session's, not the connection's ----
# Raw requests as Postfix sends them: two sessions interleaved on one
# policy connection count apart; one session whose requests come over
# two connections (Postfix reconnects after an idle close) counts on.
cat >"$T/sessions.py" <<-'EOF'
	import sys
	sys.path.insert(0, sys.argv[1])
	import policy_client as pc
	spec = sys.argv[2]
	def sess(port, pid="4d2"):
	    return dict(client_address="127.0.0.14", client_port=str(port),
	                server_address="127.0.0.1", server_port="25",
	                instance=pid + ".6571a3b0.1f2e.0")
	out = []
	a = pc.connect(spec)
	# Interleaved: sessions 1001 and 1002, three unknowns each.
	for i in range(3):
	    out.append(pc.ask(a, "s1x%d@example.com" % i, **sess(1001)))
	    out.append(pc.ask(a, "s2x%d@example.com" % i, **sess(1002)))
	out.append(pc.ask(a, "alice@example.com", **sess(1001)))
	# The same client port from another smtpd (pid in instance): its own.
	out.append(pc.ask(a, "alice@example.com", **sess(1002, "4d3")))
	# Session 1003: two unknowns on a, one on b, then the 4th on b.
	b = pc.connect(spec)
	out.append(pc.ask(a, "s3x0@example.com", **sess(1003)))
	out.append(pc.ask(a, "s3x1@example.com", **sess(1003)))
	a.close()
	out.append(pc.ask(b, "s3x2@example.com", **sess(1003)))
	out.append(pc.ask(b, "alice@example.com", **sess(1003)))
	b.close()
	print(" ".join(x.split(" ")[0] for x in out))
EOF
out=$("$RG_PY" -B "$T/sessions.py" "$RG_SOURCE_DIR/test/integration" "$PS")
rg_expect_eq "raw: per-session counts keyed by the SMTP session" "$out" \
	"action=550 action=550 action=550 action=550 action=550 action=550 action=421 action=DUNNO action=550 action=550 action=550 action=421"

# Other attributes: an authenticated client is not checked
# ([policy] skip_authenticated = yes); queue_id names the log line.
rg_expect_eq "raw: sasl_username set: not checked" \
	"$(rg_policy "$PS" nobody@example.com client_address=127.0.0.17 sasl_username=joe sasl_method=PLAIN)" action=DUNNO
rg_expect_eq "raw: queue_id given" \
	"$(rg_policy "$PS" qid@example.com client_address=127.0.0.17 queue_id=4XyZ12AbCd)" 'action=550 5.1.1 User unknown'
rg_check "raw: the log line starts with the queue_id" grep -Eq \
	'4XyZ12AbCd: reject rcpt=<qid@example\.com> client=\[127\.0\.0\.17\]' "$T/rcptgate.log"

# [harvest] action = reject: 550 5.7.1, and Postfix keeps the session.
rg_stop_rcptgate
sed -i 's/^action = tempfail/action = reject/' "$T/harvest.conf"
rg_start_rcptgate_on "$PS" "$T/harvest.conf" || { rg_notok "rcptgate (action = reject) start"; rg_done; }
out=$(rg_rcpt -s 127.0.0.16 $p w1@example.com w2@example.com w3@example.com alice@example.com bob@example.com)
rg_expect_eq "action = reject: three unknowns, then 550 5.7.1 for the rest of the session" \
	"$(echo "$out" | cut -c1-9 | tr '\n' ' ')" "550 5.1.1 550 5.1.1 550 5.1.1 550 5.7.1 550 5.7.1 "
rg_expect_eq "action = reject: the text behind Postfix's prefix" "$(sed -n 4p <<<"$out")" \
	'550 5.7.1 <alice@example.com>: Recipient address rejected: Too many unknown recipients'
rg_stop_rcptgate
rg_done
