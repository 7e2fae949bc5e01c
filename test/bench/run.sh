#!/bin/bash
# SPDX-License-Identifier: MIT
# The benchmark suite, one command (as root, from anywhere):
#
#   bash test/bench/run.sh            # everything, ~40 min on 2 cores
#   BENCH_QUICK=1 bash test/bench/run.sh   # fewer rounds, shorter runs
#
# Prints every figure and its ratio to a baseline measured in the same
# run (interleaved rounds, medians). In order:
#   1. Postfix msgs/s through rcptgate, unix and TCP, as a ratio to the
#      same Postfix without a milter (smtp-source -s 10 -m 2000 -r 5)
#   2. in process: SQLite backend and decision path on 1,000,000 rows
#      (bench_sqlite), warm cache (bench_cache), LDAP on 100k (bench_ldap)
#   3. milter protocol: milterload against rcptgate, unix and TCP, 1, 10
#      and 200 connections, with peak RSS and thread count
#   4. end to end a-f, p and pl (rcptgate as Postfix's policy server,
#      SQLite and LDAP) (test/bench/e2e_postfix.sh), repeated and
#      unique, with the mail system's CPU per message where cgroup v1
#      cpuacct is mounted
#   5. end to end through Sendmail, a c d dq (test/bench/e2e_sendmail.sh)
#   6. memory over a 10-minute run (test/bench/memflat.sh)
# Never part of ctest: timings do not gate CI. Every step runs under
# timeout; everything started is stopped at exit; the scratch directory
# is removed. BENCH_BUILD_DIR (default build-bench) is where it builds.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
B=${BENCH_BUILD_DIR:-$top/build-bench}
Q=${BENCH_QUICK:-0}
W=$(mktemp -d /tmp/rg-bench.XXXXXX)
chmod 755 "$W"
MPID=
cleanup() {
	if [ -n "$MPID" ]; then
		kill -TERM "$MPID" 2>/dev/null
		wait "$MPID" 2>/dev/null
	fi
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$Q" = 1 ]; then
	ROUNDS=2 MS=500 MSGS=500 SMSGS=300 MSEC=3 MEMFLAT=180
else
	ROUNDS=3 MS=2000 MSGS=2000 SMSGS=1000 MSEC=10 MEMFLAT=600
fi

for p in postfix-sqlite postfix-ldap; do
	dpkg -s "$p" >/dev/null 2>&1 ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y \
		    --no-install-recommends "$p" >/dev/null 2>&1 ||
		echo "# could not install $p: configurations b/e will fail"
done
bash "$top/scripts/build.sh" "$B" >"$W/build.log" 2>&1 || {
	tail -n 20 "$W/build.log"
	exit 1
}
export RCPTGATE=$B/rcptgate RCPTGATE_TABLE=$B/rcptgate-table
export RG_SOURCE_DIR=$top RG_BUILD_DIR=$B

srcs=()
extra=()
for f in "$top"/lib/*.c "$top"/lib/*/*.c; do
	case $f in
	*/harvest_redis.c)
		pkg-config --exists hiredis || continue
		extra=(-DRG_HAVE_HIREDIS=1) ;;
	esac
	srcs+=("$f")
done
libs=(-lsqlite3 -lldap -llber -lpthread)
pkg-config --exists hiredis && libs+=($(pkg-config --libs hiredis))
cc=(gcc -std=c11 -D_GNU_SOURCE -DRG_VERSION='"bench"' -O2 -g -I"$top/lib" -I"$top/lib/backend" -I"$top/lib/harvest")
"${cc[@]}" "${extra[@]}" "${srcs[@]}" "$top/test/bench/bench_sqlite.c" \
    -o "$W/bench_sqlite" "${libs[@]}" || exit 1
"${cc[@]}" "$top/lib/rg_error.c" "$top/lib/rg_time.c" "$top/lib/log.c" \
    "$top/lib/hash.c" "$top/lib/cache.c" "$top/test/bench/bench_cache.c" \
    -o "$W/bench_cache" -lpthread || exit 1
