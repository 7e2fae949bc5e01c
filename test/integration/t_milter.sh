#!/bin/bash
# SPDX-License-Identifier: MIT
# The milter protocol seen from the MTA side, with miltertest (OpenDKIM's
# Lua MTA): macros at RCPT (client address, AUTH name, queue id, Sendmail's
# IPv6: form), exemptions, SMFIS_CONTINUE never ACCEPT, recipients the MTA
# rejected itself (SMFIP_RCPT_REJ) counted for the harvest limits, and
# sessions that end abruptly. Reply texts are checked through real MTAs
# (t_postfix.sh); miltertest shows only the reply type.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
rg_make_table "$db" alice@example.com bob@example.com
rg_write_conf "$T/rcptgate.conf" "unix:$T/rcptgate.sock" "$db"
sed -i 's/^always_accept = .*/&\ntrusted_networks = 10.9.0.0\/16, 2001:db8:9::\/48/; s/^max_unknown_per_session = 0/max_unknown_per_session = 3/' "$T/rcptgate.conf"
rg_start_rcptgate "$T/rcptgate.conf" || exit 1

# mt_session NAME MACROS... -- RCPT...: one milter session; prints the reply
# type of each RCPT: C (continue), A (accept), R (reply code), T, D, ?
mt_session() {
	local lua=$T/$1.lua
	shift
	{
		echo "conn = mt.connect('unix:$T/rcptgate.sock')"
		echo "if conn == nil then error('connect') end"
		echo "if mt.negotiate(conn, nil, nil, nil) ~= nil then error('negotiate') end"
		echo "local names = { [SMFIR_CONTINUE]='C', [SMFIR_ACCEPT]='A', [SMFIR_REPLYCODE]='R', [SMFIR_TEMPFAIL]='T', [SMFIR_REJECT]='J', [SMFIR_DISCARD]='D' }"
		local macros="" rcpt
		while [ $# -gt 0 ] && [ "$1" != "--" ]; do
			macros+="'$1', '$2', "
			shift 2
		done
		shift
		for rcpt in "$@"; do
			echo "mt.macro(conn, SMFIC_RCPT, ${macros%, })"
			echo "if mt.rcptto(conn, '<$rcpt>') ~= nil then error('rcptto') end"
			echo "io.write(names[mt.getreply(conn)] or '?')"
		done
		echo "io.write('\n')"
		echo "mt.disconnect(conn)"
	} >"$lua"
	miltertest -s "$lua" 2>&1
}

client='{client_addr}'
rg_expect_eq "known, unknown, known: continue, reply, continue (never accept)" \
	"$(mt_session a "$client" 192.0.2.7 i Q1 -- alice@example.com nobody@example.com bob@example.com)" "CRC"
rg_check "queue id and client logged" grep -q 'Q1: reject rcpt=<nobody@example.com> client=\[192.0.2.7\] backend=local reason=unknown' "$T/rcptgate.log"
rg_expect_eq "AUTH client not checked" \
	"$(mt_session b "$client" 192.0.2.7 '{auth_authen}' carol -- nobody@example.com)" "C"
rg_expect_eq "empty AUTH name is not authenticated" \
	"$(mt_session c "$client" 192.0.2.7 '{auth_authen}' '' -- nobody@example.com)" "R"
rg_expect_eq "trusted IPv4 client not checked" \
	"$(mt_session d "$client" 10.9.3.4 -- nobody@example.com)" "C"
rg_expect_eq "trusted IPv6 client (Sendmail IPv6: form) not checked" \
	"$(mt_session e "$client" IPv6:2001:db8:9::5 -- nobody@example.com)" "C"
rg_expect_eq "untrusted IPv6 client checked" \
	"$(mt_session f "$client" 2001:db8:1::5 -- nobody@example.com)" "R"
rg_check "IPv6 client logged" grep -q 'reject rcpt=<nobody@example.com> client=\[2001:db8:1::5\]' "$T/rcptgate.log"
rg_expect_eq "no client address at all: still checked" \
	"$(mt_session g i Q2 -- nobody@example.com alice@example.com)" "RC"

# Three recipients the MTA rejected itself, then one more: the session
# limit (3) is reached without rcptgate having replied to any of them.
rg_expect_eq "MTA-rejected recipients count, unanswered" \
	"$(mt_session h "$client" 192.0.2.44 '{rcpt_mailer}' error -- x1@example.com x2@example.com x3@example.com)" "CCC"
cat >"$T/h3.lua" <<-EOT
	conn = mt.connect('unix:$T/rcptgate.sock')
	if mt.negotiate(conn, nil, nil, nil) ~= nil then error('negotiate') end
	for i = 1, 3 do
		mt.macro(conn, SMFIC_RCPT, '{client_addr}', '192.0.2.45', '{rcpt_mailer}', 'error')
		if mt.rcptto(conn, '<y' .. i .. '@example.com>') ~= nil then error('rcptto') end
		mt.getreply(conn)
	end
	mt.macro(conn, SMFIC_RCPT, '{client_addr}', '192.0.2.45', '{rcpt_mailer}', 'smtp')
	if mt.rcptto(conn, '<alice@example.com>') ~= nil then error('rcptto') end
	io.write(mt.getreply(conn) == SMFIR_REPLYCODE and 'blocked\n' or 'open\n')
	mt.disconnect(conn)
EOT
rg_expect_eq "session blocked after 3 MTA-rejected recipients" "$(miltertest -s "$T/h3.lua" 2>&1)" "blocked"

# DATA is answered with continue, never accept (issue 12 point 1: with
# accept, Postfix 3.7 skips the milter for RCPTs sent after its own
# end-of-data reject, t_eod_reject.sh); the end of message too, and the
# next message of the connection is decided again.
cat >"$T/data.lua" <<-EOT
	conn = mt.connect('unix:$T/rcptgate.sock')
	if mt.negotiate(conn, nil, nil, nil) ~= nil then error('negotiate') end
	local names = { [SMFIR_CONTINUE]='C', [SMFIR_ACCEPT]='A', [SMFIR_REPLYCODE]='R' }
	for i = 1, 2 do
		mt.macro(conn, SMFIC_RCPT, '{client_addr}', '192.0.2.10')
		if mt.rcptto(conn, '<alice@example.com>') ~= nil then error('rcptto') end
		io.write(names[mt.getreply(conn)] or '?')
		mt.macro(conn, SMFIC_RCPT, '{client_addr}', '192.0.2.10')
		if mt.rcptto(conn, '<nobody@example.com>') ~= nil then error('rcptto') end
		io.write(names[mt.getreply(conn)] or '?')
		if mt.data(conn) ~= nil then error('data') end
		io.write(' DATA ' .. (names[mt.getreply(conn)] or '?'))
		if mt.eom(conn) ~= nil then error('eom') end
		io.write(' EOM ' .. (names[mt.getreply(conn)] or '?') .. ' ')
	end
	io.write('\n')
	mt.disconnect(conn)
EOT
rg_expect_eq "DATA and EOM: continue, never accept; next message decided again" \
	"$(miltertest -s "$T/data.lua" 2>&1)" "CR DATA C EOM C CR DATA C EOM C "

# Sessions that end at odd points leave the daemon serving.
cat >"$T/abrupt.lua" <<-EOT
	conn = mt.connect('unix:$T/rcptgate.sock')
	mt.disconnect(conn)
	conn = mt.connect('unix:$T/rcptgate.sock')
	mt.negotiate(conn, nil, nil, nil)
	mt.disconnect(conn)
	conn = mt.connect('unix:$T/rcptgate.sock')
	mt.negotiate(conn, nil, nil, nil)
	mt.macro(conn, SMFIC_RCPT, '{client_addr}', '192.0.2.9')
	mt.rcptto(conn, '<alice@example.com>')
	mt.disconnect(conn)
	io.write('done\n')
EOT
rg_expect_eq "abrupt sessions" "$(miltertest -s "$T/abrupt.lua" 2>&1)" "done"
rg_check "daemon alive after abrupt sessions" kill -0 "$RG_PID"
rg_expect_eq "still deciding" "$(mt_session z "$client" 192.0.2.7 -- nobody@example.com alice@example.com)" "RC"
rg_done
