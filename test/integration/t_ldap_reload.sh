#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 12, point 7: reload keeps working after privileges are dropped.
# The LDAP bind password file is read again at every reload, as the
# daemon's user. With a throwaway system user U and the file root:U 0640:
# -n is silent about it; a daemon started as root with -u U, and one
# started directly as U (as the unit does), each pick up a rotated
# password (slapd and file) at SIGUSR1 and keep answering. With the file
# root:root 0600, -n run as root fails and says that U cannot read it.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
. "$RG_SOURCE_DIR/test/integration/lib_slapd.sh"
rg_setup
if [ "$(id -u)" != 0 ]; then
	echo "t_ldap_reload: needs root (useradd, -u)"
	exit 77
fi

U=rgt$$
useradd -r -U -M -d /nonexistent -s /usr/sbin/nologin "$U" || exit 1
# At exit: stop the daemon (userdel refuses a user with processes),
# remove the user and its group, then the usual cleanup.
rg_user_cleanup() {
	local rc=$?
	rg_stop_rcptgate
	userdel "$U" >/dev/null 2>&1 || echo "# userdel $U failed" >&2
	getent group "$U" >/dev/null && groupdel "$U"
	return "$rc"
}
trap 'rg_user_cleanup; rg_cleanup' EXIT

BASE=dc=example,dc=com
SVC=cn=rcptgate,ou=services,$BASE
secret=$T/ldap.secret
mkdir -m 755 "$T/run" && chown "$U:$U" "$T/run"

# conf FILE: socket in $T/run (writable by U)
conf() {
	cat >"$1" <<-EOT
		[milter]
		socket = unix:$T/run/rcptgate.sock
		user =
		socket_mode = 0666
		log_level = debug
		[policy]
		domains = example.com
		backends = corp
		[cache]
		size = 0
		[harvest]
		max_unknown = 0
		max_unknown_per_session = 0
		state =
		[backend corp]
		type = ldap
		uri = $SLAPD_URI_a
		base = $BASE
		bind_dn = $SVC
		bind_password_file = $secret
		timeout = 2s
	EOT
	chmod 644 "$1"
}

# rotate PASSWORD: in slapd (as its admin) and in the file, in place.
rotate() {
	ldappasswd -x -H "$SLAPD_URI_a" -D "cn=admin,$BASE" -w admin \
	    -s "$1" "$SVC" || return 1
	printf '%s\n' "$1" >"$secret"
}

# reload_and_check LABEL: SIGUSR1, then new lookups through Postfix.
reload_and_check() {
	local n
	n=$(grep -c 'configuration reloaded' "$T/rcptgate.log")
	kill -USR1 "$RG_PID"
	sleep 1
	rg_expect_eq "$1: reload applied" \
	    "$(grep -c 'configuration reloaded' "$T/rcptgate.log")" $((n + 1))
	rg_check "$1: no failed reload" bash -c "! grep -q 'reload of .* failed' '$T/rcptgate.log'"
	# Drop every bound connection: the answers below then need a bind
	# with the new password.
	rg_slapd_stop a
	rg_slapd_start a || rg_notok "$1: slapd restarts"
	out=$(rg_rcpt "$PORT_mx" alice@example.com nobody@example.com)
	rg_expect_match "$1: known 250" "$(sed -n 1p <<<"$out")" '^250 '
	rg_expect_match "$1: unknown 550" "$(sed -n 2p <<<"$out")" '^550 5\.1\.1 '
}

rg_slapd_init a || exit 1
rg_slapd_load a "$RG_LDAP_DIR/fixture.ldif" || exit 1
rg_slapd_start a || exit 1
conf "$T/rcptgate.conf"
printf 's3cret\n' >"$secret"

# ---- -n as root, file root:root 0600 (the old advice): U cannot read it ----
chown root:root "$secret"; chmod 600 "$secret"
out=$("$RCPTGATE" -c "$T/rcptgate.conf" -u "$U" -n 2>&1); rc=$?
rg_expect_eq "-n -u U, secret root:root 0600: exit 78" "$rc" 78
rg_expect_match "-n names the user and the file" "$out" \
	"as user $U, which the daemon runs as and reloads as: .*ldap.secret: Permission denied"
sed "s/^user =\$/user = $U/" "$T/rcptgate.conf" >"$T/user.conf"
"$RCPTGATE" -c "$T/user.conf" -n >/dev/null 2>&1; rc=$?
rg_expect_eq "-n with [milter] user = U, root:root 0600: exit 78" "$rc" 78

# ---- root:U 0640 (the documented way): -n silent about it ----
chown "root:$U" "$secret"; chmod 640 "$secret"
out=$("$RCPTGATE" -c "$T/rcptgate.conf" -u "$U" -n 2>&1); rc=$?
rg_expect_eq "-n -u U, secret root:U 0640: exit 0" "$rc" 0
rg_check "-n: no warning about the secret's mode" bash -c "! grep -q 'ldap.secret' <<<'$out'"

# ---- started as root with -u U ----
rg_start_rcptgate "$T/rcptgate.conf" -u "$U" || exit 1
rg_expect_eq "daemon runs as U" "$(ps -o user= -p "$RG_PID" | tr -d ' ')" "$U"
rg_start_postfix mx "unix:$T/run/rcptgate.sock" || exit 1
rg_expect_match "started with -u: known 250" "$(rg_rcpt "$PORT_mx" alice@example.com)" '^250 '
rotate n3w-one || rg_notok "rotate the password"
reload_and_check "-u, rotated password"
rotate n3w-two || rg_notok "rotate the password again"
reload_and_check "-u, rotated twice"
rg_stop_rcptgate

# ---- started directly as U (the unit's User=), no -u ----
cat >"$T/as-user.sh" <<EOT
#!/bin/sh
exec setpriv --reuid="$U" --regid="$U" --init-groups "$RCPTGATE" "\$@"
EOT
chmod 755 "$T/as-user.sh"
RCPTGATE=$T/as-user.sh rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_expect_eq "unit-style daemon runs as U" "$(ps -o user= -p "$RG_PID" | tr -d ' ')" "$U"
rotate n3w-three || rg_notok "rotate the password a third time"
reload_and_check "as U, rotated password"

# ---- what the old advice did: root:root 0600 fails every reload ----
chown root:root "$secret"; chmod 600 "$secret"
kill -USR1 "$RG_PID"; sleep 1
rg_check "root:root 0600: the reload fails, and says why" \
	grep -q 'reload of .* failed.*ldap.secret: Permission denied' "$T/rcptgate.log"
rg_expect_match "root:root 0600: the running configuration stays" \
	"$(rg_rcpt "$PORT_mx" alice@example.com)" '^250 '
rg_done
