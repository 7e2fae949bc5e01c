#!/bin/bash
# SPDX-License-Identifier: MIT
# Issue 16: the policy door against junk from a raw client. Each of a
# request over 16 KiB, a line without '=', a NUL, a control byte in an
# attribute name, binary junk, a request without
# request=smtpd_access_policy and half a request then silence
# (request_timeout = 2s, also when it trickles in a few bytes at a
# time) closes that connection and logs one
# "policy: closing connection" line; a policy connection opened before
# stays usable throughout, and the milter door (a Postfix via
# smtpd_milters) answers meanwhile. A control byte in a value is not
# junk: Postfix passes the SMTP client's bytes on (RCPT TO:<a\x01b@x>
# reaches the policy server as it is), so closing would hand any client
# Postfix's 451 4.3.5; it is decided (550 5.1.3), the reading of the
# interface's "control byte" taken here. Good requests: every non-RCPT
# protocol_state gets DUNNO; several requests on one connection, also in
# one write, are each answered; CRLF line ends are tolerated; a minimal
# request and an unknown attribute are fine. Then idle_timeout = 2s: -n
# warns (below Postfix's 300s), an idle connection is closed after about
# 2 s, and a Postfix whose cached policy connection was closed that way
# still gets decisions, not 451 4.3.5.
. "$RG_SOURCE_DIR/test/integration/lib.sh"
rg_setup

db=$T/recipients.db
PS=unix:$T/policy.sock
rg_make_table "$db" alice@example.com bob@example.com || exit 1
rg_write_conf "$T/rcptgate.conf" "unix:$T/milter.sock" "$db" \
	"[postfix_policy]" "socket = $PS" "request_timeout = 2s"
rg_start_rcptgate "$T/rcptgate.conf" || { rg_notok "rcptgate start"; rg_done; }
rg_check "policy socket accepts" rg_policy_wait "$PS" 10
rg_start_postfix mx "unix:$T/milter.sock" "mydestination = example.com" ||
	{ rg_notok "postfix start"; rg_done; }

