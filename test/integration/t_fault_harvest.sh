#!/bin/bash
# SPDX-License-Identifier: MIT
# Fault injection against the harvest limiter's state file, through a
# real Postfix: the state file unwritable (rcptgate runs as nobody, the
# file and its directory belong to root), and the disk full (a 1 MiB
# tmpfs filled up while the daemon writes to it), each while clients
# from many loopback sources send unknown recipients. Expected: mail
# keeps flowing (known 250, unknown 550; the counters go on in memory),
# one clear log line, and the file written again once the fault is gone,
# without a restart (a full disk: at the next flush, 1 s; an unopenable
# file: at the next reopen, 60 s). Needs root (mount, chown); bounded:
# each burst has a time and a session limit, every wait a count. The two
# cases run side by side (two daemons, two Postfix) to share the wait.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
for ((i = 0; i < 500; i++)); do echo "u$i@example.com"; done >"$T/known"
"$RCPTGATE_TABLE" -d "$db" replace "$T/known" || exit 1
for ((i = 0; i < 500; i++)); do
	echo "u$i@example.com"
	echo "nx$i@example.com"
done >"$T/addrs"

MNT=$T/state
mkdir -p "$MNT"
# The trap of lib.sh removes $T; unmount first (the EXIT trap is
# replaced by one that does both).
FULL_PID=
cleanup_mount() {
	rg_stop_rcptgate
	if [ -n "$FULL_PID" ]; then
		kill -TERM "$FULL_PID" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			kill -0 "$FULL_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$FULL_PID" 2>/dev/null
		wait "$FULL_PID" 2>/dev/null
	fi
	umount "$MNT" 2>/dev/null
	rg_cleanup
}
if ! mount -t tmpfs -o size=1m,mode=0755 tmpfs "$MNT" 2>"$T/mount.err"; then
	echo "# cannot mount a tmpfs ($(cat "$T/mount.err")): skipped"
	rg_done
fi
trap cleanup_mount EXIT

# conf FILE SOCKET STATE [USER]
conf() {
	rg_write_conf "$1" "unix:$2" "$db" \
	    "tarpit = 0s" "[cache]" "positive_ttl = 1s" "negative_ttl = 1s"
	sed -i -e 's/^log_level = debug/log_level = info/' \
	    -e "s|^max_unknown = 0|max_unknown = 1000000|" \
	    -e "s|^user =.*|user = ${4:-}|" \
	    -e "s|^state =.*|state = $3|" "$1"
	# the clients are 127.0.0.N: loopback is exempt by default
	sed -i 's/^\[harvest\]$/&\nexempt =/' "$1"
}

# rows FILE: rows in the state file's clients table ("" when unreadable)
rows() {
	sqlite3 -cmd '.timeout 2000' "$1" 'SELECT count(*) FROM clients' \
	    2>/dev/null
}

# wait_rows FILE MIN TRIES: wait up to TRIES * 0.2 s for MIN rows.
wait_rows() {
	local i n
	for ((i = 0; i < $3; i++)); do
		n=$(rows "$1")
		[ -n "$n" ] && [ "$n" -ge "$2" ] && return 0
		sleep 0.2
	done
	echo "# $1: ${n:-no} rows, wanted $2" >&2
	return 1
}

# flowing NAME OUT: mail flowed normally in the burst recorded in OUT.
flowing() {
	local j
	j=$(rg_judge "$2" "$T/known")
	echo "# $1: $(cat "$2.sum")"
	echo "# $1: $j"
	rg_expect_eq "$1: no existing recipient rejected or tempfailed" \
	    "$(rg_field known_550 "$j")/$(rg_field known_451 "$j")/$(rg_field known_other "$j")" "0/0/0"
	rg_expect_eq "$1: every unknown recipient rejected" \
	    "$(rg_field unknown_250 "$j")/$(rg_field unknown_451 "$j")/$(rg_field unknown_other "$j")" "0/0/0"
	rg_check "$1: recipients answered" test "$(rg_field known_250 "$j")" -gt 0
}

