#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 15 part 1: rcptgate-probe, the backscatter self-test, against
# private Postfix instances on loopback: one without rcptgate (unknown
# recipients accepted: risk), one with it (good), an open relay (risk),
# --harvest against rcptgate with a low max_unknown (blocked, the same
# reply for known and unknown, the unblock line), a server that never
# greets (75 within the timeout) and one whose replies hold hostile bytes.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup
: "${RCPTGATE_PROBE:=$RG_BUILD_DIR/rcptgate-probe}"

# probe ARGS...: run the probe; its output in $out, its exit in $rc.
probe() {
	out=$("$RCPTGATE_PROBE" -H client.example.test "$@" 2>"$T/probe.err")
	rc=$?
	echo "$out" | sed 's/^/  | /'
	sed 's/^/  ! /' "$T/probe.err"
}

# 127.0.0.1 must be an outside client: not in mynetworks.
outside=('mynetworks = 192.0.2.0/24'
	'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination'
	'relay_domains = example.com' 'relay_recipient_maps =')

# 1. No recipient check: unknown recipients take 250, bounce later.
rg_start_postfix plain "" "${outside[@]}" || exit 1
probe 127.0.0.1:$PORT_plain example.com
rg_expect_eq "no check: exit 1" "$rc" 1
rg_expect_match "no check: unknown accepted is a risk" "$out" \
	$'\nRISK +unknown +accepted at RCPT: it will bounce later \\(backscatter\\): 250 2\\.1\\.5 Ok'
rg_expect_match "no check: postmaster good" "$out" $'\ngood +postmaster +accepted: 250 '
rg_expect_match "no check: relay refused" "$out" \
	$'\ngood +relay +refused: 554 5\\.7\\.1 <rgprobe-[0-9a-f]{12}@example\\.org>: Relay access denied'
rg_check "no check: never sent DATA" bash -c "! grep -q 'message-id\|queued as\|: from=<>' '$T/plain/postfix.log'"

# 2. rcptgate with a SQLite table, harvest limiter on loopback too.
db=$T/recipients.db
rg_make_table "$db" alice@example.com bob@example.com
rg_write_conf "$T/rcptgate.conf" "unix:$T/rcptgate.sock" "$db"
sed -i 's/^max_unknown = 0/max_unknown = 5/; s/^state =.*/state =\naction = tempfail\nexempt =/' \
	"$T/rcptgate.conf"
sed -i 's/^domains = .*/domains = example.com/' "$T/rcptgate.conf"
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_start_postfix gate "unix:$T/rcptgate.sock" "${outside[@]}" || exit 1
probe 127.0.0.1:$PORT_gate example.com
rg_expect_eq "rcptgate: exit 0" "$rc" 0
rg_expect_match "rcptgate: unknown refused" "$out" \
	$'\ngood +unknown +refused at RCPT: 550 5\\.1\\.1 <rgprobe-[0-9a-f]{12}@example\\.com>: Recipient address rejected: User unknown'
rg_expect_match "rcptgate: postmaster good" "$out" $'\ngood +postmaster +accepted: 250 '
rg_expect_match "rcptgate: relay refused" "$out" $'\ngood +relay +refused: 554 5\\.7\\.1 '
rg_expect_eq "rcptgate: four lines" "$(echo "$out" | wc -l)" 4

# 3. An open relay (and no recipient check either).
rg_start_postfix open "" 'mynetworks = 127.0.0.0/8' \
	'smtpd_relay_restrictions = permit_mynetworks, reject' || exit 1
probe 127.0.0.1:$PORT_open example.test --relay-domain outside.example
rg_expect_eq "open relay: exit 1" "$rc" 1
rg_expect_match "open relay reported" "$out" \
	$'\nRISK +relay +accepted: open relay: 250 2\\.1\\.5 Ok'

# 4. --harvest against rcptgate: 1 unknown so far, blocked at the 5th.
probe --harvest 12 --known alice@example.com 127.0.0.1:$PORT_gate example.com
rg_expect_eq "harvest: exit 0" "$rc" 0
rg_expect_match "harvest: warned first" "$(cat "$T/probe.err")" \
	'warning: --harvest 12: a gateway that works will block this client.s address \(127\.0\.0\.1 '
rg_expect_match "harvest: blocked reported" "$out" \
	$'\ngood +harvest +blocked at unknown recipient [0-9]+ of 12: 421 4\\.7\\.0 '
