# SPDX-License-Identifier: MIT
# Shared helpers for the integration tests: a temporary directory, free
# loopback ports, a private Postfix, the rcptgate daemon, SMTP probes and
# a small ok/FAIL counter. Every server started here is stopped at exit.
# Source it:  . "$RG_SOURCE_DIR/test/integration/lib.sh"

set -u
: "${RG_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${RG_BUILD_DIR:=$RG_SOURCE_DIR/build}"
: "${RCPTGATE:=$RG_BUILD_DIR/rcptgate}"
: "${RCPTGATE_TABLE:=$RG_BUILD_DIR/rcptgate-table}"
RG_PY=/usr/bin/python3
RG_PASS=0
RG_FAIL=0
RG_PID=
T=

# rg_setup: make $T (world-traversable, so Postfix's user reaches the
# milter socket) and stop everything at exit.
rg_setup() {
	T=$(mktemp -d /tmp/rg-test.XXXXXX)
	chmod 755 "$T"
	: >"$T/postfix-instances"
	# Sanitizer builds (ASan, UBSan, TSan) write their reports here, from
	# the daemon and from every -t/-n run, instead of to a stderr that
	# the test may swallow; rg_cleanup fails the test if any appears.
	mkdir -m 1777 "$T/sanitizer"
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T/sanitizer/asan"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$T/sanitizer/ubsan"
	export TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}log_path=$T/sanitizer/tsan"
	trap rg_cleanup EXIT
	trap 'exit 130' INT TERM
}

rg_cleanup() {
	local rc=$? name pid i alive
	rg_stop_rcptgate
	while read -r name; do
		[ -n "$name" ] && postfix -c "$T/$name" stop >/dev/null 2>&1
	done <"$T/postfix-instances"
	if [ -f "$T/pids" ]; then
		while read -r pid; do
			kill "$pid" 2>/dev/null
		done <"$T/pids"
		# Let them exit (and write any sanitizer report): at most 10 s.
		for ((i = 0; i < 100; i++)); do
			alive=0
			while read -r pid; do
				kill -0 "$pid" 2>/dev/null && alive=1
			done <"$T/pids"
			[ "$alive" = 1 ] || break
			sleep 0.1
		done
	fi
	rg_sanitizer_check || rc=1
	if [ "${RG_KEEP:-0}" = 1 ]; then
		echo "kept $T"
	else
		rm -rf "$T"
	fi
	exit "$rc"
}

# rg_sanitizer_check: print every sanitizer report of this test; non-zero
# if there is one (a leak, overflow, data race or undefined behaviour in
# any rcptgate process the test ran).
rg_sanitizer_check() {
	local f bad=0
	for f in "$T"/sanitizer/*; do
		[ -s "$f" ] || continue
		echo "FAIL - sanitizer report ${f##*/}:"
		head -n 100 "$f"
		bad=1
	done
	return "$bad"
}

# rg_track PID: kill PID at exit.
rg_track() {
	echo "$1" >>"$T/pids"
}

