#!/bin/bash
# SPDX-License-Identifier: MIT
# The command line of rcptgate(8): -t lines and exit codes, -n, -V, usage
# errors, and reloads (twice good, once bad) of a running daemon.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
rg_make_table "$db" alice@example.com bob@example.com @example.net
conf=$T/rcptgate.conf
rg_write_conf "$conf" "unix:$T/rcptgate.sock" "$db"

out=$("$RCPTGATE" -c "$conf" -t alice@example.com); rc=$?
rg_expect_eq "-t known: exit 0" "$rc" 0
rg_expect_eq "-t known: line" "$out" "$(printf 'alice@example.com\taccept\tlocal\tfound')"
out=$("$RCPTGATE" -c "$conf" -t alice@example.com nobody@example.com); rc=$?
rg_expect_eq "-t unknown: exit 1" "$rc" 1
rg_expect_match "-t unknown: line" "$(echo "$out" | sed -n 2p)" \
	$'^nobody@example.com\treject\tlocal\tunknown'
rg_expect_match "-t catch-all" "$("$RCPTGATE" -c "$conf" -t x@example.net)" $'\taccept\tlocal\tcatch-all'
rg_expect_match "-t unchecked domain" "$("$RCPTGATE" -c "$conf" -t x@example.org)" $'\taccept\tdomain\t'
rg_expect_match "-t syntax error" "$("$RCPTGATE" -c "$conf" -t 'a@@example.com')" $'\treject\tsyntax\t.*550 5.1.3'
rg_expect_match "-t syntax error, unchecked domain" "$("$RCPTGATE" -c "$conf" -t 'a@@b')" $'\taccept\tdomain\tnot checked'
out=$("$RCPTGATE" -c "$conf" -t $'x\001y@example.com'); rc=$?
rg_expect_match "-t escapes control characters" "$out" '^x\\x01y@example.com'
rg_expect_match "-t -v shows the backend trace" "$("$RCPTGATE" -c "$conf" -v -t nobody+a@example.com)" \
	'local: nobody\+a@example.com -> notfound.*local: nobody@example.com -> notfound.*local: @example.com -> notfound'

rg_write_conf "$T/missing.conf" "unix:$T/x.sock" "$T/no-such.db"
"$RCPTGATE" -c "$T/missing.conf" -t alice@example.com >"$T/out" 2>/dev/null; rc=$?
rg_expect_eq "-t backend down: exit 75" "$rc" 75
rg_expect_match "-t backend down: tempfail line" "$(cat "$T/out")" $'\ttempfail\tlocal\t'
"$RCPTGATE" -c "$T/missing.conf" -t alice@example.com nobody@example.org 'a@@example.com' >/dev/null 2>&1; rc=$?
rg_expect_eq "-t any reject wins over tempfail: exit 1" "$rc" 1

out=$("$RCPTGATE" -c "$conf" -n 2>&1); rc=$?
rg_expect_eq "-n good config: exit 0" "$rc" 0
rg_expect_match "-n says ok" "$out" 'configuration ok'
rg_expect_match "-n shows harvest settings" "$out" 'harvest: max_unknown=0'
"$RCPTGATE" -c "$T/missing.conf" -n >/dev/null 2>&1; rc=$?
rg_expect_eq "-n with a missing table: exit 78" "$rc" 78

cp "$conf" "$T/bad.conf"
printf '[policy]\nbackend = local\n' >"$T/bad2.conf"
echo "colour = blue" >>"$T/bad.conf"
out=$("$RCPTGATE" -c "$T/bad.conf" -n 2>&1); rc=$?
rg_expect_eq "-n unknown key: exit 78" "$rc" 78
rg_expect_match "-n unknown key names file, line and key" "$out" "bad.conf:$(wc -l <"$T/bad.conf"):.*colour"
# -n names the backend once on each line of its findings: the driver's
# check does not repeat it, and a second line of one finding keeps it.
printf '' | "$RCPTGATE_TABLE" -d "$T/empty.db" replace -f - >/dev/null 2>&1
rg_write_conf "$T/named.conf" "unix:$T/named.sock" "$T/empty.db" \
    "[backend inside]" "type = callahead" "hosts = 127.0.0.1:1" \
    "helo = mx.example.test" "timeout = 1s"
sed -i 's/^backends = local$/backends = local, inside/' "$T/named.conf"
out=$("$RCPTGATE" -c "$T/named.conf" -n 2>&1)
rg_expect_match "-n warns of the empty table" "$out" \
    'warning: \[backend local\]: [^'$'\n'']*empty\.db: the table is empty'
rg_expect_match "-n warns of the unusable internal server" "$out" \
    'warning: \[backend inside\]: INTERNAL SERVER UNUSABLE NOW'
