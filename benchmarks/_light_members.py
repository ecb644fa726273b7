"""Light group-chat members for benchmarks/group_fanout.py, in a process of their own.

    python benchmarks/_light_members.py PORT DOMAIN FIRST COUNT EXPECTED

COUNT members ``m<FIRST>`` ... each with one TCP connection to the ``simpleim server`` on
127.0.0.1:PORT (auth off).  A member is a real participant on the wire, but does nothing
else: it registers an RFC 5626 flow (``+sip.instance``, ``reg-id``: the server sends it
its requests over that connection), answers the focus's INVITE with an SDP answer
(``a=setup:active``, RFC 6135), opens its MSRP connection to the focus's ``a=path`` and
binds it with an empty SEND (RFC 4975 §5.4), answers any other SIP request (ACK aside) with
200, and reads the MSRP stream.  Each chat message the benchmark sends carries its send time
(``fan-out <i> <perf_counter_ns>``, CLOCK_MONOTONIC: one clock for every process here); a
member finds those in the stream and keeps the latency - it does not parse CPIM or answer
the copies (the focus sends them with ``Failure-Report: partial``, RFC 4975 §7.2: nothing
comes back).  So a member costs a few microseconds per copy, and the latency measured is
the focus's, not the members' queueing.

Protocol with the parent, one line each on stdout: ``registered``, then ``bound N`` once
every member's MSRP session is bound, ``done`` once EXPECTED copies arrived in all; on
``stop`` on stdin: one JSON line
``{"latencies_us": [...], "unexpected": K}`` (K: SENDs that asked for a response).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import sys
import time

from simpleim.sip.message import SipRequest, parse_message

MARK = re.compile(rb"fan-out \d+ (\d+)")
SEND_HEAD = re.compile(rb"MSRP (\S+) SEND\r\n((?:[^\r\n]+\r\n)*?)(?:\r\n|-------)")
PATH = re.compile(r"^a=path:(\S+)", re.M)


class Member:
    def __init__(self, name: str, port: int, domain: str, stats: Stats) -> None:
        self.name, self.port, self.domain, self.stats = name, port, domain, stats
        self.sid = secrets.token_hex(8)
        self.msrp_task: asyncio.Task[None] | None = None
        self.registered = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer = writer
        lport = writer.get_extra_info("sockname")[1]
        aor = f"sip:{self.name}@{self.domain}"
        self._send(
            f"REGISTER sip:{self.domain} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.1:{lport};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <{aor}>;tag={secrets.token_hex(4)}\r\nTo: <{aor}>\r\n"
            f"Call-ID: {secrets.token_hex(8)}\r\nCSeq: 1 REGISTER\r\n"
            f"Contact: <sip:{self.name}@127.0.0.1:{lport};transport=tcp;ob>"
            f';+sip.instance="<urn:uuid:{secrets.token_hex(16)}>";reg-id=1;+g.oma.sip-im\r\n'
            "Supported: outbound, path\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n".encode())
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith((b"content-length:", b"l:")):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            msg = parse_message(head + body)
            if not isinstance(msg, SipRequest):
                if msg.cseq.method == "REGISTER" and msg.status == 200:
                    self.registered.set()
                continue
            if msg.method == "ACK":
                continue
            if msg.method == "INVITE" and self.msrp_task is None:
                self._answer_invite(msg, lport)
            else:
                self._send(msg.create_response(200, to_tag=secrets.token_hex(4)).to_bytes())

    def _send(self, data: bytes) -> None:
        if self.writer is not None:
            self.writer.write(data)

    def _answer_invite(self, req: SipRequest, lport: int) -> None:
        match = PATH.search(req.body.decode())
        if match is None:
            self._send(req.create_response(488, to_tag=secrets.token_hex(4)).to_bytes())
            return
        focus_path = match.group(1)
        mine = f"msrp://127.0.0.1:9/{self.sid};tcp"
        sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               "m=message 9 TCP/MSRP *\r\na=accept-types:message/cpim text/plain\r\n"
               f"a=accept-wrapped-types:*\r\na=path:{mine}\r\na=setup:active\r\n").encode()
        resp = req.create_response(200, to_tag=secrets.token_hex(4))
        resp.headers.add("Contact", f"<sip:{self.name}@127.0.0.1:{lport};transport=tcp>")
        resp.headers.set("Content-Type", "application/sdp")
        resp.body = sdp
        self._send(resp.to_bytes())
        self.msrp_task = asyncio.ensure_future(self._msrp(focus_path, mine))

    async def _msrp(self, focus_path: str, mine: str) -> None:
        hostport = focus_path.split("//", 1)[1].split("/", 1)[0]
        host, _, port = hostport.rpartition(":")
        reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
        tid = secrets.token_hex(8)
        writer.write(f"MSRP {tid} SEND\r\nTo-Path: {focus_path}\r\nFrom-Path: {mine}\r\n"
                     f"Message-ID: {secrets.token_hex(8)}\r\nByte-Range: 1-0/0\r\n"
                     f"-------{tid}$\r\n".encode())
        await reader.readuntil(f"-------{tid}$\r\n".encode())        # its 200 (§5.4)
        self.stats.bound()
        buf = b""
        while True:
            data = await reader.read(1 << 16)
            if not data:
                return
            now = time.perf_counter_ns()
            buf += data
            end = buf.rfind(b"\r\n-------")
            if end < 0:
                continue
            done, buf = buf[:end], buf[end:]
            for sent in MARK.findall(done):
                self.stats.latencies.append((now - int(sent)) // 1000)
            if len(self.stats.latencies) >= self.stats.expected:
                self.stats.all_done.set()
            for _tid, headers in SEND_HEAD.findall(done):
                if b"Failure-Report: partial" not in headers \
                        and b"Failure-Report: no" not in headers:
                    self.stats.unexpected += 1


class Stats:
    def __init__(self, count: int, expected: int) -> None:
        self.count = count
        self.expected = expected
        self.all_done = asyncio.Event()
        self.latencies: list[int] = []
        self.unexpected = 0
        self.n_bound = 0
        self.all_bound = asyncio.Event()

    def bound(self) -> None:
        self.n_bound += 1
        if self.n_bound >= self.count:
            self.all_bound.set()


async def main() -> None:
    port, domain, first, count, expected = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), \
        int(sys.argv[4]), int(sys.argv[5])
    stats = Stats(count, expected)
    members = [Member(f"m{i:04d}", port, domain, stats) for i in range(first, first + count)]
    tasks = [asyncio.ensure_future(m.run()) for m in members]
    await asyncio.gather(*(m.registered.wait() for m in members))
    print("registered", flush=True)
    await stats.all_bound.wait()
    print(f"bound {stats.n_bound}", flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    done = asyncio.ensure_future(stats.all_done.wait())
    stop = asyncio.ensure_future(stdin.readline())
    await asyncio.wait([done, stop], return_when=asyncio.FIRST_COMPLETED)
    if done.done():
        print("done", flush=True)
        await stop
    done.cancel()
    print(json.dumps({"latencies_us": stats.latencies, "unexpected": stats.unexpected}),
          flush=True)
    for t in tasks:
        t.cancel()


if __name__ == "__main__":
    asyncio.run(main())
