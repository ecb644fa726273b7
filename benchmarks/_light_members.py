"""Light group-chat members for benchmarks/group_fanout.py, in a process of their own.

    python benchmarks/_light_members.py PORT DOMAIN FIRST COUNT EXPECTED [subscribe]

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

With ``subscribe`` (benchmarks/group_join.py) each member also subscribes to the conference
event package (RFC 4575) once in, and counts the NOTIFYs it gets (requests, bytes, the largest).

Protocol with the parent, one line each on stdout: ``registered``, then ``bound N`` once
every member's MSRP session is bound, ``done`` once EXPECTED copies arrived in all; on
``stop`` on stdin: one JSON line
``{"latencies_us": [...], "unexpected": K}`` (K: SENDs that asked for a response).  With
``subscribe``: ``subscribed N`` once every member had its first NOTIFY; on ``watch NAME``
the NOTIFY counters restart and ``seen`` comes once every member in was told NAME is
connected (NAME itself: once it had its first NOTIFY); on ``count`` a JSON line
``{"notifies": N, "bytes": B, "largest": L}``.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import sys
import time

from simpleim.sip.message import SipLimits, SipRequest, parse_message

#: a full-state conference NOTIFY of 1,000 users is ~350 KB (TCP: no datagram limit)
LIMITS = SipLimits(max_message_size=1 << 22, max_body=1 << 22)

MARK = re.compile(rb"fan-out \d+ (\d+)")
SEND_HEAD = re.compile(rb"MSRP (\S+) SEND\r\n((?:[^\r\n]+\r\n)*?)(?:\r\n|-------)")
PATH = re.compile(r"^a=path:(\S+)", re.M)


class Member:
    def __init__(self, name: str, port: int, domain: str, stats: Stats,
                 subscribe: bool = False) -> None:
        self.name, self.port, self.domain, self.stats = name, port, domain, stats
        self.subscribe = subscribe
        self.notified = False           # its first NOTIFY came
        self.sub_tries = 0
        self.conf = self.aor = ""
        self.lport = 0
        self.told = False               # it was told the watched member is connected
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
            msg = parse_message(head + body, LIMITS)
            if not isinstance(msg, SipRequest):
                if msg.cseq.method == "REGISTER" and msg.status == 200:
                    self.registered.set()
                elif msg.cseq.method == "SUBSCRIBE" and msg.status >= 300 \
                        and self.sub_tries < 50:
                    self.stats.refused[msg.status] = self.stats.refused.get(msg.status, 0) + 1
                    # not a participant yet (the focus answers 403 until we are in),
                    # or shed under load (503): again a little later (bounded)
                    asyncio.get_running_loop().call_later(0.2, self._resubscribe)
                continue
            if msg.method == "ACK":
                continue
            if msg.method == "INVITE" and self.msrp_task is None:
                self._answer_invite(msg, lport)
                if self.subscribe:
                    contact = msg.headers.get("Contact") or ""
                    self.conf = contact[contact.find("<") + 1:contact.find(">")]\
                        .split(";", 1)[0]
                    self.lport, self.aor = lport, aor
                continue
            self._send(msg.create_response(200, to_tag=secrets.token_hex(4)).to_bytes())
            if msg.method == "NOTIFY":
                self.stats.notify(self, len(head) + len(body), body)

    def _resubscribe(self) -> None:
        """RFC 4575 §3: SUBSCRIBE Event: conference to the conference URI (the Contact of
        the focus's INVITE, without its parameters), once the MSRP session is bound."""
        self.sub_tries += 1
        conf, lport, aor = self.conf, self.lport, self.aor
        self._send(
            f"SUBSCRIBE {conf} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.1:{lport};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <{aor}>;tag={secrets.token_hex(4)}\r\nTo: <{conf}>\r\n"
            f"Call-ID: {secrets.token_hex(8)}\r\nCSeq: 1 SUBSCRIBE\r\n"
            f"Contact: <sip:{self.name}@127.0.0.1:{lport};transport=tcp>\r\n"
            "Event: conference\r\nAccept: application/conference-info+xml\r\n"
            "Expires: 3600\r\nContent-Length: 0\r\n\r\n".encode())

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
        if self.subscribe:
            self._resubscribe()
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
        self.notifies = self.notify_bytes = self.largest = 0
        self.n_notified = self.n_told = 0
        self.all_notified = asyncio.Event()
        self.all_told = asyncio.Event()
        self.watch: str | None = None
        self.refused: dict[int, int] = {}     # SUBSCRIBE answers >= 300, by status
        self.n_bound = 0
        self.all_bound = asyncio.Event()

    def notify(self, member: Member, size: int, body: bytes) -> None:
        self.notifies += 1
        self.notify_bytes += size
        self.largest = max(self.largest, size)
        if not member.notified:
            member.notified = True
            self.n_notified += 1
            if self.n_notified >= self.count:
                self.all_notified.set()
        watch = self.watch
        if watch is None or member.told:
            return
        if member.name == watch or (f'entity="sip:{watch}@'.encode() in body
                                    and b"<status>connected</status>" in body):
            member.told = True
            self.n_told += 1
            if self.n_told >= self.count:
                self.all_told.set()

    def bound(self) -> None:
        self.n_bound += 1
        if self.n_bound >= self.count:
            self.all_bound.set()


async def main() -> None:
    port, domain, first, count, expected = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), \
        int(sys.argv[4]), int(sys.argv[5])
    subscribe = sys.argv[6:7] == ["subscribe"]
    stats = Stats(count, expected)
    members = [Member(f"m{i:04d}", port, domain, stats, subscribe)
               for i in range(first, first + count)]
    tasks = [asyncio.ensure_future(m.run()) for m in members]
    await asyncio.gather(*(m.registered.wait() for m in members))
    print("registered", flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    if subscribe:
        await _join_protocol(stats, members, stdin)
    else:
        await stats.all_bound.wait()
        print(f"bound {stats.n_bound}", flush=True)
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


async def _join_protocol(stats: Stats, members: list[Member],
                         stdin: asyncio.StreamReader) -> None:
    """``watch NAME`` / ``count`` / ``stop`` (see the module docstring); the members that
    are in (had a NOTIFY) are the ones counted."""
    while True:
        line = (await stdin.readline()).decode().split()
        if not line or line[0] == "stop":
            return
        if line[0] == "wait-in":                     # every member but the newcomer
            want = int(line[1])
            while stats.n_notified < want:
                stats.all_notified.clear()
                stats.count = want
                try:
                    await asyncio.wait_for(stats.all_notified.wait(), 60)
                except TimeoutError:
                    print(f"waiting: {stats.n_notified} of {want} notified, SUBSCRIBE "
                          f"refusals {stats.refused}", file=sys.stderr, flush=True)
            print(f"subscribed {stats.n_notified} (refused first: {stats.refused})", flush=True)
        elif line[0] == "watch":
            stats.notifies = stats.notify_bytes = stats.largest = 0
            stats.watch, stats.n_told = line[1], 0
            stats.count = sum(1 for m in members if m.notified) + 1
            stats.all_told.clear()
            for m in members:
                m.told = False
            await stats.all_told.wait()
            print("seen", flush=True)
        elif line[0] == "count":
            print(json.dumps({"notifies": stats.notifies, "bytes": stats.notify_bytes,
                              "largest": stats.largest}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
