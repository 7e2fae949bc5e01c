#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 12 point 9: the configuration README shows works when pasted.
# README's main.cf block goes into a private Postfix and its rcptgate.conf
# blocks through `rcptgate -n`, with only the paths (socket, table,
# state) rewritten to this test's directory: Postfix must read the values
# a reader sees (main.cf has no end-of-line comments), smtpd must log no
# warning and a RCPT must get rcptgate's answer. Every configuration
# block in README, docs/ and the man pages must keep its comments on
# lines of their own.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup
readme=$RG_SOURCE_DIR/README.md

# md_blocks FILE INFO PREFIX: each fenced block of FILE whose info string
# is INFO ("" for none) into PREFIX.1, PREFIX.2, ...; prints the count.
md_blocks() {
	awk -v info="$2" -v prefix="$3" '
	    /^```/ {
		if (inb) { inb = 0; close(out); next }
		inb = 1; tag = substr($0, 4); sub(/[[:space:]]+$/, "", tag)
		take = (tag == info)
		if (take) out = prefix "." ++n
		next
	    }
	    inb && take { print > out }
	    END { print n + 0 }' "$1"
}

# ---- README's main.cf block(s) into a private Postfix ----
n=$(md_blocks "$readme" "" "$T/md")
maincf=()
for ((i = 1; i <= n; i++)); do
	head -n1 "$T/md.$i" | grep -q '^# main\.cf' && maincf+=("$T/md.$i")
done
rg_expect_eq "README has one main.cf block" "${#maincf[@]}" 1
[ "${#maincf[@]}" -ge 1 ] || rg_done
# Only the socket path is rewritten (README's is relative to smtpd's
# chroot, which the test instance does not use).
sed -E "s#unix:/[^[:space:]]*rcptgate\.sock#unix:$T/rcptgate.sock#g" \
	"${maincf[0]}" >"$T/main.cf.block"
sed 's/^/# /' "$T/main.cf.block"

db=$T/recipients.db
rg_make_table "$db" alice@example.com
rg_write_conf "$T/rcptgate.conf" "unix:$T/rcptgate.sock" "$db"
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
# A private Postfix without a milter, stopped, the keys of the block
# removed from its main.cf, the block appended as pasted, started again.
rg_start_postfix mx "" || exit 1
postfix -c "$T/mx" stop >/dev/null 2>&1
keys=$(sed -n 's/^\([a-z_0-9]*\)[[:space:]]*=.*/\1/p' "$T/main.cf.block")
rg_expect_match "the block sets smtpd_milters" "$keys" 'smtpd_milters'
# shellcheck disable=SC2086
postconf -c "$T/mx" -X $keys
: >"$T/postconf.err"
cat "$T/main.cf.block" >>"$T/mx/main.cf"
for k in $keys; do
	# What a reader of README takes the value to be: all after "=",
	# without a trailing "# ..." remark.
	want=$(sed -n "s/^$k[[:space:]]*=[[:space:]]*//p" "$T/main.cf.block" |
		sed -E 's/[[:space:]]+#.*$//; s/[[:space:]]+$//')
	rg_expect_eq "postconf shows $k as README means it" \
		"$(postconf -c "$T/mx" -h "$k" 2>>"$T/postconf.err")" "$want"
done
rg_expect_eq "postconf warns about nothing" "$(cat "$T/postconf.err")" ""
if ! script -eqc "postfix -c $T/mx start" /dev/null >"$T/mx/start2.log" 2>&1; then
	cat "$T/mx/start2.log"
	rg_notok "Postfix starts with README's block"
	rg_done
fi
rg_wait_port "$PORT_mx" 20 || exit 1
rg_expect_eq "unknown recipient: rcptgate's 550" "$(rg_rcpt "$PORT_mx" nobody@example.com)" \
	'550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown'
rg_expect_match "known recipient: 250" "$(rg_rcpt "$PORT_mx" alice@example.com)" '^250 '
sleep 1
rg_expect_eq "smtpd logged no warning" \
	"$(grep -E 'postfix/smtpd\[[0-9]+\]: (warning|error|fatal|panic):' "$T/mx/postfix.log")" ""

# ---- README's rcptgate.conf blocks through rcptgate -n ----
n=$(md_blocks "$readme" ini "$T/ini")
rg_expect_match "README has rcptgate.conf blocks" "$n" '^[1-9]'
for ((i = 1; i <= n; i++)); do
	sed -E -e "s#^(socket[[:space:]]*=[[:space:]]*unix:).*#\1$T/readme$i.sock#" \
		-e "s#^(path[[:space:]]*=[[:space:]]*)/.*#\1$db#" \
		-e "s#^(state[[:space:]]*=[[:space:]]*)/.*#\1$T/harvest$i.db#" \
		"$T/ini.$i" >"$T/readme$i.conf"
	# The run-as user is this machine's, not README's: the package
	# makes "rcptgate"; here an existing unprivileged one stands in.
	out=$("$RCPTGATE" -n -u nobody -c "$T/readme$i.conf" 2>&1)
	rc=$?
	rg_expect_eq "README rcptgate.conf block $i: rcptgate -n exits 0" "$rc" 0
	rg_expect_eq "README rcptgate.conf block $i: no warning" \
		"$(echo "$out" | grep -i 'warning')" ""
	[ "$rc" = 0 ] || echo "$out" | sed 's/^/# /'
done

# ---- every configuration block keeps comments on lines of their own ----
# Fenced blocks without an info string or with "ini" in README and docs/,
# .nf/.EX blocks in the man pages: a line that is not itself a comment
# must not carry a " #" or " ;" remark after its value.
bad=$(
	for f in "$readme" "$RG_SOURCE_DIR"/docs/*.md; do
		awk -v f="${f#"$RG_SOURCE_DIR"/}" '
		    /^```/ { if (inb) inb = 0; else { inb = 1; t = substr($0, 4)
			check = (t == "" || t == "ini") }; next }
		    inb && check && $0 !~ /^[[:space:]]*[#;]/ &&
			$0 ~ /[^[:space:]][[:space:]]+[#;]/ { print f ":" FNR ": " $0 }' "$f"
	done
	for f in "$RG_SOURCE_DIR"/man/*.[58]; do
		awk -v f="${f#"$RG_SOURCE_DIR"/}" '
		    /^\.(nf|EX)/ { inb = 1; next } /^\.(fi|EE)/ { inb = 0; next }
		    inb && $0 !~ /^[[:space:]]*[#;]/ &&
			$0 ~ /[^[:space:]][[:space:]]+[#;]/ { print f ":" FNR ": " $0 }' "$f"
	done
)
rg_expect_eq "no end-of-line comments in configuration blocks" "$bad" ""
rg_done
