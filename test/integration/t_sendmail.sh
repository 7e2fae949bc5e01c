#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 7: rcptgate behind a real Sendmail (Debian's, unpacked into a
# cache by lib_sendmail.sh, never installed), over a unix socket on the
# filesystem: known accepted, unknown 550 5.1.1, backend down 451 4.4.3,
# rcptgate down tempfails (F=T), and '%' in addresses reaches the client
# as the client sent it, never as Sendmail's "550 5.7.1 Command rejected"
# (libmilter's reply text is a format string to Sendmail: rg_reply_build
# doubles '%', Sendmail undoes it). Exits 77 (skip) when Sendmail cannot
# be fetched.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
. "$RG_SOURCE_DIR/test/integration/lib_sendmail.sh"
rg_setup

rg_sendmail_fetch
rc=$?
if [ $rc -eq 77 ]; then
	echo "skip: Sendmail not available"
	exit 77
fi
[ $rc -eq 0 ] || exit 1

db=$T/recipients.db
rg_make_table "$db" alice@example.com bob@example.com @example.net
rg_write_conf "$T/rcptgate.conf" "unix:$T/rcptgate.sock" "$db"
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_sendmail_init mx "unix:$T/rcptgate.sock" || exit 1
rg_sendmail_start mx || exit 1

rcpt() {
	rg_sendmail_rcpt mx "$@"
}

rg_expect_match "known recipient accepted" "$(rcpt alice@example.com)" '^250 2\.1\.5 '
# Sendmail puts "<addr>... " before the milter's text.
rg_expect_eq "unknown recipient rejected" "$(rcpt nobody@example.com)" \
	'550 5.1.1 <nobody@example.com>... <nobody@example.com>: Recipient address rejected: User unknown'
rg_expect_match "catch-all domain" "$(rcpt anyone@example.net)" '^250 '
rg_expect_match "postmaster always accepted" "$(rcpt postmaster@example.com)" '^250 '
rg_expect_match "domain not checked passes" "$(rcpt someone@example.org)" '^250 '
rg_expect_match "subaddress of a known user" "$(rcpt alice+news@example.com)" '^250 '

out=$(rcpt -d alice@example.com nobody@example.com bob@example.com)
rg_expect_eq "known-unknown-known in one transaction" \
	"$(echo "$out" | cut -c1-3 | tr '\n' ' ')" "250 550 250 DAT "
rg_expect_match "message queued for the known ones" "$out" 'DATA 250 2\.0\.0 '
rg_check "one message in Sendmail's queue" \
	test "$(find "$T/sendmail-mx/queue" -name 'qf*' | wc -l)" -eq 1
rg_check "queue file holds only the known recipients" bash -c "
	grep -aq '^R.*:<alice@example.com>' $T/sendmail-mx/queue/qf* &&
	grep -aq '^R.*:<bob@example.com>' $T/sendmail-mx/queue/qf* &&
	! grep -aq '^R.*nobody@' $T/sendmail-mx/queue/qf*"

# '%': the milter's reply text passes through Sendmail's format string.
rg_expect_eq "lone % reaches the client once" "$(rcpt 'a%b@example.com')" \
	'550 5.1.1 <a%b@example.com>... <a%b@example.com>: Recipient address rejected: User unknown'
rg_expect_eq "printf directives stay literal" "$(rcpt '%n%s@example.com')" \
	'550 5.1.1 <%n%s@example.com>... <%n%s@example.com>: Recipient address rejected: User unknown'
rg_expect_eq "doubled %% stays doubled" "$(rcpt 'x%%y@example.com')" \
	'550 5.1.1 <x%%y@example.com>... <x%%y@example.com>: Recipient address rejected: User unknown'
# Sendmail's own parser takes "100%" as the percent hack with an empty
# host and refuses it before any milter is asked: a 553 from Sendmail,
# never the 5.7.1 of a reply it could not use.
out=$(rcpt '100%@example.com')
rg_expect_match "100%@example.com is Sendmail's own 553" "$out" '^553 5\.1\.3 '
rg_check "no 'Command rejected' anywhere" bash -c "
	! grep -q 'Command rejected' <<<'$out'"
rg_check "daemon still running after % input" kill -0 "$RG_PID"

# Backend down: an uncached known user tempfails, never a 550.
mv "$db" "$db.away"
rg_expect_eq "backend down: tempfail" "$(rcpt bob+x@example.com)" \
	'451 4.4.3 Directory lookup failed, try again later'
rg_expect_match "backend down: unknown also tempfails" "$(rcpt carol@example.com)" '^451 4\.4\.3 '
mv "$db.away" "$db"
rg_expect_match "backend back" "$(rcpt bob+y@example.com)" '^250 '

# rcptgate down: F=T makes Sendmail tempfail (at MAIL FROM, the first
# command after it found the filter gone) rather than accept blindly.
rg_stop_rcptgate
out=$(rcpt nobody@example.com)
rg_expect_match "rcptgate down: tempfail, not accept" "$out" '^(MAIL )?4[0-9][0-9] 4\.'
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_expect_match "rcptgate back: rejects again" "$(rcpt nobody2@example.com)" '^550 5\.1\.1 '

rg_check "rcptgate logged the reject with Sendmail's queue id" \
	grep -Eq '[0-9A-Za-z]{14}: reject rcpt=<nobody@example.com>' "$T/rcptgate.log"
rg_sendmail_stop mx
rg_done
