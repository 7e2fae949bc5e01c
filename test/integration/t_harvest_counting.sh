#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 12, point 3, through a real Postfix: harvest counting counts
# harvesting and nothing else.
# - Recipients Postfix rejected itself (SMFIP_RCPT_REJ) count only with
#   the enhanced code 5.1.1 in {rcpt_host}: greylisting (450 4.2.0), an
#   RBL-style 554 5.7.1 and a sender reject Postfix reports at RCPT
#   (smtpd_delay_reject = yes, 553 5.1.8) block nobody; Postfix's own
#   550 5.1.1 still counts. What Postfix put in {rcpt_host} is logged by
#   rcptgate at debug level and checked here.
# - Distinct addresses: 10 sessions each with the same 3 unknown
#   addresses block nobody; 20 distinct unknowns block as before.
# - Loopback is exempt by default (content filters re-inject there);
#   the other cases set `exempt =` to test blocking from 127.0.0.N.
# - Upgrade: a state file and Redis keys written by the release before
#   distinct counting (test/integration/harvest-v1, made by that binary)
#   keep their block and counter under the new daemon.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

fix=$RG_SOURCE_DIR/test/integration/harvest-v1
db=$T/recipients.db
rg_make_table "$db" alice@example.com bob@example.com || exit 1

# write_conf FILE STATE [EXEMPT-LINE]: harvest on with the defaults but
# for the state; EXEMPT-LINE "-" leaves `exempt` at its default.
write_conf() {
	cat >"$1" <<-EOT
		[milter]
		socket = unix:$T/rg.sock
		user =
		socket_mode = 0666
		log_level = debug

		[policy]
		domains = example.com
		backends = local

		[backend local]
		type = sqlite
		path = $db

		[harvest]
		max_unknown = 5
		window = 10m
		block_time = 1h
		max_unknown_per_session = 3
		action = tempfail
		state = $2
	EOT
	[ "${3:--}" = - ] || echo "$3" >>"$1"
}

cat >"$T/access" <<-EOT
	grey.test	450 4.2.0 Greylisted, try again later
	stale.test	550 5.1.1 Mailbox unknown
	rbl.test	554 5.7.1 Service unavailable; client host listed
EOT
cat >"$T/senders" <<-EOT
	nxdomain.test	553 5.1.8 Sender address rejected: Domain not found
EOT

write_conf "$T/rcptgate.conf" "" "exempt ="
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_start_postfix mx "unix:$T/rg.sock" \
	"mynetworks = 192.0.2.0/24" \
	"relay_domains = example.com, grey.test, stale.test, rbl.test" \
	"smtpd_delay_reject = yes" \
	"smtpd_sender_restrictions = check_sender_access texthash:$T/senders" \
	"smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination" \
	"smtpd_recipient_restrictions = check_recipient_access texthash:$T/access" ||
	exit 1
p=$PORT_mx

# replies SOURCE ADDR...: the RCPT replies of one session, one a line
replies() {
	local src=$1
	shift
	rg_rcpt -s "$src" "$p" "$@"
}

# open_for SOURCE: a new session from SOURCE gets 250 for alice
open_for() {
	replies "$1" alice@example.com
}

# Greylisting: 20 recipients, 5 a session, each after a valid one.
out=
for s in 0 1 2 3; do
	out+=$(replies 127.0.0.21 alice@example.com g${s}1@grey.test \
	    g${s}2@grey.test g${s}3@grey.test g${s}4@grey.test \
	    g${s}5@grey.test bob@example.com)$'\n'
done
rg_expect_eq "greylisting: Postfix answers 450 to all 20" \
	"$(grep -c '^450 4\.2\.0' <<<"$out")" 20
rg_expect_eq "greylisting: the session goes on after 5 (no session limit)" \
	"$(grep -c '^250 ' <<<"$out")" 8
rg_expect_match "greylisting (450) on 20 recipients: no block" \
	"$(open_for 127.0.0.21)" '^250 '

