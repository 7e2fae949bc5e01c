#!/bin/bash
# SPDX-License-Identifier: MIT
# The fail2ban filter (packaging/fail2ban/rcptgate.conf) against block
# lines the daemon really wrote through syslog(3): the daemon runs in a
# private mount namespace whose /dev/log is served by syslog_sink.py,
# which writes each message as rsyslog writes mail.log (this machine has
# no syslog daemon; the host's /dev is not touched). A client behind a
# private Postfix probes unknown recipients until the harvest limiter
# blocks it; fail2ban-regex must match exactly the block line in that
# syslog file and find the client's address. The same line from the
# daemon's -f stderr log is checked as well.
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
# The daemon behind a private /dev/log (a tmpfs over /dev in its own mount
# namespace, with null, zero, random and urandom bound from the host).
cat >"$T/in-ns.sh" <<-EOT
	set -e
	mkdir -p "$T/hostdev"
	mount --bind /dev "$T/hostdev"
	mount -t tmpfs -o mode=755 rg-dev /dev
	for n in null zero random urandom; do
		touch "/dev/\$n"
		mount --bind "$T/hostdev/\$n" "/dev/\$n"
	done
	$RG_PY "$RG_SOURCE_DIR/test/integration/syslog_sink.py" /dev/log "$T/syslog.log" &
	echo \$! >>"$T/pids"
	for i in \$(seq 50); do [ -S /dev/log ] && break; sleep 0.1; done
	exec "$RCPTGATE" "\$@"
EOT
printf '#!/bin/bash\nexec unshare -m bash %q "$@"\n' "$T/in-ns.sh" >"$T/rcptgate-ns"
chmod +x "$T/rcptgate-ns"
RCPTGATE=$T/rcptgate-ns rg_start_rcptgate "$T/rcptgate.conf" || exit 1
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

# What the daemon sent to syslog, as rsyslog writes it to mail.log.
for i in $(seq 30); do grep -q 'harvest: block ' "$T/syslog.log" 2>/dev/null && break; sleep 0.1; done
grep 'harvest: block ' "$T/syslog.log" | head -n 3
rg_expect_match "the daemon logged through syslog" "$(grep -c 'rcptgate\[[0-9]*\]: ' "$T/syslog.log" 2>/dev/null)" '^[1-9]'
fail2ban-regex "$T/syslog.log" "$T/f2b/filter.d/rcptgate.conf" >"$T/f2b-syslog.out" 2>&1
rg_expect_match "syslog: exactly the block line matched" "$(grep '^Lines:' "$T/f2b-syslog.out")" "^Lines: [0-9]+ lines, 0 ignored, 1 matched"
rg_expect_eq "syslog: fail2ban finds the blocked client" \
	"$(fail2ban-regex -o ip "$T/syslog.log" "$T/f2b/filter.d/rcptgate.conf" 2>/dev/null | sort -u)" "127.0.0.7"
rg_check "jail is all comments" bash -c "! grep -v '^#' '$RG_SOURCE_DIR/packaging/fail2ban/jail.d-rcptgate.conf' | grep -q ."
rg_done
