#!/bin/bash
# SPDX-License-Identifier: MIT
# The daemon as an operator starts it: detached (no -f), -u to drop
# privileges after the socket is made, a stale socket left by a crash,
# the pid file, socket ownership and mode, and the -n deadline warning.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
rg_make_table "$db" alice@example.com
chmod 644 "$db"
sock=$T/run/rcptgate.sock
mkdir -p "$T/run"
chown nobody "$T/run"	# as systemd's RuntimeDirectory= does for the service user
rg_write_conf "$T/rcptgate.conf" "unix:$sock" "$db"
sed -i 's/^socket_mode = .*/socket_mode = 0660/' "$T/rcptgate.conf"

# A stale socket from an earlier run that crashed.
/usr/bin/python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$sock"
rg_check "stale socket present before start" test -S "$sock"

"$RCPTGATE" -c "$T/rcptgate.conf" -u nobody -P "$T/rcptgate.pid" >"$T/start.out" 2>&1
rc=$?
rg_expect_eq "detaching start exits 0" "$rc" 0
for i in $(seq 50); do [ -s "$T/rcptgate.pid" ] && [ -S "$sock" ] && break; sleep 0.1; done
pid=$(cat "$T/rcptgate.pid" 2>/dev/null)
rg_track "$pid"
# This machine has no syslog: a detached daemon's logs would vanish, so
# it says so, once, while stderr still reaches the operator.
if [ -S /dev/log ]; then
	rg_ok "# skip: /dev/log exists here"
else
	rg_expect_eq "no /dev/log: warned exactly once on stderr" \
	    "$(grep -c '^rcptgate: warning: no syslog at /dev/log: logs are lost once detached; run with -f or start a syslog daemon$' "$T/start.out")" 1
fi
rg_check "pid file names a running process" kill -0 "$pid"
rg_expect_eq "runs as user nobody" "$(ps -o user= -p "$pid" | tr -d ' ')" nobody
rg_expect_eq "detached: own session" "$(ps -o sid= -p "$pid" | tr -d ' ')" "$pid"
rg_expect_eq "socket owned by nobody, mode 660" "$(stat -c '%U %a' "$sock")" "nobody 660"

# Postfix's smtpd runs as postfix: give it the socket's group, as the
# README tells operators to (here: chgrp to postfix).
chgrp postfix "$sock"
rg_start_postfix mx "unix:$sock" || exit 1
rg_expect_match "serves Postfix after dropping privileges" "$(rg_rcpt $PORT_mx alice@example.com)" '^250 '
rg_expect_match "rejects through Postfix" "$(rg_rcpt $PORT_mx nobody@example.com)" '^550 5\.1\.1 '

kill -TERM "$pid"
for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
rg_check "stops on SIGTERM" bash -c "! kill -0 $pid 2>/dev/null"
rg_check "socket removed at exit" test ! -e "$sock"

# Under systemd (JOURNAL_STREAM set) the journal keeps the logs: no warning.
JOURNAL_STREAM=8:1 "$RCPTGATE" -c "$T/rcptgate.conf" -P "$T/j.pid" >"$T/j.out" 2>&1
for i in $(seq 50); do [ -s "$T/j.pid" ] && [ -S "$sock" ] && break; sleep 0.1; done
pid=$(cat "$T/j.pid" 2>/dev/null)
rg_track "$pid"
rg_expect_eq "JOURNAL_STREAM set: no syslog warning" "$(grep -c 'no syslog' "$T/j.out")" 0
kill -TERM "$pid"
for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done

"$RCPTGATE" -c "$T/rcptgate.conf" -u no-such-user-x -f >"$T/nouser.out" 2>&1
rg_expect_eq "unknown user: exit 67" "$?" 67
rg_expect_match "unknown user named" "$(cat "$T/nouser.out")" "no-such-user-x"

# -n warns when the backends' timeouts times hosts exceed the deadline.
cat >"$T/slow.conf" <<-EOT
	[policy]
	domains = example.com
	backends = inside
	deadline = 5s
	[backend inside]
	type = callahead
	hosts = 127.0.0.1:1, 127.0.0.1:2
	helo = mx.example.test
	timeout = 4s
	accept_all_check = 0
EOT
out=$("$RCPTGATE" -c "$T/slow.conf" -n 2>&1)
rg_expect_eq "-n: no syslog warning (nothing detaches)" \
    "$(grep -c 'no syslog' <<<"$out")" 0
rg_expect_match "-n warns: deadline shorter than backends' worst case" "$out" 'warning: .*deadline 5000ms is shorter than its backends. worst case 8000ms'
rg_done
