#!/bin/bash
# SPDX-License-Identifier: MIT
# With `scripts/demo.sh` running: start a private Postfix on a loopback
# port wired to the demo's socket, send one known and one unknown
# recipient with swaks (250, then 550 5.1.1), and stop Postfix again.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
RG_SOURCE_DIR=$top
. "$top/test/integration/lib.sh"
sock=$top/demo/rcptgate.sock
[ -S "$sock" ] || { echo "start scripts/demo.sh first (no $sock)" >&2; exit 1; }
rg_setup
rg_start_postfix mx "unix:$sock" || exit 1
echo "private Postfix on 127.0.0.1:$PORT_mx"
for rcpt in alice@example.com nobody@example.com; do
	# the RCPT command and the server's answer to it
	rg_swaks "$PORT_mx" "$rcpt" | awk '/^ *-> RCPT/ { print; getline; print }'
done
