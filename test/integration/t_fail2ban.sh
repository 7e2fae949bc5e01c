#!/bin/bash
# SPDX-License-Identifier: MIT
# The fail2ban filter (packaging/fail2ban/rcptgate.conf) against block
# lines the daemon really wrote: a client behind a private Postfix probes
# unknown recipients until the harvest limiter blocks it; the daemon's
# log (-f: the same lines it sends to syslog, on stderr, here without
# syslog's host field since the machine has no syslog daemon) goes
# through fail2ban-regex, which must match exactly the block line and
# find the client's address. The syslog form of the same line (host
# field, as journald and rsyslog show it) is checked too.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup
command -v fail2ban-regex >/dev/null || { echo "fail2ban-regex missing: apt-get install fail2ban"; exit 1; }

db=$T/recipients.db
rg_make_table "$db" alice@example.com
chmod 644 "$db"
rg_write_conf "$T/rcptgate.conf" "unix:$T/rcptgate.sock" "$db"
sed -i '/^\[harvest\]/,$d' "$T/rcptgate.conf"
cat >>"$T/rcptgate.conf" <<-EOT
	[harvest]
	max_unknown = 3
	max_unknown_per_session = 0
	state =
	exempt =
EOT
rg_start_rcptgate "$T/rcptgate.conf" || exit 1
rg_start_postfix mx "unix:$T/rcptgate.sock" || exit 1
for i in 1 2 3; do rg_rcpt -s 127.0.0.7 $PORT_mx "nobody$i@example.com" >/dev/null; done
rg_rcpt -s 127.0.0.8 $PORT_mx "someone@example.com" >/dev/null	# one unknown: no block
for i in $(seq 30); do grep -q 'harvest: block ' "$T/rcptgate.log" && break; sleep 0.1; done
rg_stop_rcptgate

mkdir -p "$T/f2b/filter.d"
cp /etc/fail2ban/filter.d/common.conf "$T/f2b/filter.d/"
cp "$RG_SOURCE_DIR/packaging/fail2ban/rcptgate.conf" "$T/f2b/filter.d/"
grep 'harvest: block ' "$T/rcptgate.log" | head -n 3
rg_expect_eq "the daemon wrote one block line" "$(grep -c 'harvest: block ' "$T/rcptgate.log")" 1
fail2ban-regex "$T/rcptgate.log" "$T/f2b/filter.d/rcptgate.conf" >"$T/f2b.out" 2>&1
rg_expect_eq "fail2ban-regex runs" "$?" 0
rg_expect_match "exactly the block line matched" "$(grep '^Lines:' "$T/f2b.out")" "^Lines: [0-9]+ lines, 0 ignored, 1 matched"
ips=$(fail2ban-regex -o ip "$T/rcptgate.log" "$T/f2b/filter.d/rcptgate.conf" 2>/dev/null | sort -u | tr '\n' ' ')
rg_expect_eq "fail2ban finds the blocked client" "$ips" "127.0.0.7 "

# The same line as syslog/journald show it (with a host name).
line=$(grep 'harvest: block ' "$T/rcptgate.log" | sed 's/^[0-9:.]* //')
printf '%s mx1 %s\n' "$(LC_ALL=C date '+%b %e %H:%M:%S')" "$line" >"$T/syslog.log"
rg_expect_eq "syslog form: host found" "$(fail2ban-regex -o ip "$T/syslog.log" "$T/f2b/filter.d/rcptgate.conf" 2>/dev/null)" "127.0.0.7"
rg_check "jail is all comments" bash -c "! grep -v '^#' '$RG_SOURCE_DIR/packaging/fail2ban/jail.d-rcptgate.conf' | grep -q ."
rg_done
