# SPDX-License-Identifier: MIT
# A private slapd for the LDAP tests and benchmarks: generated slapd.conf
# in $T/slapd-NAME, an mdb database loaded with `slapadd -q`, listening on
# a free 127.0.0.1 port (and an ldapi:// socket in its directory).
# Works with lib.sh (servers are stopped by its exit trap through
# rg_track) or alone: set T to a scratch directory and call
# rg_slapd_stop yourself.
#
#   . "$RG_SOURCE_DIR/test/integration/lib_slapd.sh"
#   rg_slapd_init NAME [SUFFIX]        # default suffix dc=example,dc=com
#   rg_slapd_load NAME LDIF...         # before the first start (or stopped)
#   rg_slapd_start NAME                # sets SLAPD_PORT_NAME, SLAPD_PID_NAME,
#                                      # SLAPD_URI_NAME, SLAPD_LDAPI_NAME;
#                                      # a restart keeps the port
#   rg_slapd_stop NAME
#   rg_slapd_gen_users N [DOMAIN] [SUFFIX] >FILE   # N synthetic users
#
# RG_SLAPD_LIFETIME=SECONDS (optional) makes slapd exit by itself after
# that long, for callers (C tests) that cannot trap their own crash.
# rootdn is cn=admin,SUFFIX with password "admin"; the fixture adds
# cn=rcptgate,ou=services,SUFFIX with password "s3cret".

: "${RG_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
RG_SLAPD=${RG_SLAPD:-$(command -v slapd || echo /usr/sbin/slapd)}
RG_SLAPADD=${RG_SLAPADD:-$(command -v slapadd || echo /usr/sbin/slapadd)}
RG_LDAP_DIR=$RG_SOURCE_DIR/test/integration/ldap

if ! declare -F rg_free_port >/dev/null; then
	rg_free_port() {
		/usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
	}
fi

# rg_slapd_init NAME [SUFFIX]
rg_slapd_init() {
	local name=$1 suffix=${2:-dc=example,dc=com} dir=$T/slapd-$1
	mkdir -p "$dir/db" || return 1
	cat >"$dir/slapd.conf" <<-EOT
		include /etc/ldap/schema/core.schema
		include /etc/ldap/schema/cosine.schema
		include /etc/ldap/schema/nis.schema
		include /etc/ldap/schema/inetorgperson.schema
		include $RG_LDAP_DIR/rcptgate-ad.schema
		pidfile $dir/slapd.pid
		argsfile $dir/slapd.args
		modulepath /usr/lib/ldap
		moduleload back_mdb
		sizelimit 500
		database mdb
		maxsize 1073741824
		suffix "$suffix"
		rootdn "cn=admin,$suffix"
		rootpw admin
		directory $dir/db
		index objectClass eq
		index mail eq
		index proxyAddresses eq
	EOT
}

# rg_slapd_load NAME LDIF...
rg_slapd_load() {
	local name=$1 f
	shift
	for f in "$@"; do
		"$RG_SLAPADD" -q -f "$T/slapd-$name/slapd.conf" -l "$f" \
		    >>"$T/slapd-$name/slapadd.log" 2>&1 || {
			echo "slapadd $f failed:" >&2
			tail -n 5 "$T/slapd-$name/slapadd.log" >&2
			return 1
		}
	done
}

# rg_slapd_start NAME: start (or restart on the same port) and wait until
# it answers a root DSE search (at most 15 s).
rg_slapd_start() {
	local name=$1 dir=$T/slapd-$1 var port pid sock i
	var=SLAPD_PORT_$name
	port=${!var:-}
	[ -n "$port" ] || port=$(rg_free_port)
	sock=$dir/ldapi
	rm -f "$sock"
	# -d 0: stay in the foreground so $! is slapd's own PID (or that of
	# timeout(1), which passes SIGTERM on, when RG_SLAPD_LIFETIME bounds
	# how long a slapd outlives a crashed test).
	${RG_SLAPD_LIFETIME:+timeout "$RG_SLAPD_LIFETIME"} \
	    "$RG_SLAPD" -d 0 -f "$dir/slapd.conf" \
	    -h "ldap://127.0.0.1:$port/ ldapi://$(rg_slapd_urlenc "$sock")/" \
	    >>"$dir/slapd.log" 2>&1 &
	pid=$!
	declare -F rg_track >/dev/null && rg_track "$pid"
	printf -v "SLAPD_PORT_$name" '%s' "$port"
	printf -v "SLAPD_PID_$name" '%s' "$pid"
	printf -v "SLAPD_URI_$name" '%s' "ldap://127.0.0.1:$port/"
	printf -v "SLAPD_LDAPI_$name" '%s' "ldapi://$(rg_slapd_urlenc "$sock")/"
	for ((i = 0; i < 150; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "slapd $name exited at start:" >&2
			tail -n 20 "$dir/slapd.log" >&2
			return 1
		fi
		ldapsearch -x -LLL -o nettimeout=1 -H "ldap://127.0.0.1:$port/" \
		    -b "" -s base 1.1 >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "slapd $name did not answer on port $port" >&2
	return 1
}

# rg_slapd_stop NAME: SIGTERM, wait up to 10 s, then SIGKILL.
rg_slapd_stop() {
	local var pid i
	var=SLAPD_PID_$1
	pid=${!var:-}
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	printf -v "SLAPD_PID_$1" '%s' ""
	return 0
}

rg_slapd_urlenc() {
	local s=$1
	s=${s//%/%25}
	s=${s//\//%2F}
	printf '%s' "$s"
}

# rg_slapd_gen_users N [DOMAIN] [SUFFIX]: LDIF on stdout: the suffix, an
# ou=people, and users u0..u(N-1) with mail uI@DOMAIN and proxyAddresses
# SMTP:uI@DOMAIN, smtp:user.I@DOMAIN, X500:... (AD-shaped).
rg_slapd_gen_users() {
	local n=$1 domain=${2:-example.com} suffix=${3:-dc=example,dc=com}
	local dc=${suffix%%,*}
	dc=${dc#dc=}
	awk -v n="$n" -v d="$domain" -v s="$suffix" -v dc="$dc" 'BEGIN {
		printf "dn: %s\nobjectClass: dcObject\n", s
		printf "objectClass: organization\no: Bench\ndc: %s\n\n", dc
		printf "dn: ou=people,%s\n", s
		printf "objectClass: organizationalUnit\nou: people\n\n"
		printf "dn: cn=rcptgate,%s\nobjectClass: person\n", s
		printf "cn: rcptgate\nsn: rcptgate\nuserPassword: s3cret\n\n"
		for (i = 0; i < n; i++) {
			printf "dn: uid=u%d,ou=people,%s\n", i, s
			printf "objectClass: inetOrgPerson\n"
			printf "objectClass: rgMailRecipient\n"
			printf "uid: u%d\ncn: User %d\nsn: %d\n", i, i, i
			printf "mail: u%d@%s\n", i, d
			printf "proxyAddresses: SMTP:u%d@%s\n", i, d
			printf "proxyAddresses: smtp:user.%d@%s\n", i, d
			printf "proxyAddresses: X500:/o=Bench/cn=u%d\n", i
			printf "userAccountControl: 512\n\n"
		}
	}'
}