# rg_free_port: print a TCP port on 127.0.0.1 that nothing listens on.
rg_free_port() {
	"$RG_PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# rg_wait_port PORT [SECONDS]: wait until 127.0.0.1:PORT accepts.
rg_wait_port() {
	local port=$1 limit=${2:-15} i
	for ((i = 0; i < limit * 10; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "port $port did not open within ${limit}s" >&2
	return 1
}

# rg_exited_at_start: true (with the log's tail said) when the rcptgate
# just started ($RG_PID) is gone; RG_PID is then cleared.
rg_exited_at_start() {
	kill -0 "$RG_PID" 2>/dev/null && return 1
	echo "rcptgate exited at start:" >&2
	tail -n 20 "$T/rcptgate.log" >&2
	RG_PID=
	return 0
}

# rg_start_rcptgate CONF [ARGS...]: start the daemon in the foreground
# mode (logging to $T/rcptgate.log) and wait for its socket.
rg_start_rcptgate() {
	local conf=$1 sock i
	shift
	sock=$(sed -n 's/^[[:space:]]*socket[[:space:]]*=[[:space:]]*\([^;#[:space:]]*\).*/\1/p' "$conf" | head -n1)
	case $sock in
	unix:* | local:*) sock=${sock#*:}; rm -f "$sock" ;;
	esac
	"$RCPTGATE" -f -c "$conf" "$@" >>"$T/rcptgate.log" 2>&1 &
	RG_PID=$!
	for ((i = 0; i < 150; i++)); do
		rg_exited_at_start && return 1
		case $sock in
		inet*) sock_port=${sock#*:}; rg_wait_port "${sock_port%@*}" 1 2>/dev/null && return 0 ;;
		*) [ -S "$sock" ] && return 0 ;;
		esac
		sleep 0.1
	done
	echo "rcptgate socket $sock did not appear" >&2
	return 1
}

# rg_stop_rcptgate: SIGTERM, wait (libmilter takes up to ~5 s), then KILL.
rg_stop_rcptgate() {
	local i
	[ -n "${RG_PID:-}" ] || return 0
	kill -TERM "$RG_PID" 2>/dev/null
	for ((i = 0; i < 150; i++)); do
		kill -0 "$RG_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$RG_PID" 2>/dev/null
	wait "$RG_PID" 2>/dev/null
	RG_PID=
}

# rg_start_postfix NAME MILTER [main.cf lines...]: a private Postfix in
# $T/NAME listening on a free 127.0.0.1 port, stored in PORT_NAME.
rg_start_postfix() {
	local name=$1 milter=$2 dir=$T/$1 port line
	shift 2
	port=$(rg_free_port)
	mkdir -p "$dir/spool" "$dir/data"
	cat >"$dir/main.cf" <<-EOT
		compatibility_level = 3.6
		queue_directory = $dir/spool
		data_directory = $dir/data
		myhostname = $name.example.test
		mydomain = example.test
		myorigin = example.test
		mydestination = example.test
		mynetworks = 127.0.0.0/8
		inet_interfaces = 127.0.0.1
		inet_protocols = ipv4
		local_recipient_maps =
		alias_maps =
		alias_database =
		local_transport = discard:
		default_transport = discard:
		relay_transport = discard:
		maillog_file = $dir/postfix.log
		maillog_file_prefixes = /tmp, /var, /dev/stdout
		smtpd_milters = $milter
		milter_default_action = tempfail
		milter_command_timeout = 30s
		smtpd_banner = \$myhostname ESMTP
		smtpd_error_sleep_time = 0
		smtpd_soft_error_limit = 1000
		smtpd_hard_error_limit = 1000
		smtpd_junk_command_limit = 1000
		smtpd_client_connection_rate_limit = 0
		anvil_rate_time_unit = 60s
		disable_dns_lookups = yes
		smtp_dns_support_level = disabled
		smtputf8_enable = yes
	EOT
	for line in "$@"; do
		postconf -c "$dir" -e "$line" || return 1
	done
	cp /usr/share/postfix/master.cf.dist "$dir/master.cf"
	postconf -c "$dir" -M# smtp/inet
	postconf -c "$dir" -Me "127.0.0.1:$port/inet = 127.0.0.1:$port inet n - n - - smtpd"
	postconf -c "$dir" -F '*/*/chroot = n'
	postfix -c "$dir" set-permissions >/dev/null 2>&1
	if ! script -eqc "postfix -c $dir check" /dev/null >"$dir/check.log" 2>&1 ||
	    ! script -eqc "postfix -c $dir start" /dev/null >"$dir/start.log" 2>&1; then
		cat "$dir/check.log" "$dir/start.log" >&2
		return 1
	fi
	echo "$name" >>"$T/postfix-instances"
	printf -v "PORT_$name" '%s' "$port"
	rg_wait_port "$port" 20
}

rg_stop_postfix() {
	postfix -c "$T/$1" stop >/dev/null 2>&1
	sed -i "/^$1\$/d" "$T/postfix-instances"
}

# rg_rcpt [-s SOURCE_IP] [-f FROM] PORT ADDR...: one SMTP session; prints
# the reply to each RCPT, one line each ("550 5.1.1 <x@y>: ...").
rg_rcpt() {
	"$RG_PY" "$RG_SOURCE_DIR/test/integration/smtp_rcpt.py" "$@"
}

# rg_swaks PORT TO [ARGS...]: a whole message with swaks; prints its
# transcript (server lines start with "<-" or "<**").
rg_swaks() {
	local port=$1 to=$2
	shift 2
	swaks --server 127.0.0.1 --port "$port" --helo client.example.test \
	    --from sender@example.net --to "$to" --timeout 40 "$@" 2>&1
}

rg_ok() {
	RG_PASS=$((RG_PASS + 1))
	echo "ok - $1"
}

rg_notok() {
	RG_FAIL=$((RG_FAIL + 1))
	echo "FAIL - $1${2:+: $2}"
}

# rg_expect_eq NAME GOT WANT
rg_expect_eq() {
	if [ "$2" = "$3" ]; then rg_ok "$1"; else rg_notok "$1" "got [$2] want [$3]"; fi
}

# rg_expect_match NAME GOT EXTENDED-REGEX
rg_expect_match() {
	if [[ $2 =~ $3 ]]; then rg_ok "$1"; else rg_notok "$1" "got [$2] want /$3/"; fi
}

# rg_check NAME COMMAND...: ok when COMMAND exits 0.
rg_check() {
	local name=$1
	shift
	if "$@"; then rg_ok "$name"; else rg_notok "$name" "command failed: $*"; fi
}

# rg_done: the summary line; non-zero exit on any failure.
rg_done() {
	echo "$RG_PASS passed, $RG_FAIL failed"
	[ "$RG_FAIL" -eq 0 ]
	exit $?
}

# rg_make_table DB ADDRESS...: a SQLite recipient table holding exactly
# these addresses (through rcptgate-table, as an operator would).
rg_make_table() {
	local db=$1
	shift
	printf '%s\n' "$@" | "$RCPTGATE_TABLE" -d "$db" replace -
}

# rg_write_conf FILE SOCKET DB [extra lines...]: a config with one SQLite
# backend "local" checking example.com and example.net, harvest off.
rg_write_conf() {
	local file=$1 sock=$2 db=$3 line
	shift 3
	cat >"$file" <<-EOT
		[milter]
		socket = $sock
		user =
		socket_mode = 0666
		log_level = debug

		[policy]
		domains = example.com, example.net
		backends = local
		always_accept = postmaster, abuse

		[backend local]
		type = sqlite
		path = $db

		[harvest]
		max_unknown = 0
		max_unknown_per_session = 0
		state =
	EOT
	for line in "$@"; do
		echo "$line" >>"$file"
	done
}

# ---- fault-injection and load helpers (t_fault_*.sh, test/load/) ----

# rg_threads PID: the number of threads of PID (0 if it is gone).
rg_threads() {
	awk '/^Threads:/ { print $2; f = 1 } END { if (!f) print 0 }' \
	    "/proc/$1/status" 2>/dev/null || echo 0
}

# rg_burst PORT ADDRFILE OUT [smtpload.py options...]: concurrent SMTP
# sessions recording every RCPT answer in OUT; prints the summary line.
rg_burst() {
	"$RG_PY" "$RG_SOURCE_DIR/test/load/smtpload.py" "$@"
}

# rg_judge OUT KNOWNFILE: count the RCPT answers of OUT by class, as
# "known_250=N known_451=N known_550=N known_other=N unknown_250=N ...".
rg_judge() {
	awk 'NR == FNR { known[$1] = 1; next }
	    $1 == "RCPT" {
		cls = ($2 in known) ? "known" : "unknown"
		code = ($3 == 250 || $3 == 451 || $3 == 550) ? $3 : "other"
		n[cls "_" code]++
	    }
	    END {
		split("known unknown", c, " "); split("250 451 550 other", k, " ")
		for (i = 1; i <= 2; i++) for (j = 1; j <= 4; j++)
			printf "%s_%s=%d ", c[i], k[j], n[c[i] "_" k[j]]
		print ""
	    }' "$2" "$1"
}

# rg_field NAME LINE: the value of NAME=VALUE in LINE.
rg_field() {
	local re="(^| )$1=([^ ]*)"
	[[ $2 =~ $re ]] && echo "${BASH_REMATCH[2]}" || echo ""
}

# rg_expect_door_decisions PORT: the decisions every door must give
# through the Postfix on PORT, on the table t_postfix.sh and
# t_postfix_policy.sh load (alice, bob, Carol in mixed case, the
# catch-all @example.net; example.org not checked).
rg_expect_door_decisions() {
	local p=$1
	rg_expect_match "case-insensitive address" "$(rg_rcpt $p ALICE@Example.COM)" '^250 '
	rg_expect_match "table row in mixed case" "$(rg_rcpt $p carol@example.com)" '^250 '
	rg_expect_match "subaddress of a known user" "$(rg_rcpt $p alice+news@example.com)" '^250 '
	rg_expect_match "subaddress of an unknown user" "$(rg_rcpt $p nobody+x@example.com)" \
		'^550 5\.1\.1 <nobody\+x@example\.com>: Recipient address rejected: User unknown$'
	rg_expect_match "catch-all domain" "$(rg_rcpt $p anyone@example.net)" '^250 '
	rg_expect_match "postmaster always accepted" "$(rg_rcpt $p postmaster@example.com)" '^250 '
	rg_expect_match "abuse always accepted" "$(rg_rcpt $p Abuse@example.com)" '^250 '
	rg_expect_match "domain not checked passes" "$(rg_rcpt $p someone@example.org)" '^250 '
	rg_expect_match "trailing dot in domain" "$(rg_rcpt $p 'bob@example.com.')" '^250 '
}

# ---- the Postfix policy door (issue 16: t_postfix_policy.sh, t_policy_*.sh) ----

# rg_policy_wait SOCKET [SECONDS]: wait until SOCKET (unix:PATH,
# inet:PORT@HOST or inet6:PORT@HOST) accepts a connection; a socket
# file left by a killed daemon does not count.
rg_policy_wait() {
	"$RG_PY" -B - "$RG_SOURCE_DIR/test/integration" "$1" "${2:-15}" <<-'PYEOF'
		import sys, time
		sys.path.insert(0, sys.argv[1])
		import policy_client
		end = time.monotonic() + float(sys.argv[3])
		while True:
		    try:
		        policy_client.connect(sys.argv[2], 1.0).close()
		        sys.exit(0)
		    except OSError:
		        if time.monotonic() >= end:
		            sys.exit(1)
		        time.sleep(0.1)
	PYEOF
}

# rg_start_rcptgate_on SOCKET CONF [ARGS...]: start the daemon as
# rg_start_rcptgate does, but wait until SOCKET accepts (the policy
# door's socket, when the milter door is off). A stale socket file is
# left for the daemon to remove.
rg_start_rcptgate_on() {
	local sock=$1 conf=$2 i
	shift 2
	"$RCPTGATE" -f -c "$conf" "$@" >>"$T/rcptgate.log" 2>&1 &
	RG_PID=$!
	for ((i = 0; i < 30; i++)); do
		rg_exited_at_start && return 1
		rg_policy_wait "$sock" 0.5 && return 0
	done
	echo "rcptgate socket $sock did not accept within 15s" >&2
	return 1
}

# rg_policy SOCKET RCPT [NAME=VALUE...]: one policy request with
# protocol_state=RCPT on a new connection; prints the reply's action
# line ("action=DUNNO") or CLOSED / TIMEOUT (policy_client.py).
rg_policy() {
	"$RG_PY" -B "$RG_SOURCE_DIR/test/integration/policy_client.py" "$@"
}

# rg_log_count REGEX: how many lines of $T/rcptgate.log match REGEX.
rg_log_count() {
	grep -a -c -E -- "$1" "$T/rcptgate.log" 2>/dev/null || true
}

# rg_wait_log REGEX MIN [SECONDS]: wait until at least MIN lines of
# $T/rcptgate.log match REGEX; non-zero if they do not in time.
rg_wait_log() {
	local i
	for ((i = 0; i < ${3:-10} * 10; i++)); do
		[ "$(rg_log_count "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# rg_expect_nomatch NAME GOT EXTENDED-REGEX: ok when GOT does not match.
rg_expect_nomatch() {
	if [[ $2 =~ $3 ]]; then rg_notok "$1" "got [$2], must not match /$3/"; else rg_ok "$1"; fi
}

# rg_wait_grep EXTENDED-REGEX FILE [SECONDS]: wait until a line of FILE
# matches (Postfix writes its maillog_file through postlogd, a moment
# after the SMTP reply); non-zero if none does in time (default 5 s).
rg_wait_grep() {
	local i
	for ((i = 0; i < ${3:-5} * 10; i++)); do
		grep -a -Eq -- "$1" "$2" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
