#!/bin/bash
# SPDX-License-Identifier: MIT
# The whole test suite, as README.md gives it and CI runs it:
# install what is missing, build with -Werror, run the unit and
# integration tests (real Postfix, slapd, SQLite, SMTP servers on
# loopback), then the unit and integration tests again under ASan+UBSan,
# the concurrency storms under TSan, a short run of each fuzz target and
# valgrind memcheck on two integration tests. The last line gives the
# totals of every suite and the elapsed time.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
start=$(date +%s)
bash scripts/deps.sh

# Each suite's output goes to the terminal and to a log, from which its
# totals are read for the last line: ctest's "N% tests passed, F tests
# failed out of T" and valgrind.sh's "valgrind.sh: T tests, ..." with a
# "FAIL - t failed under valgrind" line per failed test.
logs=$(mktemp -d /tmp/rcptgate-test.XXXXXX)
trap 'rm -rf "$logs"' EXIT
status=0
suites=0
ntests=0
nfailed=0
failed_suites=()
run() {
	local name=$1 log rc t f
	shift
	suites=$((suites + 1))
	log=$logs/$suites.log
	echo "== $*"
	set +e
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	set -e
	t=$(sed -n 's/.*tests passed, [0-9]* tests\{0,1\} failed out of \([0-9]*\).*/\1/p;
	    s/^valgrind\.sh: \([0-9]*\) tests,.*/\1/p' "$log" | tail -n 1)
	f=$(sed -n 's/.*tests passed, \([0-9]*\) tests\{0,1\} failed out of.*/\1/p' "$log" | tail -n 1)
	[ -n "$f" ] || f=$(grep -c '^FAIL - .* failed under valgrind' "$log" || true)
	ntests=$((ntests + ${t:-0}))
	nfailed=$((nfailed + ${f:-0}))
	if [ "$rc" -ne 0 ]; then
		status=1
		failed_suites+=("$name")
	fi
}

bash scripts/build.sh build
run main ctest --test-dir build --output-on-failure -j2 --timeout 900

# ASan+UBSan: the unit tests, and the integration tests with this build's
# daemon behind the real Postfix (ctest hands the scripts RCPTGATE from
# this build). lib.sh sends every report to a file and fails the test
# that has one, so a report the test would not notice still fails it.
bash scripts/build.sh build-asan -DRG_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	run asan ctest --test-dir build-asan --output-on-failure -j2 --timeout 900 \
	-L 'unit|integration'

# TSan: the storms (cache; the decision path with harvest counting and
# reloads over the SQLite, LDAP and call-ahead pools).
bash scripts/build.sh build-tsan -DRG_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
TSAN_OPTIONS=halt_on_error=1 run tsan ctest --test-dir build-tsan --output-on-failure \
	-R 'storm|concurr'

# libFuzzer (clang, ASan+UBSan): about 20 s per target from the seeds in
# test/fuzz/corpus/; long runs: test/fuzz/README.md.
bash scripts/build.sh build-fuzz -DCMAKE_C_COMPILER=clang -DRG_FUZZ=ON \
	-DRG_TESTS=OFF -DCMAKE_BUILD_TYPE=Debug
run fuzz ctest --test-dir build-fuzz --output-on-failure -j2 -L fuzz

# valgrind memcheck on the daemon behind the real Postfix and on the
# command line (t_postfix, t_cli: about 2 minutes here).
run valgrind bash scripts/valgrind.sh build-valgrind

elapsed=$(($(date +%s) - start))
totals="$ntests tests in $suites suites, $nfailed failed, elapsed $((elapsed / 60))m$(printf %02d $((elapsed % 60)))s"
if [ $status -eq 0 ]; then
	echo "test.sh: all suites passed: $totals"
else
	echo "test.sh: FAILED (${failed_suites[*]}): $totals"
fi
exit $status
