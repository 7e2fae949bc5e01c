#!/bin/bash
# SPDX-License-Identifier: MIT
# memflat: is rcptgate's memory flat over a long run? (issue 6: "memory
# flat over a 10-minute run (no growth after warm-up)")
#
#   bash test/bench/memflat.sh                 # 600 s, as root
#   MEMFLAT_SECONDS=60 MEMFLAT_CYCLE=20 MEMFLAT_HIGH_SECONDS=10 \
#       bash test/bench/memflat.sh             # does the script work?
#
# (The quick form's verdict means nothing: the cache fills for ~35 s.)
#
# rcptgate on a unix socket, the 1,000,000-row SQLite table made with
# rcptgate-table, the default cache (100,000 entries, so the cache
# evicts), harvest limits off. milterload drives it at a bounded total
# rate (MEMFLAT_RATE RCPT/s, default 3000: about a third of what it does
# flat out here, so the shared cores stay usable) with keys over 1.1M
# (one in eleven unknown) and short connections (-m 2 -n 25: 50 RCPTs
# per connection, ~60 new connections a second). Connection counts
# change in cycles of MEMFLAT_CYCLE seconds (default 60):
# MEMFLAT_LOW_CONNS (10), then MEMFLAT_HIGH_SECONDS (20) at
# MEMFLAT_HIGH_CONNS (200), since thread stacks, malloc arenas and
# per-thread SQLite connections are the likely growth. (Debian's
# libmilter runs sessions on a worker pool that starts a thread when no
# worker is idle and ends it when it finds no work: rcptgate's thread
# count follows the commands in flight, not the connections.)
#
# rcptgate's VmRSS is sampled every 10 s, and once more after each cycle
# when every connection has closed ("idle"). The first cycle is the
# warm-up. Compared are samples taken in the same state: idle after the
# first cycle vs idle after the last, and the end of the first
# low-connection phase after warm-up vs the last one. Verdict
# "memflat: flat" when both grow by less than 1024 KiB or 2% of the
# warm-up RSS (the larger), else "memflat: grows". At the end SIGUSR2
# makes rcptgate log its counters, printed here, with
# /proc/PID/smaps_rollup figures at warm-up and end.
#
# Binaries: RCPTGATE (and RCPTGATE_TABLE, default beside it) if given,
# nothing built; else BENCH_BUILD_DIR if given (built with
# scripts/build.sh), else build-bench (built only if it has no
# rcptgate). MILTERLOAD if given, else test/bench/milterload.c is
# compiled into the scratch directory. Never part of ctest. Bounded:
# every milterload run is under timeout; rcptgate is stopped and the
# scratch directory removed at exit.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
S=${MEMFLAT_SECONDS:-600}
RATE=${MEMFLAT_RATE:-3000}
CYCLE=${MEMFLAT_CYCLE:-60}
HIGH=${MEMFLAT_HIGH_SECONDS:-20}
LOWC=${MEMFLAT_LOW_CONNS:-10}
HIGHC=${MEMFLAT_HIGH_CONNS:-200}
# Warm-up: two cycles. The cache is full after the first, but glibc
# makes its per-thread arenas (up to 8 a core) as concurrency first
# peaks, which takes the second 200-connection phase as well.
WARM=${MEMFLAT_WARMUP:-$((2 * CYCLE))}
IV=10				# sampling interval, seconds
THRESH_KIB=1024 THRESH_PCT=2

die() {
	echo "memflat: $*" >&2
	exit 2
}
for v in "$S" "$RATE" "$CYCLE" "$HIGH" "$LOWC" "$HIGHC" "$WARM"; do
	case $v in
	'' | *[!0-9]*) die "settings must be whole numbers" ;;
	esac
done
if [ $((CYCLE % IV)) != 0 ] || [ $((HIGH % IV)) != 0 ] ||
    [ "$HIGH" -lt 1 ] || [ "$HIGH" -ge "$CYCLE" ]; then
	die "MEMFLAT_CYCLE, MEMFLAT_HIGH_SECONDS: multiples of $IV, high < cycle"
fi
if [ $((S % CYCLE)) != 0 ] || [ "$S" -lt $((3 * CYCLE)) ] ||
    [ "$S" -gt 3600 ]; then
	die "MEMFLAT_SECONDS: a multiple of MEMFLAT_CYCLE, at least three" \
	    "cycles, at most 3600"
