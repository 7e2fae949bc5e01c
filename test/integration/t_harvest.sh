#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 5 end to end, through a real Postfix: a loopback source probing
# unknown recipients over several sessions is blocked; once blocked a
# valid and an invalid recipient get byte-identical replies; another
# source address is unaffected; the per-session limit stops the fourth
# recipient after three unknown ones; recipients Postfix refused itself
# (SMFIP_RCPT_REJ) count only as 5.1.1, so a relay denial does not; a
# restart keeps the block; expiry lifts it;
# `-b list` / `-b unblock` when the daemon has them; two rcptgate
# daemons sharing one redis-server see one harvester, and with Redis
# stopped mail still flows.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

BLOCK_S=30
db=$T/recipients.db
rg_make_table "$db" alice@example.com bob@example.com || exit 1

# write_conf FILE SOCKET STATE
write_conf() {
	cat >"$1" <<-EOT
		[milter]
		socket = $2
		user =
		socket_mode = 0666
		log_level = debug

		[policy]
		domains = example.com
		backends = local

		[backend local]
		type = sqlite
		path = $db

		[harvest]
		max_unknown = 5
		window = 10m
		block_time = ${BLOCK_S}s
		max_unknown_per_session = 3
		ipv4_prefix = 32
		action = tempfail
		state = $3
		# the sources here are 127.0.0.N: loopback is exempt by default
		exempt =
	EOT
}

# replies SOURCE PORT ADDR...: the RCPT replies of one session, one a line
replies() {
	local src=$1 port=$2
	shift 2
	rg_rcpt -s "$src" "$port" "$@"
}

# probe SOURCE PORT: one session with two unknown recipients
probe() {
	replies "$1" "$2" "nobody$RANDOM@example.com" "ghost$RANDOM@example.com" >/dev/null
}

write_conf "$T/rcptgate.conf" "unix:$T/rg.sock" "$T/harvest.db"
rg_check "config check passes" "$RCPTGATE" -c "$T/rcptgate.conf" -n
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_start_postfix mx "unix:$T/rg.sock" \
	"mynetworks = 192.0.2.0/24" "relay_domains = example.com" \
	"smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination" || exit 1
p=$PORT_mx

unknown='550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown'
rg_expect_match "valid recipient accepted" "$(replies 127.0.0.1 $p alice@example.com)" '^250 '
rg_expect_eq "unknown recipient rejected" "$(replies 127.0.0.2 $p nobody@example.com)" "$unknown"

# Per-session limit: the fourth recipient after three unknown ones.
out=$(replies 127.0.0.3 $p u1@example.com u2@example.com u3@example.com alice@example.com)
rg_expect_eq "per-session: three unknowns, then the block reply" \
	"$(echo "$out" | cut -c1-9 | tr '\n' ' ')" "550 5.1.1 550 5.1.1 550 5.1.1 421 4.7.0 "
rg_expect_match "per-session: the next session goes on" \
	"$(replies 127.0.0.3 $p bob@example.com)" '^250 '

# A harvester from 127.0.0.1: sessions of two unknowns (under the session
# limit) until the client limit of 5 blocks it.
probe 127.0.0.1 $p
probe 127.0.0.1 $p
rg_expect_match "not yet blocked after 4 unknowns" "$(replies 127.0.0.1 $p alice@example.com)" '^250 '
out=$(replies 127.0.0.1 $p x1@example.com x2@example.com)
rg_expect_match "the fifth unknown still gets its 550" "$(echo "$out" | head -n1)" '^550 5\.1\.1 '
rg_expect_match "and the next RCPT the block" "$(echo "$out" | sed -n 2p)" '^421 4\.7\.0 '
rg_check "block logged as one parseable line" grep -Eq \
	'harvest: block client=127\.0\.0\.1 prefix=127\.0\.0\.1/32 count=5 window=600s until=[0-9T:-]+Z reason=limit' \
	"$T/rcptgate.log"

valid=$(replies 127.0.0.1 $p alice@example.com)
invalid=$(replies 127.0.0.1 $p nobody@example.com)
rg_expect_match "blocked: the block reply" "$valid" '^421 4\.7\.0 .*Too many unknown recipients'
rg_expect_eq "blocked: valid and invalid byte-identical" "$valid" "$invalid"
rg_expect_eq "blocked: postmaster too (block_allows_postmaster = no)" \
	"$(replies 127.0.0.1 $p postmaster@example.com)" "$valid"
rg_expect_match "other source unaffected: valid" "$(replies 127.0.0.2 $p alice@example.com)" '^250 '
rg_expect_eq "other source unaffected: unknown" "$(replies 127.0.0.2 $p nobody@example.com)" "$unknown"

# Recipients Postfix refused itself with 5.7.1 (relay denied) are not
# unknown (SMFIP_RCPT_REJ; t_harvest_counting.sh has the 5.1.1 that do).
for i in 1 2 3; do
	replies 127.0.0.4 $p "a$i@elsewhere.test" "b$i@elsewhere.test" >/dev/null
