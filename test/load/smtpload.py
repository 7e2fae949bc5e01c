#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Many concurrent SMTP sessions to 127.0.0.1:PORT, recording the answer
to every RCPT, for the fault-injection tests and the load test.

    smtpload.py PORT ADDRFILE OUT [-c CONCURRENCY] [-t SECONDS]
                [-n SESSIONS] [-r RCPTS] [-d] [-o OFFSET] [-S SOURCES]

ADDRFILE holds one recipient a line; the sessions take them in turn
(recipient i of the run is line (OFFSET + i) mod the line count), so a
run of N recipients asks each address about equally often. The run stops
after SESSIONS sessions (-n, default unbounded) or SECONDS (-t, default
30), whichever comes first; sessions under way then finish their current
command and quit. With -d a session that had a recipient accepted sends
a small message, and the line "DATA code queue-id" follows its RCPTs.

With -S N, session i binds to source address 127.1.X.Y, the (i mod N)th
of N distinct loopback addresses, so that per-client counters (harvest)
see N clients.

OUT gets one line per RCPT: "RCPT ADDRESS CODE ENH", per DATA: "DATA
CODE QUEUEID", per failed session: "ERR what". stdout gets one summary
line: "sessions=N rcpts=N rcpt_250=N rcpt_451=N rcpt_550=N rcpt_other=N
messages=N errors=N seconds=F".

It does not: resolve names, retry, or judge the answers (the caller
compares OUT with its table). Single thread, asyncio.
"""
import argparse
import asyncio
import collections
import re
import time

ENH = re.compile(rb"^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})")
QID = re.compile(rb"queued as ([0-9A-Za-z]+)")


async def reply(reader, timeout):
    """One (multi-line) SMTP reply: (code, first line, last line)."""
    first = None
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise ConnectionError("server closed the connection")
        if first is None:
            first = line
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), first.rstrip(), line.rstrip()


class Run:
    def __init__(self, a, addrs):
        self.a = a
        self.addrs = addrs
        self.next = a.offset
        self.sessions = 0
        self.started = 0
        self.stop_at = time.monotonic() + a.time
        self.lines = []
        self.count = collections.Counter()

    def more(self):
        if time.monotonic() >= self.stop_at:
            return False
        if self.a.sessions and self.started >= self.a.sessions:
            return False
        self.started += 1
        return True

    def take(self):
        addr = self.addrs[self.next % len(self.addrs)]
        self.next += 1
        return addr

    async def session(self, n):
        a = self.a
        tmo = a.cmd_timeout
        src = None
        if a.sources:
            k = n % a.sources
            src = ("127.1.%d.%d" % (k // 250, k % 250 + 1), 0)
        rd, wr = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", a.port,
                                    local_addr=src), tmo)
        out = []   # this session's lines, kept together in OUT
        try:
            async def cmd(text):
                wr.write(text.encode() + b"\r\n")
                await wr.drain()
                return await reply(rd, tmo)

            code, _, _ = await reply(rd, tmo)
            if code != 220:
                raise ConnectionError("banner %d" % code)
            await cmd("EHLO load%d.example.test" % n)
            code, _, _ = await cmd("MAIL FROM:<load%d@example.net>" % n)
            if code != 250:
                raise ConnectionError("MAIL %d" % code)
            accepted = 0
            for _ in range(a.rcpts):
                addr = self.take()
                code, _, last = await cmd("RCPT TO:<%s>" % addr)
                m = ENH.match(last)
                enh = m.group(1).decode() if m else "-"
                out.append("RCPT %s %d %s" % (addr, code, enh))
                key = "rcpt_%d" % code if code in (250, 451, 550) \
                    else "rcpt_other"
                self.count[key] += 1
                self.count["rcpts"] += 1
                if code == 250:
                    accepted += 1
                if code == 421:
                    break
            if a.data and accepted:
                code, _, _ = await cmd("DATA")
                if code == 354:
                    code, _, last = await cmd(
                        "Subject: load %d\r\n\r\nhello\r\n." % n)
                m = QID.search(last) if code == 250 else None
                out.append("DATA %d %s" % (
                    code, m.group(1).decode() if m else "-"))
                if code == 250:
                    self.count["messages"] += 1
            wr.write(b"QUIT\r\n")
            await wr.drain()
            try:
                await reply(rd, tmo)
            except (ConnectionError, asyncio.TimeoutError):
                pass
        finally:
            self.lines.extend(out)
            wr.close()

    async def worker(self, w):
        while self.more():
            n = self.started
            try:
                await self.session(n)
                self.count["sessions"] += 1
            except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                self.count["errors"] += 1
                self.lines.append("ERR %s" % (str(e) or type(e).__name__))
                await asyncio.sleep(0.05)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("addrfile")
    ap.add_argument("out")
    ap.add_argument("-c", dest="concurrency", type=int, default=20)
    ap.add_argument("-t", dest="time", type=float, default=30)
    ap.add_argument("-n", dest="sessions", type=int, default=0)
    ap.add_argument("-r", dest="rcpts", type=int, default=3)
    ap.add_argument("-o", dest="offset", type=int, default=0)
    ap.add_argument("-S", dest="sources", type=int, default=0)
    ap.add_argument("-d", dest="data", action="store_true")
    ap.add_argument("--cmd-timeout", dest="cmd_timeout", type=float,
                    default=60)
    a = ap.parse_args()
    with open(a.addrfile) as f:
        addrs = [l.strip() for l in f if l.strip()]
    run = Run(a, addrs)
    t0 = time.monotonic()
    await asyncio.gather(*(run.worker(w) for w in range(a.concurrency)))
    secs = time.monotonic() - t0
    with open(a.out, "w") as f:
        f.write("\n".join(run.lines) + ("\n" if run.lines else ""))
    c = run.count
    print("sessions=%d rcpts=%d rcpt_250=%d rcpt_451=%d rcpt_550=%d "
          "rcpt_other=%d messages=%d errors=%d seconds=%.1f" % (
              c["sessions"], c["rcpts"], c["rcpt_250"], c["rcpt_451"],
              c["rcpt_550"], c["rcpt_other"], c["messages"], c["errors"],
              secs))


if __name__ == "__main__":
    asyncio.run(main())
