#!/bin/bash
# SPDX-License-Identifier: MIT
# The call-ahead backend end to end: a private Postfix as the internal
# server (its own recipient list), rcptgate in front of a second Postfix.
# Known -> 250, unknown -> 550 5.1.1, internal server down -> cached known
# 250 and uncached known 451 4.4.3, up again -> works; a silent listener
# and smtp-sink -W slow answers -> tempfail within the timeout; an
# accept-all smtp-sink -> warning in the log and in `rcptgate -n`;
# connection reuse seen in the internal server's log.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

SINK_USER=()
[ "$(id -u)" = 0 ] && SINK_USER=(-u nobody)

# conf FILE HOSTS [EXTRA BACKEND LINES...]
conf() {
	local file=$1 hosts=$2
	shift 2
	cat >"$file" <<-EOT
		[milter]
		socket = unix:$T/rcptgate.sock
		user =
		socket_mode = 0666
		log_level = debug
		[policy]
		domains = example.test
		backends = internal
		always_accept = postmaster
		deadline = 8s
		[cache]
		positive_ttl = 1h
		negative_ttl = 10m
		stale_ttl = 1d
		[harvest]
		max_unknown = 0
		max_unknown_per_session = 0
		state =
		[backend internal]
		type = callahead
		hosts = $hosts
		helo = gw.example.test
		timeout = 2s
	EOT
	local l
	for l in "$@"; do echo "$l" >>"$file"; done
}

# connects NAME: "connect from" lines in a private Postfix's log so far.
connects() {
	grep -c 'smtpd\[[0-9]*\]: connect from' "$T/$1/postfix.log" 2>/dev/null || true
}

# ms_since START_NS
ms_since() {
	echo $((($(date +%s%N) - $1) / 1000000))
}

# ---- the internal server: a private Postfix with its own users ----
printf '%s x\n' alice@example.test bob@example.test carol@example.test \
    dave@example.test >"$T/users"
rg_start_postfix internal "" "local_recipient_maps = texthash:$T/users" ||
	{ rg_notok "internal postfix starts"; rg_done; }
INTERNAL=127.0.0.1:$PORT_internal

conf "$T/rcptgate.conf" "$INTERNAL"
rg_start_rcptgate "$T/rcptgate.conf" || { rg_notok "rcptgate starts"; rg_done; }
rg_start_postfix mx "unix:$T/rcptgate.sock" || { rg_notok "mx starts"; rg_done; }

# ---- known, unknown ----
out=$(rg_rcpt "$PORT_mx" alice@example.test nobody@example.test)
rg_expect_match "known recipient accepted end to end" "$(sed -n 1p <<<"$out")" '^250 '
rg_expect_match "unknown recipient 550 5.1.1" "$(sed -n 2p <<<"$out")" \
    '^550 5\.1\.1 <nobody@example\.test>: Recipient address rejected: User unknown'

out=$("$RCPTGATE" -c "$T/rcptgate.conf" -t bob@example.test nobody2@example.test 2>/dev/null)
rc=$?
rg_expect_match "-t known" "$(sed -n 1p <<<"$out")" $'^bob@example.test\taccept\t'
rg_expect_match "-t unknown" "$(sed -n 2p <<<"$out")" $'^nobody2@example.test\treject\t'
rg_expect_eq "-t exit status with a reject" "$rc" 1

# ---- connection reuse: 40 more probes of distinct addresses ----
addrs=()
for i in $(seq 1 40); do addrs+=("user$i@example.test"); done
out=$(rg_rcpt "$PORT_mx" "${addrs[@]}")
rg_expect_eq "40 distinct unknowns rejected" "$(grep -c '^550 5\.1\.1' <<<"$out")" 40
sleep 1
# 42 probes from the daemon and 2 from `-t` (its own process) so far.
n=$(connects internal)
echo "# internal server: $n connections for 44 probes"
rg_check "connections reused (44 probes, 2..5 connections)" \
    test "$n" -ge 2 -a "$n" -le 5