# An RBL-style 554 5.7.1 and a sender reject reported at RCPT.
replies 127.0.0.22 r1@rbl.test r2@rbl.test r3@rbl.test >/dev/null
replies 127.0.0.22 r4@rbl.test r5@rbl.test r6@rbl.test >/dev/null
rg_expect_match "554 5.7.1 on 6 recipients: no block" \
	"$(open_for 127.0.0.22)" '^250 '
out=$(rg_rcpt -s 127.0.0.23 -f x@nxdomain.test "$p" n1@example.com \
	n2@example.com n3@example.com n4@example.com n5@example.com \
	n6@example.com)
rg_expect_eq "sender reject at RCPT (smtpd_delay_reject): 553 5.1.8 each" \
	"$(grep -c '^553 5\.1\.8' <<<"$out")" 6
rg_expect_match "5.1.8 sender rejects on 6 recipients: no block" \
	"$(open_for 127.0.0.23)" '^250 '

# Postfix's own 5.1.1 still counts: 5 distinct ones block.
replies 127.0.0.24 s1@stale.test s2@stale.test >/dev/null
replies 127.0.0.24 s3@stale.test s4@stale.test >/dev/null
replies 127.0.0.24 s5@stale.test >/dev/null
rg_expect_match "Postfix's own 550 5.1.1 counts: blocked after 5" \
	"$(open_for 127.0.0.24)" '^421 4\.7\.0 '

# What Postfix 3.7 gave in {rcpt_host} for each kind of reject.
for want in "g01@grey.test 4.2.0" "r1@rbl.test 5.7.1" \
    "n1@example.com 5.1.8" "s1@stale.test 5.1.1"; do
	set -- $want
	rg_check "{rcpt_host} for <$1> is $2" grep -q \
	    "mta-reject rcpt=<$1> status=$2 counted=" "$T/rcptgate.log"
done
grep -a -E 'mta-reject rcpt=<(g01@grey|r1@rbl|n1@example\.com|s1@stale)' \
	"$T/rcptgate.log" | sed 's/^/# /'
rg_check "only 5.1.1 counted" bash -c "! grep 'mta-reject' '$T/rcptgate.log' |
	grep -v 'status=5\.1\.1 counted=yes' | grep -q 'counted=yes'"

# A list server: the same 3 stale addresses in 10 sessions.
for ((i = 0; i < 10; i++)); do
	replies 127.0.0.25 alice@example.com old1@example.com \
	    old2@example.com old3@example.com >"$T/list.$i"
done
rg_expect_eq "list server: each session gets its 250 and three 550s" \
	"$(cat "$T"/list.* | cut -c1-9 | sort | uniq -c | tr -s ' ' | tr '\n' ,)" \
	" 10 250 2.1.5, 30 550 5.1.1,"
rg_expect_match "10 sessions each with the same 3 unknown addresses: no block" \
	"$(open_for 127.0.0.25)" '^250 '
# ... and one session retrying one address is not ended either.
out=$(replies 127.0.0.26 old1@example.com old1@example.com old1@example.com \
	old1@example.com alice@example.com)
rg_expect_match "one session retrying one address: not ended" \
	"$(tail -n1 <<<"$out")" '^250 '

# A harvester: 20 distinct unknowns, sessions of 2, blocked as before.
for ((i = 0; i < 10; i++)); do
	replies 127.0.0.27 "h${i}a@example.com" "h${i}b@example.com" >"$T/h.$i"
done
rg_expect_eq "harvester: the first 5 distinct get 550, then the block" \
	"$(cat "$T"/h.[0-9] | grep -o '^[0-9][0-9][0-9] ' | uniq -c | head -n2 |
	tr -s ' ' | tr '\n' ,)" " 5 550 , 8 421 ,"
rg_expect_match "20 distinct unknowns: blocked" "$(open_for 127.0.0.27)" \
	'^421 4\.7\.0 '

