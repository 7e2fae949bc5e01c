#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 12 point 1: rcptgate never answers DATA with accept. With accept,
# Postfix 3.7's milter client stays in its "message accepted" state after
# an smtpd_end_of_data_restrictions reject, and the same session can then
# send RCPT without a new MAIL FROM: the milter is never asked and an
# unknown recipient gets 250 (backscatter). Message 1 here is rejected at
# end of data; the session then tries unknown recipients without MAIL
# FROM and, after RSET, with a new one: none may get 250.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
rg_make_table "$db" alice@example.com bob@example.com
rg_write_conf "$T/rcptgate.conf" "unix:$T/rcptgate.sock" "$db"
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
printf 'eod@example.net REJECT 5.7.1 refused at end of data\n' >"$T/eod_senders"
# A short milter_command_timeout: a milter left waiting costs 2 s, not 30.
rg_start_postfix mx "unix:$T/rcptgate.sock" "milter_command_timeout = 2s" \
	"smtpd_end_of_data_restrictions = check_sender_access texthash:$T/eod_senders" ||
	exit 1
p=$PORT_mx

script() {
	"$RG_PY" "$RG_SOURCE_DIR/test/integration/smtp_script.py" "$@"
}

# Session 1: after the end-of-data reject, unknowns without MAIL FROM,
# then RSET, a new MAIL FROM, unknowns and a known one, and a message.
out=$(script "$p" "MAIL FROM:<eod@example.net>" "RCPT TO:<alice@example.com>" \
	DATA "RCPT TO:<nobody1@example.com>" "RCPT TO:<nobody2@example.com>" \
	RSET "MAIL FROM:<sender@example.net>" "RCPT TO:<nobody3@example.com>" \
	"RCPT TO:<bob@example.com>" "RCPT TO:<nobody4@example.com>" DATA)
echo "$out" | sed 's/^/# /'
rg_expect_match "message 1 rejected at end of data" "$(echo "$out" | grep '^\. -> ' | head -n1)" \
	'^\. -> 554 5\.7\.1 .*refused at end of data'
rg_expect_eq "no unknown recipient ever gets 250" \
	"$(echo "$out" | grep -c '^RCPT TO:<nobody[0-9]@example.com> -> 250')" 0
rg_expect_match "without MAIL FROM: no 250 (503, 4xx or 550)" \
	"$(echo "$out" | grep '^RCPT TO:<nobody1@')" ' -> (503|4[0-9][0-9]|550) '
rg_expect_match "after RSET and MAIL FROM: rcptgate rejects the unknown" \
	"$(echo "$out" | grep '^RCPT TO:<nobody3@')" ' -> 550 5\.1\.1 <nobody3@example.com>'
rg_expect_match "after RSET and MAIL FROM: a known one is accepted" \
	"$(echo "$out" | grep '^RCPT TO:<bob@')" ' -> 250 '
rg_expect_match "and the unknown after it is still rejected" \
	"$(echo "$out" | grep '^RCPT TO:<nobody4@')" ' -> 550 5\.1\.1 '
rg_expect_match "message 2 queued for bob" "$(echo "$out" | grep '^\. -> ' | tail -n1)" '^\. -> 250 '

# Session 2: the client goes on to DATA without MAIL FROM. Postfix 3.7.11
# itself misbehaves here (with accept it took the message; with the
# recipients refused its smtpd may drop the session): what matters is
# that no unknown recipient gets 250 and nothing is queued for one.
out2=$(script "$p" "MAIL FROM:<eod@example.net>" "RCPT TO:<alice@example.com>" \
	DATA "RCPT TO:<nobody5@example.com>" DATA)
echo "$out2" | sed 's/^/# /'
rg_expect_match "session 2: unknown without MAIL FROM not accepted" \
	"$(echo "$out2" | grep '^RCPT TO:<nobody5@')" ' -> (503|4[0-9][0-9]|550) '
sleep 1
rg_check "nothing delivered to an unknown" bash -c "! grep -q 'to=<nobody[0-9]@example.com>.*status=' '$T/mx/postfix.log'"
rg_check "delivered to bob" grep -q 'to=<bob@example.com>.*status=sent' "$T/mx/postfix.log"
rg_check "daemon still running" kill -0 "$RG_PID"
rg_done
