"""Group chat fan-out benchmark: the conference focus's MSRP switch vs a minimal fan-out.

    .venv/bin/python benchmarks/group_fanout.py [--quick] [--members N] [--messages M]

One ad-hoc group chat of N members (default 30, --quick 10) plus its initiator, all simpleim
accounts of this process (TCP) registered to an in-process ``simpleim server`` (SQLite store in
a temp dir, auth off).  The initiator sends M CPIM messages (default 300, --quick 60) at a
paced rate (R/s, default 100) into the group; the focus copies each to the N others (the
``message/cpim`` body unchanged, CPIM From checked).  Measured at the members: copies
delivered, latency from the send to the member's GroupMessageEvent (p50 / p99), copies/s, and
the process CPU time per delivered copy (server + clients: the whole pipeline is in this
process).

Side by side, in the same run: the physical limit - a minimal asyncio program in this process
that writes the same MSRP SEND bytes (one per message) to N TCP sockets on loopback, whose
readers count the copies (the same pacing, latency, CPU per copy).  No conference server peer
is installed here (Kamailio's msrp module is a relay, not a conference switch; its imc module
is compared for group pager mode in benchmarks/group_pager.py).  Goal (issue 10 §6): CPU per
copy <= 3x the minimal writer's; p99 < 20 ms at 100 members.  Last output line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

from _common import emit, machine  # noqa: E402

from client_helpers import free_port  # noqa: E402
from simpleim.client import Account  # noqa: E402
from simpleim.client.config import ClientConfig  # noqa: E402
from simpleim.client.events import GroupMessageEvent, ParticipantEvent  # noqa: E402
from simpleim.server.app import ImServer  # noqa: E402
from simpleim.server.config import ServerConfig  # noqa: E402
from simpleim.store import open_store  # noqa: E402
from simpleim.timers import Timers  # noqa: E402
from simpleim.transport.sip_addr import ListenSpec  # noqa: E402

DOMAIN = "example.test"


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _focus(members: int, messages: int, rate: float, tmp: Path) -> dict[str, Any]:
    port = free_port()
    store = await open_store(f"sqlite:///{tmp / 'bench.db'}")
    config = ServerConfig(domain=DOMAIN, listen=(ListenSpec("tcp", "127.0.0.1", port),),
                          db_url=f"sqlite:///{tmp / 'bench.db'}", log_level="warning",
                          auth=False, conference_max_participants=members + 1,
                          max_tcp_per_source=4 * members + 64,
                          media_queue_limit=max(64, messages))
    server = ImServer(config, store)  # type: ignore[arg-type]
    await server.start()
    names = [f"m{i:03d}" for i in range(members)]
    accounts: list[Account] = []
    try:
        for name in ["creator", *names]:
            acc = Account(ClientConfig(aor=f"{name}@{DOMAIN}", password="x",
                                       proxy=f"tcp:127.0.0.1:{port}",
                                       listen="tcp:127.0.0.1:0", imdn=(),
                                       timers=Timers(tc1=0.5, tc2=2.0), expires=600))
            await acc.start()
            accounts.append(acc)
        creator, others = accounts[0], accounts[1:]
        chat = await creator.groups.start(names, timeout=60)
        async with asyncio.timeout(60):           # every member connected
            joined: set[str] = set()
            while len(joined) < members:
                ev = await creator.events.get()
                if isinstance(ev, ParticipantEvent) and ev.status == "connected":
                    joined.add(ev.participant)
                    joined.discard(f"sip:creator@{DOMAIN}")
        sent_at: dict[str, float] = {}
        latencies: list[float] = []
        done = asyncio.Event()
        expected = messages * members

        async def drain(acc: Account) -> None:
            async for ev in acc.events:
                if isinstance(ev, GroupMessageEvent) and ev.text in sent_at:
                    latencies.append(time.perf_counter() - sent_at[ev.text])
                    if len(latencies) >= expected:
                        done.set()

        readers = [asyncio.ensure_future(drain(a)) for a in others]
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(messages):
            text = f"fan-out {i}"
            sent_at[text] = time.perf_counter()
            await chat.send(text)
            await asyncio.sleep(max(0.0, t0 + (i + 1) / rate - time.perf_counter()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await done.wait()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        for r in readers:
            r.cancel()
        await chat.leave()
    finally:
        for acc in reversed(accounts):
            with contextlib.suppress(Exception):
                await acc.close()
        await server.close()
        await store.close()
    got = len(latencies)
    return {"delivered": got, "expected": expected, "seconds": round(elapsed, 3),
            "copies_per_s": round(got / elapsed, 1),
            "p50_ms": round(_pct(latencies, 0.5) * 1000, 2),
            "p99_ms": round(_pct(latencies, 0.99) * 1000, 2),
            "cpu_us_per_copy": round(cpu / max(1, got) * 1e6, 1)}


async def _minimal(members: int, messages: int, rate: float) -> dict[str, Any]:
    """The same bytes written to N loopback sockets by one asyncio loop, read back."""
    body = b"x" * 200
    latencies: list[float] = []
    sent_at: dict[int, float] = {}
    expected = messages * members
    done = asyncio.Event()

    handlers: list[asyncio.Task[Any]] = []

    async def reader(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            handlers.append(task)
        while True:
            line = await r.readline()
            if not line:
                return
            if line.startswith(b"Message-ID: m"):
                seq = int(line[len(b"Message-ID: m"):])
                latencies.append(time.perf_counter() - sent_at[seq])
                if len(latencies) >= expected:
                    done.set()

    server = await asyncio.start_server(reader, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    writers = [(await asyncio.open_connection("127.0.0.1", port))[1] for _ in range(members)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(messages):
        frame = (f"MSRP t{i} SEND\r\nTo-Path: msrp://127.0.0.1:{port}/x;tcp\r\n"
                 f"From-Path: msrp://127.0.0.1:1/y;tcp\r\nMessage-ID: m{i}\r\n"
                 f"Byte-Range: 1-{len(body)}/{len(body)}\r\nContent-Type: message/cpim\r\n"
                 f"\r\n").encode() + body + f"\r\n-------t{i}$\r\n".encode()
        sent_at[i] = time.perf_counter()
        for w in writers:
            w.write(frame)
        await asyncio.sleep(max(0.0, t0 + (i + 1) / rate - time.perf_counter()))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            await done.wait()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    for w in writers:
        w.close()
    await asyncio.gather(*handlers, return_exceptions=True)   # each reader sees its EOF
    server.close()
    await server.wait_closed()
    got = len(latencies)
    return {"delivered": got, "expected": expected, "seconds": round(elapsed, 3),
            "copies_per_s": round(got / elapsed, 1),
            "p50_ms": round(_pct(latencies, 0.5) * 1000, 3),
            "p99_ms": round(_pct(latencies, 0.99) * 1000, 3),
            "cpu_us_per_copy": round(cpu / max(1, got) * 1e6, 2)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 members, 60 messages")
    ap.add_argument("--members", type=int)
    ap.add_argument("--messages", type=int)
    ap.add_argument("--rate", type=float, default=100.0, help="messages/s sent")
    args = ap.parse_args()
    members = args.members or (10 if args.quick else 30)
    messages = args.messages or (60 if args.quick else 300)
    with tempfile.TemporaryDirectory() as tmp:
        focus = await _focus(members, messages, args.rate, Path(tmp))
    minimal = await _minimal(members, messages, args.rate)
    ratio = focus["cpu_us_per_copy"] / minimal["cpu_us_per_copy"] \
        if minimal["cpu_us_per_copy"] else None
    print(f"focus:   {focus}")
    print(f"minimal: {minimal}")
    emit({"benchmark": "group_fanout", "members": members, "messages": messages,
          "rate": args.rate, "focus": focus, "minimal_writer": minimal,
          "cpu_per_copy_ratio": round(ratio, 1) if ratio else None,
          "lossless": focus["delivered"] == focus["expected"], "machine": machine()})


if __name__ == "__main__":
    asyncio.run(main())
