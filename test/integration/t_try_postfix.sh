#!/bin/bash
# SPDX-License-Identifier: MIT
# scripts/try-postfix.sh as README's first-hour steps run it: with the
# daemon up it shows 250 and 550 and exits 0; with the daemon gone
# (socket left behind, so Postfix answers 451 at MAIL FROM) it shows
# that reply and exits non-zero instead of printing nothing.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
rg_make_table "$db" alice@example.com
chmod 644 "$db"
sock=$T/rcptgate.sock
rg_write_conf "$T/rcptgate.conf" "unix:$sock" "$db"
rg_start_rcptgate "$T/rcptgate.conf" || exit 1

try() {
	RG_DEMO_SOCKET=$sock bash "$RG_SOURCE_DIR/scripts/try-postfix.sh" \
	    >"$T/try.out" 2>&1
}
try
rc=$?
out=$(cat "$T/try.out")
rg_expect_eq "daemon up: exit 0" "$rc" 0
rg_expect_match "daemon up: MAIL accepted" "$out" '<-  250 [^ ]+ Ok'
rg_expect_match "daemon up: known recipient 250" "$out" \
    $'-> RCPT TO:<alice@example.com>\n<-  250 '
rg_expect_match "daemon up: unknown recipient 550" "$out" \
    $'-> RCPT TO:<nobody@example.com>\n<\\*\\* 550 5\\.1\\.1 '

# The daemon stopped; a stale socket stays, as after a crash.
rg_stop_rcptgate
[ -S "$sock" ] || /usr/bin/python3 -c \
    "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$sock"
try
rc=$?
out=$(cat "$T/try.out")
rg_check "daemon gone: exit non-zero" test "$rc" -ne 0
rg_expect_match "daemon gone: the 451 at MAIL FROM is shown" "$out" \
    $'-> MAIL FROM:<[^>]*>\n<\\*\\* 451 '
rg_expect_match "daemon gone: says what failed" "$out" 'expected 250 at RCPT'

# No socket at all: told to start the demo.
rm -f "$sock"
try
rc=$?
rg_check "no socket: exit non-zero" test "$rc" -ne 0
rg_expect_match "no socket: names the missing socket" "$(cat "$T/try.out")" "no $sock"
rg_done
