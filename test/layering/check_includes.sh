#!/bin/bash
# SPDX-License-Identifier: MIT
# The layering rules, read from the #include lines so they cannot rot:
# - nothing in lib/ includes a libmilter header (lib/ is testable without
#   an MTA; milter/ is the only glue);
# - the drivers and their helpers in lib/backend/ never include the
#   decision core's policy, cache or harvest headers (drivers answer
#   found / not found / tempfail and never decide, cache or count);
# - the harvest limiter in lib/harvest/ never includes policy, cache or
#   backend headers (it counts what the core tells it, nothing more).
# Usage: check_includes.sh [SOURCE_DIR]; exit 1 with one line per breach.
set -u
top=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 2
bad=0

# breach FILES_GLOB REGEX WHY
breach() {
	local pattern=$1 re=$2 why=$3 f line
	for f in $pattern; do
		[ -f "$f" ] || continue
		while IFS= read -r line; do
			echo "$f: $line: $why"
			bad=1
		done < <(grep -nE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($re)[>\"]" "$f")
	done
}

backend_h='backend\.h|table\.h|ldap_filter\.h|smtp_client\.h'
harvest_h='harvest\.h|harvest_store\.h|harvest_int\.h'
core_h='policy\.h|cache\.h|cache_int\.h|explain\.h'

breach "lib/*.[ch] lib/*/*.[ch]" 'libmilter/[^>"]*' "lib/ must not know libmilter"
breach "lib/backend/*.[ch]" "$core_h|$harvest_h" "a driver must not decide, cache or count"
breach "lib/harvest/*.[ch]" "$core_h|$backend_h" "the harvest limiter must not reach the core or the drivers"

# Every .c and .h under lib/ sits in one of the three layers.
for f in lib/*/*; do
	case $f in
	lib/backend/* | lib/harvest/*) ;;
	*) echo "$f: not in a known layer (lib/, lib/backend/, lib/harvest/)"; bad=1 ;;
	esac
done

if [ "$bad" -eq 0 ]; then
	echo "1 passed, 0 failed"
else
	echo "0 passed, 1 failed"
fi
exit "$bad"
