#!/bin/bash
# SPDX-License-Identifier: MIT
# With `scripts/demo.sh` running: start a private Postfix on a loopback
# port wired to the demo's socket, send one known and one unknown
# recipient with swaks (250, then 550 5.1.1), and stop Postfix again.
# Every reply that decides the outcome (MAIL, RCPT) is shown, and the
# exit status is 0 only when both recipients got what the demo promises:
# a milter that went away makes Postfix answer 451 at MAIL FROM, and
# that must not look like a quiet success.
# RG_DEMO_SOCKET=PATH uses another rcptgate's unix socket than demo/'s.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
RG_SOURCE_DIR=$top
. "$top/test/integration/lib.sh"
sock=${RG_DEMO_SOCKET:-$top/demo/rcptgate.sock}
[ -S "$sock" ] || { echo "start scripts/demo.sh first (no $sock)" >&2; exit 1; }
rg_setup
rg_start_postfix mx "unix:$sock" || exit 1
echo "private Postfix on 127.0.0.1:$PORT_mx"
status=0
for pair in alice@example.com:250 nobody@example.com:550; do
	rcpt=${pair%:*}
	want=${pair##*:}
	# Each MAIL and RCPT command with the server's answer to it (swaks
	# marks a refusal "<**"); a session that stops at MAIL shows why.
	out=$(rg_swaks "$PORT_mx" "$rcpt" |
	    awk '/^ *-> (MAIL|RCPT)/ { print; getline; print }')
	echo "$out"
	got=$(printf '%s\n' "$out" | awk '/-> RCPT/ { getline; print $2 }')
	if [ "$got" != "$want" ]; then
		echo "try-postfix.sh: <$rcpt>: expected $want at RCPT," \
		    "got ${got:-no RCPT reply}" >&2
		status=1
	fi
done
[ $status -eq 0 ] || echo "try-postfix.sh: FAILED (is rcptgate running on $sock?)" >&2
exit $status
