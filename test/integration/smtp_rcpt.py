#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""One SMTP session to 127.0.0.1:PORT: EHLO, MAIL FROM, one RCPT per
address; print each RCPT reply as "CODE TEXT" on one line. Options:
-s SOURCE (bind address), -f FROM, -d (also send DATA if any RCPT was
accepted and print the DATA reply as "DATA CODE TEXT"), -u (declare
SMTPUTF8 on MAIL FROM; addresses are sent as UTF-8 either way), -a
USER:PASSWORD (SMTP AUTH after EHLO), -k (after a 421 reply, print
"CLOSED" if the server then closes the session within 10 s, else
"OPEN"). An address "+"
ends one transaction and starts the next in the same session (MAIL FROM
again)."""
import argparse
import smtplib
import sys



def closed_after_421(s):
    """CLOSED if the server closes the session (EOF) within 10 s."""
    sock = s.sock
    if sock is None:
        return "CLOSED"
    sock.settimeout(10)
    try:
        while True:
            d = sock.recv(4096)
            if not d:
                return "CLOSED"
    except (ConnectionResetError, BrokenPipeError):
        return "CLOSED"
    except OSError:
        return "OPEN"


ap = argparse.ArgumentParser()
ap.add_argument("-s", dest="source", default=None)
ap.add_argument("-f", dest="sender", default="sender@example.net")
ap.add_argument("-d", dest="data", action="store_true")
ap.add_argument("-u", dest="utf8", action="store_true")
ap.add_argument("-a", dest="auth", default=None)
ap.add_argument("-k", dest="check_close", action="store_true")
ap.add_argument("port", type=int)
ap.add_argument("addrs", nargs="+")
a = ap.parse_args()

try:
    s = smtplib.SMTP(
        "127.0.0.1", a.port, local_hostname="client.example.test",
        timeout=60, source_address=(a.source, 0) if a.source else None)
    s.command_encoding = "utf-8"
    s.ehlo("client.example.test")
    if a.auth:
        user, password = a.auth.split(":", 1)
        s.login(user, password)
    groups = [[]]
    for rcpt in a.addrs:
        if rcpt == "+":
            groups.append([])
        else:
            groups[-1].append(rcpt)
    for group in groups:
        code, msg = s.docmd("MAIL FROM:<%s>%s" % (a.sender,
                            " SMTPUTF8" if a.utf8 else ""))
        if code != 250:
            print("MAIL %d %s" % (code, msg.decode(errors="replace")))
            sys.exit(0)
        accepted = False
        for rcpt in group:
            arg = rcpt if rcpt.startswith("<") else "<%s>" % rcpt
            code, msg = s.docmd("RCPT TO:" + arg)
            text = msg.decode(errors="replace").replace("\n", " ")
            print("%d %s" % (code, text), flush=True)
            if code == 421:
                if a.check_close:
                    print(closed_after_421(s))
                sys.exit(0)
            accepted |= code == 250
        if a.data and accepted:
            code, msg = s.data(b"Subject: test\r\n\r\nhello\r\n")
            print("DATA %d %s" % (code, msg.decode(errors="replace")))
        elif len(groups) > 1:
            s.rset()
    s.quit()
except smtplib.SMTPServerDisconnected as e:
    print("DISCONNECTED %s" % e)
except (OSError, smtplib.SMTPException) as e:
    print("ERROR %s" % e)
    sys.exit(2)
