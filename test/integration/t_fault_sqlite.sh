#!/bin/bash
# SPDX-License-Identifier: MIT
# Fault injection against the SQLite backend, through a real Postfix:
# the table file replaced (rcptgate-table replace, and a plain rename of
# a file built elsewhere), removed and put back, all during a burst of
# concurrent sessions; then overwritten with garbage, and truncated to
# zero bytes. For each: no crash, no existing recipient rejected (451
# while the table is unusable), recovery without restarting rcptgate,
# and the log line naming the fault. Bounded: bursts have a time and a
# session limit; lib.sh's trap stops everything.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

NUSERS=2000
db=$T/recipients.db
for ((i = 0; i < NUSERS; i++)); do echo "u$i@example.com"; done >"$T/known"
"$RCPTGATE_TABLE" -d "$db" replace "$T/known" || exit 1
# A second copy, built elsewhere, to rename over the live file.
"$RCPTGATE_TABLE" -d "$T/copy.db" replace "$T/known" || exit 1

rg_write_conf "$T/rcptgate.conf" "unix:$T/rcptgate.sock" "$db" \
    "[cache]" "positive_ttl = 1s" "negative_ttl = 1s" "stale_ttl = 1s"
sed -i 's/^log_level = debug/log_level = info/' "$T/rcptgate.conf"
umask 000
rg_start_rcptgate "$T/rcptgate.conf" || { rg_notok "rcptgate start"; rg_done; }
umask 022
rg_start_postfix mx "unix:$T/rcptgate.sock" "mydestination = example.com" ||
	{ rg_notok "postfix start"; rg_done; }
P=$PORT_mx
log=$T/rcptgate.log

for ((i = 0; i < 1000; i++)); do
	echo "u$i@example.com"
	echo "nx$i@example.com"
done >"$T/addrs"

no_wrong() {
	rg_expect_eq "$1: no existing recipient rejected" \
	    "$(rg_field known_550 "$2")" 0
	rg_expect_eq "$1: no unknown recipient accepted" \
	    "$(rg_field unknown_250 "$2")" 0
}

# put_back: restore the table the way an operator would (atomic rename).
put_back() {
	cp "$T/copy.db" "$db.new" && mv -f "$db.new" "$db"
}

recovered() {
	sleep 1.2	# negative and positive cache entries expire
	rg_expect_match "$1: recovered, known 250" \
	    "$(rg_rcpt "$P" "u$2@example.com")" '^250 '
	rg_expect_match "$1: recovered, unknown 550 5.1.1" \
	    "$(rg_rcpt "$P" "nx$2@example.com")" '^550 5\.1\.1 '
	rg_check "$1: rcptgate still running" kill -0 "$RG_PID"
}

rg_expect_match "baseline known 250" "$(rg_rcpt "$P" u1@example.com)" '^250 '

# ---- during one burst: replace (rcptgate-table) -> no 451 needed;
# rename of another file over it -> the new file is read; removal ->
# 451 4.4.3 (never 550) and "No such file"; put back -> 250/550 ----
rg_burst "$P" "$T/addrs" "$T/out1" -c 16 -t 10 -n 50000 -r 2 >"$T/sum1" &
bp=$!
sleep 1.5
"$RCPTGATE_TABLE" -d "$db" replace "$T/known" >/dev/null ||
	rg_notok "replace during the burst"
sleep 1.5
cp "$T/copy.db" "$db.tmp" && mv -f "$db.tmp" "$db"
sleep 1.5
rm -f "$db"
sleep 2
put_back
wait "$bp"
j=$(rg_judge "$T/out1" "$T/known")
echo "# replace/rename/remove mid-burst: $(cat "$T/sum1")"
echo "# replace/rename/remove mid-burst: $j"
no_wrong "table replaced and removed" "$j"
rg_check "table removed: some recipients tempfailed (the fault was seen)" \
    test "$(rg_field known_451 "$j")" -gt 0
rg_check "table removed: some accepted after it came back" \
    test "$(grep -c '^RCPT u[0-9]*@example.com 250' "$T/out1")" -gt 0
rg_check "table removed: logged" grep -Eq \
    "backend local: lookup of <[^>]+> failed: sqlite $db: No such file or directory" \
    "$log"
recovered "table removed" 1500

# ---- garbage written over the table (not a database) -> 451, not 550 ----
head -c 8192 /dev/urandom >"$db.bad" && mv -f "$db.bad" "$db"
sleep 1.2
rg_expect_match "garbage table: known 451 4.4.3" \
    "$(rg_rcpt "$P" u1600@example.com)" '^451 4\.4\.3 '
rg_expect_match "garbage table: unknown 451 4.4.3 (never 550)" \
    "$(rg_rcpt "$P" nx1600@example.com)" '^451 4\.4\.3 '
rg_check "garbage table: logged" grep -Eq \
    "lookup of <(u|nx)1600@example\.com> failed: sqlite $db: .*(not a database|malformed)" \
    "$log"
put_back
recovered "garbage table" 1601

# ---- the table truncated in place to 0 bytes -> 451, not 550 ----
: >"$db"
sleep 1.2
rg_expect_match "empty file: known 451 4.4.3" \
    "$(rg_rcpt "$P" u1700@example.com)" '^451 4\.4\.3 '
rg_expect_match "empty file: unknown 451 4.4.3 (never 550)" \
    "$(rg_rcpt "$P" nx1700@example.com)" '^451 4\.4\.3 '
rg_check "empty file: logged" grep -Eq \
    "lookup of <(u|nx)1700@example\.com> failed: sqlite $db: " "$log"
grep -E "lookup of <(u|nx)1700@" "$log" | head -n 1 | sed 's/^/# /'
put_back
recovered "empty file" 1701

rg_stop_postfix mx
rg_stop_rcptgate
rg_done
