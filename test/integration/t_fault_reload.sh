#!/bin/bash
# SPDX-License-Identifier: MIT
# SIGUSR1 reloads during load, through a real Postfix: 30 reloads of a
# valid configuration and 3 of a broken one while concurrent sessions
# ask for known and unknown recipients. Expected: no crash, every known
# recipient 250 (no tempfail, no reject), every unknown 550, a log line
# per reload ("configuration reloaded from", or "reload of ... failed,
# keeping the running configuration"), and no thread left behind.
# Bounded: the burst has a time and a session limit, the reloads a count.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
for ((i = 0; i < 500; i++)); do echo "u$i@example.com"; done >"$T/known"
"$RCPTGATE_TABLE" -d "$db" replace "$T/known" || exit 1
for ((i = 0; i < 500; i++)); do
	echo "u$i@example.com"
	echo "nx$i@example.com"
done >"$T/addrs"

conf=$T/rcptgate.conf
rg_write_conf "$conf" "unix:$T/rcptgate.sock" "$db" \
    "[cache]" "positive_ttl = 1s" "negative_ttl = 1s"
sed -i 's/^log_level = debug/log_level = info/' "$conf"
cp "$conf" "$T/good.conf"
sed 's/^type = sqlite/type = nosuchbackend/' "$conf" >"$T/bad.conf"
umask 000
rg_start_rcptgate "$conf" || { rg_notok "rcptgate start"; rg_done; }
umask 022
rg_start_postfix mx "unix:$T/rcptgate.sock" "mydestination = example.com" ||
	{ rg_notok "postfix start"; rg_done; }
P=$PORT_mx
log=$T/rcptgate.log
rg_expect_match "before: known 250" "$(rg_rcpt "$P" u1@example.com)" '^250 '
sleep 0.5
THREADS0=$(rg_threads "$RG_PID")

# swap FILE: put FILE in place as the configuration, atomically.
swap() {
	cp "$1" "$conf.new" && mv -f "$conf.new" "$conf"
}

# ---- 30 valid reloads and 3 broken ones during a burst -> known 250,
# unknown 550, nothing else; each reload logged ----
rg_burst "$P" "$T/addrs" "$T/out" -c 16 -t 20 -n 100000 -r 2 >"$T/sum" &
bp=$!
sleep 1
for ((i = 1; i <= 33; i++)); do
	if ((i % 11 == 0)); then
		swap "$T/bad.conf"
		kill -USR1 "$RG_PID"
		sleep 0.25
		swap "$T/good.conf"
	else
		kill -USR1 "$RG_PID"
	fi
	sleep 0.25
done
kill -0 "$bp" 2>/dev/null || rg_notok "the burst lasted through the reloads"
wait "$bp"
j=$(rg_judge "$T/out" "$T/known")
echo "# reloads under load: $(cat "$T/sum")"
echo "# reloads under load: $j"
rg_expect_eq "reloads: every known recipient 250" \
    "$(rg_field known_451 "$j")/$(rg_field known_550 "$j")/$(rg_field known_other "$j")" "0/0/0"
rg_expect_eq "reloads: every unknown recipient 550" \
    "$(rg_field unknown_250 "$j")/$(rg_field unknown_451 "$j")/$(rg_field unknown_other "$j")" "0/0/0"
rg_check "reloads: recipients answered" test "$(rg_field known_250 "$j")" -gt 100
n=$(grep -c "configuration reloaded from $conf" "$log")
echo "# reloads logged: $n of 30 valid (signals may coalesce)"
rg_check "reloads: logged ($n)" test "$n" -ge 15
n=$(grep -c "reload of $conf failed, keeping the running configuration" "$log")
rg_check "broken reloads: logged and refused ($n of 3)" test "$n" -ge 1
rg_check "reloads: rcptgate still running" kill -0 "$RG_PID"
for ((i = 0; i < 75; i++)); do
	[ "$(rg_threads "$RG_PID")" -le "$THREADS0" ] && break
	sleep 0.2
done
rg_check "reloads: threads back to $THREADS0" \
    test "$(rg_threads "$RG_PID")" -le "$THREADS0"
rg_expect_match "after: known 250" "$(rg_rcpt "$P" u2@example.com)" '^250 '
rg_expect_match "after: unknown 550" "$(rg_rcpt "$P" nx2@example.com)" \
    '^550 5\.1\.1 '

rg_stop_postfix mx
rg_stop_rcptgate
rg_done
