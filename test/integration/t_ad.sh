#!/bin/bash
# SPDX-License-Identifier: MIT
# The Active Directory preset against a real Samba 4 AD DC (lib_samba.sh)
# in a network and mount namespace of its own: users with mail and
# proxyAddresses (smtp: and SMTP:), a disabled user, a group, a contact,
# StartTLS with Samba's CA, a UPN and a DOMAIN\user bind_dn; and the
# refusals, each of which `rcptgate -n` must explain with the fix while
# still exiting 0: a simple bind without TLS, a certificate for another
# name than the uri's host, an anonymous search, tls_ca_file without TLS,
# and a failure on two servers reported on one line.
#
# The whole test re-runs itself under `unshare --net --mount`, so that
# rcptgate reaches the DC and nothing touches the host. Exit 77 (skip)
# when Samba is not installed or the namespaces cannot be made.
if [ -z "${RG_AD_IN_NS:-}" ]; then
	for cmd in samba samba-tool ldbmodify unshare ip ldapsearch; do
		if ! command -v "$cmd" >/dev/null; then
			echo "SKIP: $cmd not installed (scripts/deps.sh)"
			exit 77
		fi
	done
	if ! unshare --net --mount true 2>/dev/null; then
		echo "SKIP: cannot make a network and mount namespace here"
		exit 77
	fi
	RG_AD_IN_NS=1 exec unshare --net --mount bash "$0" "$@"
fi

. "$RG_SOURCE_DIR/test/integration/lib.sh"
. "$RG_SOURCE_DIR/test/integration/lib_samba.sh"
rg_setup
rg_samba_ns || exit 1
rg_samba_provision || exit 1

D=$SAMBA_REALM
BIND_PASS='Rcpt.Gate.Passw0rd'
rg_samba_tool user create rcptgate "$BIND_PASS" >/dev/null || exit 1
rg_samba_tool user create alice 'Al1ce.Passw0rd' --given-name=Alice \
    --surname=Smith --mail-address="alice@$D" >/dev/null || exit 1
rg_samba_tool user create bob 'B0b.Passw0rd.x' \
    --mail-address="bob@$D" >/dev/null || exit 1
rg_samba_tool user create dave 'Dav3.Passw0rd' \
    --mail-address="dave@$D" >/dev/null || exit 1
rg_samba_tool group add staff --mail-address="staff@$D" >/dev/null || exit 1
rg_samba_tool contact create carol --mail-address="carol@partner.example" \
    >/dev/null || exit 1
# proxyAddresses: SMTP: is the primary address, smtp: the others; dave
# disabled (userAccountControl 514: NORMAL_ACCOUNT | ACCOUNTDISABLE).
rg_samba_ldbmodify <<-EOT || { cat "$SAMBA_DIR/ldbmodify.log"; exit 1; }
	dn: CN=Alice Smith,CN=Users,$SAMBA_BASE
	changetype: modify
	add: proxyAddresses
	proxyAddresses: SMTP:alice@$D
	proxyAddresses: smtp:alice.smith@$D
	proxyAddresses: smtp:a.smith@$D
	proxyAddresses: X500:/o=Corp/cn=alice

	dn: CN=bob,CN=Users,$SAMBA_BASE
	changetype: modify
	add: proxyAddresses
	proxyAddresses: SMTP:Robert.Jones@$D

	dn: CN=dave,CN=Users,$SAMBA_BASE
	changetype: modify
	replace: userAccountControl
	userAccountControl: 514

	dn: CN=carol,$SAMBA_BASE
	changetype: modify
	add: proxyAddresses
	proxyAddresses: SMTP:carol@$D
EOT
rg_samba_start || exit 1

printf '%s\n' "$BIND_PASS" >"$T/bind.secret"
chmod 600 "$T/bind.secret"

