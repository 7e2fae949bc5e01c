#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A loopback TCP proxy for fault-injection tests: it forwards
127.0.0.1:PORT to a target and, on command, delays, stalls or drops.

    slowproxy.py serve TARGET_PORT [--lifetime S]
        prints "PORT CTLPORT" on its first line, then serves until
        "quit" or the lifetime (default 600 s) ends.
    slowproxy.py ctl CTLPORT COMMAND [ARG]
        one command, prints the answer ("ok MODE ..." or "err ...").

Commands (one line each on the control port):
    pass        forward both ways at once (the start mode)
    delay MS    hold every chunk the server sends for MS ms first
    stall       accept and connect, forward nothing either way
    drop        reset every open connection; reset new ones at once
    stats       "ok MODE conns=N accepted=N dropped=N"
    quit        close everything and exit

It does not: parse the protocol inside, listen beyond 127.0.0.1, or run
longer than its lifetime. Threads: one per direction per connection and
one per control client; the mode is read under one lock.
"""
import socket
import struct
import sys
import threading
import time

LOCK = threading.Lock()
STATE = {"mode": "pass", "delay": 0.0, "accepted": 0, "dropped": 0}
CONNS = set()
STOP = threading.Event()


def mode():
    with LOCK:
        return STATE["mode"], STATE["delay"]


def reset(sock):
    """Close with an RST (SO_LINGER 0), as a crashed server would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def pump(src, dst, from_server, pair):
    try:
        while not STOP.is_set():
            try:
                data = src.recv(65536)
            except socket.timeout:
                continue
            if not data:
                break
            while True:
                m, d = mode()
                if m == "drop" or STOP.is_set():
                    return
                if m != "stall":
                    break
                time.sleep(0.05)
            if from_server and m == "delay" and d > 0:
                end = time.monotonic() + d
                while time.monotonic() < end and not STOP.is_set():
                    time.sleep(min(0.05, end - time.monotonic()))
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with LOCK:
            CONNS.discard(pair)
        reset(src)
        reset(dst)


def handle(client, target_port):
    m, _ = mode()
    if m == "drop":
        with LOCK:
            STATE["dropped"] += 1
        reset(client)
        return
    try:
        server = socket.create_connection(("127.0.0.1", target_port), 5)
    except OSError:
        reset(client)
        return
    for s in (client, server):
        s.settimeout(0.5)
    pair = (client, server)
    with LOCK:
        CONNS.add(pair)
    threading.Thread(target=pump, args=(client, server, False, pair),
                     daemon=True).start()
    threading.Thread(target=pump, args=(server, client, True, pair),
                     daemon=True).start()


def drop_all():
    with LOCK:
        pairs = list(CONNS)
        CONNS.clear()
        STATE["dropped"] += len(pairs)
    for c, s in pairs:
        reset(c)
        reset(s)


def control(conn):
    f = conn.makefile("rw")
    for line in f:
        words = line.split()
        if not words:
            continue
        cmd = words[0]
        answer = "ok"
        with LOCK:
            if cmd in ("pass", "stall", "drop"):
                STATE["mode"] = cmd
            elif cmd == "delay" and len(words) == 2:
                STATE["mode"] = "delay"
                STATE["delay"] = int(words[1]) / 1000.0
            elif cmd == "quit":
                STOP.set()
            elif cmd != "stats":
                answer = "err unknown command"
            if answer == "ok":
                answer = "ok %s conns=%d accepted=%d dropped=%d" % (
                    STATE["mode"], len(CONNS), STATE["accepted"],
                    STATE["dropped"])
        if cmd == "drop":
            drop_all()
        f.write(answer + "\n")
        f.flush()
    conn.close()


def serve(target_port, lifetime):
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(256)
    lsn.settimeout(0.2)
    ctl = socket.socket()
    ctl.bind(("127.0.0.1", 0))
    ctl.listen(8)
    ctl.settimeout(0.2)
    print(lsn.getsockname()[1], ctl.getsockname()[1], flush=True)
    end = time.monotonic() + lifetime

    def ctl_loop():
        while not STOP.is_set():
            try:
                c, _ = ctl.accept()
            except socket.timeout:
                continue
            threading.Thread(target=control, args=(c,), daemon=True).start()

    threading.Thread(target=ctl_loop, daemon=True).start()
    while not STOP.is_set() and time.monotonic() < end:
        try:
            c, _ = lsn.accept()
        except socket.timeout:
            continue
        with LOCK:
            STATE["accepted"] += 1
        handle(c, target_port)
    STOP.set()
    drop_all()


def ctl_cmd(port, words):
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall((" ".join(words) + "\n").encode())
        f = s.makefile("r")
        print(f.readline().strip())


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        lifetime = 600.0
        if len(sys.argv) == 5 and sys.argv[3] == "--lifetime":
            lifetime = float(sys.argv[4])
        serve(int(sys.argv[2]), lifetime)
    elif len(sys.argv) >= 4 and sys.argv[1] == "ctl":
        ctl_cmd(int(sys.argv[2]), sys.argv[3:])
    else:
        sys.stderr.write(__doc__)
        sys.exit(64)


if __name__ == "__main__":
    main()
