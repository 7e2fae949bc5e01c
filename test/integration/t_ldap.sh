#!/bin/bash
# SPDX-License-Identifier: MIT
# The LDAP backend end to end against a private slapd loaded with the
# AD-like fixture (test/integration/ldap/): `rcptgate -t` for the AD and
# OpenLDAP presets, proxyAddresses, groups, contacts, disabled accounts
# and injection; `-n` with a wrong bind password; failover to a second
# URI; a listener that never answers (tempfail within the timeout); and
# through a real Postfix: unknown 550 5.1.1, known 250, slapd stopped ->
# cached 250 and uncached 451 4.4.3, slapd back -> 250 without a restart.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
. "$RG_SOURCE_DIR/test/integration/lib_slapd.sh"
rg_setup

BASE=dc=example,dc=com

# conf FILE URI [EXTRA BACKEND LINES...]
conf() {
	local file=$1 uri=$2 l
	shift 2
	cat >"$file" <<-EOT
		[milter]
		socket = unix:$T/rcptgate.sock
		user =
		socket_mode = 0666
		log_level = debug
		[policy]
		domains = example.com
		backends = corp
		always_accept = postmaster
		deadline = 8s
		[cache]
		positive_ttl = 1h
		negative_ttl = 10m
		stale_ttl = 1d
		[harvest]
		max_unknown = 0
		max_unknown_per_session = 0
		state =
		[backend corp]
		type = ldap
		uri = $uri
		base = $BASE
	EOT
	for l in "$@"; do echo "$l" >>"$file"; done
}

# verdict CONF ADDR: "accept corp" etc. (fields 2 and 3 of -t)
verdict() {
	"$RCPTGATE" -c "$1" -t "$2" 2>/dev/null | cut -f2,3 | tr '\t' ' '
}

ms_since() {
	echo $((($(date +%s%N) - $1) / 1000000))
}

rg_slapd_init a || exit 1
rg_slapd_load a "$RG_LDAP_DIR/fixture.ldif" || exit 1
rg_slapd_start a || exit 1
URI=$SLAPD_URI_a

printf 's3cret\n' >"$T/ldap.secret"
chmod 600 "$T/ldap.secret"
printf 'wrong\n' >"$T/wrong.secret"
chmod 600 "$T/wrong.secret"
printf 's3cret\n' >"$T/open.secret"
chmod 644 "$T/open.secret"

# ---- -t with the Active Directory preset ----
conf "$T/ad.conf" "$URI" "preset = activedirectory" \
    "bind_dn = cn=rcptgate,ou=services,$BASE" \
    "bind_password_file = $T/ldap.secret"
out=$("$RCPTGATE" -c "$T/ad.conf" -n 2>&1)
rg_expect_eq "ad config -n" "$?" 0
while read -r addr want; do
	rg_expect_eq "ad $addr" "$(verdict "$T/ad.conf" "$addr")" "$want corp"
done <<-'EOT'
	alice@example.com accept
	ALICE@EXAMPLE.COM accept
	alice.smith@example.com accept
	Carol.White@example.com accept
	sales@example.com accept
	team@example.com accept
	partner@example.com accept
	dave@example.com accept
	xonly@example.com reject
	siponly@example.com reject
	alice.sip@example.com reject
	nobody@example.com reject
	*@example.com reject
	x*@example.com reject
	"a)(mail=*"@example.com reject
	"*)(|(mail=*"@example.com reject
EOT

out=$("$RCPTGATE" -c "$T/ad.conf" -t -v 'x*@example.com' 2>&1)
esc='x\\2a@example\.com'	# the regex for x\2a@example.com
want="filter=\(\|\(mail=$esc\)\(proxyAddresses=smtp:$esc\)\)"
want+=" server=ldap://127\.0\.0\.1:$SLAPD_PORT_a/"
rg_expect_match "-t -v shows the escaped filter and server" "$out" "$want"

# ---- disabled accounts ----
conf "$T/ad-enabled.conf" "$URI" "preset = activedirectory" \
    "exclude_disabled = yes"
rg_expect_eq "exclude_disabled: dave" \
    "$(verdict "$T/ad-enabled.conf" dave@example.com)" "reject corp"
rg_expect_eq "exclude_disabled: erin" \
    "$(verdict "$T/ad-enabled.conf" erin@example.com)" "accept corp"
rg_expect_eq "exclude_disabled: bob (no userAccountControl)" \
    "$(verdict "$T/ad-enabled.conf" bob@example.com)" "accept corp"

# ---- OpenLDAP preset: mail only ----
conf "$T/ol.conf" "$URI"
rg_expect_eq "openldap: bob" "$(verdict "$T/ol.conf" bob@example.com)" \
    "accept corp"
rg_expect_eq "openldap: proxy-only address" \
    "$(verdict "$T/ol.conf" alice.smith@example.com)" "reject corp"