rg_expect_eq "-n: no warning names its backend twice" \
    "$(grep -Ec 'backend (local|inside).*backend (local|inside)' <<<"$out")" 0
rm -f "$T/empty.db"
out=$("$RCPTGATE" -c "$T/named.conf" -n 2>&1)
rg_expect_match "-n error names the backend once" "$out" \
    'rcptgate: \[backend local\]: [^ ]*empty\.db: No such file'
out=$("$RCPTGATE" -c "$T/no-such.conf" -n 2>&1); rc=$?
rg_expect_eq "-n missing file: exit 78" "$rc" 78
rg_expect_match "-n missing file named" "$out" 'no-such.conf'
printf '[policy]\ndomains = example.com\nbackends = nosuch\n' >"$T/undef.conf"
out=$("$RCPTGATE" -c "$T/undef.conf" -n 2>&1); rc=$?
rg_expect_eq "-n undefined backend: exit 78" "$rc" 78
rg_expect_match "-n undefined backend named" "$out" 'undef.conf:3:.*backends.*nosuch'
out=$("$RCPTGATE" -c "$T/bad.conf" -t a@example.com 2>&1); rc=$?
rg_expect_eq "-t bad config: exit 78" "$rc" 78

rg_expect_match "-V prints the version" "$("$RCPTGATE" -V)" '^rcptgate [0-9]+\.[0-9]+'
"$RCPTGATE" -x >/dev/null 2>&1; rc=$?
rg_expect_eq "unknown option: exit 64" "$rc" 64
"$RCPTGATE" -t >/dev/null 2>&1; rc=$?
rg_expect_eq "-t without addresses: exit 64" "$rc" 64

# Reloads: twice with a good file, once with a bad one (old one kept).
rg_start_rcptgate "$conf" -P "$T/rcptgate.pid" || exit 1
# The socket is there before the pid file (it is opened first, as root):
# under valgrind the file can lag by a moment.
for ((i = 0; i < 50; i++)); do
	[ -s "$T/rcptgate.pid" ] && break
	sleep 0.1
done
rg_expect_eq "pid file written" "$(cat "$T/rcptgate.pid" 2>/dev/null)" "$RG_PID"
rg_start_postfix mx "unix:$T/rcptgate.sock" || exit 1
p=$PORT_mx
rg_expect_match "before reload: example.org not checked" "$(rg_rcpt $p x@example.org)" '^250 '
# Backend counters before the reloads: one found, one not found.
rg_expect_match "before reload: alice found" "$(rg_rcpt $p alice@example.com)" '^250 '
rg_expect_match "before reload: nobody1 unknown" "$(rg_rcpt $p nobody1@example.com)" '^550 5\.1\.1 '
sed -i 's/^domains = .*/domains = example.com, example.net, example.org/' "$conf"
kill -USR1 "$RG_PID"; sleep 1
rg_expect_match "reload 1: example.org now checked" "$(rg_rcpt $p x@example.org)" '^550 5\.1\.1 '
sed -i 's/^domains = .*/domains = example.com/' "$conf"
kill -USR1 "$RG_PID"; sleep 1
rg_expect_match "reload 2: example.org not checked again" "$(rg_rcpt $p x@example.org)" '^250 '
rg_expect_match "reload 2: example.net not checked now" "$(rg_rcpt $p x2@example.net)" '^250 '
echo "this is not = valid [" >>"$conf"
kill -USR1 "$RG_PID"; sleep 1
rg_expect_match "bad reload keeps the old configuration" "$(rg_rcpt $p nobody@example.com)" '^550 5\.1\.1 '
rg_check "bad reload logged" grep -q 'reload of .* failed, keeping the running configuration' "$T/rcptgate.log"
kill -USR2 "$RG_PID"; sleep 0.5
rg_check "SIGUSR2 logs counters" grep -q 'counters: accepted=' "$T/rcptgate.log"
# Three reloads opened the backend anew; its counts go on from before
# them: alice found, then nobody1, x@example.org and nobody not found,
# two lookups each (the address, then the @domain catch-all), of which
# the driver, reopened, saw only the last two.
rg_expect_match "SIGUSR2: backend counts survive the reloads" \
    "$(grep 'backend local: found=' "$T/rcptgate.log" | tail -n 1)" \
    'backend local: found=1 notfound=6 failed=0; since the last reload: lookups=2 '
rg_check "daemon alive after reloads" kill -0 "$RG_PID"
pid=$RG_PID
rg_stop_rcptgate
rg_check "SIGTERM stops it" bash -c "! kill -0 $pid 2>/dev/null"
rg_check "pid file removed at exit" test ! -e "$T/rcptgate.pid"
rg_done
