#!/bin/bash
# SPDX-License-Identifier: MIT
# A negative never outlives a reload (issue 12, point 4), against a real
# slapd through a real Postfix: with a wrong LDAP base (an existing
# subtree that holds none of the users) every recipient is unknown (550);
# the operator fixes the base and sends SIGUSR1. An SMTP
# session opened before the reload keeps its milter connection, hence the
# old runtime, and keeps asking (it may still get the old answer: a
# reload applies from the next connection). Every new connection must get
# 250 all the same, also for recipients that the old session asked for
# only after the reload (their negatives carry the new cache epoch).
. "$RG_SOURCE_DIR/test/integration/lib.sh"
. "$RG_SOURCE_DIR/test/integration/lib_slapd.sh"
rg_setup

rg_slapd_init a || exit 1
rg_slapd_load a "$RG_LDAP_DIR/fixture.ldif" || exit 1
rg_slapd_start a || exit 1

# conf BASE
conf() {
	cat >"$T/rcptgate.conf" <<-EOT
		[milter]
		socket = unix:$T/rcptgate.sock
		user =
		socket_mode = 0666
		log_level = debug
		[policy]
		domains = example.com
		backends = corp
		[cache]
		negative_ttl = 10m
		[harvest]
		max_unknown = 0
		max_unknown_per_session = 0
		state =
		[backend corp]
		type = ldap
		uri = $SLAPD_URI_a
		base = $1
	EOT
}

# a base that exists but holds none of the users (ou=people vs ou=users)
conf "ou=services,dc=example,dc=com"
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_start_postfix mx "unix:$T/rcptgate.sock" || exit 1

first() {
	rg_rcpt "$PORT_mx" "$@" | cut -d' ' -f1 | tr '\n' ' '
}

rg_expect_eq "wrong base: known users are unknown" \
    "$(first alice@example.com bob@example.com)" "550 550 "

# One SMTP session held open across the reload, asked on demand.
cat >"$T/held.py" <<-'EOT'
	import smtplib, sys
	s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=60,
	    local_hostname="client.example.test")
	s.ehlo("client.example.test")
	s.docmd("MAIL FROM:<sender@example.net>")
	for line in sys.stdin:
	    code, msg = s.docmd("RCPT TO:<%s>" % line.strip())
	    print(code, flush=True)
	s.quit()
EOT
coproc HELD { "$RG_PY" "$T/held.py" "$PORT_mx"; }
held() {
	local reply
	echo "$1" >&"${HELD[1]}"
	read -r -t 30 -u "${HELD[0]}" reply
	echo "$reply"
}
rg_expect_eq "held session before the reload" "$(held alice@example.com)" 550

conf "dc=example,dc=com"
n=$(grep -c "configuration reloaded" "$T/rcptgate.log")
kill -USR1 "$RG_PID"
for ((i = 0; i < 50; i++)); do
	[ "$(grep -c "configuration reloaded" "$T/rcptgate.log")" -gt "$n" ] &&
	    break
	sleep 0.1
done

for round in 1 2 3; do
	# the old connection asks first, so its answer is the one in flight
	# or in the cache when the new connection asks
	for who in alice bob dave; do
		got=$(held "$who@example.com")
		case $got in
		250 | 550) ;;
		*) rg_notok "round $round: held session, $who" "got [$got]" ;;
		esac
		rg_expect_eq "round $round: new connection, $who" \
		    "$(first "$who@example.com")" "250 "
	done
done
rg_expect_eq "unknown users stay unknown" "$(first nobody@example.com)" "550 "
exec {HELD[1]}>&-
wait "$HELD_PID" 2>/dev/null

rg_done
