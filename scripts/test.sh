#!/bin/bash
# SPDX-License-Identifier: MIT
# The whole test suite, as README.md gives it and CI runs it:
# install what is missing, build with -Werror, run the unit and
# integration tests (real Postfix, slapd, SQLite, SMTP servers on
# loopback), then the unit tests again under ASan+UBSan and the
# concurrency storms under TSan.
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

bash scripts/build.sh build-asan -DRG_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	run ctest --test-dir build-asan --output-on-failure -j2 -L unit

bash scripts/build.sh build-tsan -DRG_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
TSAN_OPTIONS=halt_on_error=1 run ctest --test-dir build-tsan --output-on-failure \
	-R 'storm|concurr'

if [ $status -eq 0 ]; then echo "test.sh: all suites passed"; else echo "test.sh: FAILED"; fi
exit $status