cat >"$T/junk.py" <<-'EOF'
	# junk.py LIBDIR SOCKET LOG SMTP_RCPT PORT: each junk case on its own
	# connection; prints "NAME RESULT" lines for the shell to judge.
	import socket, subprocess, sys, time
	sys.path.insert(0, sys.argv[1])
	import policy_client as pc
	spec, logf, smtp_rcpt, port = sys.argv[2:6]
	CLOSING = b"policy: closing connection"

	def logged():
	    with open(logf, "rb") as f:
	        return f.read().count(CLOSING)

	def wait_logged(n, t=5.0):
	    end = time.monotonic() + t
	    while logged() < n and time.monotonic() < end:
	        time.sleep(0.05)
	    return logged()

	def milter_door(addr):
	    r = subprocess.run([sys.executable, smtp_rcpt, port, addr],
	                       capture_output=True, text=True, timeout=60)
	    return r.stdout.strip()[:3]

	def send(s, data):
	    try:
	        s.sendall(data)
	        return True
	    except (BrokenPipeError, ConnectionResetError):
	        return False

	REQ = b"request=smtpd_access_policy\nprotocol_state=RCPT\n"
	big = REQ + b"recipient=" + b"a" * 17000 + b"@example.com\n\n"
	many = REQ + b"".join(b"x_attr_%04d=%s\n" % (i, b"y" * 40)
	                      for i in range(450)) + b"recipient=x@example.com\n\n"
	CASES = [
	    ("over-16KiB-line", big),
	    ("over-16KiB-many-lines", many),
	    ("no-equals", REQ + b"recipient=nobody@example.com\nno equals sign here\n\n"),
	    ("nul-in-value", REQ + b"recipient=nob\x00dy@example.com\n\n"),
	    ("control-byte-in-name", REQ + b"recipi\x01ent=nobody@example.com\n\n"),
	    ("binary", b"\x00\xff\xfe\xfd\x80\x01\x02\x03\n\xff\xff\n\n"),
	    ("ff-line", REQ + b"\xff\xfe\xff\xfe\n\n"),
	    ("no-request-attr", b"protocol_state=RCPT\nrecipient=nobody@example.com\n\n"),
	    ("wrong-request-attr", b"request=junk_policy\nprotocol_state=RCPT\nrecipient=nobody@example.com\n\n"),
	]

	def outcome(s, t):
	    """"closed" (with anything it answered first) or "open"."""
	    got = b""
	    end = time.monotonic() + t
	    while time.monotonic() < end:
	        s.settimeout(max(0.01, end - time.monotonic()))
	        try:
	            d = s.recv(65536)
	        except socket.timeout:
	            break
	        except (ConnectionResetError, BrokenPipeError):
	            d = b""
	        if not d:
	            return "yes" + (" after answering %r" % got if got else "")
	        got += d
	    return "no" + (" answered %r" % got if got else "")

	keep = pc.connect(spec)
	print("keep-first %s" % pc.ask(keep, "nobody@example.com"))
	for name, data in CASES:
	    before = logged()
	    s = pc.connect(spec)
	    send(s, data)
	    c = outcome(s, 5.0)
	    s.close()
	    print("%s closed=%s logged=%d/%d keep=%s" % (
	        name, c, wait_logged(before + 1, 3.0 if c.startswith("yes") else 0.5)
	        - before, 1, pc.ask(keep, "nobody@example.com")))

	# Half a request, then silence: closed after request_timeout (2s);
	# meanwhile the kept connection and the milter door answer.
	before = logged()
	s = pc.connect(spec)
	t0 = time.monotonic()
	send(s, REQ + b"recipient=nobo")
	time.sleep(0.3)
	during = [pc.ask(keep, "alice@example.com"), milter_door("nobody@example.com"),
	          milter_door("alice@example.com")]
	c = pc.closed(s, 10.0)
	el = time.monotonic() - t0
	s.close()
	print("half-request closed=%s after=%.1f logged=%d/1 during=%s keep=%s" % (
	    "yes" if c else "no", el, wait_logged(before + 1) - before, ",".join(
	        x.split(" ")[0] for x in during), pc.ask(keep, "nobody@example.com")))
	# A request trickled a few bytes at a time, never finished: closed
	# request_timeout (2s) after its first bytes, though bytes keep coming.
	before = logged()
	s = pc.connect(spec)
	t0 = time.monotonic()
	body = pc.request("nobody@example.com") * 4
	c = False
	for i in range(0, 40):
	    if not send(s, body[i * 8:(i + 1) * 8]):
	        c = True
	        break
	    if pc.closed(s, 0.25):
	        c = True
	        break
	el = time.monotonic() - t0
	s.close()
	print("trickle closed=%s after=%.1f logged=%d/1" % (
	    "yes" if c else "no", el, wait_logged(before + 1) - before))
	# A control byte inside a value is what the SMTP client sent (a real
	# Postfix passes RCPT TO:<nob\x01dy@...> on as it is): decided, not junk.
	s = pc.connect(spec)
	before = logged()
	r1 = pc.ask(s, "nob\x01dy@example.com")
	r2 = pc.ask(s, "nob\x7fdy@example.com")
	r3 = pc.ask(s, "alice@example.com", helo_name="he\x01lo")
	s.close()
	print("control-in-value %s | %s | %s logged=%d" % (r1, r2, r3, logged() - before))
	# A 0xff byte inside a value: a 5xx answer or a close, never DUNNO.
	s = pc.connect(spec)
	r = pc.ask(s, b"nob\xffdy@example.com".decode("utf-8", "surrogateescape"))
	s.close()
	print("ff-in-recipient %s" % r.split(" ")[0])
	time.sleep(0.5)
	print("total-logged %d" % logged())
	print("keep-last %s" % pc.ask(keep, "alice@example.com"))
	keep.close()
EOF
out=$(timeout 120 "$RG_PY" -B "$T/junk.py" "$RG_SOURCE_DIR/test/integration" "$PS" \
	"$T/rcptgate.log" "$RG_SOURCE_DIR/test/integration/smtp_rcpt.py" "$PORT_mx")
echo "$out" | sed 's/^/# /'
line() { grep "^$1 " <<<"$out"; }
rg_expect_eq "kept connection answers first" "$(line keep-first)" "keep-first action=550 5.1.1 User unknown"
for c in over-16KiB-line over-16KiB-many-lines no-equals nul-in-value control-byte-in-name \
    binary ff-line no-request-attr wrong-request-attr; do
	rg_expect_eq "junk $c: closed, one line logged, kept connection still answers" \
		"$(line $c)" "$c closed=yes logged=1/1 keep=action=550 5.1.1 User unknown"
