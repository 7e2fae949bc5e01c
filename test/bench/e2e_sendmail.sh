#!/bin/bash
# SPDX-License-Identifier: MIT
# End to end through Sendmail (Debian's, unpacked by lib_sendmail.sh, each
# instance in its own network namespace), one instance per configuration,
# all running at once so rounds can be interleaved (every configuration
# gets one run per round; medians printed, with the ratio to
# configuration a measured in the same rounds):
#   a  Sendmail alone (no milter)
#   c  Sendmail + rcptgate (SQLite backend) on a unix socket
#   d  Sendmail + rcptgate (SQLite backend) on TCP (127.0.0.1 inside
#      Sendmail's namespace: rcptgate is started there with nsenter):
#      Sendmail's 40 ms delayed-ACK stall per RCPT (README, "Attaching it
#      to Sendmail")
#   dq as d, with the loopback routes in that namespace set to
#      "quickack 1" (no delayed ACKs at all), the fix README gives: what
#      TCP reaches without the stall
# Delivery is queue-only for all alike (the queue is emptied after each
# run, untimed). smtp-source runs inside each Sendmail's namespace. The
# SQLite table has SM_TABLE_ROWS filler rows plus every recipient sent;
# each round uses its own recipient base (rN@example.com), so unique
# recipients (-N) are never in rcptgate's cache from an earlier round.
#
#   SM_CONFIGS="a c d dq" SM_ROUNDS=3 SM_MESSAGES=1000 SM_SESSIONS=10 \
#   SM_RCPTS=5 SM_UNIQUE="0 1" test/bench/e2e_sendmail.sh
#
# SM_SAFE (default False) is Sendmail's SuperSafe option (fsync of the
# queue files). SM_REUSE=1 sends all of a session's messages over one
# connection (smtp-source -d), so Sendmail's fork per connection no
# longer hides the milter's cost. SM_RCPTGATE_B, if set, is a second
# rcptgate binary run as configurations c2 and d2 in the same rounds
# (A/B of a change).
#
# Output lines: "e2e MODE CONF msgs/s ratio_to_a errors=N". Not part of
# ctest: a benchmark only reports. Needs root (unshare, nsenter). Exits 77
# when Sendmail cannot be had.
set -u
: "${RG_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
. "$RG_SOURCE_DIR/test/integration/lib.sh"
. "$RG_SOURCE_DIR/test/bench/lib_bench.sh"
. "$RG_SOURCE_DIR/test/integration/lib_sendmail.sh"

CONFIGS=${SM_CONFIGS:-a c d dq}
ROUNDS=${SM_ROUNDS:-3}
M=${SM_MESSAGES:-1000}
S=${SM_SESSIONS:-10}
R=${SM_RCPTS:-5}
UNIQUE=${SM_UNIQUE:-0 1}
FILLER=${SM_TABLE_ROWS:-1000000}
SAFE=${SM_SAFE:-False}
RUN_TIMEOUT=${SM_RUN_TIMEOUT:-300}
REUSE=
[ "${SM_REUSE:-0}" = 1 ] && REUSE=-d
B=${SM_RCPTGATE_B:-}
if [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 15 ]; then
	echo "rounds 1..15" >&2
	exit 2
fi
if [ -n "$B" ]; then
	[ -x "$B" ] || { echo "SM_RCPTGATE_B: $B is not executable" >&2; exit 2; }
	CONFIGS="$CONFIGS c2 d2"
fi
command -v smtp-source >/dev/null || { echo "skip: smtp-source not found (postfix)"; exit 77; }

rg_setup
rg_sendmail_fetch
rc=$?
if [ $rc -eq 77 ]; then
	echo "skip: Sendmail not available"
	exit 77
fi
[ $rc -eq 0 ] || exit 1

# Every recipient any round sends: rN@example.com and KrN@example.com.
rcpt_list() {
	bench_rcpt_list "$ROUNDS" "$M" "$R"
}

db=$T/recipients.db
rcpt_list | bench_table "$db" "$FILLER" || exit 1

# conf FILE SOCKET
conf() {
	{
		printf '[milter]\nsocket = %s\nuser =\nsocket_mode = 0666\n' "$2"
		printf 'log_level = warning\n[policy]\ndomains = example.com\n'
		printf 'backends = b\n[harvest]\nmax_unknown = 0\n'
		printf 'max_unknown_per_session = 0\nstate =\n[backend b]\n'
		printf 'type = sqlite\npath = %s\n' "$db"
	} >"$1"
}

# The same .mc additions for every instance: no syslog chatter (there is
# no /dev/log here), the fsync policy of SM_SAFE, no per-connection
# throttles.
MC=("define(\`confLOG_LEVEL', \`0')dnl"
    "define(\`confMILTER_LOG_LEVEL', \`0')dnl"
    "define(\`confSAFE_QUEUE', \`$SAFE')dnl")

