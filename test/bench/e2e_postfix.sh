#!/bin/bash
# SPDX-License-Identifier: MIT
# End to end: smtp-source through private Postfix instances, one per
# configuration, all running at once so rounds can be interleaved (every
# configuration gets one run per round; medians printed, with the ratio to
# configuration a measured in the same rounds):
#   a  Postfix alone (no milter, no recipient map)
#   b  Postfix's own local_recipient_maps = sqlite: on the same table
#   c  rcptgate (SQLite backend) on a unix socket
#   o  as c, but the rcptgate binary $E2E_RCPTGATE_O (another build, e.g.
#      the commit before a change, for a before/after in the same rounds)
#   d  rcptgate (SQLite backend) on TCP
#   e  Postfix's own local_recipient_maps = ldap: on a 100k-entry slapd
#   f  rcptgate's LDAP backend on the same slapd
#   p  rcptgate (SQLite backend) as Postfix's policy server on a unix
#      socket (smtpd_recipient_restrictions = reject_unauth_destination,
#      check_policy_service), milter door off ([milter] socket = none)
#   po as p, but the rcptgate binary $E2E_RCPTGATE_O (before/after of a
#      change to the policy door, in the same rounds)
#   pl as p, with the LDAP backend on the same slapd as e and f
#   n  as p, but the policy server is test/bench/nullpolicy.c (one
#      thread, epoll, DUNNO to everything): the floor of any policy server
#   nt as n, nullpolicy -t (a thread per connection blocked in recv)
# The SQLite table has 1,000,000 filler rows plus every recipient sent.
# Each round uses its own recipient base (rN@example.com), so unique
# recipients (-N) are never in rcptgate's cache from an earlier round.
#
#   E2E_CONFIGS="a c d" E2E_ROUNDS=3 E2E_MESSAGES=2000 E2E_SESSIONS=10 \
#   E2E_RCPTS=5 E2E_UNIQUE="0 1" test/bench/e2e_postfix.sh
#
# With E2E_CPU=1 each configuration's Postfix and rcptgate run in a
# cpuacct cgroup of their own (smtp-source outside it), and the lines add
# the median CPU the mail system spent per message (us) and its ratio to
# a: on these shared machines msg/s swings +-30 % between rounds, CPU per
# message holds better (a few percent when the machine is quiet, +-15 %
# at a load average of 15 on 2 cores). The reading is taken after the queue
# has drained. slapd runs in a group of its own, shared by e, f and pl;
# rounds run one configuration at a time and nothing else queries it, so
# what it spends during a configuration's run is added to that
# configuration's figure (e, f and pl include slapd; the line also shows
# slapd's part, "slapd_us/msg").
#
# Ratios: after msgs/s, "x_a" is CONF's msgs/s / a's (higher is better);
# after cpu_us/msg, "x_a" is CONF's CPU per message / a's (lower is
# better). The "target" lines (p against a and b, pl against e) use the
# throughput-like form of the issue's targets: BASE's CPU per message /
# CONF's, so "p >= 0.95 x a" is met when a's CPU / p's CPU >= 0.95.
#
# E2E_HOOK=PROGRAM is run before each measured run (after its CPU
# reading) and after it (after the drain, before the reading) as
# "PROGRAM start|stop" with E2E_CONF, E2E_ROUND, E2E_MODE (repeat or
# unique), E2E_MESSAGES, E2E_PID (the configuration's rcptgate, if any)
# and E2E_CGROUPS (the cpuacct groups its figure is read from) in the
# environment, its output to stderr: test/bench/e2e_prof.sh profiles
# that way (per-process CPU, strace -c, perf record).
#
# Output lines: "e2e MODE CONF msgs/s x_a RATIO errors=N rounds: ..."
# [cpu_us/msg ...] and "target MODE CONF/BASE cpu ..." (lib_bench.sh,
# bench_rounds). Not part of
# ctest: a benchmark only reports. Needs root (Postfix), postfix-sqlite
# and postfix-ldap for b and e.
set -u
: "${RG_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
. "$RG_SOURCE_DIR/test/integration/lib.sh"
. "$RG_SOURCE_DIR/test/bench/lib_bench.sh"
. "$RG_SOURCE_DIR/test/integration/lib_slapd.sh"
rg_setup

