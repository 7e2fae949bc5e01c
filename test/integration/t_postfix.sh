#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 2 end to end: a real Postfix asks rcptgate (SQLite table) at
# RCPT TO, over a unix and a TCP socket.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
rg_make_table "$db" alice@example.com bob@example.com Carol@Example.COM \
	dave@example.com @example.net
rg_write_conf "$T/rcptgate.conf" "unix:$T/rcptgate.sock" "$db"
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_start_postfix mx "unix:$T/rcptgate.sock" || exit 1
p=$PORT_mx

unknown='550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown'
rg_expect_match "known recipient accepted" "$(rg_rcpt $p alice@example.com)" '^250 '
rg_expect_eq "unknown recipient rejected in session" "$(rg_rcpt $p nobody@example.com)" "$unknown"
rg_expect_door_decisions $p

# Known, unknown, known in one transaction: SMFIS_CONTINUE, never ACCEPT,
# so the unknown one after a known one is still rejected; the message
# goes to the known ones only.
out=$(rg_rcpt -d $p alice@example.com nobody@example.com bob@example.com)
rg_expect_eq "known-unknown-known in one transaction" "$(echo "$out" | cut -c1-3 | tr '\n' ' ')" "250 550 250 DAT "
rg_expect_match "message queued for the known ones" "$out" 'DATA 250 '
sleep 1
rg_check "delivered to alice" grep -q 'to=<alice@example.com>.*status=sent' "$T/mx/postfix.log"
rg_check "never delivered to the unknown" bash -c "! grep -q 'to=<nobody@example.com>.*status=' '$T/mx/postfix.log'"
rg_check "Postfix logged the milter reject" grep -q 'milter-reject: RCPT from .* 550 5.1.1 <nobody@example.com>' "$T/mx/postfix.log"

# rcptgate answers DATA with continue (never accept, t_eod_reject.sh):
# three messages in one session, the unknown recipients of the second
# and third are still rejected.
out=$(rg_rcpt -d $p alice@example.com + nobody@example.com bob@example.com + nobody2@example.com)
rg_expect_eq "continue at DATA: next messages of the session still checked" "$(echo "$out" | cut -c1-3 | tr '\n' ' ')" "250 DAT 550 250 DAT 550 "

# Hostile addresses: a 5xx, never a crash.
long=$(printf 'a%.0s' $(seq 300))
rg_expect_match "300-char local part" "$(rg_rcpt $p "$long@example.com")" '^5[0-9][0-9] '
rg_expect_match "percent signs" "$(rg_rcpt $p '%n%s@example.com')" '^550 5\.1\.1 '
rg_expect_match "lone percent reaches the client intact" "$(rg_rcpt $p '100%@example.com')" '100%'
rg_expect_match "quoted local part" "$(rg_rcpt $p '"a b"@example.com')" '^550 5\.1\.1 '
rg_expect_match "quoted known user" "$(rg_rcpt $p '"alice"@example.com')" '^250 '
rg_expect_match "asterisk" "$(rg_rcpt $p '*@example.com')" '^550 5\.1\.1 '
rg_expect_match "SQL quote" "$(rg_rcpt $p "o'brien'--@example.com")" '^550 5\.1\.1 '
rg_expect_match "LDAP metacharacters" "$(rg_rcpt $p 'a)(mail=*@example.com')" '^5[0-9][0-9] '
rg_check "daemon still running after hostile input" kill -0 "$RG_PID"
rg_expect_match "still answering" "$(rg_rcpt $p bob@example.com)" '^250 '

# The table disappears: cached known still accepted, uncached known gets a
# tempfail (never a reject), and the log says why.
mv "$db" "$db.away"
rg_expect_match "cached known accepted while table is gone" "$(rg_rcpt $p alice@example.com)" '^250 '
rg_expect_eq "uncached known tempfails while table is gone" "$(rg_rcpt $p dave@example.com)" \
	'451 4.4.3 Directory lookup failed, try again later'
mv "$db.away" "$db"
rg_expect_match "table back: works again" "$(rg_rcpt $p dave@example.com)" '^250 '
rg_check "decision logged" grep -q 'reject rcpt=<nobody@example.com> client=\[127.0.0.1\] backend=local reason=unknown' "$T/rcptgate.log"

# The same over TCP.
port=$(rg_free_port)
rg_stop_rcptgate
rg_write_conf "$T/tcp.conf" "inet:$port@127.0.0.1" "$db"
rg_start_rcptgate "$T/tcp.conf" || exit 1
rg_start_postfix tcp "inet:127.0.0.1:$port" || exit 1
rg_expect_match "TCP socket: known accepted" "$(rg_rcpt $PORT_tcp alice@example.com)" '^250 '
rg_expect_eq "TCP socket: unknown rejected" "$(rg_rcpt $PORT_tcp nobody@example.com)" "$unknown"
rg_done