# ---- internal server down ----
postfix -c "$T/internal" stop >/dev/null 2>&1
rg_wait_closed() {
	local i
	for ((i = 0; i < 100; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$PORT_internal") 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}
rg_check "internal server stopped" rg_wait_closed
out=$(rg_rcpt "$PORT_mx" alice@example.test carol@example.test)
rg_expect_match "down: cached known still accepted" "$(sed -n 1p <<<"$out")" '^250 '
rg_expect_match "down: uncached known 451 4.4.3" "$(sed -n 2p <<<"$out")" \
    '^451 4\.4\.3 Directory lookup failed'
rg_check "internal reply and host not passed to the client" \
    bash -c "! grep -q -e internal.example.test -e '$PORT_internal' <<<'$out'"

# ---- internal server up again ----
script -qc "postfix -c $T/internal start" /dev/null >/dev/null 2>&1
rg_wait_port "$PORT_internal" 20
out=$(rg_rcpt "$PORT_mx" carol@example.test)
rg_expect_match "up again: known accepted" "$out" '^250 '
rg_stop_rcptgate

# ---- UTF-8 addresses (issue 12, point 6) ----
# Two more internal servers with jörg: one with strict_smtputf8 (an
# undeclared UTF-8 address gets 553 5.6.7, which used to become a 550 for
# a user who exists), one without SMTPUTF8 at all.
printf '%s x\n' 'jörg@example.test' alice@example.test >"$T/users8"
rg_start_postfix strict "" "local_recipient_maps = texthash:$T/users8" \
    "strict_smtputf8 = yes" || rg_notok "strict SMTPUTF8 postfix starts"
rg_start_postfix ascii "" "local_recipient_maps = texthash:$T/users8" \
    "smtputf8_enable = no" || rg_notok "postfix without SMTPUTF8 starts"
rg_expect_match "premise: strict server refuses an undeclared UTF-8 address" \
    "$(rg_rcpt "$PORT_strict" 'jörg@example.test')" '^553 5\.6\.7 '

conf "$T/utf8.conf" "127.0.0.1:$PORT_strict" "accept_all_check = 0"
rg_start_rcptgate "$T/utf8.conf" || rg_notok "rcptgate (SMTPUTF8 target) starts"
out=$(rg_rcpt -u "$PORT_mx" 'jörg@example.test' 'jürgen@example.test' nobody@example.test)
rg_expect_match "SMTPUTF8 target: existing UTF-8 user 250" "$(sed -n 1p <<<"$out")" '^250 '
rg_expect_match "SMTPUTF8 target: unknown UTF-8 user 550 5.1.1" "$(sed -n 2p <<<"$out")" '^550 5\.1\.1 '
rg_expect_match "SMTPUTF8 target: unknown ASCII user 550 5.1.1" "$(sed -n 3p <<<"$out")" '^550 5\.1\.1 '
rg_check "SMTPUTF8 target: probed with MAIL FROM:<> SMTPUTF8" \
    grep -q 'jürgen@example.test>: Recipient address rejected' "$T/strict/postfix.log"
rg_stop_rcptgate

conf "$T/ascii.conf" "127.0.0.1:$PORT_ascii" "accept_all_check = 0"
rg_start_rcptgate "$T/ascii.conf" || rg_notok "rcptgate (no SMTPUTF8 target) starts"
out=$(rg_rcpt -u "$PORT_mx" 'jörg@example.test' 'jürgen@example.test' nobody@example.test)
rg_expect_match "no SMTPUTF8 target: UTF-8 user passes (never 550)" "$(sed -n 1p <<<"$out")" '^250 '
rg_expect_match "no SMTPUTF8 target: any UTF-8 address passes unasked" "$(sed -n 2p <<<"$out")" '^250 '
rg_expect_match "no SMTPUTF8 target: ASCII still checked" "$(sed -n 3p <<<"$out")" '^550 5\.1\.1 '
rg_expect_match "no SMTPUTF8 target: -t -v says why" \
    "$("$RCPTGATE" -c "$T/ascii.conf" -v -t 'jürgen@example.test' 2>/dev/null)" \
    'does not offer SMTPUTF8: a UTF-8 address is not asked'
rg_stop_rcptgate

# ---- a listener that accepts TCP and never answers ----
SILENT=$(rg_free_port)
"$RG_PY" -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
conns = []
end = time.time() + 300
while time.time() < end:
    s.settimeout(1)
    try:
        conns.append(s.accept()[0])
    except socket.timeout:
        pass
' "$SILENT" &
rg_track $!
rg_wait_port "$SILENT" 10
conf "$T/silent.conf" "127.0.0.1:$SILENT"
t0=$(date +%s%N)
out=$("$RCPTGATE" -c "$T/silent.conf" -t alice@example.test 2>"$T/silent.err")
rc=$?
took=$(ms_since "$t0")
echo "# silent server, timeout 2s: tempfail after ${took} ms"
rg_expect_match "silent server -> tempfail" "$out" $'^alice@example.test\ttempfail\t'
rg_expect_eq "silent server exit 75" "$rc" 75
rg_check "silent server: within the timeout (<= 3000 ms)" test "$took" -le 3000
rg_check "silent server: not before the timeout (>= 1900 ms)" test "$took" -ge 1900

# ---- smtp-sink answering RCPT after 5 s ----
SLOW=$(rg_free_port)
smtp-sink "${SINK_USER[@]}" -h slow.example.test -W RCPT:5 "127.0.0.1:$SLOW" 16 &
rg_track $!
rg_wait_port "$SLOW" 10
conf "$T/slow.conf" "127.0.0.1:$SLOW" "accept_all_check = 0"
t0=$(date +%s%N)
out=$("$RCPTGATE" -c "$T/slow.conf" -t alice@example.test 2>"$T/slow.err")
took=$(ms_since "$t0")
echo "# smtp-sink -W RCPT:5, timeout 2s: tempfail after ${took} ms"
rg_expect_match "slow server -> tempfail" "$out" $'^alice@example.test\ttempfail\t'
rg_check "slow server: within the timeout (<= 3000 ms)" test "$took" -le 3000

# ---- an accept-all server ----
SINK=$(rg_free_port)
smtp-sink "${SINK_USER[@]}" -h sink.example.test "127.0.0.1:$SINK" 16 &
rg_track $!
rg_wait_port "$SINK" 10
conf "$T/sink.conf" "127.0.0.1:$SINK"
"$RCPTGATE" -c "$T/sink.conf" -n >"$T/n.out" 2>&1
rc=$?
rg_expect_eq "-n with an accept-all server still exits 0" "$rc" 0
rg_check "-n warns about the accept-all server" \
    grep -q 'warning: .*cannot tell users of example.test apart' "$T/n.out"
out=$("$RCPTGATE" -c "$T/sink.conf" -t nobody@example.test 2>"$T/sink.err")
rg_expect_match "accept-all: the server's answer stands" "$out" $'\taccept\t'
rg_check "accept-all: warning in the log" \
    grep -q 'accepts every recipient of example.test, so call-ahead cannot tell users apart' "$T/sink.err"

rg_done
