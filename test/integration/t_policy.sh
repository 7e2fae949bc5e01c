#!/bin/bash
# SPDX-License-Identifier: MIT
# The decision order through a real Postfix (issue 12, points 2, 8 and
# 10), with SMTP AUTH through Postfix's Dovecot SASL client (sasl_auth.py
# answers it) and clients on several loopback addresses:
#  - syntax and length rejects only in a checked domain and only for a
#    client that is not exempt (trusted_networks, AUTH);
#  - a 5.1.1 reply carries the address as the client sent it (SMTPUTF8);
#  - one backend fails, a later one answers not-found: 451, never 550,
#    with one verdict line per decision and the backend's failure warning
#    once, not once per lookup;
#  - a trusted or AUTH client inside a blocked prefix is never blocked;
#  - an LDAP outage with harvest on counts nothing: once the directory is
#    back the client is not blocked;
#  - a directory that answers slower than the deadline allows between
#    candidates: 451, never 550.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
. "$RG_SOURCE_DIR/test/integration/lib_slapd.sh"
rg_setup

L70=$(printf 'u%.0s' {1..70})
rg_make_table "$T/users.db" alice@example.com bob@example.com >/dev/null

"$RG_PY" "$RG_SOURCE_DIR/test/integration/sasl_auth.py" tester pw \
    --lifetime 900 >"$T/sasl.port" &
rg_track $!
for ((i = 0; i < 50; i++)); do [ -s "$T/sasl.port" ] && break; sleep 0.1; done
SASL_PORT=$(head -n1 "$T/sasl.port")

# conf [extra lines...]: checks example.com with the SQLite table, trusts
# 127.0.0.2, skips AUTH clients, harvest off unless the lines set it.
conf() {
	local l
	cat >"$T/rcptgate.conf" <<-EOT
		[milter]
		socket = unix:$T/rcptgate.sock
		user =
		socket_mode = 0666
		log_level = info
		[policy]
		domains = example.com
		backends = local
		trusted_networks = 127.0.0.2
		skip_authenticated = yes
		[backend local]
		type = sqlite
		path = $T/users.db
	EOT
	for l in "$@"; do echo "$l" >>"$T/rcptgate.conf"; done
}
NOHARVEST=("[harvest]" "max_unknown = 0" "max_unknown_per_session = 0"
    "state =")

# reload: SIGUSR1 and wait for the log line (applies to new connections)
reload() {
	local n i
	n=$(grep -c "configuration reloaded" "$T/rcptgate.log")
	kill -USR1 "$RG_PID"
	for ((i = 0; i < 50; i++)); do
		[ "$(grep -c "configuration reloaded" "$T/rcptgate.log")" -gt "$n" ] &&
		    return 0
		sleep 0.1
	done
	echo "reload not seen" >&2
	return 1
}

# rcpt FROM_IP [AUTH] ADDR...: the replies' first two words, one per line
rcpt() {
	local ip=$1 auth=()
	shift
	if [ "$1" = AUTH ]; then
		auth=(-a tester:pw)
		shift
	fi
	rg_rcpt -s "$ip" "${auth[@]}" "$PORT_mx" "$@" | cut -d' ' -f1,2
}

conf "${NOHARVEST[@]}"
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_start_postfix mx "unix:$T/rcptgate.sock" \
    "smtpd_sasl_auth_enable = yes" "smtpd_sasl_type = dovecot" \
    "smtpd_sasl_path = inet:127.0.0.1:$SASL_PORT" || exit 1

# ---- syntax and length (point 2) ----
got=$(rg_rcpt -s 127.0.0.1 -a tester:pw "$PORT_mx" alice@example.com)
rg_expect_eq "SASL through Postfix works" "${got%% *}" 250
for who in "127.0.0.1" "127.0.0.2" "127.0.0.1 AUTH"; do
	# shellcheck disable=SC2086
	rg_expect_eq "$who: 70-octet local part, unchecked domain" \
	    "$(rcpt $who "$L70@example.org")" "250 2.1.5"
	# shellcheck disable=SC2086
	rg_expect_eq "$who: a..b, unchecked domain" \
	    "$(rcpt $who "a..b@example.org")" "250 2.1.5"
done
rg_expect_eq "outside: 70-octet local part, checked domain" \
    "$(rcpt 127.0.0.1 "$L70@example.com")" "550 5.1.3"
rg_expect_eq "outside: a..b, checked domain" \
    "$(rcpt 127.0.0.1 "a..b@example.com")" "550 5.1.3"
rg_expect_eq "trusted: 70-octet local part, checked domain" \
    "$(rcpt 127.0.0.2 "$L70@example.com")" "250 2.1.5"
rg_expect_eq "AUTH: 70-octet local part, checked domain" \
    "$(rcpt 127.0.0.1 AUTH "$L70@example.com")" "250 2.1.5"
rg_expect_eq "outside: unknown still 550 5.1.1" \
    "$(rcpt 127.0.0.1 nobody@example.com)" "550 5.1.1"

# ---- the reply carries the address as sent (point 8e) ----
addr=$'J\xc3\xbcrgen.Nobody@example.com'
got=$(rg_rcpt -u -s 127.0.0.1 "$PORT_mx" "$addr")
rg_expect_eq "UTF-8 address echoed as sent" "$got" \
    "550 5.1.1 <$addr>: Recipient address rejected: User unknown"
rg_check "the log line keeps the escaped form" \
    grep -q 'rcpt=<j\\xc3\\xbcrgen.nobody@example.com>' "$T/rcptgate.log"

# ---- one backend fails, a later one says not found (points 10, 8c) ----
conf "${NOHARVEST[@]}" "[backend broken]" "type = sqlite" \
    "path = $T/missing.db"
