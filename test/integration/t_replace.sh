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

# Each version holds the three and 5,000 other addresses that change.
# Bounded: at most 300 replacements or 90 s, until the client is done.
# -f: each version removes 5,000 of the 5,003 rows, a turnover that
# rcptgate-table refuses without it.
(
	i=0
	end=$((SECONDS + 90))
	while [ ! -e "$T/client.done" ] && [ $i -lt 300 ] && [ $SECONDS -lt $end ]; do
		i=$((i + 1))
		{
			printf '%s\n' alice@example.com bob@example.com carol@example.com
			seq -f "user$i-%g@example.com" 1 5000
		} >"$T/list"
		"$RCPTGATE_TABLE" -d "$db" -f replace "$T/list" || echo "replace $i failed"
		echo "$i" >"$T/replaced"
	done
) >"$T/replacer.log" 2>&1 &
replacer=$!
rg_track $replacer

sessions=0
: >"$T/replies"
end=$((SECONDS + 60))
while [ $sessions -lt 100 ] && [ $SECONDS -lt $end ]; do
	rg_rcpt "$PORT_mx" alice@example.com bob@example.com carol@example.com >>"$T/replies"
	sessions=$((sessions + 1))
done
touch "$T/client.done"
wait $replacer
last=$(cat "$T/replaced")
total=$(wc -l <"$T/replies")
bad=$(grep -vc '^250 ' "$T/replies")
echo "# $sessions sessions, $total lookups during $last replacements; non-250: $bad"
grep -v '^250 ' "$T/replies" | sort | uniq -c | head
rg_expect_eq "replacer had no error" "$(cat "$T/replacer.log")" ""
rg_check "several replacements during the lookups" test "$last" -ge 5
rg_check "lookups ran during the replacements" test "$total" -ge 150
rg_expect_eq "no wrong reject during replacements" "$(grep -c '^550' "$T/replies")" 0
rg_expect_eq "no tempfail during replacements" "$bad" 0
rg_expect_match "new rows visible after the last replace" "$(rg_rcpt "$PORT_mx" "user$last-7@example.com")" '^250 '
rg_expect_match "old rows gone after the last replace" "$(rg_rcpt "$PORT_mx" "user$((last - 1))-7@example.com")" '^550 5\.1\.1 '
rg_done
