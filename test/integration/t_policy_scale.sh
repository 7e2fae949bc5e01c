#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 16: the policy door under many connections. 1000 idle policy
# connections plus 200 busy ones (20 requests each, known and unknown):
# every request answered right in bounded time, the daemon's threads
# stay within max_connections plus a few and come back near the
# baseline once the connections close. max_connections = 50: the 51st
# connection is closed at once with one warning, the 50 go on, and a
# freed slot is taken again; a reload raising it to 60 lets 55 in.
# Reload under load: 20 connections asking in a loop while SIGUSR1
# reloads a changed table and a changed config: no request unanswered,
# a known recipient never 550, an unknown never accepted, and the
# changes take effect.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

# 1200 sockets in the client and as many in the daemon, and a margin.
[ "$(ulimit -n)" -ge 4096 ] || ulimit -n 4096 ||
	{ rg_notok "ulimit -n 4096"; rg_done; }

db=$T/recipients.db
PS=unix:$T/policy.sock
for i in $(seq 0 49); do echo "k$i@example.com"; done >"$T/known.txt"
"$RCPTGATE_TABLE" -d "$db" replace - <"$T/known.txt" || exit 1
rg_write_conf "$T/rcptgate.conf" none "$db" "[postfix_policy]" "socket = $PS" \
	"max_connections = 1500"
sed -i 's/^log_level = debug/log_level = info/' "$T/rcptgate.conf"
rg_start_rcptgate_on "$PS" "$T/rcptgate.conf" || { rg_notok "rcptgate start"; rg_done; }