fi
if [ "$WARM" -lt "$CYCLE" ] || [ $((WARM % CYCLE)) != 0 ] ||
    [ "$WARM" -ge "$S" ]; then
	die "MEMFLAT_WARMUP: a multiple of MEMFLAT_CYCLE, less than" \
	    "MEMFLAT_SECONDS"
fi
if [ "$RATE" -lt 1 ] || [ "$LOWC" -lt 1 ] || [ "$HIGHC" -lt 1 ] ||
    [ "$LOWC" -gt 1000 ] || [ "$HIGHC" -gt 1000 ]; then
	die "MEMFLAT_RATE >= 1, 1 <= connections <= 1000"
fi

W=$(mktemp -d /tmp/rg-bench.XXXXXX)
chmod 755 "$W"
MPID='' LPID=''
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [ -n "$LPID" ]; then
		kill -TERM "$LPID" 2>/dev/null
		wait "$LPID" 2>/dev/null
	fi
	if [ -n "$MPID" ]; then
		kill -TERM "$MPID" 2>/dev/null
		wait "$MPID" 2>/dev/null
	fi
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${RCPTGATE:-}" ]; then
	RCPTGATE_TABLE=${RCPTGATE_TABLE:-$(dirname "$RCPTGATE")/rcptgate-table}
else
	B=${BENCH_BUILD_DIR:-$top/build-bench}
	if [ -n "${BENCH_BUILD_DIR:-}" ] || [ ! -x "$B/rcptgate" ]; then
		bash "$top/scripts/build.sh" "$B" >"$W/build.log" 2>&1 || {
			tail -n 20 "$W/build.log"
			exit 1
		}
	fi
	RCPTGATE=$B/rcptgate RCPTGATE_TABLE=$B/rcptgate-table
fi
if [ ! -x "$RCPTGATE" ] || [ ! -x "$RCPTGATE_TABLE" ]; then
	die "no $RCPTGATE or $RCPTGATE_TABLE"
fi
if [ -n "${MILTERLOAD:-}" ]; then
	ML=$MILTERLOAD
else
	ML=$W/milterload
	gcc -std=c11 -D_GNU_SOURCE -O2 -g "$top/test/bench/milterload.c" \
	    -o "$ML" -lpthread || exit 1
fi

echo "# memflat: $(date -u +%FT%TZ), $(uname -srm), $(nproc) cores," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# rcptgate $RCPTGATE ($(date -u -r "$RCPTGATE" +%FT%TZ))"
echo "# ${S}s at $RATE RCPT/s, cycles of ${CYCLE}s: $((CYCLE - HIGH))s at" \
    "$LOWC connections, ${HIGH}s at $HIGHC; sample every ${IV}s;" \
    "warm-up ${WARM}s"

seq -f 'u%.0f@example.com' 0 999999 >"$W/keys.txt"
"$RCPTGATE_TABLE" -d "$W/t1m.db" replace "$W/keys.txt" >"$W/table.log" 2>&1 ||
	{
		cat "$W/table.log"
		exit 1
	}
rm -f "$W/keys.txt"

cat >"$W/m.conf" <<EOT
[milter]
socket = unix:$W/m.sock
user =
log_level = info
[policy]
domains = example.com
backends = b
[harvest]
max_unknown = 0
max_unknown_per_session = 0
state =
[backend b]
type = sqlite
path = $W/t1m.db
EOT
# info for the counters; the per-recipient reject lines are dropped.
"$RCPTGATE" -f -c "$W/m.conf" 2> >(grep --line-buffered -v ': reject rcpt=' \
    >"$W/m.log") &
MPID=$!
for ((i = 0; i < 100; i++)); do
	[ -S "$W/m.sock" ] && break
	sleep 0.1
done
[ -S "$W/m.sock" ] || {
	cat "$W/m.log"
	die "rcptgate did not start"
}

# rcptgate's mappings, open descriptors and smaps_rollup figures:
# "maps=N fds=N rss_kib=K anon_kib=K"
snap() {
	local fds
	fds=$(find "/proc/$MPID/fd" -mindepth 1 -maxdepth 1 | wc -l)
	awk -v maps="$(wc -l <"/proc/$MPID/maps")" -v fds="$fds" \
	    '/^Rss:/ { r = $2 } /^Anonymous:/ { a = $2 }
	    END { printf "maps=%d fds=%d rss_kib=%d anon_kib=%d\n", maps,
		fds, r, a }' "/proc/$MPID/smaps_rollup"
}

