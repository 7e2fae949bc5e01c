#!/bin/bash
# SPDX-License-Identifier: MIT
#
# rcptgate-table end to end: replace (file and stdin, list / CSV / Postfix
# map), add, remove, list, usage errors and exit codes, malformed input
# leaving the table untouched, modes kept across replace.
# Needs RCPTGATE_TABLE (the built tool); uses sqlite3 to look inside.

set -u

T=${RCPTGATE_TABLE:-}
if [ -z "$T" ] && [ -n "${RG_BUILD_DIR:-}" ]; then
	T=$RG_BUILD_DIR/rcptgate-table
fi
if [ -z "$T" ] || [ ! -x "$T" ]; then
	echo "t_table: set RCPTGATE_TABLE to the built rcptgate-table" >&2
	exit 2
fi

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() {	# check NAME COND...: run COND, ok if it succeeds
	local name=$1
	shift
	if "$@"; then ok "$name"; else bad "$name"; fi
}

umask 022	# the mode checks below assume it
dir=$(mktemp -d /tmp/rg-t_table.XXXXXX) || exit 2
trap 'rm -rf "$dir"' EXIT
db=$dir/recipients.db
out=$dir/out
err=$dir/err

# run EXPECTED_STATUS ARGS...: run the tool, keep stdout/stderr, check status
run() {
	local want=$1 got
	shift
	"$T" "$@" >"$out" 2>"$err"
	got=$?
	if [ "$got" -eq "$want" ]; then
		ok "rcptgate-table $* -> $want"
	else
		bad "rcptgate-table $* -> $got, want $want" \
		    "($(head -c 300 "$err"))"
	fi
}
# same with stdin from a file
run_in() {
	local want=$1 input=$2 got
	shift 2
	"$T" "$@" <"$input" >"$out" 2>"$err"
	got=$?
	if [ "$got" -eq "$want" ]; then
		ok "rcptgate-table $* <$(basename "$input") -> $want"
	else
		bad "rcptgate-table $* <input -> $got, want $want" \
		    "($(head -c 300 "$err"))"
	fi
}
same() { cmp -s "$1" "$2"; }
has() { grep -qF -- "$2" "$1"; }
ino() { stat -c %i "$1"; }

# ---- usage errors: EX_USAGE (64) with a usage line ----
run 64
check "no command prints usage" has "$err" "usage:"
run 64 -d "$db" frobnicate
run 64 -d "$db" replace
run 64 -d "$db" replace a b
run 64 -d "$db" add
run 64 -d "$db" list extra
run 64 -x list
run 64 -d "" list

# ---- list / remove on a missing table: EX_NOINPUT (66) ----
run 66 -d "$db" list
run 66 -d "$db" remove alice@example.com
check "remove created nothing" test ! -e "$db"

# ---- replace from a file: plain, CSV, quoted CSV, Postfix map, comments ----
cat >"$dir/list1" <<'EOF'
# recipients, exported from the HR system
Alice@Example.COM
bob@example.com,Bob Smith,Sales
"carol@example.com","Carol, C."

dave@example.com	OK
@Example.NET OK
alice@example.com
EOF
run 0 -d "$db" replace "$dir/list1"
run 0 -d "$db" list
printf '%s\n' @example.net alice@example.com bob@example.com \
    carol@example.com dave@example.com >"$dir/want1"
check "list is normalised and sorted" same "$out" "$dir/want1"
check "schema is the default table" test \
    "$(sqlite3 "$db" .schema)" = \
    "CREATE TABLE recipients (address TEXT PRIMARY KEY COLLATE NOCASE);"
check "lookup is case-insensitive" test \
    "$(sqlite3 "$db" "SELECT count(*) FROM recipients
	WHERE address = 'ALICE@EXAMPLE.COM'")" = 1
check "new table is mode 644 (umask 022)" test "$(stat -c %a "$db")" = 644

# ---- malformed input: every bad line reported, nothing changed ----
chmod 640 "$db"
before=$(ino "$db")
cp "$db" "$dir/before.db"
cat >"$dir/bad" <<'EOF'
erin@example.com
not-an-address
frank@example.com
"unterminated@example.com,x
# a comment is fine
grace@
EOF
run 65 -d "$db" replace "$dir/bad"
check "bad line 2 reported" has "$err" "$dir/bad:2: 'not-an-address'"
check "bad line 4 reported" has "$err" "$dir/bad:4: unterminated quote"
check "bad line 6 reported" has "$err" "$dir/bad:6: 'grace@'"
check "good lines not reported" test "$(grep -c "$dir/bad:" "$err")" -eq 3
check "malformed replace left the file" test "$(ino "$db")" = "$before"
check "malformed replace left the table" same "$db" "$dir/before.db"
check "no temporary file left" test \
    "$(find "$dir" -name '.recipients.db.*' | wc -l)" -eq 0