# ---- binds ----
conf "$T/wrong.conf" "$URI" "bind_dn = cn=rcptgate,ou=services,$BASE" \
    "bind_password_file = $T/wrong.secret"
out=$("$RCPTGATE" -c "$T/wrong.conf" -n 2>&1)
rc=$?
# What the directory said is a warning, not a configuration error
# (issue 12, point 11): -n exits 0 so that rcptgate still starts.
rg_expect_eq "wrong password: -n exit" "$rc" 0
rg_expect_match "wrong password: -n says why" "$out" \
    "bind as cn=rcptgate,ou=services,$BASE failed: Invalid credentials"
rg_expect_eq "wrong password: lookup tempfails" \
    "$(verdict "$T/wrong.conf" alice@example.com)" "tempfail corp"

conf "$T/open.conf" "$URI" "bind_dn = cn=rcptgate,ou=services,$BASE" \
    "bind_password_file = $T/open.secret"
out=$("$RCPTGATE" -c "$T/open.conf" -n 2>&1)
rg_expect_match "world-readable secret warned about" "$out" \
    "open.secret is readable by everyone"

# ---- failover: first URI dead ----
DEAD=$(rg_free_port)
conf "$T/failover.conf" "ldap://127.0.0.1:$DEAD/ $URI"
out=$("$RCPTGATE" -c "$T/failover.conf" -t -v bob@example.com 2>&1)
rg_expect_match "first URI dead: second answers" "$out" \
    "accept.*server=ldap://127\.0\.0\.1:$SLAPD_PORT_a/"

# ---- a listener that accepts and never answers ----
"$RG_PY" -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
s.settimeout(1); held = []; end = time.time() + 300
while time.time() < end:
    try: held.append(s.accept()[0])
    except socket.timeout: pass' >"$T/hung.port" &
rg_track $!
for ((i = 0; i < 50; i++)); do [ -s "$T/hung.port" ] && break; sleep 0.1; done
HUNG=$(cat "$T/hung.port")
conf "$T/hung.conf" "ldap://127.0.0.1:$HUNG/" "timeout = 1s"
t0=$(date +%s%N)
out=$("$RCPTGATE" -c "$T/hung.conf" -t alice@example.com 2>"$T/hung.err")
rc=$?
ms=$(ms_since "$t0")
echo "# hung server, timeout 1s: rcptgate -t took ${ms} ms" \
    "(process start included)"
rg_expect_eq "hung server: tempfail exit" "$rc" 75
rg_expect_match "hung server: tempfail verdict" "$out" $'\ttempfail\tcorp\t'
rg_check "hung server: within the timeout (${ms} ms)" \
    test "$ms" -ge 900 -a "$ms" -lt 2500

# ---- through a real Postfix ----
conf "$T/mx.conf" "$URI" "preset = activedirectory"
# Postfix's smtpd (user postfix) must reach the socket of a root daemon
# with user = "" (as in t_callahead.sh).
umask 000
rg_start_rcptgate "$T/mx.conf" || { rg_notok "rcptgate start"; rg_done; }
umask 022
rg_start_postfix mx "unix:$T/rcptgate.sock" "mydestination = example.com" ||
	{ rg_notok "postfix start"; rg_done; }
P=$PORT_mx

rg_expect_match "postfix: known by mail 250" \
    "$(rg_rcpt "$P" alice@example.com)" '^250 '
rg_expect_match "postfix: known by smtp: 250" \
    "$(rg_rcpt "$P" Alice.Smith@example.com)" '^250 '
rg_expect_match "postfix: unknown 550 5.1.1" \
    "$(rg_rcpt "$P" nobody@example.com)" '^550 5\.1\.1 <nobody@example\.com>'
rg_expect_match "postfix: injection 550 5.1.1" \
    "$(rg_rcpt "$P" '*@example.com')" '^550 5\.1\.1 '

rg_slapd_stop a
rg_expect_match "slapd stopped: cached known 250" \
    "$(rg_rcpt "$P" alice@example.com)" '^250 '
rg_expect_match "slapd stopped: uncached known 451 4.4.3" \
    "$(rg_rcpt "$P" bob@example.com)" '^451 4\.4\.3 '
rg_expect_match "slapd stopped: uncached unknown 451 4.4.3 (never 550)" \
    "$(rg_rcpt "$P" stranger@example.com)" '^451 4\.4\.3 '

rg_slapd_start a || rg_notok "slapd restart"
rg_expect_match "slapd back: known 250 without restarting rcptgate" \
    "$(rg_rcpt "$P" bob@example.com)" '^250 '
rg_expect_match "slapd back: unknown 550 5.1.1" \
    "$(rg_rcpt "$P" stranger@example.com)" '^550 5\.1\.1 '
rg_check "rcptgate still running" kill -0 "$RG_PID"

rg_stop_postfix mx
rg_stop_rcptgate
rg_slapd_stop a
rg_done