"${cc[@]}" "$top/test/bench/milterload.c" -o "$W/milterload" -lpthread ||
	exit 1

echo "# rcptgate benchmarks, $(date -u +%FT%TZ), $(uname -srm)," \
    "$(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' \
    /proc/cpuinfo | head -n1)), load average $(cut -d' ' -f1-3 \
    /proc/loadavg): machine shared with other work"

echo "## 1. Postfix through rcptgate (issue 2): msgs/s and ratio to no milter"
E2E_CONFIGS="a c d" E2E_ROUNDS=$ROUNDS E2E_MESSAGES=$MSGS E2E_UNIQUE=0 \
    E2E_TABLE_ROWS=1000 timeout 1800 bash "$top/test/bench/e2e_postfix.sh"

echo "## 2. In process"
timeout 900 "$W/bench_sqlite" "$W/t1m.db" "$ROUNDS" "$MS"
timeout 600 "$W/bench_cache" "$ROUNDS" "$MS" | sed 's/^/cache: /'
timeout 1200 bash "$top/test/bench/bench_ldap.sh" 100000 "$ROUNDS" "$MS" 2 |
    sed 's/^/ldap: /'

echo "## 3. Milter protocol (milterload, 1M-row SQLite table, default cache)"
mport=$(/usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
for kind in unix tcp; do
	if [ $kind = unix ]; then
		sock=unix:$W/m.sock
	else
		sock=inet:$mport@127.0.0.1
	fi
	cat >"$W/m.conf" <<-EOT
		[milter]
		socket = $sock
		user =
		log_level = warning
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
	rm -f "$W/m.sock"
	"$RCPTGATE" -f -c "$W/m.conf" 2>>"$W/m.log" &
	MPID=$!
	for ((i = 0; i < 100; i++)); do
		if [ $kind = unix ]; then
			[ -S "$W/m.sock" ] && break
		else
			(exec 3<>"/dev/tcp/127.0.0.1/$mport") 2>/dev/null && break
		fi
		sleep 0.1
	done
	for c in 1 10 200; do
		timeout 700 "$W/milterload" -s "$sock" -c $c -d "$MSEC" \
		    -p "$MPID"
	done
	# Warm keys: 11,000 addresses, all in the cache after the first
	# pass, so what is left is the milter exchange itself.
	for c in 1 10 200; do
		timeout 700 "$W/milterload" -s "$sock" -c $c -d "$MSEC" \
		    -k 10000 -p "$MPID"
	done
	kill -TERM "$MPID"
	wait "$MPID"
	MPID=
done

echo "## 4. End to end through Postfix (a-f, p, pl), repeated and unique recipients"
# CPU per message needs cgroup v1's cpuacct (e2e_postfix.sh, E2E_CPU).
cpu=0
[ -d /sys/fs/cgroup/cpuacct ] && cpu=1
E2E_CONFIGS="a b c d e f p pl" E2E_CPU=$cpu E2E_ROUNDS=$ROUNDS \
    E2E_MESSAGES=$MSGS timeout 3600 bash "$top/test/bench/e2e_postfix.sh"

echo "## 5. End to end through Sendmail (a, c, d, dq), repeated and unique"
# SM_REUSE=1: a session's messages over one connection (smtp-source -d);
# with a fork per connection (~50 msgs/s here) Sendmail hides the milter.
SM_REUSE=1 SM_ROUNDS=$ROUNDS SM_MESSAGES=$SMSGS timeout 3600 \
    bash "$top/test/bench/e2e_sendmail.sh"
[ $? = 77 ] && echo "# Sendmail could not be had: step 5 skipped"

echo "## 6. Memory over a long run (memflat, ${MEMFLAT}s)"
MEMFLAT_SECONDS=$MEMFLAT BENCH_BUILD_DIR=$B timeout $((MEMFLAT + 600)) \
    bash "$top/test/bench/memflat.sh"