run_in 65 "$dir/bad" -d "$db" replace -
check "stdin is named in messages" has "$err" "(stdin):2:"
check "stdin malformed replace left the table" same "$db" "$dir/before.db"

# ---- a replace that loses more than half of the rows: refused ----
printf 'zed@example.org\n"yan@example.org",Y\n' >"$dir/list2"
run_in 65 "$dir/list2" -d "$db" replace -
check "shrink refused with a reason" \
    has "$err" "it would remove 5 of its 5 rows (more than half"
check "shrink refused names -f" has "$err" "Use -f"
check "refused shrink left the table" same "$db" "$dir/before.db"
# Half exactly is allowed: 5 rows, keep 3 (2 removed) plus new ones.
printf '%s\n' alice@example.com bob@example.com carol@example.com \
    new1@example.com >"$dir/keep3"
cp "$db" "$dir/half.db"
run 0 -d "$dir/half.db" replace "$dir/keep3"
printf '%s\n' alice@example.com bob@example.com >"$dir/keep2"
cp "$db" "$dir/half.db"
run 65 -d "$dir/half.db" replace "$dir/keep2"

# ---- replace from stdin with -f: new inode, mode kept ----
run_in 0 "$dir/list2" -d "$db" -f replace -
run 0 -d "$db" list
printf '%s\n' yan@example.org zed@example.org >"$dir/want2"
check "replace from stdin" same "$out" "$dir/want2"
check "replace made a new file (rename)" test "$(ino "$db")" != "$before"
check "replace kept the mode" test "$(stat -c %a "$db")" = 640
# ---- an empty input (a failed export): refused without -f ----
cp "$db" "$dir/before2.db"
run 65 -d "$db" replace /dev/null
check "empty replace refused with a reason" has "$err" "input holds no address"
check "empty replace left the table" same "$db" "$dir/before2.db"
printf '# only a comment\n\n' >"$dir/comments"
run_in 65 "$dir/comments" -d "$db" replace -
check "stdin with no address refused" same "$db" "$dir/before2.db"
run 65 -d "$dir/new-empty.db" replace /dev/null
check "empty replace created no table" test ! -e "$dir/new-empty.db"
run 0 -d "$db" replace -f /dev/null
run 0 -d "$db" list
check "replace -f with an empty list empties the table" test ! -s "$out"
run 66 -d "$db" replace "$dir/no-such-list"

# ---- add and remove ----
run 0 -d "$db" add Alice@Example.com @example.net
run 0 -d "$db" add alice@example.com
run 0 -d "$db" list
printf '%s\n' @example.net alice@example.com >"$dir/want3"
check "add normalises, is idempotent" same "$out" "$dir/want3"
run 65 -d "$db" add good@example.com bad@ 'x y'
check "add reports each bad argument" test "$(grep -c "argument" "$err")" -eq 2
run 0 -d "$db" list
check "add with a bad argument changed nothing" same "$out" "$dir/want3"
run 0 -d "$db" remove ALICE@example.com nobody@example.com
check "remove says what was missing" \
    has "$err" "1 of 2 addresses not in the table"
run 0 -d "$db" list
check "remove removed" test "$(cat "$out")" = "@example.net"
run 0 -d "$dir/fresh.db" add new@example.com
check "add creates the table" test \
    "$(sqlite3 "$dir/fresh.db" 'SELECT address FROM recipients')" = \
    new@example.com
run 73 -d "$dir/no/such/dir/r.db" add new@example.com

# ---- a larger list, timed ----
n=100000
awk -v n=$n 'BEGIN { for (i = 0; i < n; i++)
	printf "user%d@example.com,User %d\n", i, i }' >"$dir/big"
t0=$(date +%s%N)
run 0 -d "$db" -f replace "$dir/big"
t1=$(date +%s%N)
echo "# replace of $n addresses took $(( (t1 - t0) / 1000000 )) ms"
check "big table has every row" test \
    "$(sqlite3 "$db" 'SELECT count(*) FROM recipients')" -eq $n

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
