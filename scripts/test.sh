#!/bin/bash
# SPDX-License-Identifier: MIT
# The whole test suite, as README.md gives it and CI runs it:
# install what is missing, build with -Werror, run the unit and
# integration tests (real Postfix, slapd, SQLite, SMTP servers on
# loopback), then the unit and integration tests again under ASan+UBSan,
# the concurrency storms under TSan, a short run of each fuzz target and
# valgrind memcheck on two integration tests.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/deps.sh

status=0
run() {
	echo "== $*"
	"$@" || status=1
}

bash scripts/build.sh build
run ctest --test-dir build --output-on-failure -j2 --timeout 900

# ASan+UBSan: the unit tests, and the integration tests with this build's
# daemon behind the real Postfix (ctest hands the scripts RCPTGATE from
# this build). lib.sh sends every report to a file and fails the test
# that has one, so a report the test would not notice still fails it.
bash scripts/build.sh build-asan -DRG_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	run ctest --test-dir build-asan --output-on-failure -j2 --timeout 900 \
	-L 'unit|integration'

# TSan: the storms (cache; the decision path with harvest counting and
# reloads over the SQLite, LDAP and call-ahead pools).
bash scripts/build.sh build-tsan -DRG_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
TSAN_OPTIONS=halt_on_error=1 run ctest --test-dir build-tsan --output-on-failure \
	-R 'storm|concurr'

# libFuzzer (clang, ASan+UBSan): about 20 s per target from the seeds in
# test/fuzz/corpus/; long runs: test/fuzz/README.md.
bash scripts/build.sh build-fuzz -DCMAKE_C_COMPILER=clang -DRG_FUZZ=ON \
	-DRG_TESTS=OFF -DCMAKE_BUILD_TYPE=Debug
run ctest --test-dir build-fuzz --output-on-failure -j2 -L fuzz

# valgrind memcheck on the daemon behind the real Postfix and on the
# command line (t_postfix, t_cli: about 2 minutes here).
run bash scripts/valgrind.sh build-valgrind

if [ $status -eq 0 ]; then echo "test.sh: all suites passed"; else echo "test.sh: FAILED"; fi
exit $status
