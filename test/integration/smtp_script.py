#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""One raw SMTP session to 127.0.0.1:PORT that sends exactly the commands
given, in order, whatever the server answered before (no MAIL FROM is
added, nothing is skipped), so a test can try what a misbehaving client
would. Prints one line per command: "COMMAND -> CODE TEXT". EHLO is sent
first. A command "DATA" that gets 354 is followed by a small message and
".", and the answer to the "." is printed as ". -> CODE TEXT". The
session ends with QUIT unless the server closed it first
("COMMAND -> DISCONNECTED")."""
import socket
import sys

BODY = b"Subject: test\r\n\r\nhello\r\n.\r\n"


def reply(f):
    """The server's reply: its code and its lines joined by spaces."""
    lines = []
    while True:
        line = f.readline()
        if not line:
            return None, "DISCONNECTED"
        line = line.decode(errors="replace").rstrip("\r\n")
        lines.append(line[4:])
        if len(line) < 4 or line[3] != "-":
            return line[:3], " ".join(lines)


def send(s, f, cmd):
    s.sendall(cmd.encode() + b"\r\n")
    code, text = reply(f)
    print("%s -> %s" % (cmd, text if code is None else code + " " + text),
          flush=True)
    return code


def main():
    port = int(sys.argv[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    f = s.makefile("rb")
    if reply(f)[0] != "220":
        print("no 220 banner")
        return 2
    send(s, f, "EHLO client.example.test")
    for cmd in sys.argv[2:]:
        code = send(s, f, cmd)
        if code is None:
            return 0
        if cmd.upper() == "DATA" and code == "354":
            s.sendall(BODY)
            code, text = reply(f)
            print(". -> %s" % (text if code is None else code + " " + text),
                  flush=True)
            if code is None:
                return 0
    send(s, f, "QUIT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
