#!/bin/bash
# SPDX-License-Identifier: MIT
# Atomic table replacement: while rcptgate-table replaces the table over
# and over, lookups through a real Postfix of addresses present in every
# version never get a 550 (cache off, so every RCPT reaches SQLite).
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
rg_make_table "$db" alice@example.com bob@example.com carol@example.com
rg_write_conf "$T/rcptgate.conf" "unix:$T/rcptgate.sock" "$db" "" "[cache]" "size = 0"
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_start_postfix mx "unix:$T/rcptgate.sock" || exit 1

# Each version holds the three and 2,000 other addresses that change.
(
	for i in $(seq 1 15); do
		{
			printf '%s\n' alice@example.com bob@example.com carol@example.com
			seq -f "user$i-%g@example.com" 1 2000
		} >"$T/list.$i"
		"$RCPTGATE_TABLE" -d "$db" replace "$T/list.$i" || echo "replace $i failed"
	done
	touch "$T/replacer.done"
) >"$T/replacer.log" 2>&1 &
rg_track $!

sessions=0
: >"$T/replies"
deadline=$((SECONDS + 60))
while [ ! -e "$T/replacer.done" ] && [ $SECONDS -lt $deadline ] && [ $sessions -lt 400 ]; do
	rg_rcpt "$PORT_mx" alice@example.com bob@example.com carol@example.com >>"$T/replies"
	sessions=$((sessions + 1))
done
wait
total=$(wc -l <"$T/replies")
bad=$(grep -vc '^250 ' "$T/replies")
echo "# $sessions sessions, $total lookups during 15 replacements; non-250: $bad"
grep -v '^250 ' "$T/replies" | sort | uniq -c | head
rg_expect_eq "replacer finished" "$(cat "$T/replacer.log")" ""
rg_check "lookups ran during the replacements" test "$total" -ge 30
rg_expect_eq "no wrong reject during replacements" "$(grep -c '^550' "$T/replies")" 0
rg_expect_eq "no tempfail during replacements" "$bad" 0
rg_expect_match "new rows visible after the last replace" "$(rg_rcpt "$PORT_mx" user15-7@example.com)" '^250 '
rg_expect_match "old rows gone after the last replace" "$(rg_rcpt "$PORT_mx" user1-7@example.com)" '^550 5\.1\.1 '
rg_done
