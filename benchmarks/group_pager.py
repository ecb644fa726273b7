"""Group pager benchmark: simpleim's exploder vs Kamailio imc, deliveries per second.

    .venv/bin/python benchmarks/group_pager.py [--quick] [--skip-kamailio] [--members N]

One group of N members (default 50), each a registered UDP user agent of this process that
answers 200 to every MESSAGE. The sender sends M pager messages (full: 400, --quick: 60) with
at most W (16) transactions outstanding; every message must reach every member:

* simpleim (``simpleim server --no-auth``, SQLite store, 127.0.0.1:5160): a MESSAGE to
  ``sip:Exploder@example.test`` with ``Require: recipient-list-message`` and the N-entry
  RFC 5365 list (text/plain message part, no IMDN). The exploder stores the plan before its
  202 and deletes it after the fan-out (two committed writes per message), then sends one
  copy per member through the terminating Participating Function.
* Kamailio 5.6 imc (benchmarks/kamailio/imc.cfg, 127.0.0.1:5070): every member sends
  ``#join`` to ``sip:chat-1@example.test`` first; a MESSAGE to the room is answered 200 and
  copied to every member but the sender (imc keeps rooms in memory: no write per message).

The figure is deliveries/s = distinct (Call-ID) copies received by the members / seconds
from the first send until the last copy arrived (or a 30 s quiet timeout); lost copies are
counted. Goal (issue 10 §6): simpleim >= 0.5x imc. Last output line: JSON. Loopback only;
every peer is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))
sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "interop"))

from _common import emit, machine  # noqa: E402
from interop_harness import (  # noqa: E402
    DOMAIN,
    KAMAILIO_PORT,
    SIMPLEIM_PORT,
    PeerError,
    PeerProcess,
    PeerSet,
    find_binary,
    port_plan_lock,
    simpleim_cli,
)

DBTEXT = Path("/usr/share/kamailio/dbtext/kamailio")
WINDOW = 16
MARK = b"group-bench "
_HDR = re.compile(rb"^(Via|v|From|f|To|t|Call-ID|i|CSeq):[^\r\n]*\r\n", re.M | re.I)
_STATUS = re.compile(rb"^SIP/2\.0 (\d{3})")
_CALL_ID = re.compile(rb"^(?:Call-ID|i):\s*([^\r\n]+)", re.M | re.I)


def _reply(data: bytes, status: str = "200 OK") -> bytes:
    head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    lines = [m.group(0) for m in _HDR.finditer(head)]
    out = []
    for line in lines:
        if line[:3].lower() in (b"to:", b"t: ") and b";tag=" not in line:
            line = line[:-2] + b";tag=" + secrets.token_hex(4).encode() + b"\r\n"
        out.append(line)
    return (f"SIP/2.0 {status}\r\n".encode() + b"".join(out)
            + b"Content-Length: 0\r\n\r\n")


class Member(asyncio.DatagramProtocol):
    """A registered user agent that answers 200 and counts the benchmark copies."""

    def __init__(self, name: str, bench: Bench) -> None:
        self.name = name
        self.bench = bench
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.waiting: dict[bytes, asyncio.Future[int]] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        m = _STATUS.match(data)
        cid = _CALL_ID.search(data)
        if m is not None:
            fut = self.waiting.pop(cid.group(1).strip(), None) if cid else None
            if fut is not None and not fut.done() and int(m.group(1)) >= 200:
                fut.set_result(int(m.group(1)))
            return
        if self.transport is None:
            return
        self.transport.sendto(_reply(data), addr)
        if data.startswith(b"MESSAGE ") and MARK in data and cid is not None:
            self.bench.delivered(self.name, cid.group(1).strip())

    async def request(self, server: tuple[str, int], method: str, ruri: str, to: str,
                      body: bytes = b"", ctype: str = "text/plain",
                      extra: str = "", timeout: float = 32.0) -> int:
        assert self.transport is not None
        cid = secrets.token_hex(8)
        head = (f"{method} {ruri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{secrets.token_hex(6)}"
                f";rport\r\nMax-Forwards: 70\r\n"
                f"From: <sip:{self.name}@{DOMAIN}>;tag={secrets.token_hex(4)}\r\n"
                f"To: <{to}>\r\nCall-ID: {cid}\r\nCSeq: 1 {method}\r\n"
                f"Contact: <sip:{self.name}@127.0.0.1:{self.port}>\r\n{extra}")
        if body:
            head += f"Content-Type: {ctype}\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting[cid.encode()] = fut
        data = head.encode() + body
        # RFC 3261 §17.1.2.2 over UDP: retransmit (Timer E, from T1 = 0.5 s, capped at T2)
        # until a final response, or Timer F (timeout) -> 408
        interval, deadline = 0.5, time.monotonic() + timeout
        while True:
            self.transport.sendto(data, server)
            left = deadline - time.monotonic()
            if left <= 0:
                self.waiting.pop(cid.encode(), None)
                return 408
            try:
                return await asyncio.wait_for(asyncio.shield(fut), min(interval, left))
            except TimeoutError:
                interval = min(interval * 2, 4.0)


class Bench:
    def __init__(self) -> None:
        self.seen: set[tuple[str, bytes]] = set()
        self.last = 0.0
        self.changed = asyncio.Event()

    def delivered(self, member: str, call_id: bytes) -> None:
        key = (member, call_id)
        if key not in self.seen:
            self.seen.add(key)
            self.last = time.monotonic()
            self.changed.set()


def _list_body(members: list[Member], text: bytes) -> tuple[bytes, str]:
    entries = "".join(f'<entry uri="sip:{m.name}@{DOMAIN}"/>' for m in members)
    xml = ('<?xml version="1.0" encoding="UTF-8"?><resource-lists '
           f'xmlns="urn:ietf:params:xml:ns:resource-lists"><list>{entries}</list>'
           '</resource-lists>').encode()
    b = "group-bench-boundary"
    body = (f"--{b}\r\nContent-Type: text/plain\r\n\r\n".encode() + text
            + f"\r\n--{b}\r\nContent-Type: application/resource-lists+xml\r\n"
              f"Content-Disposition: recipient-list\r\n\r\n".encode() + xml
            + f"\r\n--{b}--\r\n".encode())
    return body, f"multipart/mixed;boundary={b}"


async def run_system(system: str, port: int, n_members: int, messages: int,
                     window: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    bench = Bench()
    server = ("127.0.0.1", port)
    members: list[Member] = []
    for i in range(n_members + 1):  # the last one is the sender
        t, proto = await loop.create_datagram_endpoint(
            lambda i=i: Member(f"m{i:03d}", bench), local_addr=("127.0.0.1", 0))
        proto.transport = t
        proto.port = t.get_extra_info("sockname")[1]
        members.append(proto)
    sender, group = members[-1], members[:-1]
    try:
        for m in members:
            st = await m.request(server, "REGISTER", f"sip:{DOMAIN}", f"sip:{m.name}@{DOMAIN}",
                                 extra="Expires: 3600\r\n")
            if st != 200:
                raise PeerError(f"{system}: REGISTER {m.name} -> {st}")
        room = f"sip:chat-1@{DOMAIN}"
        if system == "kamailio":
            for m in members:
                st = await m.request(server, "MESSAGE", room, room, b"#join")
                if st != 200:
                    raise PeerError(f"{system}: #join {m.name} -> {st}")
            await asyncio.sleep(1.0)  # the join notices to earlier members settle
        bench.seen.clear()
        sem = asyncio.Semaphore(window)
        statuses: list[int] = []

        async def one(k: int) -> None:
            async with sem:
                text = MARK + f"{k} {secrets.token_hex(4)}".encode()
                if system == "simpleim":
                    body, ctype = _list_body(group, text)
                    st = await sender.request(
                        server, "MESSAGE", f"sip:Exploder@{DOMAIN}", f"sip:Exploder@{DOMAIN}",
                        body, ctype, extra="Require: recipient-list-message\r\n")
                else:
                    st = await sender.request(server, "MESSAGE", room, room, text)
                statuses.append(st)

        t0 = time.monotonic()
        await asyncio.gather(*(one(k) for k in range(messages)))
        expected = messages * n_members
        while len(bench.seen) < expected:
            bench.changed.clear()
            try:
                await asyncio.wait_for(bench.changed.wait(), 30.0)
            except TimeoutError:
                break
        elapsed = max(bench.last, t0) - t0
        got = len(bench.seen)
        accepted = sum(1 for s in statuses if 200 <= s < 300)
        rate = got / elapsed if elapsed > 0 else 0.0
        print(f"{system:9s} {messages} messages x {n_members} members: {got}/{expected} "
              f"deliveries in {elapsed:.2f}s = {rate:,.0f}/s (accepted {accepted})",
              flush=True)
        return {"messages": messages, "members": n_members, "accepted": accepted,
                "deliveries": got, "expected": expected, "lost": expected - got,
                "seconds": round(elapsed, 2), "deliveries_per_s": round(rate, 1)}
    finally:
        for m in members:
            if m.transport is not None:
                m.transport.close()


def start_simpleim(peers: PeerSet, work: Path) -> PeerProcess:
    db = f"sqlite:///{work / 'simpleim.db'}"
    argv = [str(simpleim_cli()), "server", "--domain", DOMAIN, "--listen",
            f"127.0.0.1:{SIMPLEIM_PORT}", "--db", db, "--no-auth", "--log-level", "warning"]
    peer = peers.spawn("simpleim", argv, env={"PYTHONUNBUFFERED": "1"})
    peer.wait_log(r"simpleim server ready", timeout=30)
    return peer


def start_imc(peers: PeerSet, work: Path) -> PeerProcess:
    binary = find_binary("kamailio")
    if binary is None:
        raise PeerError("kamailio not installed")
    dbdir = work / "imc-db"
    dbdir.mkdir(parents=True, exist_ok=True)
    for table in ("imc_rooms", "imc_members", "version"):
        shutil.copy(DBTEXT / table, dbdir / table)
    cfg = ((BENCH_DIR / "kamailio" / "imc.cfg").read_text()
           .replace("@DBDIR@", str(dbdir)).replace("@PORT@", str(KAMAILIO_PORT)))
    cfg_path = work / "imc.cfg"
    cfg_path.write_text(cfg)
    argv = [binary, "-f", str(cfg_path), "-DD", "-E", "-Y", str(work),
            "-P", str(work / "kamailio.pid"), "-m", "256", "-M", "16"]
    peer = peers.spawn("kamailio-imc", argv)
    peer.wait_ports([("udp", KAMAILIO_PORT)], timeout=15)
    time.sleep(0.5)  # children finish their module init after the listener is bound
    return peer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-kamailio", action="store_true")
    ap.add_argument("--members", type=int, default=50)
    ap.add_argument("--window", type=int, default=WINDOW,
                    help="transactions the sender keeps outstanding")
    args = ap.parse_args(argv)
    messages = 60 if args.quick else 400
    systems = ["simpleim"] if args.skip_kamailio else ["simpleim", "kamailio"]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="simpleim-gp-") as tmp:
        for system in systems:
            with port_plan_lock():
                work = Path(tmp) / system
                work.mkdir()
                peers = PeerSet(work)
                try:
                    if system == "simpleim":
                        start_simpleim(peers, work)
                        port = SIMPLEIM_PORT
                    else:
                        start_imc(peers, work)
                        port = KAMAILIO_PORT
                    results[system] = asyncio.run(run_system(system, port, args.members,
                                                             messages, args.window))
                finally:
                    problems = peers.stop_all()
                    if problems:
                        print("; ".join(problems), file=sys.stderr)
    s, k = results.get("simpleim"), results.get("kamailio")
    ratio = round(s["deliveries_per_s"] / k["deliveries_per_s"], 2) \
        if s and k and k["deliveries_per_s"] else None
    emit({"benchmark": "group_pager", "quick": args.quick, "members": args.members,
          "window": args.window, "results": results, "simpleim_over_imc": ratio,
          "machine": machine()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
