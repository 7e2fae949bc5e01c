#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A SASL authentication server for a private Postfix, speaking the
Dovecot auth protocol (version 1.x, the one Postfix's
`smtpd_sasl_type = dovecot` client uses) on 127.0.0.1, so that a test
client can really authenticate with SMTP AUTH and Postfix hands the
milter {auth_authen}. Dovecot itself is not installed on the test
machines; this knows one user and the PLAIN mechanism, nothing else.

    sasl_auth.py USER PASSWORD [--lifetime S]
        prints the port on its first line, then serves for S seconds
        (default 600).

main.cf: smtpd_sasl_auth_enable = yes, smtpd_sasl_type = dovecot,
smtpd_sasl_path = inet:127.0.0.1:PORT.
"""
import base64
import os
import socketserver
import sys
import threading


class Handler(socketserver.StreamRequestHandler):
    def send(self, line):
        self.wfile.write((line + "\n").encode())
        self.wfile.flush()

    def handle(self):
        # The handshake: the server speaks first, the client may too.
        self.send("VERSION\t1\t2")
        self.send("MECH\tPLAIN\tplaintext")
        self.send("SPID\t%d" % os.getpid())
        self.send("CUID\t1")
        self.send("COOKIE\t" + "0" * 32)
        self.send("DONE")
        for raw in self.rfile:
            f = raw.decode(errors="replace").rstrip("\n").split("\t")
            if f[0] != "AUTH" or len(f) < 3:
                continue
            rid = f[1]
            args = dict(a.split("=", 1) for a in f[3:] if "=" in a)
            if f[2].upper() != "PLAIN":
                self.send("FAIL\t%s\treason=mechanism" % rid)
                continue
            if "resp" not in args:
                self.send("CONT\t%s\t" % rid)
                line = self.rfile.readline().decode().rstrip("\n")
                args["resp"] = line.split("\t")[-1]
            try:
                _, user, pw = base64.b64decode(args["resp"]).split(b"\0")
            except ValueError:
                self.send("FAIL\t%s\treason=malformed" % rid)
                continue
            if user.decode() == USER and pw.decode() == PASSWORD:
                self.send("OK\t%s\tuser=%s" % (rid, USER))
            else:
                self.send("FAIL\t%s\tuser=%s" % (rid, user.decode()))


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


USER, PASSWORD = sys.argv[1], sys.argv[2]
lifetime = 600
if "--lifetime" in sys.argv:
    lifetime = int(sys.argv[sys.argv.index("--lifetime") + 1])
srv = Server(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
threading.Timer(lifetime, srv.shutdown).start()
srv.serve_forever()
