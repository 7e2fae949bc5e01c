# SPDX-License-Identifier: MIT
# A private Samba AD DC for the Active Directory tests: a domain
# CORP.EXAMPLE.TEST provisioned into $T/samba (~10 s), its directory
# filled with samba-tool and ldbmodify while it is stopped, then `samba
# -i -M single` on 127.0.0.1 (ldap, cldap, kdc only). Samba's own CA
# signs a certificate for DC1.corp.example.test: the caller must run in
# its own network and mount namespaces (`unshare --net --mount`, lo up,
# see rg_samba_ns) so that the name resolves to 127.0.0.1 through a
# private hosts file and nothing reaches the host's network or /etc.
# Works with lib.sh (samba is stopped by its exit trap through rg_track).
#
#   . "$RG_SOURCE_DIR/test/integration/lib_samba.sh"
#   rg_samba_ns                  # inside the namespaces: lo up, hosts
#   rg_samba_provision           # sets SAMBA_DIR, SAMBA_CA, SAMBA_BASE
#   rg_samba_tool ARGS...        # samba-tool on the private domain
#   rg_samba_ldbmodify <<LDIF    # ldbmodify on the private sam.ldb
#   rg_samba_start               # sets SAMBA_PID; waits for StartTLS
#   rg_samba_stop
#
# The Administrator password is in SAMBA_ADMINPASS.

SAMBA_REALM=corp.example.test
SAMBA_HOST=DC1.corp.example.test
SAMBA_BASE=DC=corp,DC=example,DC=test
SAMBA_ADMINPASS='Adm1n.Passw0rd'
SAMBA_DIR=
SAMBA_CA=
SAMBA_PID=

# rg_samba_ns: in a fresh network and mount namespace, bring lo up and
# make DC1.corp.example.test resolve to 127.0.0.1 (hosts file bind-
# mounted over /etc/hosts in this mount namespace only).
rg_samba_ns() {
	ip link set lo up || return 1
	printf '127.0.0.1 localhost %s dc1\n::1 localhost\n' "$SAMBA_HOST" \
	    >"$T/hosts"
	mount --bind "$T/hosts" /etc/hosts
}

# rg_samba_provision: a new domain in $T/samba, services cut down to
# what LDAP needs, every path under $T/samba.
rg_samba_provision() {
	local d=$T/samba
	SAMBA_DIR=$d
	mkdir -p "$d/run" "$d/log" || return 1
	samba-tool domain provision --targetdir="$d" \
	    --realm=CORP.EXAMPLE.TEST --domain=CORP --server-role=dc \
	    --dns-backend=SAMBA_INTERNAL --adminpass="$SAMBA_ADMINPASS" \
	    --host-name=dc1 --host-ip=127.0.0.1 \
	    --option="interfaces=lo" --option="bind interfaces only=yes" \
	    --option="server services = ldap, cldap, kdc" \
	    --option="pid directory = $d/run" \
	    --option="log file = $d/log/log.%m" \
	    --option="dns forwarder = 127.0.0.1" \
	    >"$d/provision.log" 2>&1 || {
		echo "samba-tool domain provision failed:" >&2
		tail -n 20 "$d/provision.log" >&2
		return 1
	}
	SAMBA_CA=$d/private/tls/ca.pem
}

rg_samba_tool() {
	samba-tool "$@" -s "$SAMBA_DIR/etc/smb.conf"
}

rg_samba_ldbmodify() {
	ldbmodify -H "$SAMBA_DIR/private/sam.ldb" >>"$SAMBA_DIR/ldbmodify.log" 2>&1
}

# rg_samba_start: start samba in the foreground (its own PID in $!) and
# wait, at most 30 s, until a StartTLS bind as Administrator works (the
# certificate is made on the first start).
rg_samba_start() {
	local i
	samba -s "$SAMBA_DIR/etc/smb.conf" -i -M single \
	    >>"$SAMBA_DIR/samba.log" 2>&1 &
	SAMBA_PID=$!
	declare -F rg_track >/dev/null && rg_track "$SAMBA_PID"
	for ((i = 0; i < 300; i++)); do
		if ! kill -0 "$SAMBA_PID" 2>/dev/null; then
			echo "samba exited at start:" >&2
			tail -n 20 "$SAMBA_DIR/samba.log" >&2
			return 1
		fi
		[ -f "$SAMBA_CA" ] && LDAPTLS_CACERT=$SAMBA_CA ldapsearch -ZZ \
		    -x -LLL -o nettimeout=1 -H "ldap://$SAMBA_HOST/" \
		    -D "Administrator@$SAMBA_REALM" -w "$SAMBA_ADMINPASS" \
		    -b "$SAMBA_BASE" -s base 1.1 >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "samba did not answer StartTLS binds on $SAMBA_HOST" >&2
	return 1
}

rg_samba_stop() {
	local i
	[ -n "$SAMBA_PID" ] || return 0
	kill -TERM "$SAMBA_PID" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$SAMBA_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$SAMBA_PID" 2>/dev/null
	wait "$SAMBA_PID" 2>/dev/null
	SAMBA_PID=
}
