#!/bin/bash
# SPDX-License-Identifier: MIT
# Outage mode through a real Postfix: when every backend fails, a positive
# answer older than positive_ttl but within stale_ttl is still accepted
# (and logged as such); an address never seen tempfails; a negative answer
# is never served from the cache once the table is replaced.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
rg_make_table "$db" alice@example.com bob@example.com
rg_write_conf "$T/rcptgate.conf" "unix:$T/rcptgate.sock" "$db" "" "[cache]" \
	"positive_ttl = 1s" "negative_ttl = 1h" "stale_ttl = 1h"
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_start_postfix mx "unix:$T/rcptgate.sock" || exit 1
p=$PORT_mx

rg_expect_match "alice seen once" "$(rg_rcpt $p alice@example.com)" '^250 '
rg_expect_match "carol unknown, cached negative for 1h" "$(rg_rcpt $p carol@example.com)" '^550 5\.1\.1 '
sleep 1.5	# alice's positive entry is now past positive_ttl
mv "$db" "$db.away"
rg_expect_match "outage: alice accepted from a stale positive" "$(rg_rcpt $p alice@example.com)" '^250 '
rg_check "stale accept logged" grep -q 'accept rcpt=<alice@example.com> client=\[127.0.0.1\] backend=local reason=stale' "$T/rcptgate.log"
rg_expect_eq "outage: bob never seen, tempfail" "$(rg_rcpt $p bob@example.com)" \
	'451 4.4.3 Directory lookup failed, try again later'
rg_check "failure logged with its cause, in the verdict's line" grep -q \
	'tempfail rcpt=<bob@example.com> .* reason=backend failure detail=lookup of <bob@example.com> failed' \
	"$T/rcptgate.log"
mv "$db.away" "$db"

# carol is added by replacing the table: her cached 550 must die with the
# old table even though negative_ttl is an hour.
rg_make_table "$db" alice@example.com bob@example.com carol@example.com
rg_expect_match "replaced table: cached negative gone" "$(rg_rcpt $p carol@example.com)" '^250 '
rg_expect_match "recovered: bob accepted" "$(rg_rcpt $p bob@example.com)" '^250 '
rg_done