done
rg_expect_match "half a request: closed after request_timeout (2s)" "$(line half-request)" \
	'^half-request closed=yes after=([2-7]\.[0-9]|1\.[89]) logged=1/1 '
rg_expect_match "half a request: meanwhile the kept connection and the milter door answer" \
	"$(line half-request)" ' during=action=DUNNO,550,250 keep=action=550 5\.1\.1 User unknown$'
rg_expect_match "a request trickled in and never finished: closed after request_timeout" \
	"$(line trickle)" '^trickle closed=yes after=([2-7]\.[0-9]|1\.[89]) logged=1/1$'
rg_expect_eq "control bytes in values: decided on the same connection, not junk" \
	"$(line control-in-value)" \
	"control-in-value action=550 5.1.3 Bad recipient address syntax | action=550 5.1.3 Bad recipient address syntax | action=DUNNO logged=0"
rg_expect_match "0xff in a recipient: rejected or closed, never accepted" \
	"$(line ff-in-recipient)" '^ff-in-recipient (action=5[0-9][0-9]|CLOSED)$'
rg_expect_match "one log line per junk connection (11, or 12 with the 0xff close)" \
	"$(line total-logged)" '^total-logged (11|12)$'
rg_expect_eq "kept connection answers last" "$(line keep-last)" "keep-last action=DUNNO"
rg_check "closing lines are warnings naming the policy door" grep -Eq \
	'policy: closing connection from [^:]+: .+' "$T/rcptgate.log"
grep -a 'policy: closing connection' "$T/rcptgate.log" | head -n 12 | sed 's/^/# log: /'
rg_check "daemon still running" kill -0 "$RG_PID"
rg_expect_match "milter door after the junk: unknown" "$(rg_rcpt $PORT_mx nobody@example.com)" '^550 5\.1\.1 '
rg_expect_match "milter door after the junk: known" "$(rg_rcpt $PORT_mx alice@example.com)" '^250 '

# ---- good requests ----
cat >"$T/good.py" <<-'EOF'
	import sys
	sys.path.insert(0, sys.argv[1])
	import policy_client as pc
	spec = sys.argv[2]
	s = pc.connect(spec)
	for st in ("CONNECT", "EHLO", "HELO", "MAIL", "DATA", "END-OF-MESSAGE",
	           "VRFY", "ETRN"):
	    print("state-%s %s" % (st, pc.ask(s, "nobody@example.com",
	                                       protocol_state=st)))
	print("state-RCPT %s" % pc.ask(s, "nobody@example.com"))
	# Two requests in one write: two replies, in order.
	s.sendall(pc.request("alice@example.com") + pc.request("nobody@example.com"))
	buf = b""
	s.settimeout(10)
	while buf.count(b"\n\n") < 2:
	    d = s.recv(4096)
	    if not d:
	        break
	    buf += d
	print("pipelined %s" % " | ".join(x for x in buf.decode().split("\n") if x))
	# CRLF line ends are tolerated.
	crlf = pc.request("nobody@example.com").replace(b"\n", b"\r\n")
	s.sendall(crlf)
	print("crlf %s" % pc.reply(s))
	# A request just under 16 KiB with long attributes (TLS names can be
	# long) is answered.
	print("near-16KiB %s" % pc.ask(s, "nobody@example.com",
	                               ccert_subject="s" * 7000,
	                               ccert_issuer="i" * 7000))
	# Only the three attributes that matter; an attribute of a future
	# Postfix is ignored.
	s.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\nrecipient=nobody@example.com\n\n")
	print("minimal %s" % pc.reply(s))
	print("future-attr %s" % pc.ask(s, "nobody@example.com", future_attribute="x=y"))
	print("still %s" % pc.ask(s, "alice@example.com"))
	s.close()
EOF
n0=$(rg_log_count 'policy: closing connection')
out=$(timeout 60 "$RG_PY" -B "$T/good.py" "$RG_SOURCE_DIR/test/integration" "$PS")
echo "$out" | sed 's/^/# /'
for st in CONNECT EHLO HELO MAIL DATA END-OF-MESSAGE VRFY ETRN; do
	rg_expect_eq "protocol_state=$st: DUNNO (never decided)" "$(line state-$st)" "state-$st action=DUNNO"
