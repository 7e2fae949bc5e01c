#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 14: `rcptgate-ctl status` shows each backend's URIs and hosts up
# or down and since when, from what the drivers recorded. A real slapd
# behind an LDAP backend whose first URI is a closed loopback port: after
# a lookup the closed one is down with its reason and the live one up,
# in plain text, --json and the metric rcptgate_backend_target_up.
# slapd stopped: a lookup tempfails and the live URI shows down; started
# again: a lookup works and it shows up with a newer since. A call-ahead
# host that refuses connections shows down.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
. "$RG_SOURCE_DIR/test/integration/lib_slapd.sh"
: "${RCPTGATE_CTL:=$RG_BUILD_DIR/rcptgate-ctl}"
rg_setup

BASE=dc=example,dc=com
printf 's3cret\n' >"$T/secret"
chmod 600 "$T/secret"
rg_slapd_init a || exit 1
rg_slapd_load a "$RG_LDAP_DIR/fixture.ldif" || exit 1
rg_slapd_start a || exit 1
LIVE=$SLAPD_URI_a
CLOSED=ldap://127.0.0.1:$(rg_free_port)/
SMTP_CLOSED=127.0.0.1:$(rg_free_port)
MPORT=$(rg_free_port)
ctl=$T/control.sock

cat >"$T/rcptgate.conf" <<-EOT
	[milter]
	socket = unix:$T/rcptgate.sock
	user =
	socket_mode = 0666
	log_level = debug
	[policy]
	domains = example.com
	backends = corp, relay
	deadline = 8s
	[harvest]
	max_unknown = 0
	max_unknown_per_session = 0
	state =
	[control]
	socket = unix:$ctl
	group = daemon
	[metrics]
	listen = 127.0.0.1:$MPORT
	[backend corp]
	type = ldap
	uri = $CLOSED $LIVE
	base = $BASE
	bind_dn = cn=rcptgate,ou=services,$BASE
	bind_password_file = $T/secret
	timeout = 2s
	failback = 1s
	[backend relay]
	type = callahead
	hosts = $SMTP_CLOSED
	helo = gw.example.com
	timeout = 2s
EOT
C() { "$RCPTGATE_CTL" -c "$T/rcptgate.conf" "$@"; }
# since PATTERN: the ISO time on the status line of the target PATTERN
since() { C status | sed -n "s|^  $1 [a-z]* since \([0-9TZ:-]*\).*|\1|p"; }

rg_start_rcptgate "$T/rcptgate.conf" || exit 1
for i in $(seq 50); do [ -S "$ctl" ] && break; sleep 0.1; done

out=$(C status)
rg_expect_match "before a lookup: not tried yet" "$out" "  $LIVE unknown \(not tried yet\)"
rg_expect_match "before a lookup: host not tried yet" "$out" "  $SMTP_CLOSED unknown \(not tried yet\)"

out=$(C explain alice@example.com)
rg_expect_match "lookup through the second URI: found" "$out" "backend corp: alice@example.com -> found"
out=$(C status)
echo "$out" | sed 's/^/# /'
rg_expect_match "closed URI down, with its reason" "$out" \
	"  $CLOSED down since 20[0-9-]+T[0-9:]+Z \(.*Can't contact LDAP server.*\)"
rg_expect_match "live URI up" "$out" "  $LIVE up since 20[0-9-]+T[0-9:]+Z"$'\n'
rg_expect_match "refusing call-ahead host down" "$out" \
	"  $SMTP_CLOSED down since 20[0-9-]+T[0-9:]+Z \(.*(refused|connect).*\)"
rg_expect_match "targets under their backend" "$out" \
	"backend corp \(ldap\)[^"$'\n'"]*"$'\n'"  $CLOSED down"

C --json status >"$T/json"
rg_check "--json status parses" "$RG_PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/json"
got=$("$RG_PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
for b in d["backends"]:
    for t in b["targets"]:
        print(b["name"], t["target"], t["state"], bool(t["since"]),
              t["error"] is not None)' "$T/json")
rg_expect_eq "--json: one entry per target, same states" "$got" \
"corp $CLOSED down True True
corp $LIVE up True False
relay $SMTP_CLOSED down True True"

m=$(curl -s "http://127.0.0.1:$MPORT/metrics")
rg_expect_match "metric: closed URI 0" "$m" "rcptgate_backend_target_up\{backend=\"corp\",target=\"$CLOSED\"\} 0"
rg_expect_match "metric: live URI 1" "$m" "rcptgate_backend_target_up\{backend=\"corp\",target=\"$LIVE\"\} 1"
rg_expect_match "metric: call-ahead host 0" "$m" "rcptgate_backend_target_up\{backend=\"relay\",target=\"$SMTP_CLOSED\"\} 0"
if command -v promtool >/dev/null; then
	rg_check "promtool check metrics" bash -c "promtool check metrics <<<\"\$1\"" _ "$m"
fi

# slapd down: the pooled handle dies, the reconnect fails on both URIs
up1=$(since "$LIVE")
sleep 1.1	# since has one-second steps
rg_slapd_stop a
out=$(C explain alice@example.com)
rg_expect_match "slapd stopped: the lookup tempfails" "$out" "backend corp: alice@example.com -> tempfail"
out=$(C status)
rg_expect_match "slapd stopped: live URI down, with its reason" "$out" \
	"  $LIVE down since 20[0-9-]+T[0-9:]+Z \(.*Can't contact LDAP server.*\)"
rg_expect_match "metric follows" "$(curl -s "http://127.0.0.1:$MPORT/metrics")" \
	"rcptgate_backend_target_up\{backend=\"corp\",target=\"$LIVE\"\} 0"

sleep 1.1
rg_slapd_start a || exit 1
out=$(C explain alice@example.com)
rg_expect_match "slapd back: the lookup works" "$out" "backend corp: alice@example.com -> found"
rg_expect_match "slapd back: live URI up" "$(C status)" "  $LIVE up since "
up2=$(since "$LIVE")
rg_check "slapd back: a newer since ($up1 < $up2)" test "$up2" \> "$up1"
rg_expect_match "slapd back: closed URI still down" "$(C status)" "  $CLOSED down since "

rg_stop_rcptgate
rg_done