CONFIGS=${E2E_CONFIGS:-a b c d e f p pl}
ROUNDS=${E2E_ROUNDS:-3}
M=${E2E_MESSAGES:-2000}
S=${E2E_SESSIONS:-10}
R=${E2E_RCPTS:-5}
UNIQUE=${E2E_UNIQUE:-0 1}
NUSERS=${E2E_LDAP_USERS:-100000}
FILLER=${E2E_TABLE_ROWS:-1000000}
SRC=(smtp-source -s "$S" -m "$M" -r "$R" -M client.example.test
    -f sender@example.net)
[ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 15 ] || { echo "rounds 1..15" >&2; exit 2; }

want() { [[ " $CONFIGS " == *" $1 "* ]]; }

if { want o || want po; } && [ ! -x "${E2E_RCPTGATE_O:-}" ]; then
	echo "configs o and po need E2E_RCPTGATE_O=/path/to/rcptgate" >&2
	exit 2
fi

# cpuacct groups, one per configuration, when E2E_CPU=1.
CG_ROOT=/sys/fs/cgroup/cpuacct
CG_BASE=$CG_ROOT/rg-e2e-$$
CG_HOME=$CG_ROOT$(awk -F: '$2 ~ /(^|,)cpuacct(,|$)/ { print $3 }' /proc/self/cgroup)
if [ "${E2E_CPU:-0}" = 1 ]; then
	mkdir "$CG_BASE" || exit 1
	# Remove the groups once this script and what it started are gone.
	(
		while kill -0 $$ 2>/dev/null; do sleep 1; done
		sleep 15
		rmdir "$CG_BASE"/* "$CG_BASE"
	) >/dev/null 2>&1 &
fi

# cg_enter CONF / cg_leave: move this shell into CONF's group (what it
# starts lands there too) and back.
cg_enter() {
	[ "${E2E_CPU:-0}" = 1 ] || return 0
	mkdir -p "$CG_BASE/$1" && echo "$BASHPID" >"$CG_BASE/$1/cgroup.procs"
}
cg_leave() {
	[ "${E2E_CPU:-0}" = 1 ] || return 0
	echo "$BASHPID" >"$CG_HOME/cgroup.procs"
}
cg_usage() {
	cat "$CG_BASE/$1/cpuacct.usage" 2>/dev/null || echo 0
}

# Every recipient any round sends: rN@example.com and KrN@example.com.
rcpt_list() {
	bench_rcpt_list "$ROUNDS" "$M" "$R"
}

db=$T/recipients.db
rcpt_list | bench_table "$db" "$FILLER" || exit 1

if want e || want f || want pl; then
	rg_slapd_init bench || exit 1
	{
		rg_slapd_gen_users "$NUSERS"
		rcpt_list | awk '{ printf "dn: uid=x%d,ou=people,dc=example,dc=com\n", NR
			printf "objectClass: inetOrgPerson\nuid: x%d\ncn: x\nsn: x\n", NR
			printf "mail: %s\n\n", $0 }'
	} >"$T/users.ldif"
	rg_slapd_load bench "$T/users.ldif" || exit 1
	cg_enter slapd
	rg_slapd_start bench || exit 1
	cg_leave
	ldap_uri=$SLAPD_URI_bench
	ldap_port=$SLAPD_PORT_bench
fi

# conf FILE SOCKET BACKEND-LINES...
conf() {
	local file=$1 sock=$2
	shift 2
	{
		printf '[milter]\nsocket = %s\nuser =\nsocket_mode = 0666\n' "$sock"
		printf 'log_level = warning\n[policy]\ndomains = example.com\n'
		printf 'backends = b\n[harvest]\nmax_unknown = 0\n'
		printf 'max_unknown_per_session = 0\nstate =\n[backend b]\n'
		printf '%s\n' "$@"
	} >"$file"
}

# conf_policy FILE SOCKET BACKEND-LINES...: as conf, with the milter door
# off and the policy door on SOCKET. [postfix_policy] comes first so that
# rg_start_rcptgate, which waits for the first "socket =" of the file,
# waits for the policy socket.
conf_policy() {
	local file=$1 sock=$2
	shift 2
	conf "$file.tmp" none "$@"
	{ printf '[postfix_policy]\nsocket = %s\n' "$sock"; cat "$file.tmp"; } >"$file"
	rm -f "$file.tmp"
}

# start_milter NAME CONF: an rcptgate of our own (lib.sh tracks only one).
start_milter() {
	rg_start_rcptgate "$2" || exit 1
	rg_track "$RG_PID"
	printf -v "PID_$1" '%s' "$RG_PID"
	RG_PID=
}

declare -A MILTER EXTRA
for c in $CONFIGS; do
	MILTER[$c]=
	EXTRA[$c]="local_recipient_maps ="
done
if want c; then
	conf "$T/c.conf" "unix:$T/c.sock" "type = sqlite" "path = $db"
	cg_enter c
	start_milter c "$T/c.conf"
	cg_leave
	MILTER[c]="unix:$T/c.sock"
fi
if want o; then
	conf "$T/o.conf" "unix:$T/o.sock" "type = sqlite" "path = $db"
	cg_enter o
	RCPTGATE=$E2E_RCPTGATE_O start_milter o "$T/o.conf"
	cg_leave
	MILTER[o]="unix:$T/o.sock"
fi
if want d; then
	mport=$(rg_free_port)
	conf "$T/d.conf" "inet:$mport@127.0.0.1" "type = sqlite" "path = $db"
	cg_enter d
	start_milter d "$T/d.conf"
	cg_leave
	MILTER[d]="inet:127.0.0.1:$mport"
fi
if want f; then
	conf "$T/f.conf" "unix:$T/f.sock" "type = ldap" "uri = $ldap_uri" \
	    "base = dc=example,dc=com"
	cg_enter f
	start_milter f "$T/f.conf"
	cg_leave
	MILTER[f]="unix:$T/f.sock"
fi
# p and pl: rcptgate and that Postfix share the configuration's group,
# as c's do; slapd (pl) is counted as for e and f (see above).
for c in p po; do
	want $c || continue
	bin=$RCPTGATE
	[ $c = po ] && bin=$E2E_RCPTGATE_O
	conf_policy "$T/$c.conf" "unix:$T/$c.sock" "type = sqlite" "path = $db"
	cg_enter $c
	RCPTGATE=$bin start_milter $c "$T/$c.conf"
	cg_leave
	EXTRA[$c]="smtpd_recipient_restrictions = reject_unauth_destination, check_policy_service unix:$T/$c.sock"
done
if want pl; then
	conf_policy "$T/pl.conf" "unix:$T/pl.sock" "type = ldap" \
	    "uri = $ldap_uri" "base = dc=example,dc=com"
	cg_enter pl
	start_milter pl "$T/pl.conf"
	cg_leave
	EXTRA[pl]="smtpd_recipient_restrictions = reject_unauth_destination, check_policy_service unix:$T/pl.sock"
fi
# n and nt: the null policy server, built here, in the group as rcptgate.
if want n || want nt; then
	gcc -std=c11 -D_GNU_SOURCE -O2 -o "$T/nullpolicy" \
	    "$RG_SOURCE_DIR/test/bench/nullpolicy.c" -lpthread || exit 1
fi
for c in n nt; do
	want $c || continue
	cg_enter $c
	"$T/nullpolicy" $([ $c = nt ] && echo -t) "$T/$c.sock" &
	rg_track $!
	cg_leave
	for ((i = 0; i < 50; i++)); do
		[ -S "$T/$c.sock" ] && break
		sleep 0.1
	done
	EXTRA[$c]="smtpd_recipient_restrictions = reject_unauth_destination, check_policy_service unix:$T/$c.sock"
done
if want b; then
	printf 'dbpath = %s\nquery = SELECT address FROM recipients WHERE address = '"'"'%%s'"'"'\n' \
	    "$db" >"$T/pf-sqlite.cf"
	EXTRA[b]="local_recipient_maps = sqlite:$T/pf-sqlite.cf"
fi
if want e; then
	cat >"$T/pf-ldap.cf" <<-EOT
		server_host = ldap://127.0.0.1:$ldap_port
		search_base = dc=example,dc=com
		query_filter = (mail=%s)
		result_attribute = mail
		bind = no
		version = 3
	EOT
	EXTRA[e]="local_recipient_maps = ldap:$T/pf-ldap.cf"
fi
# in_flow_delay = 0: with the default 1s, Postfix alone (a) stalls on its
# own flow control in some runs (167-200 msgs/s against 340-400 in the
# others, same CPU per message), which makes every ratio to a swing.
for c in $CONFIGS; do
	cg_enter "$c"
	rg_start_postfix "pf$c" "${MILTER[$c]}" "${EXTRA[$c]}" \
	    "mydestination = example.com" "smtpd_milters = ${MILTER[$c]}" \
	    "in_flow_delay = 0" || exit 1
	cg_leave
done

# drain NAME: wait (at most 60 s) until the queue is empty.
drain() {
	local d=$T/$1/spool i
	for ((i = 0; i < 600; i++)); do
		[ -z "$(find "$d/incoming" "$d/active" "$d/maildrop" -type f \
		    2>/dev/null | head -n1)" ] && return 0
		sleep 0.1
	done
	echo "# queue of $1 did not drain" >&2
}

# run CONF ROUND UNIQUE: one smtp-source run; prints msgs/s, counts errors
# and, with E2E_CPU=1, appends the CPU us per message to $T/cpu.CONF.
run() {
	local c=$1 r=$2 u=$3 port t0 t1 errs var cpu0 cpu1 s0=0 s1=0 cgs
	var=PORT_pf$c
	port=${!var}
	cgs=$CG_BASE/$c
	case $c in e | f | pl) cgs="$cgs $CG_BASE/slapd" ;; esac
	cpu0=$(cg_usage "$c")
	case $c in e | f | pl) s0=$(cg_usage slapd) ;; esac
	var=PID_$c
	[ -n "${E2E_HOOK:-}" ] && E2E_CONF=$c E2E_ROUND=$r \
	    E2E_MODE=$([ -n "$u" ] && echo unique || echo repeat) \
	    E2E_MESSAGES=$M E2E_PID=${!var:-} E2E_CGROUPS=$cgs \
	    "$E2E_HOOK" start >&2
	t0=$(date +%s.%N)
	"${SRC[@]}" ${u:+-N} -t "r$r@example.com" "127.0.0.1:$port" \
	    >"$T/src.out" 2>&1
	t1=$(date +%s.%N)
	errs=$(grep -c . "$T/src.out")
	echo "$errs" >>"$T/errs.$c"	# run is called in $(...)
	[ "$errs" -gt 0 ] && head -n 2 "$T/src.out" | sed "s/^/# $c: /" >&2
	drain "pf$c"
	[ -n "${E2E_HOOK:-}" ] && E2E_CONF=$c E2E_ROUND=$r \
	    E2E_MODE=$([ -n "$u" ] && echo unique || echo repeat) \
	    E2E_MESSAGES=$M E2E_PID=${!var:-} E2E_CGROUPS=$cgs \
	    "$E2E_HOOK" stop >&2
	if [ "${E2E_CPU:-0}" = 1 ]; then
		cpu1=$(cg_usage "$c")
		case $c in
		e | f | pl)
			s1=$(cg_usage slapd)
			awk -v a="$s0" -v b="$s1" -v m="$M" \
			    'BEGIN { printf "%.0f\n", (b - a) / 1000 / m }' \
			    >>"$T/slapd.$c"
			;;
		esac
		awk -v a="$cpu0" -v b="$cpu1" -v sa="$s0" -v sb="$s1" -v m="$M" \
		    'BEGIN { printf "%.0f\n", (b - a + sb - sa) / 1000 / m }' \
		    >>"$T/cpu.$c"
	fi
	echo "$M $t0 $t1" | awk '{ printf "%.1f\n", $1 / ($3 - $2) }'
}

# Warm up every instance (smtpd processes, milter threads, slapd cache).
for c in $CONFIGS; do
	var=PORT_pf$c
	smtp-source -s "$S" -m 100 -r "$R" -M client.example.test \
	    -f sender@example.net -t r0@example.com "127.0.0.1:${!var}" \
	    >/dev/null 2>&1
	drain "pf$c"
done

echo "# e2e_postfix: smtp-source -s $S -m $M -r $R, $ROUNDS interleaved" \
    "rounds, medians; load shared with other work on $(nproc) cores;" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "# x_a: msgs/s CONF / a (higher better); cpu_us/msg CONF / a (lower" \
    "better; e f pl include slapd). target lines: CPU/msg of BASE / of" \
    "CONF (throughput-like, >= the target is met)"
BENCH_TARGETS="p:a:0.95 p:b:1.0 pl:e:1.0" \
    bench_rounds "$CONFIGS" "$ROUNDS" "$UNIQUE"
echo "# load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
exit 0