done
out=$(replies 127.0.0.4 $p alice@example.com)
rg_expect_match "MTA relay denials (5.7.1) do not count" "$out" '^250 '

# A restart keeps the block (state file).
sleep 1.5
rg_stop_rcptgate
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_expect_eq "restart: still blocked" "$(replies 127.0.0.1 $p alice@example.com)" "$valid"
rg_expect_match "restart: other source still fine" "$(replies 127.0.0.2 $p alice@example.com)" '^250 '

# Operator view, once the daemon offers it.
if "$RCPTGATE" -h 2>&1 | grep -q -- '-b'; then
	probe 127.0.0.7 $p
	probe 127.0.0.7 $p
	probe 127.0.0.7 $p
	sleep 1.5
	rg_expect_match "-b list shows the block" \
		"$("$RCPTGATE" -c "$T/rcptgate.conf" -b list 2>&1)" $'127\\.0\\.0\\.7/32\tblocked\tcount=[0-9]+\tuntil='
	rg_check "-b unblock" "$RCPTGATE" -c "$T/rcptgate.conf" -b unblock 127.0.0.7
	got=
	for ((i = 0; i < 20; i++)); do
		got=$(replies 127.0.0.7 $p alice@example.com)
		[[ $got == 250* ]] && break
		sleep 0.5
	done
	rg_expect_match "running daemon notices the unblock within 10s" "$got" '^250 '
	rg_check "unblock logged" grep -Eq \
		'harvest: unblock prefix=127\.0\.0\.7/32 reason=operator' "$T/rcptgate.log"
else
	echo "# skip: rcptgate has no -b yet"
fi

# Expiry lifts it (block_time = ${BLOCK_S}s); bounded wait.
got=
for ((i = 0; i < BLOCK_S + 15; i++)); do
	got=$(replies 127.0.0.1 $p alice@example.com)
	[[ $got == 250* ]] && break
	sleep 1
done
rg_expect_match "block expired: accepted again" "$got" '^250 '
rg_check "expiry logged" grep -Eq 'harvest: unblock prefix=127\.0\.0\.1/32 reason=expired' \
	"$T/rcptgate.log"

# Several MX hosts sharing one Redis.
if ! command -v redis-server >/dev/null; then
	echo "# skip: redis-server not installed"
	rg_done
fi
rport=$(rg_free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
	--dir "$T" >"$T/redis.log" 2>&1 &
rpid=$!
rg_track $rpid
rg_wait_port "$rport" 10 || exit 1
rg_stop_rcptgate
write_conf "$T/r1.conf" "unix:$T/rg.sock" "redis://127.0.0.1:$rport/0"
write_conf "$T/r2.conf" "unix:$T/rg2.sock" "redis://127.0.0.1:$rport/0"
rg_start_rcptgate "$T/r1.conf" || exit 1
rm -f "$T/rg2.sock"
"$RCPTGATE" -f -c "$T/r2.conf" >>"$T/rcptgate2.log" 2>&1 &
rg2=$!
rg_track $rg2
for ((i = 0; i < 100; i++)); do
	[ -S "$T/rg2.sock" ] && break
	sleep 0.1
done
rg_start_postfix mx2 "unix:$T/rg2.sock" || exit 1
p2=$PORT_mx2

probe 127.0.0.5 $p		# 2 on mx1
probe 127.0.0.5 $p2		# 2 on mx2
rg_expect_match "shared: not blocked at 4" "$(replies 127.0.0.5 $p2 alice@example.com)" '^250 '
replies 127.0.0.5 $p nobody5@example.com >/dev/null	# the 5th, on mx1
rg_expect_eq "shared: blocked on mx2, which counted only 2" \
	"$(replies 127.0.0.5 $p2 alice@example.com)" "$valid"
rg_expect_eq "shared: blocked on mx1" "$(replies 127.0.0.5 $p bob@example.com)" "$valid"
rg_expect_match "shared: other source fine" "$(replies 127.0.0.6 $p2 alice@example.com)" '^250 '

kill -TERM "$rpid"
wait "$rpid" 2>/dev/null
rg_expect_match "redis stopped: valid mail flows" "$(replies 127.0.0.6 $p alice@example.com)" '^250 '
rg_expect_eq "redis stopped: unknown still rejected, not tempfailed" \
	"$(replies 127.0.0.6 $p nobody@example.com)" "$unknown"
probe 127.0.0.8 $p
probe 127.0.0.8 $p
replies 127.0.0.8 $p nobody8@example.com >/dev/null
rg_expect_eq "redis stopped: local counting still blocks" \
	"$(replies 127.0.0.8 $p alice@example.com)" "$valid"
rg_check "redis outage logged" grep -q 'harvest: redis 127.0.0.1:[0-9]* unavailable' "$T/rcptgate.log"
kill -TERM "$rg2" 2>/dev/null
rg_done
