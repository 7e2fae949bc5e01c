#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 12, point 5: an empty table never rejects. Through a real Postfix:
# a default SQLite table with no row answers 451 4.4.3 (not 550 5.1.1)
# for the checked domain, logs why once a minute at most, and lets an
# unchecked domain pass; once filled, mail flows (250 known, 550 unknown);
# rcptgate-table then refuses to empty it again without -f.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
# The empty file as rcptgate-table -f would write it (marked), made with
# sqlite3 so that the same script runs against a tool without -f.
sqlite3 "$db" "PRAGMA application_id = 1919382626;
	CREATE TABLE recipients (address TEXT PRIMARY KEY COLLATE NOCASE);" ||
	exit 1
rg_write_conf "$T/rcptgate.conf" "unix:$T/rcptgate.sock" "$db"
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_start_postfix mx "unix:$T/rcptgate.sock" || exit 1
p=$PORT_mx

out=$(rg_rcpt "$p" alice@example.com nobody@example.com x@example.org)
rg_expect_match "empty table: known address tempfails" "$(echo "$out" | sed -n 1p)" '^451 4\.4\.3 '
rg_expect_match "empty table: unknown address tempfails, no 550" "$(echo "$out" | sed -n 2p)" '^451 4\.4\.3 '
rg_expect_match "empty table: unchecked domain passes" "$(echo "$out" | sed -n 3p)" '^250 '
rg_expect_match "empty table: again 451" "$(rg_rcpt "$p" carol@example.com)" '^451 4\.4\.3 '
# The backend's own explanation, once a minute at most (the policy's
# per-lookup failure lines are rate-limited separately, point 8).
rg_expect_eq "empty table: explained once, not per lookup" \
	"$(grep -c 'warning: sqlite .*: the table has no row at all' "$T/rcptgate.log")" 1

"$RCPTGATE_TABLE" -d "$db" replace - <<<"alice@example.com" || rg_notok "fill the table"
rg_expect_match "filled: known address 250" "$(rg_rcpt "$p" alice@example.com)" '^250 '
rg_expect_match "filled: unknown address 550" "$(rg_rcpt "$p" nobody@example.com)" '^550 5\.1\.1 '

"$RCPTGATE_TABLE" -d "$db" replace /dev/null 2>"$T/err"; rc=$?
rg_expect_eq "replace with an empty input refused: exit 65" "$rc" 65
rg_expect_match "refusal says why" "$(cat "$T/err")" 'input holds no address'
rg_expect_match "after the refused replace: known address still 250" \
	"$(rg_rcpt "$p" alice@example.com)" '^250 '
rg_done
