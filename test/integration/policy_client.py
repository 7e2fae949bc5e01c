#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A raw Postfix policy-protocol client (SMTPD_POLICY_README) for the
tests of rcptgate's policy door. As a module: connect(), request(),
reply(), ask(), closed(). As a command:

  policy_client.py SOCKET RCPT [NAME=VALUE...]

one request with protocol_state=RCPT for RCPT (the other attributes as
Postfix sends them, overridden by NAME=VALUE; NAME= drops one); prints
the reply's action ("action=DUNNO"), or CLOSED / TIMEOUT.

SOCKET is unix:PATH, inet:PORT@HOST or inet6:PORT@HOST (rcptgate's own
notation), or a bare PATH."""
import socket
import sys
import time

DEFAULTS = [
    ("request", "smtpd_access_policy"),
    ("protocol_state", "RCPT"),
    ("protocol_name", "ESMTP"),
    ("client_address", "127.0.0.1"),
    ("client_name", "localhost"),
    ("client_port", "40001"),
    ("reverse_client_name", "localhost"),
    ("server_address", "127.0.0.1"),
    ("server_port", "25"),
    ("helo_name", "client.example.test"),
    ("sender", "sender@example.net"),
    ("recipient", ""),
    ("recipient_count", "0"),
    ("queue_id", ""),
    ("instance", "1a2b.5f0e1c2d.3e4f.0"),
    ("size", "0"),
    ("etrn_domain", ""),
    ("stress", ""),
    ("sasl_method", ""),
    ("sasl_username", ""),
    ("sasl_sender", ""),
    ("ccert_subject", ""),
    ("ccert_issuer", ""),
    ("ccert_fingerprint", ""),
    ("encryption_protocol", ""),
    ("encryption_cipher", ""),
    ("encryption_keysize", "0"),
    ("policy_context", ""),
    ("compatibility_level", "3.6"),
    ("mail_version", "3.7.11"),
]


def connect(spec, timeout=10.0):
    """A connected socket to SPEC (see above)."""
    if spec.startswith("inet:") or spec.startswith("inet6:"):
        fam = socket.AF_INET6 if spec.startswith("inet6:") else socket.AF_INET
        port, host = spec.split(":", 1)[1].split("@", 1)
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((host, int(port)))
        return s
    path = spec.split(":", 1)[1] if spec.startswith(("unix:", "local:")) \
        else spec
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def request(rcpt=None, **kw):
    """The bytes of one request: DEFAULTS, recipient RCPT, then KW
    (a value None drops that attribute)."""
    attrs = dict(DEFAULTS)
    if rcpt is not None:
        attrs["recipient"] = rcpt
        attrs["recipient_count"] = "0"
    for k, v in kw.items():
        attrs[k] = v
    out = []
    for k, v in attrs.items():
        if v is None:
            continue
        out.append("%s=%s\n" % (k, v))
    return ("".join(out) + "\n").encode("utf-8", "surrogateescape")


def reply(s, timeout=10.0):
    """Read one reply ("name=value" lines up to an empty line); return
    the action value's line ("action=...") or "CLOSED" / "TIMEOUT"."""
    buf = b""
    end = time.monotonic() + timeout
    while b"\n\n" not in buf:
        left = end - time.monotonic()
        if left <= 0:
            return "TIMEOUT"
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except socket.timeout:
            return "TIMEOUT"
        except (ConnectionResetError, BrokenPipeError):
            return "CLOSED"
        if not d:
            return "CLOSED" if not buf else "CLOSED-MIDREPLY " + repr(buf)
        buf += d
    head, _, rest = buf.partition(b"\n\n")
    if rest:
        return "EXTRA " + repr(buf)
    lines = head.decode("utf-8", "replace").split("\n")
    for line in lines:
        if line.startswith("action="):
            return line
    return "NOACTION " + repr(buf)


def ask(s, rcpt=None, timeout=10.0, **kw):
    """Send one request on S, return its reply() (CLOSED if the send
    failed because the peer closed)."""
    try:
        s.sendall(request(rcpt, **kw))
    except (BrokenPipeError, ConnectionResetError):
        return "CLOSED"
    return reply(s, timeout)


def closed(s, timeout):
    """True if the peer closes S within TIMEOUT seconds (anything it
    sends first is read and dropped)."""
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return False
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not d:
            return True


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    kw = {}
    for a in sys.argv[3:]:
        k, _, v = a.partition("=")
        kw[k] = v if v else None
    try:
        s = connect(sys.argv[1])
    except OSError as e:
        print("CONNECT-ERROR %s" % e)
        sys.exit(2)
    print(ask(s, sys.argv[2], **kw))
    s.close()


if __name__ == "__main__":
    main()
