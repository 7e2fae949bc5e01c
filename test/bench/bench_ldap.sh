#!/bin/bash
# SPDX-License-Identifier: MIT
# The LDAP backend benchmark: a private slapd with N synthetic AD-shaped
# users (default 100000, loaded with slapadd -q), then bench_ldap, which
# prints lookups/s and p99 for a bare libldap loop on one connection, the
# backend directly (cold), through rg_decide with a warm cache, and the
# backend from several threads, each as a ratio to the bare loop.
# bench_ldap reads the directory's uri, base and bind settings from the
# [backend] section of the rcptgate.conf written here (it binds as
# cn=rcptgate with a password file, as a site would); run bench_ldap
# itself with your own file to measure another directory holding the
# same synthetic users.
#
#   RG_SOURCE_DIR=. test/bench/bench_ldap.sh [N] [rounds] [ms] [threads]
#
# Builds bench_ldap from lib/*.c with -O2 into the temporary directory.
set -u
: "${RG_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
. "$RG_SOURCE_DIR/test/integration/lib.sh"
. "$RG_SOURCE_DIR/test/integration/lib_slapd.sh"
rg_setup

N=${1:-100000}
ROUNDS=${2:-5}
MS=${3:-3000}
THREADS=${4:-4}

cd "$RG_SOURCE_DIR" || exit 1
srcs=()
extra=()
for f in lib/*.c lib/*/*.c; do
	case $f in
	lib/harvest/harvest_redis.c)
		pkg-config --exists hiredis || continue
		extra=(-DRG_HAVE_HIREDIS=1) ;;
	esac
	srcs+=("$f")
done
libs=(-lsqlite3 -lldap -llber -lpthread)
pkg-config --exists hiredis && libs+=($(pkg-config --libs hiredis))
gcc -std=c11 -D_GNU_SOURCE -DRG_VERSION='"bench"' -O2 -g -Ilib \
    -Ilib/backend -Ilib/harvest "${extra[@]}" \
    "${srcs[@]}" test/bench/bench_ldap.c -o "$T/bench_ldap" "${libs[@]}" ||
	exit 1

rg_slapd_init bench || exit 1
t0=$(date +%s%N)
rg_slapd_gen_users "$N" example.com >"$T/users.ldif"
rg_slapd_load bench "$T/users.ldif" || exit 1
echo "# generated and loaded $N users in $((($(date +%s%N) - t0) / 1000000)) ms"
rg_slapd_start bench || exit 1

printf 's3cret\n' >"$T/ldap.secret"
chmod 600 "$T/ldap.secret"
cat >"$T/bench.conf" <<EOT
[backend corp]
type = ldap
uri = $SLAPD_URI_bench
base = dc=example,dc=com
preset = activedirectory
bind_dn = cn=rcptgate,dc=example,dc=com
bind_password_file = $T/ldap.secret
EOT
"$T/bench_ldap" "$T/bench.conf" "$N" "$ROUNDS" "$MS" "$THREADS"
rc=$?
rg_slapd_stop bench
exit $rc
