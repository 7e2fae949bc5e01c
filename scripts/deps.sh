#!/bin/bash
# SPDX-License-Identifier: MIT
# Install, from Debian's archive, whatever rcptgate's build and tests
# need and this machine lacks. Idempotent: does nothing when all is there.
set -eu

PACKAGES=(
	build-essential cmake pkg-config
	libmilter-dev libsqlite3-dev sqlite3 libldap-dev libhiredis-dev
	libcmocka-dev
	postfix swaks slapd ldap-utils redis-server miltertest python3 python3-aiosmtpd
	clang valgrind util-linux procps iproute2
	# issue 14: the metrics endpoint, t_fail2ban.sh, promtool for t_metrics.sh
	libmicrohttpd-dev fail2ban prometheus curl
	# t_sendmail.sh: m4 for the .cf, libraries of the unpacked sendmail
	m4 libdb5.3 libwrap0 libnsl2
	# t_ad.sh: a real Samba AD DC (ldb-tools holds ldbmodify)
	samba samba-ad-dc samba-ad-provision ldb-tools
)
[ "${1:-}" = "--runtime-only" ] && PACKAGES=(build-essential cmake pkg-config
	libmilter-dev libsqlite3-dev sqlite3 libldap-dev libhiredis-dev
	libmicrohttpd-dev libcmocka-dev postfix swaks)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages (${missing[*]}); run as root" >&2
	exit 1
fi
# apt's and dpkg's progress (hundreds of lines) would bury what the demo
# shows: it goes to a log, the terminal gets one line per step, and on
# failure the end of the log, where apt says what went wrong.
log=${RG_DEPS_LOG:-/var/log/rcptgate-deps.log}
echo "deps.sh: installing ${#missing[@]} packages (log: $log)"
echo "deps.sh: installing ${missing[*]}" >"$log"
# Neither package may ask a question or configure the system's own MTA/LDAP
# (README: the system Postfix stays unconfigured; dpkg-reconfigure postfix).
debconf-set-selections <<'EOT'
postfix postfix/main_mailer_type select No configuration
slapd slapd/no_configuration boolean true
EOT
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"; } >>"$log" 2>&1; then
	echo "deps.sh: apt-get failed; the end of $log:" >&2
	tail -n 25 "$log" >&2
	exit 1
fi
echo "deps.sh: done: ${#missing[@]} packages installed"
