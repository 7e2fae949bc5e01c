# SPDX-License-Identifier: MIT
# Shared by the end-to-end benchmarks (e2e_postfix.sh, e2e_sendmail.sh);
# source it after test/integration/lib.sh.
#
#   bench_rcpt_list ROUNDS MESSAGES RCPTS
#       every recipient any round sends: rN@example.com and KrN@example.com
#   bench_table DB FILLER < extra-addresses
#       the SQLite table: FILLER rows u<i>@example.com plus one row per
#       line of standard input, in the file rcptgate-table would write
#       (its mark included, so rcptgate reads it as it would that file)

bench_rcpt_list() {
	local r
	for ((r = 0; r <= $1; r++)); do
		echo "r$r@example.com"
		seq -f "%.0fr$r@example.com" 1 $(($2 * $3))
	done
}

bench_table() {
	{
		echo "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
		echo "PRAGMA application_id = 1919382626;"
		echo "CREATE TABLE recipients (address TEXT PRIMARY KEY COLLATE NOCASE);"
		echo "BEGIN;"
		echo "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c"
		echo "  WHERE i + 1 < $2) INSERT INTO recipients"
		echo "  SELECT 'u' || i || '@example.com' FROM c;"
		sed "s/.*/INSERT INTO recipients VALUES ('&');/"
		echo "COMMIT;"
	} | sqlite3 "$1" >/dev/null || return 1
	chmod 644 "$1"
}