done
rg_expect_eq "protocol_state=RCPT on the same connection: decided" "$(line state-RCPT)" \
	"state-RCPT action=550 5.1.1 User unknown"
rg_expect_eq "two requests in one write: both answered, in order" "$(line pipelined)" \
	"pipelined action=DUNNO | action=550 5.1.1 User unknown"
rg_expect_eq "CRLF line ends tolerated" "$(line crlf)" "crlf action=550 5.1.1 User unknown"
rg_expect_eq "a 14 KiB request answered" "$(line near-16KiB)" "near-16KiB action=550 5.1.1 User unknown"
rg_expect_eq "a minimal request (request, protocol_state, recipient) decided" "$(line minimal)" \
	"minimal action=550 5.1.1 User unknown"
rg_expect_eq "an unknown attribute (a future Postfix) ignored" "$(line future-attr)" \
	"future-attr action=550 5.1.1 User unknown"
rg_expect_eq "and the connection goes on" "$(line still)" "still action=DUNNO"
rg_expect_eq "good requests: no connection closed as junk" \
	"$(rg_log_count 'policy: closing connection')" "$n0"

# ---- idle_timeout ----
rg_stop_rcptgate
rm -f "$T/milter.sock"
rg_write_conf "$T/idle.conf" none "$db" "[postfix_policy]" "socket = $PS" "idle_timeout = 2s"
out=$("$RCPTGATE" -c "$T/idle.conf" -n 2>&1)
rg_expect_match "-n warns: idle_timeout below Postfix's 300s" \
	"$(grep -i 'idle_timeout' <<<"$out" | grep -v '^postfix_policy:')" '.'
echo "$out" | grep -i 'idle_timeout' | sed 's/^/# -n: /'
rg_start_rcptgate_on "$PS" "$T/idle.conf" || { rg_notok "rcptgate idle start"; rg_done; }
cat >"$T/idle.py" <<-'EOF'
	import sys, time
	sys.path.insert(0, sys.argv[1])
	import policy_client as pc
	s = pc.connect(sys.argv[2])
	silent = pc.connect(sys.argv[2])
	print("first %s" % pc.ask(s, "nobody@example.com"))
	t0 = time.monotonic()
	c = pc.closed(s, 10.0)
	print("idle closed=%s after=%.1f" % ("yes" if c else "no", time.monotonic() - t0))
	print("silent closed=%s" % ("yes" if pc.closed(silent, 3.0) else "no"))
EOF
out=$(timeout 60 "$RG_PY" -B "$T/idle.py" "$RG_SOURCE_DIR/test/integration" "$PS")
echo "$out" | sed 's/^/# /'
rg_expect_eq "idle: first request answered" "$(line first)" "first action=550 5.1.1 User unknown"
rg_expect_match "idle: connection closed after about 2 s" "$(line idle)" \
	'^idle closed=yes after=([2-7]\.[0-9]|1\.[89])$'
rg_expect_eq "idle: a connection that never sent anything is closed too" "$(line silent)" "silent closed=yes"

# Postfix caches its policy connection (smtpd_policy_service_max_idle
# 300s); rcptgate closing it first must cost no mail.
rg_start_postfix mxp "" "mydestination = example.com" \
	"smtpd_recipient_restrictions = reject_unauth_destination, check_policy_service $PS" ||
	{ rg_notok "postfix (policy) start"; rg_done; }
unknown='550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown'
rg_expect_eq "Postfix: decided" "$(rg_rcpt $PORT_mxp nobody@example.com)" "$unknown"
sleep 3.5
rg_expect_eq "Postfix after rcptgate closed its idle policy connection: still decided" \
	"$(rg_rcpt $PORT_mxp nobody@example.com)" "$unknown"
rg_expect_match "and known accepted" "$(rg_rcpt $PORT_mxp alice@example.com)" '^250 '
rg_check "no 451 4.3.5 (policy service failure) in Postfix's log" \
	bash -c "! grep -q '4.3.5' '$T/mxp/postfix.log'"
rg_done