# conf FILE URI [EXTRA BACKEND LINES...]
conf() {
	local file=$1 uri=$2 l
	shift 2
	cat >"$file" <<-EOT
		[milter]
		socket = unix:$T/rcptgate.sock
		user =
		[policy]
		domains = $D
		backends = ad
		deadline = 8s
		[cache]
		positive_ttl = 0
		negative_ttl = 0
		[harvest]
		max_unknown = 0
		max_unknown_per_session = 0
		state =
		[backend ad]
		type = ldap
		uri = $uri
		base = $SAMBA_BASE
		preset = activedirectory
	EOT
	for l in "$@"; do echo "$l" >>"$file"; done
}

verdict() {
	"$RCPTGATE" -c "$1" -t "$2" 2>/dev/null | cut -f2,3 | tr '\t' ' '
}

GOOD=("starttls = yes" "tls_ca_file = $SAMBA_CA"
    "bind_dn = rcptgate@$D" "bind_password_file = $T/bind.secret")

# ---- the AD preset, StartTLS, a UPN bind_dn ----
conf "$T/ad.conf" "ldap://$SAMBA_HOST/" "${GOOD[@]}"
out=$("$RCPTGATE" -c "$T/ad.conf" -n 2>&1)
rg_expect_eq "good config: -n exit" "$?" 0
rg_expect_eq "good config: -n has no warning" \
    "$(grep -ci 'warn' <<<"$out")" 0
# A disabled account is found: the preset leaves disabled users in,
# as Exchange still delivers to them; exclude_disabled = yes (below)
# leaves them out.
while read -r addr want; do
	rg_expect_eq "ad $addr" "$(verdict "$T/ad.conf" "$addr")" "$want ad"
done <<-EOT
	alice@$D accept
	ALICE@${D^^} accept
	alice.smith@$D accept
	a.smith@$D accept
	bob@$D accept
	Robert.Jones@$D accept
	robert.jones@$D accept
	staff@$D accept
	carol@$D accept
	dave@$D accept
	nobody@$D reject
	rcptgate@$D reject
EOT

conf "$T/enabled.conf" "ldap://$SAMBA_HOST/" "${GOOD[@]}" \
    "exclude_disabled = yes"
rg_expect_eq "exclude_disabled: dave" \
    "$(verdict "$T/enabled.conf" "dave@$D")" "reject ad"
rg_expect_eq "exclude_disabled: alice" \
    "$(verdict "$T/enabled.conf" "alice@$D")" "accept ad"

# The same lookups through the Postfix policy door: StartTLS and the
# bind run on a connection thread of the door (a smaller stack than the
# main thread's, which -t uses), also under ASan.
conf "$T/door.conf" "ldap://$SAMBA_HOST/" "${GOOD[@]}"
printf '[postfix_policy]\nsocket = unix:%s\n' "$T/policy.sock" >>"$T/door.conf"
if rg_start_rcptgate "$T/door.conf"; then
	out=$("$RG_PY" - "$T/policy.sock" "alice@$D" "Robert.Jones@$D" \
	    "nobody@$D" <<-'EOF'
		import socket, sys
		s = socket.socket(socket.AF_UNIX)
		s.settimeout(20)
		s.connect(sys.argv[1])
		for rcpt in sys.argv[2:]:
		    s.sendall(("request=smtpd_access_policy\nprotocol_state=RCPT\n"
		        "client_address=192.0.2.9\nrecipient=%s\n\n" % rcpt).encode())
		    r = b""
		    while not r.endswith(b"\n\n"):
		        r += s.recv(1000)
		    print(r.decode().strip())
	EOF
	)
	rg_expect_eq "policy door: alice, Robert.Jones, nobody" \
	    "$(echo $out)" "action=DUNNO action=DUNNO action=550 5.1.1 User unknown"
	rg_stop_rcptgate
else
	rg_notok "policy door: rcptgate start"
fi

# bind_dn as DOMAIN\user
conf "$T/netbios.conf" "ldap://$SAMBA_HOST/" "starttls = yes" \
    "tls_ca_file = $SAMBA_CA" 'bind_dn = CORP\rcptgate' \
    "bind_password_file = $T/bind.secret"
