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
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
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
from simpleim.timers import Timers  # noqa: E402

DOMAIN = "example.test"


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def _server(members: int, messages: int, tmp: Path,
                  profile: str | None = None) -> AsyncIterator[tuple[int, int]]:
    """``simpleim server`` (no auth, TCP) as a process of its own; yields (port, pid).
    ``profile``: run it under cProfile, the statistics written to that file at the end."""
    port = free_port()
    conf = tmp / "server.toml"
    conf.write_text(f"max_tcp_per_source = {4 * members + 64}\n"
                    f"media_queue_limit = {max(64, messages)}\n"
                    f"[controlling]\nconference_max_participants = {members + 1}\n")
    run = [sys.executable, "-m", "cProfile", "-o", profile] if profile else [sys.executable]
    proc = await asyncio.create_subprocess_exec(
        *run, "-m", "simpleim", "server", "--no-auth",
        "--domain", DOMAIN, "--listen", f"tcp:127.0.0.1:{port}",
        "--db", f"sqlite:///{tmp / 'bench.db'}", "--log-level", "warning",
        "--config", str(conf), stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while b"ready" not in await proc.stdout.readline():
                if proc.returncode is not None:
                    raise RuntimeError("simpleim server did not start")
        yield port, proc.pid
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def _focus(members: int, messages: int, rate: float, tmp: Path,
                 profile: str | None = None) -> dict[str, Any]:
    names = [f"m{i:03d}" for i in range(members)]
    accounts: list[Account] = []
    async with _server(members, messages, tmp, profile) as (port, pid):
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
            server_cpu0 = _proc_cpu(pid)
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
            server_cpu = _proc_cpu(pid) - server_cpu0
            cpu = time.process_time() - cpu0
            for r in readers:
                r.cancel()
            await chat.leave()
        finally:
            for acc in reversed(accounts):
                with contextlib.suppress(Exception):
                    await acc.close()
    got = len(latencies)
    return {"delivered": got, "expected": expected, "seconds": round(elapsed, 3),
            "copies_per_s": round(got / elapsed, 1),
            "p50_ms": round(_pct(latencies, 0.5) * 1000, 2),
            "p99_ms": round(_pct(latencies, 0.99) * 1000, 2),
            "server_cpu_us_per_copy": round(server_cpu / max(1, got) * 1e6, 1),
            "clients_cpu_us_per_copy": round(cpu / max(1, got) * 1e6, 1)}


async def _minimal(members: int, messages: int, rate: float) -> dict[str, Any]:
    """The same bytes written to N loopback sockets by a minimal asyncio writer process
    (benchmarks/_fanout_writer.py), read back here."""
    latencies: list[float] = []
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
                sent = int(line[len(b"Message-ID: m"):])
                latencies.append((time.perf_counter_ns() - sent) / 1e9)
                if len(latencies) >= expected:
                    done.set()

    server = await asyncio.start_server(reader, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t0 = time.perf_counter()
    writer = await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH_DIR / "_fanout_writer.py"), str(port), str(members),
        str(messages), str(rate), stdout=asyncio.subprocess.PIPE)
    out, _ = await writer.communicate()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            await done.wait()
    elapsed = time.perf_counter() - t0
    cpu = float(out.decode().strip() or "nan")
    await asyncio.gather(*handlers, return_exceptions=True)   # each reader sees its EOF
    server.close()
    await server.wait_closed()
    got = len(latencies)
    return {"delivered": got, "expected": expected, "seconds": round(elapsed, 3),
            "copies_per_s": round(got / elapsed, 1),
            "p50_ms": round(_pct(latencies, 0.5) * 1000, 3),
            "p99_ms": round(_pct(latencies, 0.99) * 1000, 3),
            "writer_cpu_us_per_copy": round(cpu / max(1, got) * 1e6, 2)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 members, 60 messages")
    ap.add_argument("--members", type=int)
    ap.add_argument("--messages", type=int)
    ap.add_argument("--rate", type=float, default=100.0, help="messages/s sent")
    ap.add_argument("--profile-server", metavar="FILE",
                    help="run the server under cProfile, statistics to FILE (pstats)")
    args = ap.parse_args()
    members = args.members or (10 if args.quick else 30)
    messages = args.messages or (60 if args.quick else 300)
    with tempfile.TemporaryDirectory() as tmp:
        focus = await _focus(members, messages, args.rate, Path(tmp), args.profile_server)
    minimal = await _minimal(members, messages, args.rate)
    ratio = focus["server_cpu_us_per_copy"] / minimal["writer_cpu_us_per_copy"] \
        if minimal["writer_cpu_us_per_copy"] else None
    print(f"focus:   {focus}")
    print(f"minimal: {minimal}")
    emit({"benchmark": "group_fanout", "members": members, "messages": messages,
          "rate": args.rate, "focus": focus, "minimal_writer": minimal,
          "cpu_per_copy_ratio": round(ratio, 1) if ratio else None,
          "lossless": focus["delivered"] == focus["expected"], "machine": machine()})


if __name__ == "__main__":
    asyncio.run(main())