# start_unix NAME BINARY: rcptgate on $T/NAME.sock, then its Sendmail.
start_unix() {
	local c=$1
	conf "$T/$c.conf" "unix:$T/$c.sock"
	RCPTGATE=$2 rg_start_rcptgate "$T/$c.conf" || exit 1
	rg_track "$RG_PID"
	RG_PID=
	rg_sendmail_init "sm$c" "unix:$T/$c.sock" "" "${MC[@]}" || exit 1
	rg_sendmail_start "sm$c" || exit 1
}

# start_tcp NAME BINARY: Sendmail first (its namespace must exist), then
# rcptgate inside that namespace on 127.0.0.1:PORT. nsenter (called
# directly, not through a shell function that & would fork) execs the
# daemon, so $! is rcptgate's own pid.
start_tcp() {
	local c=$1 mport i pid smpid
	mport=$(rg_free_port)
	conf "$T/$c.conf" "inet:$mport@127.0.0.1"
	rg_sendmail_init "sm$c" "inet:$mport@127.0.0.1" "" "${MC[@]}" || exit 1
	rg_sendmail_start "sm$c" || exit 1
	smpid=SM_PID_sm$c
	nsenter -t "${!smpid}" -n "$2" -f -c "$T/$c.conf" >>"$T/$c.log" 2>&1 &
	pid=$!
	rg_track "$pid"
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || {
			echo "rcptgate ($c) exited at start:" >&2
			tail -n 20 "$T/$c.log" >&2
			exit 1
		}
		rg_sendmail_exec "sm$c" bash -c \
		    "exec 3<>/dev/tcp/127.0.0.1/$mport" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "rcptgate ($c) did not listen on $mport" >&2
	exit 1
}

for c in $CONFIGS; do
	case $c in
	a)
		rg_sendmail_init sma "" "" "${MC[@]}" || exit 1
		rg_sendmail_start sma || exit 1
		;;
	c) start_unix c "$RCPTGATE" ;;
	d) start_tcp d "$RCPTGATE" ;;
	dq)
		start_tcp dq "$RCPTGATE"
		for net in 127.0.0.1 127.0.0.0/8; do
			rg_sendmail_exec smdq ip route replace table local local \
			    "$net" dev lo proto kernel scope host src 127.0.0.1 \
			    quickack 1 || exit 1
		done
		;;
	c2) start_unix c2 "$B" ;;
	d2) start_tcp d2 "$B" ;;
	*) echo "unknown configuration $c" >&2; exit 2 ;;
	esac
done

# clear NAME: empty the queue (queue-only delivery); not timed.
clear_queue() {
	find "$T/sendmail-$1/queue" -type f -delete 2>/dev/null
}

# run CONF ROUND UNIQUE [MESSAGES]: one smtp-source run inside the
# instance's namespace; prints msgs/s, counts errors (any output of
# smtp-source, or a timeout, is an error).
run() {
	local c=$1 r=$2 u=$3 m=${4:-$M} port t0 t1 errs var st
	var=SM_PORT_sm$c
	port=${!var}
	t0=$(date +%s.%N)
	rg_sendmail_exec "sm$c" timeout "$RUN_TIMEOUT" smtp-source -s "$S" \
	    -m "$m" -r "$R" -M client.example.test -f sender@example.net \
	    ${u:+-N} $REUSE -t "r$r@example.com" "127.0.0.1:$port" \
	    >"$T/src.out" 2>&1
	st=$?
	t1=$(date +%s.%N)
	[ $st -eq 124 ] && echo "timeout after ${RUN_TIMEOUT}s" >>"$T/src.out"
	errs=$(grep -c . "$T/src.out")
	echo "$errs" >>"$T/errs.$c"	# run is called in $(...)
	[ "$errs" -gt 0 ] && head -n 2 "$T/src.out" | sed "s/^/# $c: /" >&2
	clear_queue "sm$c"
	echo "$m $t0 $t1" | awk '{ printf "%.1f\n", $1 / ($3 - $2) }'
}

# Warm up every instance (page cache, milter threads).
for c in $CONFIGS; do
	run "$c" 0 "" 100 >/dev/null
done
rm -f "$T"/errs.*

echo "# e2e_sendmail: smtp-source -s $S -m $M -r $R${REUSE:+ $REUSE}," \
    "$ROUNDS interleaved rounds, medians, SuperSafe=$SAFE; load shared" \
    "with other work on $(nproc) cores"
bench_rounds "$CONFIGS" "$ROUNDS" "$UNIQUE"
exit 0
