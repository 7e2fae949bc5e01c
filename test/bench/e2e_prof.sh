#!/bin/bash
# SPDX-License-Identifier: MIT
# Profiles e2e_postfix.sh's measured runs; its E2E_HOOK (see there):
#
#   E2E_HOOK=test/bench/e2e_prof.sh E2E_PROF="procs strace" \
#   E2E_PROF_DIR=/tmp/prof E2E_PROF_CONFS="a p" E2E_CPU=1 \
#   E2E_CONFIGS="a p" E2E_ROUNDS=2 test/bench/e2e_postfix.sh
#
# For each run of a configuration in E2E_PROF_CONFS (default all), in
# E2E_PROF_DIR/CONF.MODE.ROUND.*, what E2E_PROF asks for:
#   procs   CPU per message by process name (utime + stime from
#           /proc/PID/stat of every process in the configuration's
#           cpuacct groups, before and after; one that starts during the
#           run counts from zero): ".procs", lines "COMM us/msg". Postfix
#           ends its daemons after max_use requests; what those spent
#           reaches their parent when it reaps them (cutime + cstime),
#           shown as "master(reaped)": mostly smtpd and cleanup.
#   strace  strace -c -f on the configuration's rcptgate: ".strace",
#           with "calls/msg" added to each line
#   perf    perf record -g on the configuration's rcptgate: ".perf.data"
# strace and perf slow rcptgate down: the CPU and msgs/s of a run with
# them are not figures to compare; procs costs nothing measurable.
set -u
dir=${E2E_PROF_DIR:?}
what=${E2E_PROF:-procs}
[[ " ${E2E_PROF_CONFS:-$E2E_CONF} " == *" $E2E_CONF "* ]] || exit 0
mkdir -p "$dir"
base=$dir/$E2E_CONF.$E2E_MODE.$E2E_ROUND

# snap: "KEY COMM TICKS" for every process of the groups: PID with utime
# + stime (fields 14 and 15 of /proc/PID/stat), PID/c with cutime +
# cstime (16 and 17, children reaped) as COMM(reaped); spaces in COMM
# become "_".
snap() {
	local g pid s comm
	for g in $E2E_CGROUPS; do
		while read -r pid; do
			s=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
			comm=${s#*(}
			comm=${comm%)*}
			set -- ${s##*) }
			echo "$pid ${comm// /_} $((${12} + ${13}))"
			echo "$pid/c ${comm// /_}(reaped) $((${14} + ${15}))"
		done <"$g/cgroup.procs"
	done
}

# stop_tool NAME: SIGINT the tool started for this run, wait for it.
stop_tool() {
	local pid i
	[ -f "$base.$1.pid" ] || return 0
	pid=$(cat "$base.$1.pid")
	rm -f "$base.$1.pid"
	kill -INT "$pid" 2>/dev/null
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
}

case $1 in
start)
	[[ " $what " == *" procs "* ]] && snap >"$base.procs0"
	if [[ " $what " == *" strace "* ]] && [ -n "${E2E_PID:-}" ]; then
		strace -c -f -p "$E2E_PID" -o "$base.strace.raw" \
		    >/dev/null 2>&1 &
		echo $! >"$base.strace.pid"
		sleep 1	# attached to every thread before the run begins
	fi
	if [[ " $what " == *" perf "* ]] && [ -n "${E2E_PID:-}" ]; then
		perf record -q -g -p "$E2E_PID" -o "$base.perf.data" \
		    >/dev/null 2>&1 &
		echo $! >"$base.perf.pid"
		sleep 1
	fi
	;;
stop)
	if [ -f "$base.procs0" ]; then
		snap >"$base.procs1"
		# ticks are 1/100 s (USER_HZ)
		awk -v m="$E2E_MESSAGES" -v hz="$(getconf CLK_TCK)" '
			NR == FNR { t0[$1] = $3; next }
			{ d[$2] += $3 - ($1 in t0 ? t0[$1] : 0) }
			END { for (c in d) if (d[c] > 0)
				printf "%s %.0f\n", c, d[c] * 1e6 / hz / m }' \
		    "$base.procs0" "$base.procs1" | sort -k2,2nr >"$base.procs"
		rm -f "$base.procs0" "$base.procs1"
	fi
	stop_tool strace
	if [ -f "$base.strace.raw" ]; then
		awk -v m="$E2E_MESSAGES" '
			$1 ~ /^[0-9.]+$/ && NF >= 5 { printf "%s  calls/msg %.2f\n", $0, $4 / m; next }
			{ print }' "$base.strace.raw" >"$base.strace"
		rm -f "$base.strace.raw"
	fi
	stop_tool perf
	;;
esac
exit 0