cat >"$T/scale.py" <<-'EOF'
	# scale.py LIBDIR SOCKET PID IDLE BUSY REQS: IDLE idle connections,
	# then BUSY threads each asking REQS requests on its own connection
	# (even: a known k<N>, odd: an unknown); the daemon's peak thread
	# count is sampled throughout.
	import sys, threading, time
	sys.path.insert(0, sys.argv[1])
	import policy_client as pc
	spec, pid = sys.argv[2], sys.argv[3]
	nidle, nbusy, nreq = map(int, sys.argv[4:7])

	def threads():
	    try:
	        with open("/proc/%s/status" % pid) as f:
	            for line in f:
	                if line.startswith("Threads:"):
	                    return int(line.split()[1])
	    except OSError:
	        pass
	    return 0

	peak = [0]
	stop = threading.Event()
	def sampler():
	    while not stop.is_set():
	        peak[0] = max(peak[0], threads())
	        time.sleep(0.05)
	threading.Thread(target=sampler, daemon=True).start()

	# A burst faster than the daemon accepts fills the listen backlog: a
	# unix-socket connect then fails with EAGAIN at once; try again.
	t0 = time.monotonic()
	idle, failed, again = [], 0, 0
	for i in range(nidle):
	    for attempt in range(200):
	        try:
	            idle.append(pc.connect(spec, 20.0))
	            break
	        except BlockingIOError:
	            again += 1
	            time.sleep(0.02)
	        except OSError:
	            failed += 1
	            break
	    else:
	        failed += 1
	# Each idle connection proves it was taken: the daemon answers one
	# request on it, then it idles.
	idle_ok = sum(1 for s in idle
	              if pc.ask(s, "k1@example.com", timeout=20.0) == "action=DUNNO")
	print("idle opened=%d failed=%d answered=%d secs=%.1f eagain=%d" % (
	    len(idle), failed, idle_ok, time.monotonic() - t0, again))

	lock = threading.Lock()
	res = {"ok": 0, "wrong": 0, "unanswered": 0, "tempfail": 0}
	def busy(w):
	    mine = {"ok": 0, "wrong": 0, "unanswered": 0, "tempfail": 0}
	    s = None
	    for attempt in range(200):
	        try:
	            s = pc.connect(spec, 30.0)
	            break
	        except BlockingIOError:
	            time.sleep(0.02)
	        except OSError:
	            break
	    if s is None:
	        mine["unanswered"] += nreq
	    for i in range(nreq if s else 0):
	        if i % 2 == 0:
	            r = pc.ask(s, "k%d@example.com" % ((w + i) % 50), timeout=30.0)
	            want = "action=DUNNO"
	        else:
	            r = pc.ask(s, "u%d.%d@example.com" % (w, i), timeout=30.0)
	            want = "action=550 5.1.1 User unknown"
	        if r == want:
	            mine["ok"] += 1
	        elif r.startswith("action=451 "):
	            mine["tempfail"] += 1
	        elif r.startswith("action="):
	            mine["wrong"] += 1
	            print("wrong: %s" % r, file=sys.stderr)
	        else:
	            mine["unanswered"] += 1
	            print("unanswered: %s" % r, file=sys.stderr)
	            break
	    if s:
	        s.close()
	    with lock:
	        for k in res:
	            res[k] += mine[k]
	t1 = time.monotonic()
	ts = [threading.Thread(target=busy, args=(w,)) for w in range(nbusy)]
	for t in ts:
	    t.start()
	for t in ts:
	    t.join(120)
	print("busy ok=%d wrong=%d unanswered=%d tempfail=%d secs=%.1f" % (
	    res["ok"], res["wrong"], res["unanswered"], res["tempfail"],
	    time.monotonic() - t1))
	# The idle ones are still there and still answer.
	still = sum(1 for s in idle[:: max(1, nidle // 50)]
	            if pc.ask(s, "nobody@example.com", timeout=20.0) ==
	            "action=550 5.1.1 User unknown")
	print("idle-after answered=%d of %d" % (still, len(idle[:: max(1, nidle // 50)])))
	stop.set()
	time.sleep(0.1)
	print("peak threads=%d" % peak[0])
	for s in idle:
	    s.close()
EOF
line() { grep "^$1 " <<<"$out"; }

rg_expect_eq "warm-up" "$(rg_policy "$PS" k0@example.com)" action=DUNNO
sleep 0.5
THREADS0=$(rg_threads "$RG_PID")
echo "# baseline threads=$THREADS0"
start=$(date +%s)
out=$(timeout 150 "$RG_PY" -B "$T/scale.py" "$RG_SOURCE_DIR/test/integration" "$PS" \
	"$RG_PID" 1000 200 20 2>"$T/scale.err")
echo "$out" | sed 's/^/# /'
head -n 5 "$T/scale.err" | sed 's/^/# stderr: /'
rg_expect_match "1000 idle connections open, each answered once" "$(line idle)" \
	'^idle opened=1000 failed=0 answered=1000 '
rg_expect_match "200 busy x 20 requests: all 4000 answered right" "$(line busy)" \
	'^busy ok=4000 wrong=0 unanswered=0 tempfail=0 '
rg_expect_match "idle connections still answer afterwards" "$(line idle-after)" \
	'^idle-after answered=([0-9]+) of \1$'
rg_check "within 120 s" test $(($(date +%s) - start)) -le 120
peak=$(rg_field threads "$(line peak)")
rg_check "peak threads $peak <= max_connections + 30" test "${peak:-99999}" -le 1530
rg_check "daemon still running" kill -0 "$RG_PID"
n=
for ((i = 0; i < 100; i++)); do
	n=$(rg_threads "$RG_PID")
	[ "$n" -le $((THREADS0 + 2)) ] && break
	sleep 0.2
done
rg_check "threads back near the baseline $THREADS0 within 20 s (now $n)" test "$n" -le $((THREADS0 + 2))
rg_expect_eq "answers after the storm" "$(rg_policy "$PS" nobody@example.com)" \
	'action=550 5.1.1 User unknown'

# ---- max_connections = 50 ----
rg_stop_rcptgate
rg_write_conf "$T/fifty.conf" none "$db" "[postfix_policy]" "socket = $PS" \
	"max_connections = 50"
rg_start_rcptgate_on "$PS" "$T/fifty.conf" || { rg_notok "rcptgate (50) start"; rg_done; }
cat >"$T/fifty.py" <<-'EOF'
	import sys, time
	sys.path.insert(0, sys.argv[1])
	import policy_client as pc
	spec = sys.argv[2]
	conns = [pc.connect(spec) for _ in range(50)]
	print("first %d" % sum(1 for s in conns if pc.ask(s, "k2@example.com") == "action=DUNNO"))
	# The 51st and a 52nd: closed at once (a reply to a request is not
	# awaited: "CLOSED" is the only right outcome).
	for name in ("extra51", "extra52"):
	    t0 = time.monotonic()
	    try:
	        x = pc.connect(spec)
	        r = pc.ask(x, "k3@example.com", timeout=5.0)
	        x.close()
	    except OSError as e:
	        r = "CONNECT-ERROR"
	    print("%s %s secs=%.1f" % (name, r, time.monotonic() - t0))
	print("again %d" % sum(1 for s in conns
	                       if pc.ask(s, "nobody@example.com") == "action=550 5.1.1 User unknown"))
	# Free one slot: a new connection is taken (bounded retries).
	conns.pop().close()
	r = "none"
	for i in range(50):
	    time.sleep(0.1)
	    try:
	        x = pc.connect(spec)
	        r = pc.ask(x, "k4@example.com", timeout=5.0)
	        x.close()
	    except OSError:
	        r = "CONNECT-ERROR"
	    if r == "action=DUNNO":
	        break
	print("freed %s" % r)
	for s in conns:
	    s.close()
EOF
n0=$(rg_log_count 'connections open, the limit of \[postfix_policy\] max_connections')
out=$(timeout 90 "$RG_PY" -B "$T/fifty.py" "$RG_SOURCE_DIR/test/integration" "$PS")
echo "$out" | sed 's/^/# /'
rg_expect_eq "50 connections taken and answered" "$(line first)" "first 50"
rg_expect_match "the 51st is closed at once" "$(line extra51)" '^extra51 CLOSED secs=[0-2]\.'
rg_expect_match "the 52nd too" "$(line extra52)" '^extra52 CLOSED secs=[0-2]\.'
rg_expect_eq "the 50 still answer" "$(line again)" "again 50"
rg_expect_eq "a freed slot is taken again" "$(line freed)" "freed action=DUNNO"
rg_check "the limit warning logged" rg_wait_log \
	'warning: policy: 50 connections open, the limit of \[postfix_policy\] max_connections; closing a new one' \
	$((n0 + 1)) 3
rg_expect_eq "the warning logged once (at most once a minute)" \
	"$(rg_log_count 'connections open, the limit of \[postfix_policy\] max_connections')" $((n0 + 1))

# max_connections follows a reload: 60 now, so 55 at once all answered.
sed -i 's/^max_connections = 50/max_connections = 60/' "$T/fifty.conf"
n0=$(rg_log_count 'reload')
kill -USR1 "$RG_PID"
rg_wait_log 'reload' $((n0 + 1)) 5
cat >"$T/sixty.py" <<-'EOF'
	import sys
	sys.path.insert(0, sys.argv[1])
	import policy_client as pc
	conns = [pc.connect(sys.argv[2]) for _ in range(55)]
	print("sixty %d" % sum(1 for s in conns if pc.ask(s, "k5@example.com", timeout=5.0) == "action=DUNNO"))
	for s in conns:
	    s.close()
EOF
out=$(timeout 60 "$RG_PY" -B "$T/sixty.py" "$RG_SOURCE_DIR/test/integration" "$PS")
rg_expect_eq "max_connections raised to 60 by a reload: 55 connections answered" "$(line sixty)" "sixty 55"

# ---- reload under load ----
rg_stop_rcptgate
rg_start_rcptgate_on "$PS" "$T/rcptgate.conf" || { rg_notok "rcptgate (reload) start"; rg_done; }
cat >"$T/reload.py" <<-'EOF'
	# 20 connections asking until STOPFILE appears (at most 3000 each).
	import os, sys, threading
	sys.path.insert(0, sys.argv[1])
	import policy_client as pc
	spec, startfile, stopfile = sys.argv[2:5]
	lock = threading.Lock()
	res = {"sent": 0, "ok": 0, "known550": 0, "unknown_ok": 0,
	       "tempfail": 0, "other": 0, "unanswered": 0}
	started = [0]
	def worker(w):
	    mine = dict.fromkeys(res, 0)
	    s = pc.connect(spec, 30.0)
	    with lock:
	        started[0] += 1
	        if started[0] == 20:
	            open(startfile, "w").close()
	    for i in range(3000):
	        if os.path.exists(stopfile):
	            break
	        known = i % 2 == 0
	        rcpt = "k%d@example.com" % ((w + i) % 50) if known else \
	            "u%d.%d@example.com" % (w, i)
	        mine["sent"] += 1
	        r = pc.ask(s, rcpt, timeout=30.0)
	        if r == ("action=DUNNO" if known else "action=550 5.1.1 User unknown"):
	            mine["ok"] += 1
	        elif known and r.startswith("action=550"):
	            mine["known550"] += 1
	        elif not known and r == "action=DUNNO":
	            mine["unknown_ok"] += 1
	        elif r.startswith("action=451 "):
	            mine["tempfail"] += 1
	        elif r.startswith("action="):
	            mine["other"] += 1
	            print("other: %s" % r, file=sys.stderr)
	        else:
	            mine["unanswered"] += 1
	            print("unanswered: %s" % r, file=sys.stderr)
	            break
	    s.close()
	    with lock:
	        for k in res:
	            res[k] += mine[k]
	ts = [threading.Thread(target=worker, args=(w,)) for w in range(20)]
	for t in ts:
	    t.start()
	for t in ts:
	    t.join(120)
	print("load " + " ".join("%s=%d" % kv for kv in res.items()))
EOF
timeout 150 "$RG_PY" -B "$T/reload.py" "$RG_SOURCE_DIR/test/integration" "$PS" \
	"$T/load.started" "$T/load.stop" >"$T/reload.out" 2>"$T/reload.err" &
lpid=$!
for ((i = 0; i < 100; i++)); do
	[ -e "$T/load.started" ] && break
	sleep 0.1
done
rg_check "load running" test -e "$T/load.started"
sleep 0.5
# A changed table: one more known recipient (never asked before).
{ cat "$T/known.txt"; echo late@example.com; } | "$RCPTGATE_TABLE" -d "$db" replace - >/dev/null
kill -USR1 "$RG_PID"
sleep 0.5
# A changed config: another table (the same rows and one more) and
# another always_accept.
{ cat "$T/known.txt"; echo late2@example.com; } | "$RCPTGATE_TABLE" -d "$T/second.db" replace - >/dev/null
sed -i "s|^path = $db|path = $T/second.db|; s/^always_accept = postmaster, abuse/always_accept = postmaster, abuse, late3/" \
	"$T/rcptgate.conf"
kill -USR1 "$RG_PID"
sleep 0.5
for i in 1 2 3; do
	kill -USR1 "$RG_PID"
	sleep 0.2
done
sleep 0.5
touch "$T/load.stop"
wait "$lpid"
out=$(cat "$T/reload.out")
echo "$out" | sed 's/^/# /'
head -n 5 "$T/reload.err" | sed 's/^/# stderr: /'
l=$(line load)
rg_check "requests sent under reload ($(rg_field sent "$l"))" test "$(rg_field sent "$l")" -ge 200
rg_expect_eq "every request answered right" \
	"$(rg_field ok "$l")/$(rg_field unanswered "$l")/$(rg_field known550 "$l")/$(rg_field unknown_ok "$l")/$(rg_field other "$l")" \
	"$(rg_field sent "$l")/0/0/0/0"
rg_expect_eq "no tempfail either" "$(rg_field tempfail "$l")" 0
rg_check "reloads logged" rg_wait_log 'reload' 5 3
rg_expect_eq "after reload: the config's new table" "$(rg_policy "$PS" late2@example.com)" action=DUNNO
rg_expect_eq "after reload: the config's new always_accept" "$(rg_policy "$PS" late3@example.com)" action=DUNNO
rg_expect_eq "after reload: unknown still 550" "$(rg_policy "$PS" nobody@example.com)" \
	'action=550 5.1.1 User unknown'
rg_check "daemon still running" kill -0 "$RG_PID"

# ---- out of descriptors (ulimit -n 64, 100 connections): the acceptor
# waits instead of spinning, and takes connections again afterwards ----
rg_stop_rcptgate
(ulimit -n 64 && exec "$RCPTGATE" -f -c "$T/rcptgate.conf") >>"$T/rcptgate.log" 2>&1 &
RG_PID=$!
rg_check "rcptgate with 64 descriptors up" rg_policy_wait "$PS" 15
cat >"$T/emfile.py" <<-'EOF'
	import sys, time
	sys.path.insert(0, sys.argv[1])
	import policy_client as pc
	spec, pid = sys.argv[2], sys.argv[3]
	def cpu():
	    with open("/proc/%s/stat" % pid) as f:
	        v = f.read().rsplit(")", 1)[1].split()
	    return int(v[11]) + int(v[12])	# utime + stime, in ticks
	conns = []
	for i in range(100):
	    try:
	        conns.append(pc.connect(spec, 2.0))
	    except OSError:
	        pass
	# Ask on all, then read the answers within one shared 8 s: those
	# the daemon could not accept stay unanswered.
	for s in conns:
	    s.sendall(pc.request("k6@example.com"))
	end = time.monotonic() + 8.0
	replies = [pc.reply(s, max(0.01, end - time.monotonic())) for s in conns]
	# Known: DUNNO, or 451 when the backend found no descriptor either;
	# never a reject.
	answered = sum(1 for r in replies if r == "action=DUNNO" or r.startswith("action=451 "))
	wrong = sum(1 for r in replies if r.startswith("action=") and
	            r != "action=DUNNO" and not r.startswith("action=451 "))
	print("replies %s" % sorted(set(r.split(" ")[0] + ":%d" % replies.count(r) for r in replies)))
	c0 = cpu()
	time.sleep(2.0)
	print("held open=%d answered=%d wrong=%d cpu_ticks=%d" % (len(conns), answered, wrong, cpu() - c0))
	for s in conns:
	    s.close()
	r = "none"
	for i in range(50):
	    time.sleep(0.1)
	    try:
	        x = pc.connect(spec, 2.0)
	        r = pc.ask(x, "nobody@example.com", timeout=2.0)
	        x.close()
	    except OSError:
	        r = "CONNECT-ERROR"
	    if r.startswith("action=550"):
	        break
	print("after %s" % r)
	x = pc.connect(spec, 2.0)
	print("after-known %s" % pc.ask(x, "k7@example.com", timeout=5.0))
	x.close()
EOF
out=$(timeout 90 "$RG_PY" -B "$T/emfile.py" "$RG_SOURCE_DIR/test/integration" "$PS" "$RG_PID")
echo "$out" | sed 's/^/# /'
l=$(line held)
rg_check "out of descriptors: some connections served ($(rg_field answered "$l") of 100)" \
	test "$(rg_field answered "$l")" -ge 10
ticks=$(rg_field cpu_ticks "$l")
rg_expect_eq "out of descriptors: a known recipient never rejected" "$(rg_field wrong "$l")" 0
rg_check "out of descriptors: the acceptor does not spin (${ticks} ticks in 2 s)" test "${ticks:-999}" -le 60
rg_expect_eq "descriptors free again: unknown rejected" "$(line after)" "after action=550 5.1.1 User unknown"
rg_expect_eq "descriptors free again: known accepted" "$(line after-known)" "after-known action=DUNNO"
rg_check "the accept failure logged" grep -q 'policy: accept' "$T/rcptgate.log"
rg_check "daemon still running" kill -0 "$RG_PID"
rg_done