# Loopback exempt by default.
rg_stop_rcptgate
write_conf "$T/default.conf" "" -
rg_start_rcptgate "$T/default.conf" || exit 1
for ((i = 0; i < 10; i++)); do
	replies 127.0.0.1 "l${i}a@example.com" "l${i}b@example.com" >/dev/null
	replies 127.0.0.2 "m${i}a@stale.test" "m${i}b@stale.test" >/dev/null
done
rg_expect_match "loopback exempt by default: 127.0.0.1 not blocked" \
	"$(open_for 127.0.0.1)" '^250 '
rg_expect_match "loopback exempt by default: Postfix's 5.1.1 not counted" \
	"$(open_for 127.0.0.2)" '^250 '

# Upgrade: the old release's state file (times moved to now).
rg_stop_rcptgate
cp "$fix/harvest.db" "$T/old.db"
now=$(($(date +%s) * 1000))
sqlite3 "$T/old.db" "UPDATE clients SET blocked_until = $((now + 3600000))
	WHERE blocked_until > 0; UPDATE clients SET window_end = $((now + 600000))
	WHERE count > 0" || exit 1
write_conf "$T/up.conf" "$T/old.db" "exempt ="
rg_start_rcptgate "$T/up.conf" || exit 1
rg_expect_match "old state file: the block is still there" \
	"$(open_for 127.0.0.9)" '^421 4\.7\.0 '
replies 127.0.0.10 u1@example.com u2@example.com >/dev/null
rg_expect_match "old state file: its counter of 2 goes on (2 + 2 = 4)" \
	"$(open_for 127.0.0.10)" '^250 '
replies 127.0.0.10 u1@example.com u3@example.com >/dev/null
rg_expect_match "old state file: 2 + 3 distinct = 5 blocks" \
	"$(open_for 127.0.0.10)" '^421 4\.7\.0 '
sleep 1.5
rg_check "state file upgraded in place (seen column, hash key)" \
	sqlite3 "$T/old.db" "SELECT seen FROM clients LIMIT 1; SELECT value FROM meta"
rg_expect_match "-b list reads the upgraded file" \
	"$("$RCPTGATE" -c "$T/up.conf" -b list 2>&1)" \
	$'127\\.0\\.0\\.9/32\tblocked\tcount=5\tuntil='

if ! command -v redis-server >/dev/null; then
	echo "# skip: redis-server not installed"
	rg_done
fi
rport=$(rg_free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
	--dir "$T" >"$T/redis.log" 2>&1 &
rg_track $!
rg_wait_port "$rport" 10 || exit 1
# The old release's keys (redis-keys.txt: TYPE KEY VALUE), with an expiry.
while read -r type key value; do
	[ "$type" = string ] || continue
	redis-cli -p "$rport" SET "$key" "$value" PX 600000 >/dev/null
done <"$fix/redis-keys.txt"
rg_stop_rcptgate
write_conf "$T/redis.conf" "redis://127.0.0.1:$rport/0" "exempt ="
rg_start_rcptgate "$T/redis.conf" || exit 1
rg_expect_match "old Redis keys: the block is still there" \
	"$(open_for 127.0.0.9)" '^421 4\.7\.0 '
replies 127.0.0.10 v1@example.com v1@example.com v2@example.com >/dev/null
rg_expect_match "old Redis counter of 2 goes on (2 + 2 = 4)" \
	"$(open_for 127.0.0.10)" '^250 '
replies 127.0.0.10 v2@example.com v3@example.com >/dev/null
rg_expect_match "old Redis counter: 2 + 3 distinct = 5 blocks" \
	"$(open_for 127.0.0.10)" '^421 4\.7\.0 '
rg_expect_eq "Redis: the new form is a set of distinct hashes" \
	"$(redis-cli -p "$rport" SCARD 'rcptgate:harvest:seen:127.0.0.10/32')" 3
rg_expect_eq "Redis: the old counter is never written" \
	"$(redis-cli -p "$rport" GET 'rcptgate:harvest:count:127.0.0.10/32')" 2
rg_done
