#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# A minimal syslog daemon for tests on machines without one: bind a unix
# datagram socket (normally /dev/log, in a private mount namespace) and
# append each message to a file in the form rsyslog writes to
# /var/log/mail.log: "Mmm dd hh:mm:ss HOST TAG[PID]: MESSAGE".
# Usage: syslog_sink.py SOCKET OUTFILE [HOST]
import os
import re
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
host = sys.argv[3] if len(sys.argv) > 3 else "mx1"
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
# "<PRI>Mmm dd hh:mm:ss TAG[PID]: MESSAGE", as glibc's syslog(3) sends it
form = re.compile(rb"^<\d+>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (.*)$", re.S)
with open(out, "ab", buffering=0) as f:
    while True:
        data = s.recv(65536)
        m = form.match(data)
        if m is None:
            continue
        f.write(m.group(1) + b" " + host.encode() + b" " +
                m.group(2).rstrip(b"\n") + b"\n")