rg_expect_eq "DOMAIN\\user bind_dn" \
    "$(verdict "$T/netbios.conf" "bob@$D")" "accept ad"

# ---- refusals: -n names the fix and still exits 0 ----
conf "$T/plain.conf" "ldap://$SAMBA_HOST/" \
    "bind_dn = rcptgate@$D" "bind_password_file = $T/bind.secret"
out=$("$RCPTGATE" -c "$T/plain.conf" -n 2>&1)
rc=$?
echo "--- rcptgate -n, simple bind without TLS:"
echo "$out"
rg_expect_eq "plain bind: -n exit" "$rc" 0
rg_expect_match "plain bind: server's words" "$out" \
    'Strong\(er\) authentication required \(8\): [^'$'\n'']*Transport encryption required'
rg_expect_match "plain bind: the fix" "$out" \
    'this server requires TLS: set starttls = yes and tls_ca_file'
rg_expect_eq "plain bind: lookup tempfails" \
    "$(verdict "$T/plain.conf" "alice@$D")" "tempfail ad"

conf "$T/ip.conf" "ldap://127.0.0.1/" "${GOOD[@]}"
out=$("$RCPTGATE" -c "$T/ip.conf" -n 2>&1)
rc=$?
echo "--- rcptgate -n, uri by address:"
echo "$out"
rg_expect_eq "name mismatch: -n exit" "$rc" 0
rg_expect_match "name mismatch: the certificate's name" "$out" \
    "the certificate is for [^ ]*$SAMBA_HOST[^ ]*,? .*not 127\\.0\\.0\\.1: use that name in uri"
rg_expect_eq "name mismatch: lookup tempfails" \
    "$(verdict "$T/ip.conf" "alice@$D")" "tempfail ad"

conf "$T/anon.conf" "ldap://$SAMBA_HOST/" "starttls = yes" \
    "tls_ca_file = $SAMBA_CA"
out=$("$RCPTGATE" -c "$T/anon.conf" -n 2>&1)
rc=$?
echo "--- rcptgate -n, anonymous:"
echo "$out"
rg_expect_eq "anonymous: -n exit" "$rc" 0
rg_expect_match "anonymous: server's words" "$out" \
    'Operation unavailable without authentication'
rg_expect_match "anonymous: the fix" "$out" \
    'anonymous search refused: set bind_dn and bind_password_file'
rg_expect_eq "anonymous: lookup tempfails" \
    "$(verdict "$T/anon.conf" "alice@$D")" "tempfail ad"

conf "$T/notls.conf" "ldap://$SAMBA_HOST/" "tls_ca_file = $SAMBA_CA" \
    "bind_dn = rcptgate@$D" "bind_password_file = $T/bind.secret"
out=$("$RCPTGATE" -c "$T/notls.conf" -n 2>&1)
rg_expect_match "tls_ca_file without TLS: warned" "$out" \
    'tls_ca_file is set but this connection is not encrypted: set starttls = yes'

# Two servers refusing: one log line, the servers joined by "; ", with
# no escaped line break in it.
conf "$T/two.conf" "ldap://$SAMBA_HOST/ ldap://dc1/" \
    "bind_dn = rcptgate@$D" "bind_password_file = $T/bind.secret"
"$RCPTGATE" -c "$T/two.conf" -t "alice@$D" -v >"$T/two.out" 2>&1
line=$(grep -c 'Transport encryption required' "$T/two.out")
rg_expect_eq "two servers: -t says it on one line" "$line" 1
rg_expect_match "two servers: both named on it" \
    "$(grep 'Transport encryption required' "$T/two.out")" \
    "ldap://$SAMBA_HOST/.*; ldap://dc1/"
rg_expect_eq "two servers: no escaped line break" \
    "$(grep -c 'x0a' "$T/two.out")" 0

rg_samba_stop
rg_done
