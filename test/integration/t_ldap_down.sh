#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 12, point 11: a directory down at boot does not stop mail for
# every domain. In the unit's order (ExecStartPre=rcptgate -n, then the
# daemon) with slapd stopped: -n warns loudly and exits 0, the daemon
# starts, Postfix tempfails only the checked domain's recipients while
# an unchecked domain passes; slapd started: 250 known, 550 unknown,
# without a restart. A wrong bind password is a warning as well; a
# broken configuration file still exits 78.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
. "$RG_SOURCE_DIR/test/integration/lib_slapd.sh"
rg_setup

BASE=dc=example,dc=com
printf 's3cret\n' >"$T/good.secret"
printf 'wrong\n' >"$T/wrong.secret"
chmod 600 "$T/good.secret" "$T/wrong.secret"

# conf FILE URI SECRET
conf() {
	cat >"$1" <<-EOT
		[milter]
		socket = unix:$T/rcptgate.sock
		user =
		socket_mode = 0666
		log_level = debug
		[policy]
		domains = example.com
		backends = corp
		deadline = 8s
		[harvest]
		max_unknown = 0
		max_unknown_per_session = 0
		state =
		[backend corp]
		type = ldap
		uri = $2
		base = $BASE
		bind_dn = cn=rcptgate,ou=services,$BASE
		bind_password_file = $3
		timeout = 2s
	EOT
}

rg_slapd_init a || exit 1
rg_slapd_load a "$RG_LDAP_DIR/fixture.ldif" || exit 1
rg_slapd_start a || exit 1
URI=$SLAPD_URI_a

# A wrong password: what the directory said, as a warning.
conf "$T/wrong.conf" "$URI" "$T/wrong.secret"
out=$("$RCPTGATE" -c "$T/wrong.conf" -n 2>&1); rc=$?
rg_expect_eq "bind refused: -n exits 0" "$rc" 0
rg_expect_match "bind refused: -n warns with the directory's words" "$out" \
	"warning: .*DIRECTORY UNUSABLE NOW.*Invalid credentials"

rg_slapd_stop a
conf "$T/rcptgate.conf" "$URI" "$T/good.secret"
out=$("$RCPTGATE" -c "$T/rcptgate.conf" -n 2>&1); rc=$?
rg_expect_eq "slapd down: -n exits 0" "$rc" 0
rg_expect_match "slapd down: -n warns loudly" "$out" \
	"rcptgate: warning: .*DIRECTORY UNUSABLE NOW: no LDAP server answered"
rg_expect_match "slapd down: -n names the server" "$out" "127\.0\.0\.1:$SLAPD_PORT_a"
rg_expect_match "slapd down: -n still says configuration ok" "$out" 'configuration ok'

# A broken file is still a configuration error.
cp "$T/rcptgate.conf" "$T/broken.conf"
echo "colour = blue" >>"$T/broken.conf"
"$RCPTGATE" -c "$T/broken.conf" -n >/dev/null 2>&1; rc=$?
rg_expect_eq "broken file: -n exits 78" "$rc" 78

# The unit's order: ExecStartPre, then the daemon.
if "$RCPTGATE" -c "$T/rcptgate.conf" -n >/dev/null 2>&1; then
	rg_start_rcptgate "$T/rcptgate.conf" || rg_notok "daemon starts with the directory down"
else
	rg_notok "ExecStartPre (rcptgate -n) failed: the daemon is not started"
fi
rg_start_postfix mx "unix:$T/rcptgate.sock" || exit 1
out=$(rg_rcpt "$PORT_mx" alice@example.com nobody@example.com x@example.org)
rg_expect_match "slapd down: checked domain, known user 451 4.4.3" "$(sed -n 1p <<<"$out")" '^451 4\.4\.3 '
rg_expect_match "slapd down: checked domain, unknown user 451 (never 550)" "$(sed -n 2p <<<"$out")" '^451 4\.4\.3 '
rg_expect_match "slapd down: unchecked domain passes" "$(sed -n 3p <<<"$out")" '^250 '

rg_slapd_start a || exit 1
out=$(rg_rcpt "$PORT_mx" alice@example.com nobody@example.com x@example.org)
rg_expect_match "slapd up: known 250" "$(sed -n 1p <<<"$out")" '^250 '
rg_expect_match "slapd up: unknown 550 5.1.1" "$(sed -n 2p <<<"$out")" '^550 5\.1\.1 '
rg_expect_match "slapd up: unchecked domain passes" "$(sed -n 3p <<<"$out")" '^250 '
rg_done
