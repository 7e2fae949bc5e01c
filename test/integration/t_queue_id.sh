#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 12 point 8: the queue id on rcptgate's log line is the one of the
# message being decided. Postfix makes a queue file only at the first
# recipient it accepts, so the first RCPT of a message comes with no
# queue id macro (i) and later ones with it; rcptgate used to keep the id
# of the session's previous message for the next one's first RCPTs.
# Two messages in one session; each reject's id must be the one Postfix
# logged for the same reject.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
rg_make_table "$db" alice@example.com bob@example.com
rg_write_conf "$T/rcptgate.conf" "unix:$T/rcptgate.sock" "$db"
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_start_postfix mx "unix:$T/rcptgate.sock" || exit 1

out=$("$RG_PY" "$RG_SOURCE_DIR/test/integration/smtp_script.py" "$PORT_mx" \
	"MAIL FROM:<sender@example.net>" "RCPT TO:<alice@example.com>" \
	"RCPT TO:<nobody1@example.com>" DATA \
	"MAIL FROM:<sender@example.net>" "RCPT TO:<nobody2@example.com>" \
	"RCPT TO:<bob@example.com>" "RCPT TO:<nobody3@example.com>" DATA)
echo "$out" | sed 's/^/# /'
q1=$(echo "$out" | sed -n 's/^\. -> 250 .*queued as \([0-9A-Za-z]*\).*/\1/p' | sed -n 1p)
q2=$(echo "$out" | sed -n 's/^\. -> 250 .*queued as \([0-9A-Za-z]*\).*/\1/p' | sed -n 2p)
rg_expect_match "message 1 queued" "$q1" '^[0-9A-Za-z]+$'
rg_expect_match "message 2 queued under another id" "$q2" '^[0-9A-Za-z]+$'
[ "$q1" != "$q2" ] || rg_notok "two queue ids" "both $q1"

# The id Postfix logged for its milter-reject of ADDR (NOQUEUE if none),
# and the one rcptgate logged for its reject of ADDR.
pf_id() {
	sed -n "s/.*smtpd\[[0-9]*\]: \([0-9A-Za-z]*\): milter-reject: RCPT .* to=<$1>.*/\1/p" \
		"$T/mx/postfix.log" | head -n1
}
rg_id() {
	sed -n "s/.*rcptgate\[[0-9]*\]: \([0-9A-Za-z]*\): reject rcpt=<$1>.*/\1/p" \
		"$T/rcptgate.log" | head -n1
}
sleep 1
for a in nobody1 nobody2 nobody3; do
	want=$(pf_id "$a@example.com")
	rg_expect_match "Postfix logged the reject of $a" "$want" '^[0-9A-Za-z]+$'
	rg_expect_eq "$a: rcptgate logs the id Postfix logs" "$(rg_id "$a@example.com")" "$want"
done
# What Postfix 3.7 sends, spelled out (if it changes, the lines above
# still hold, these say why): no id before the first accepted recipient.
rg_expect_eq "first RCPT of message 1 after an accepted one: message 1's id" \
	"$(rg_id nobody1@example.com)" "$q1"
rg_expect_eq "first RCPT of message 2: no id, never message 1's" \
	"$(rg_id nobody2@example.com)" NOQUEUE
rg_expect_eq "after message 2's first accepted recipient: its id" \
	"$(rg_id nobody3@example.com)" "$q2"

# With smtpd_delay_open_until_valid_rcpt = no, Postfix opens the queue
# file at MAIL FROM and sends the id with every RCPT: each reject then
# carries its own message's id, the second message's first one included.
rg_start_postfix mx2 "unix:$T/rcptgate.sock" \
	"smtpd_delay_open_until_valid_rcpt = no" || exit 1
out=$("$RG_PY" "$RG_SOURCE_DIR/test/integration/smtp_script.py" "$PORT_mx2" \
	"MAIL FROM:<sender@example.net>" "RCPT TO:<alice@example.com>" \
	"RCPT TO:<early1@example.com>" DATA \
	"MAIL FROM:<sender@example.net>" "RCPT TO:<early2@example.com>" \
	"RCPT TO:<bob@example.com>" DATA)
echo "$out" | sed 's/^/# /'
q1=$(echo "$out" | sed -n 's/^\. -> 250 .*queued as \([0-9A-Za-z]*\).*/\1/p' | sed -n 1p)
q2=$(echo "$out" | sed -n 's/^\. -> 250 .*queued as \([0-9A-Za-z]*\).*/\1/p' | sed -n 2p)
rg_expect_match "queue file at MAIL FROM: two messages queued" "$q1 $q2" '^[0-9A-Za-z]+ [0-9A-Za-z]+$'
rg_expect_eq "queue file at MAIL FROM: message 1's reject has its id" \
	"$(rg_id early1@example.com)" "$q1"
rg_expect_eq "queue file at MAIL FROM: message 2's first reject has message 2's id" \
	"$(rg_id early2@example.com)" "$q2"
rg_done
