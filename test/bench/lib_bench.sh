# SPDX-License-Identifier: MIT
# Shared by the end-to-end benchmarks (e2e_postfix.sh, e2e_sendmail.sh);
# source it after test/integration/lib.sh.
#
#   bench_rcpt_list ROUNDS MESSAGES RCPTS
#       every recipient any round sends: rN@example.com and KrN@example.com
#   bench_table DB FILLER < extra-addresses
#       the SQLite table: FILLER rows u<i>@example.com plus one row per
#       line of standard input, in the file rcptgate-table would write
#       (its mark included, so rcptgate reads it as it would that file)
#   bench_median < numbers
#       the median (the lower of the middle two for an even count)
#   bench_rounds CONFIGS ROUNDS UNIQUE
#       the measurement: for each mode in UNIQUE (0 repeated recipients,
#       1 unique), ROUNDS rounds that each call the caller's
#       "run CONF ROUND U" (U empty or 1) once per configuration in turn,
#       so every configuration sees the same moments of the machine's
#       load. run prints msgs/s, appends its error count to $T/errs.CONF
#       and may append CPU us per message to $T/cpu.CONF. Prints one line
#       per configuration and mode, medians with the ratio to
#       configuration a of the same rounds:
#       "e2e MODE CONF MSGS msgs/s x_a RATIO errors=N rounds: ..." and,
#       where $T/cpu.CONF exists, "cpu_us/msg MED x_a RATIO cpu_rounds: ..."
#       (CPU ratio: CONF's CPU per message / a's, lower is better) and,
#       where $T/slapd.CONF exists, "slapd_us/msg MED" (slapd's part of
#       it). With BENCH_TARGETS="CONF:BASE:MIN ..." it then prints, per
#       mode and pair present, "target MODE CONF/BASE cpu BASE_CPU/CONF_CPU
#       (>= MIN met|MISSED by N%) paired P msgs/s CONF/BASE": the
#       throughput-like form, BASE's median CPU per message over CONF's;
#       P is the median of the same ratio taken round by round (both
#       configurations ran minutes apart at most, under the same load).

bench_rcpt_list() {
	local r
	for ((r = 0; r <= $1; r++)); do
		echo "r$r@example.com"
		seq -f "%.0fr$r@example.com" 1 $(($2 * $3))
	done
}

bench_table() {
	{
		echo "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
		echo "PRAGMA application_id = 1919382626;"
		echo "CREATE TABLE recipients (address TEXT PRIMARY KEY COLLATE NOCASE);"
		echo "BEGIN;"
		echo "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c"
		echo "  WHERE i + 1 < $2) INSERT INTO recipients"
		echo "  SELECT 'u' || i || '@example.com' FROM c;"
		sed "s/.*/INSERT INTO recipients VALUES ('&');/"
		echo "COMMIT;"
	} | sqlite3 "$1" >/dev/null || return 1
	chmod 644 "$1"
}

bench_median() {
	sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# bench_ratio X BASE: X / BASE to two places, "-" without a base.
bench_ratio() {
	awk -v x="$1" -v b="${2:-0}" \
	    'BEGIN { if (b > 0) printf "%.2f", x / b; else print "-" }'
}

bench_rounds() {
	local configs=$1 rounds=$2 u c r x mode med base cmed cbase cpu errs
	local t tc tb tmin
	local -A rates medrate medcpu

	for u in $3; do
		mode=repeat
		[ "$u" = 1 ] && mode=unique
		rates=() medrate=() medcpu=()
		rm -f "$T"/errs.* "$T"/cpu.* "$T"/slapd.*
		for ((r = 1; r <= rounds; r++)); do
			for c in $configs; do
				x=$(run "$c" "$r" "$([ "$u" = 1 ] && echo 1)")
				rates[$c]="${rates[$c]:-} $x"
			done
		done
		base= cbase=
		for c in $configs; do
			cpu=
			if [ -s "$T/cpu.$c" ]; then
				cmed=$(bench_median <"$T/cpu.$c")
				[ -z "$cbase" ] && [ "$c" = a ] && cbase=$cmed
				medcpu[$c]=$cmed
				cpu=" cpu_us/msg $cmed x_a $(bench_ratio "$cmed" "$cbase") cpu_rounds: $(tr '\n' ' ' <"$T/cpu.$c")"
				[ -s "$T/slapd.$c" ] &&
					cpu="${cpu% } slapd_us/msg $(bench_median <"$T/slapd.$c")"
			fi
			med=$(printf '%s\n' ${rates[$c]} | bench_median)
			medrate[$c]=$med
			[ -z "$base" ] && [ "$c" = a ] && base=$med
			errs=$(awk '{ n += $1 } END { print n + 0 }' "$T/errs.$c" 2>/dev/null)
			echo "e2e $mode $c $med msgs/s x_a $(bench_ratio "$med" "$base") errors=$errs rounds:${rates[$c]}$cpu"
		done
		for t in ${BENCH_TARGETS:-}; do
			IFS=: read -r tc tb tmin <<<"$t"
			[ -n "${medrate[$tc]:-}" ] && [ -n "${medrate[$tb]:-}" ] ||
				continue
			x=$(bench_ratio "${medcpu[$tb]:-0}" "${medcpu[$tc]:-0}")
			echo "target $mode $tc/$tb cpu $x $(awk -v x="$x" -v m="$tmin" 'BEGIN {
				if (x == "-") print "(no CPU figures)"
				else if (x + 0 >= m) printf "(>= %s met)\n", m
				else printf "(>= %s MISSED by %.0f%%)\n", m, (m - x) / m * 100 }') paired $(paste "$T/cpu.$tb" "$T/cpu.$tc" 2>/dev/null |
				awk '$2 > 0 { printf "%.3f\n", $1 / $2 }' | bench_median) msgs/s $(bench_ratio "${medrate[$tc]}" "${medrate[$tb]}")"
		done
	done
}
