#!/bin/bash
# SPDX-License-Identifier: MIT
# valgrind memcheck on the integration tests: every rcptgate and
# rcptgate-table the tests run (the daemon behind the real Postfix, the
# -t/-n runs, the table builds) runs under memcheck through a small
# wrapper, and the run fails on any memcheck error or definite leak, on
# a log without its final summary (a process killed before it could
# report) or on a failed test.
#
#   bash scripts/valgrind.sh [BUILD_DIR] [t_NAME ...]
#
# BUILD_DIR defaults to build-valgrind (a plain -O1 -g build, made here);
# the tests default to t_postfix and t_cli; "all" runs every t_*.sh.
# Not run by test.sh when it would take too long (see README).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build-valgrind}
shift || true
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(t_postfix t_cli)
if [ "${tests[0]}" = all ]; then
	tests=()
	for f in "$top"/test/integration/t_*.sh; do
		f=${f##*/}
		tests+=("${f%.sh}")
	done
fi
command -v valgrind >/dev/null || {
	echo "valgrind.sh: no valgrind (apt-get install valgrind)" >&2
	exit 2
}
bash "$top/scripts/build.sh" "$build" -DCMAKE_BUILD_TYPE=Debug \
	-DCMAKE_C_FLAGS=-O1 || exit 1
build=$(cd "$build" && pwd)	# the tests may run from anywhere

vg=$(mktemp -d /tmp/rg-valgrind.XXXXXX)
chmod 1777 "$vg"
for prog in rcptgate rcptgate-table; do
	# exec keeps the PID, so the tests' kill/wait reach memcheck itself.
	cat >"$vg/$prog" <<-EOT
		#!/bin/sh
		exec valgrind --tool=memcheck --error-limit=no \\
		    --leak-check=full --show-leak-kinds=definite \\
		    --errors-for-leak-kinds=definite --track-origins=yes \\
		    --child-silent-after-fork=yes \\
		    --log-file=$vg/log.$prog.%p "$build/$prog" "\$@"
	EOT
	chmod 755 "$vg/$prog"
done

status=0
for t in "${tests[@]}"; do
	echo "== valgrind: $t"
	start=$(date +%s)
	# The test waits up to 15 s for a socket and for a stop; memcheck
	# starts and stops slower but well within that here.
	if ! RCPTGATE=$vg/rcptgate RCPTGATE_TABLE=$vg/rcptgate-table \
	    RG_SOURCE_DIR=$top RG_BUILD_DIR=$build \
	    timeout 1800 bash "$top/test/integration/$t.sh" \
	    >"$vg/$t.out" 2>&1; then
		echo "FAIL - $t failed under valgrind:"
		tail -n 30 "$vg/$t.out"
		status=1
	fi
	echo "   $t: $(tail -n 1 "$vg/$t.out") ($(($(date +%s) - start)) s)"
done

logs=0
bad=0
for f in "$vg"/log.*; do
	[ -e "$f" ] || continue
	logs=$((logs + 1))
	# A clean process ends with "ERROR SUMMARY: 0 errors"; no summary
	# at all means it was killed before memcheck could report.
	if ! grep -q "ERROR SUMMARY: 0 errors" "$f"; then
		echo "FAIL - memcheck ${f##*/}:"
		grep -v "^==[0-9]*== *$" "$f" | head -n 60
		bad=$((bad + 1))
	fi
done
echo "valgrind.sh: ${#tests[@]} tests, $logs processes checked," \
    "$bad with errors"
[ "$bad" -eq 0 ] || status=1
if [ "$logs" -eq 0 ]; then
	echo "valgrind.sh: no process ran under memcheck"
	status=1
fi
if [ $status -eq 0 ]; then
	rm -rf "$vg"
	echo "valgrind.sh: clean"
else
	echo "valgrind.sh: FAILED (logs kept in $vg)"
fi
exit $status