# VmRSS, VmHWM and Threads of rcptgate now: "RSS HWM THREADS"
status() {
	awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } /^Threads:/ { t = $2 }
	    END { print r, h, t }' "/proc/$MPID/status"
}
base_threads=$(status | cut -d' ' -f3)

# Phases back to back; sample times are planned times (each phase's own
# start adds well under a second). After each cycle, once every
# connection is gone (its libmilter thread exited, at most 5 s), an
# "idle" sample: the same state each cycle, the one compared.
: >"$W/samples"
echo "t_s vmrss_kib vmhwm_kib threads conns phase"
t=0
while [ "$t" -lt "$S" ]; do
	for ph in low high; do
		if [ $ph = low ]; then
			c=$LOWC d=$((CYCLE - HIGH))
		else
			c=$HIGHC d=$HIGH
		fi
		timeout $((d + 60)) "$ML" -s "unix:$W/m.sock" -c "$c" -d "$d" \
		    -n 25 -m 2 -r "$RATE" -i "$IV" -p "$MPID" >"$W/phase.out" &
		LPID=$!
		wait "$LPID"
		LPID=''
		awk -v off="$t" -v c="$c" -v ph=$ph '
		    /^rss / {
			for (i = 2; i <= NF; i++) {
				split($i, kv, "="); f[kv[1]] = kv[2]
			}
			printf "%d %d %d %d %d %s\n", off + f["t"],
			    f["vmrss_kib"], f["vmhwm_kib"], f["threads"], c, ph
		    }' "$W/phase.out" | tee -a "$W/samples"
		grep '^milter ' "$W/phase.out" | sed "s/^/# t=$t $ph: /"
		if ! kill -0 "$MPID" 2>/dev/null; then
			cat "$W/m.log"
			die "rcptgate died"
		fi
		t=$((t + d))
	done
	for ((i = 0; i < 50; i++)); do
		[ "$(status | cut -d' ' -f3)" -le "$base_threads" ] && break
		sleep 0.1
	done
	echo "$t $(status) 0 idle" | tee -a "$W/samples"
	if [ "$t" = "$WARM" ]; then
		echo "# smaps at warm-up: $(snap)"
	fi
done
echo "# smaps at end: $(snap)"
kill -USR2 "$MPID"
sleep 1

awk -v warm="$WARM" -v end="$S" -v lowend=$((CYCLE - HIGH)) \
    -v cyc="$CYCLE" -v tk="$THRESH_KIB" -v tp="$THRESH_PCT" -v lc="$LOWC" '
    $6 == "idle" { idle[$1] = $2 }
    $6 == "low" { low[$1] = $2 }
    { hwm = $3; if ($1 >= warm && $2 > max) max = $2 }
    END {
	w = idle[warm]; e = idle[end]
	lw = low[warm + lowend]; le = low[end - cyc + lowend]
	if (w <= 0 || e <= 0 || lw <= 0 || le <= 0) {
		print "memflat: samples missing, no verdict"
		exit 1
	}
	g = e - w; lg = le - lw
	printf "memflat: idle vmrss_kib after warm-up (t=%ds) %d, at end " \
	    "(t=%ds) %d; max vmrss_kib after warm-up %d; vmhwm_kib %d\n",
	    warm, w, end, e, max, hwm
	printf "memflat: growth after warm-up: idle %+d KiB (%+.2f%%); " \
	    "end of %d-connection phase t=%d to t=%d %+d KiB (%+.2f%%)\n",
	    g, 100 * g / w, lc, warm + lowend, end - cyc + lowend, lg,
	    100 * lg / lw
	# Least-squares slope of the idle samples after warm-up.
	for (t = warm; t <= end; t += cyc) {
		n++; sx += t; sy += idle[t]; sxx += t * t
		sxy += t * idle[t]
	}
	if (n > 2)
		printf "memflat: trend of idle samples %+.1f KiB/min\n",
		    60 * (n * sxy - sx * sy) / (n * sxx - sx * sx)
	lim = w * tp / 100 > tk ? w * tp / 100 : tk
	printf "memflat: threshold: growth < %d KiB (the larger of %d KiB " \
	    "and %d%% of warm-up) in both\n", lim, tk, tp
	print ((g < lim && lg < lim) ? "memflat: flat" : "memflat: grows")
    }' "$W/samples"
grep -E ' (counters|backend b): ' "$W/m.log" | sed 's/^.*\]: /memflat: /'
grep -E '\]: (error|warning): ' "$W/m.log" | head -n 5 | sed 's/^/# log: /'
exit 0