# ---- state file unwritable (root's file, rcptgate runs as nobody) ->
# mail flows, "harvest: state file ...: open: ... readonly ...; counting
# in memory"; made writable -> written at the next reopen, no restart ----
mkdir -p "$T/ro"
sqlite3 "$T/ro/harvest.db" 'CREATE TABLE placeholder (a)' || exit 1
chmod 755 "$T/ro"
chmod 644 "$T/ro/harvest.db"
conf "$T/ro.conf" "$T/ro.sock" "$T/ro/harvest.db" nobody
rg_start_rcptgate "$T/ro.conf" || { rg_notok "rcptgate start"; rg_done; }
rg_start_postfix ro "unix:$T/ro.sock" "mydestination = example.com" \
    "smtpd_peername_lookup = no" ||
	{ rg_notok "postfix start"; rg_done; }
log=$T/rcptgate.log
rg_burst "$PORT_ro" "$T/addrs" "$T/out1" -c 8 -t 20 -n 200 -r 2 -S 200 \
    >"$T/out1.sum"
flowing "state unwritable" "$T/out1"
rg_check "state unwritable: logged" grep -Eq \
    "harvest: state file $T/ro/harvest\.db: open: .*readonly.*; counting in memory" \
    "$log"
grep -E 'harvest: state file' "$log" | head -n 1 | sed 's/^/# /'
chown -R nobody "$T/ro"	# the operator's fix
t_fixed=$(date +%s)

# ---- disk full: a second daemon writing its state to a 1 MiB tmpfs,
# filled up mid-run -> mail flows, "write: database or disk is full";
# space freed -> written at the next flush, no restart ----
conf "$T/full.conf" "$T/full.sock" "$MNT/harvest.db"
rm -f "$T/full.sock"
umask 000
"$RCPTGATE" -f -c "$T/full.conf" >>"$T/full.log" 2>&1 &
FULL_PID=$!
umask 022
rg_track "$FULL_PID"
for ((i = 0; i < 100; i++)); do [ -S "$T/full.sock" ] && break; sleep 0.1; done
rg_start_postfix full "unix:$T/full.sock" "mydestination = example.com" \
    "smtpd_peername_lookup = no" ||
	{ rg_notok "postfix start"; rg_done; }
rg_burst "$PORT_full" "$T/addrs" "$T/out2" -c 8 -t 20 -n 40 -r 2 -S 40 \
    >"$T/out2.sum"
rg_check "full disk: state file written before" \
    wait_rows "$MNT/harvest.db" 10 50
dd if=/dev/zero of="$MNT/fill" bs=4k count=1000 2>/dev/null
echo "# full disk: $(df -k "$MNT" | awk 'NR == 2 { print $4 " KiB free" }')"
rg_burst "$PORT_full" "$T/addrs" "$T/out3" -c 8 -t 20 -n 1500 -r 2 -o 80 \
    -S 1500 >"$T/out3.sum"
sleep 1.5	# one flush at least
flowing "full disk" "$T/out3"
rg_check "full disk: logged" grep -Eq \
    "harvest: state file $MNT/harvest\.db: write: .*disk is full.*; counting in memory" \
    "$T/full.log"
grep -E 'harvest: state file' "$T/full.log" | head -n 1 | sed 's/^/# /'
rm -f "$MNT/fill"
rg_check "full disk: written again after space is freed, without a restart" \
    wait_rows "$MNT/harvest.db" 150 50
rg_check "full disk: rcptgate still running" kill -0 "$FULL_PID"

# Back to the unwritable file: the reopen comes within 60 s of the
# failed open; wait at most 75 s from the fix.
left=$((75 - ($(date +%s) - t_fixed)))
rg_check "state unwritable: written after the fix, without a restart" \
    wait_rows "$T/ro/harvest.db" 50 $((left * 5))
rg_check "state unwritable: rcptgate still running" kill -0 "$RG_PID"

rg_stop_postfix full
rg_stop_postfix ro
rg_done