sed -i 's/^backends = local/backends = broken, local/' "$T/rcptgate.conf"
reload || exit 1
: >"$T/rcptgate.log"
got=$(rcpt 127.0.0.1 nobody@example.com nobody2@example.com \
    nobody3@example.com alice@example.com | tr '\n' ' ')
rg_expect_eq "failed + not found: tempfail, never 550" "$got" \
    "451 4.4.3 451 4.4.3 451 4.4.3 250 2.1.5 "
rg_expect_eq "one verdict line per decision" \
    "$(grep -c 'tempfail rcpt=<nobody' "$T/rcptgate.log")" 3
rg_check "the verdict line says why" grep -q \
    'reason=backend failure detail=lookup of <nobody@example.com> failed: sqlite' \
    "$T/rcptgate.log"
rg_expect_eq "the backend's failure warned once, not per lookup" \
    "$(grep -c 'warning: backend broken' "$T/rcptgate.log")" 1
rg_expect_eq "no other line about the failed recipients" \
    "$(grep -c 'nobody' "$T/rcptgate.log")" 4

# ---- exempt clients inside a blocked prefix (point 10) ----
conf "[harvest]" "max_unknown = 3" "max_unknown_per_session = 0" \
    "ipv4_prefix = 24" "exempt =" "state ="
reload || exit 1
rcpt 127.0.0.1 x1@example.com x2@example.com x3@example.com \
    x4@example.com x5@example.com >"$T/harvest.out"
rg_check "outside client blocked" grep -q "^421 4.7.0" "$T/harvest.out"
rg_expect_eq "its /24 is blocked" "$(rcpt 127.0.0.3 alice@example.com)" \
    "421 4.7.0"
rg_expect_eq "trusted client in the blocked /24" \
    "$(rcpt 127.0.0.2 alice@example.com nobody@example.com | tr '\n' ' ')" \
    "250 2.1.5 250 2.1.5 "
rg_expect_eq "AUTH client from the blocked address itself" \
    "$(rcpt 127.0.0.1 AUTH alice@example.com)" "250 2.1.5"

# ---- LDAP through a proxy: outage with harvest on, a slow directory ----
rg_slapd_init a || exit 1
rg_slapd_load a "$RG_LDAP_DIR/fixture.ldif" || exit 1
rg_slapd_start a || exit 1
"$RG_PY" "$RG_SOURCE_DIR/test/integration/slowproxy.py" serve \
    "$SLAPD_PORT_a" --lifetime 900 >"$T/proxy.ports" &
rg_track $!
for ((i = 0; i < 50; i++)); do [ -s "$T/proxy.ports" ] && break; sleep 0.1; done
read -r PROXY_PORT PROXY_CTL <"$T/proxy.ports"
proxy() {
	"$RG_PY" "$RG_SOURCE_DIR/test/integration/slowproxy.py" ctl \
	    "$PROXY_CTL" "$@" >/dev/null
}

ldapconf() {
	conf "[harvest]" "max_unknown = 3" "max_unknown_per_session = 0" \
	    "ipv4_prefix = 32" "exempt =" "state =" "[cache]" "size = 0" \
	    "[backend corp]" "type = ldap" "uri = ldap://127.0.0.1:$PROXY_PORT/" \
	    "base = dc=example,dc=com" "timeout = 5s" "$@"
	sed -i 's/^backends = local/backends = corp/' "$T/rcptgate.conf"
}
ldapconf
reload || exit 1
rg_expect_eq "LDAP through the proxy" "$(rcpt 127.0.0.4 bob@example.com)" \
    "250 2.1.5"
proxy drop
got=$(rcpt 127.0.0.4 y1@example.com y2@example.com y3@example.com \
    y4@example.com y5@example.com y6@example.com | sort -u | tr '\n' ' ')
rg_expect_eq "directory down: tempfail every unknown" "$got" "451 4.4.3 "
proxy pass
for ((i = 0; i < 40; i++)); do
	got=$(rcpt 127.0.0.4 bob@example.com)
	[ "$got" = "451 4.4.3" ] || break
	sleep 0.5
done
rg_expect_eq "directory back: the client is not blocked" "$got" "250 2.1.5"
rg_expect_eq "and an unknown is 550 again" \
    "$(rcpt 127.0.0.4 y1@example.com)" "550 5.1.1"

# Deadline 1s; each answer held 400-990 ms: the address, the subaddress
# and the catch-all cannot all be answered in time, so any 550 is wrong.
ldapconf
sed -i 's/^skip_authenticated = yes/&\ndeadline = 1s/' "$T/rcptgate.conf"
reload || exit 1
rg_expect_eq "warm the LDAP pool" "$(rcpt 127.0.0.5 bob@example.com)" \
    "250 2.1.5"
: >"$T/slow.out"
n=0
for ms in 400 600 800 900 950 970 980 985 990; do
	proxy delay "$ms"
	rcpt 127.0.0.5 "z$ms+tag@example.com" >>"$T/slow.out"
	n=$((n + 1))
done
proxy pass
rg_expect_eq "slow directory: every answer 451" \
    "$(sort "$T/slow.out" | uniq -c | sed 's/^ *//')" "$n 451 4.4.3"
grep -o 'rcpt=<z[0-9]*+tag@example.com> .*reason=[a-z ]*' "$T/rcptgate.log" |
    sed 's/ client=.*reason=/ /' >"$T/slow.reasons"
echo "# reasons: $(cut -d' ' -f2- "$T/slow.reasons" | sort | uniq -c | tr '\n' ';')"

rg_done