rg_expect_match "harvest: same reply for known and unknown" "$out" \
	$'\ngood +blocked +same reply for known and unknown: known: 421 4\\.7\\.0 [^|]* \\| unknown: 421 4\\.7\\.0 '
rg_expect_match "harvest: unblock line" "$out" $'\n  rcptgate-ctl unblock 127\\.0\\.0\\.1$'
rg_check "harvest: rcptgate logged the block" grep -q 'harvest: block client=127\.0\.0\.1' "$T/rcptgate.log"

# 4b. A tarpit that slows, never blocks: slowed is good too. A new
# daemon on the same socket, memory state: the block above is gone.
rg_stop_rcptgate
sed -e 's/^max_unknown = 5/max_unknown = 1000/' \
	-e 's/^exempt =/exempt =\ntarpit = 100ms\ntarpit_max = 1s/' \
	"$T/rcptgate.conf" >"$T/tarpit.conf"
rg_start_rcptgate "$T/tarpit.conf" || exit 1
probe --harvest 8 127.0.0.1:$PORT_gate example.com
rg_expect_eq "tarpit: exit 0" "$rc" 0
rg_expect_match "tarpit: slowed reported" "$out" \
	$'\ngood +harvest +slowed, not blocked: mean per RCPT [0-9]+ ms \\(first quarter\\), [0-9]{4} ms \\(last quarter\\)'

# 5. An unlimited client is a risk.
rg_start_postfix plain2 "" "${outside[@]}" || exit 1
probe --harvest 12 127.0.0.1:$PORT_plain2 example.com
rg_expect_eq "no limiter: exit 1" "$rc" 1
rg_expect_match "no limiter: harvest risk" "$out" \
	$'\nRISK +harvest +12 unknown recipients neither slowed nor blocked'

# 6. Accepts the connection, never greets: 75 within the timeout.
port=$(rg_free_port)
"$RG_PY" -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)' "$port" &
rg_track $!
rg_wait_port "$port" 5
start=$(date +%s)
probe -t 2 127.0.0.1:$port example.com
took=$(($(date +%s) - start))
rg_expect_eq "silent server: exit 75" "$rc" 75
rg_expect_match "silent server: timeout said" "$out" $'\nunknown +unknown +[^ ]+: \\(timed out: '
rg_expect_eq "silent server: every check unknown" "$(echo "$out" | grep -c '^unknown ')" 3
# One timeout, not one per check: the later checks do not wait again.
rg_check "silent server: within one timeout ($took s)" test "$took" -le 4

# 7. Hostile bytes in replies come out escaped.
port=$(rg_free_port)
"$RG_PY" -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
while True:
    c, _ = s.accept(); f = c.makefile("rb")
    try:
        c.sendall(b"220 evil ESMTP\r\n")
        for line in f:
            v = line[:4].upper()
            if v == b"QUIT": break
            if v == b"RCPT": c.sendall(b"550 5.1.1 \x1b[31mred\xff\x07%n\\x41\r\n")
            else: c.sendall(b"250 ok\r\n")
    except OSError:
        pass  # rg_wait_port connects and goes
    c.close()' "$port" &
rg_track $!
rg_wait_port "$port" 5
probe 127.0.0.1:$port example.com
rg_check "hostile bytes: only printable ASCII out" bash -c "! printf '%s' \"\$1\" | LC_ALL=C grep -q '[^[:print:]]'" _ "$out"
rg_expect_match "hostile bytes: escaped" "$out" 'red\\xff.%n\\x5cx41'
rg_expect_eq "hostile: postmaster refused is a risk" "$rc" 1

# 8. The command line.
"$RCPTGATE_PROBE" --help | grep -q '^usage: rcptgate-probe'
rg_expect_eq "--help: exit 0" "$?" 0
"$RCPTGATE_PROBE" 127.0.0.1 >/dev/null 2>&1
rg_expect_eq "an address without DOMAIN: exit 64" "$?" 64
"$RCPTGATE_PROBE" 127.0.0.1:x example.com >/dev/null 2>&1
rg_expect_eq "bad port: exit 64" "$?" 64
"$RCPTGATE_PROBE" -H 'a>b' 127.0.0.1 example.com >/dev/null 2>&1
rg_expect_eq "HELO name with '>': exit 64" "$?" 64
rg_done
