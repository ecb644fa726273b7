"""Group chat fan-out benchmark: the conference focus's MSRP switch vs a minimal fan-out.

    .venv/bin/python benchmarks/group_fanout.py [--quick] [--members N] [--messages M]
        [--rate R] [--members-kind light|simpleim] [--member-procs K]

One group chat of N members (default 30, --quick 10) plus its initiator on a ``simpleim
server`` process (SQLite store in a temp dir, auth off, TCP): the initiator (a simpleim
account) starts it with an ad-hoc list of up to 200 members and adds the rest by REFER, 25 at
a time, then sends M CPIM messages (default 300, --quick 60) at R/s (default 100); the focus
copies each to the N others (CPIM From checked).  The members are, by default, light members
in K processes of their own (``benchmarks/_light_members.py``: real participants on the wire
that only timestamp the copies, so the latency is the focus's), or ``--members-kind
simpleim``: simpleim accounts in this process (the whole client pipeline, which costs more
per copy than the focus).  Measured: copies delivered, latency from the send to the member
(p50 / p99), copies/s, the server process's CPU time per delivered copy, the join time.

Side by side, in the same run: the physical limit - a minimal asyncio writer process that
writes the same MSRP SEND bytes (one per message) to N TCP sockets on loopback, whose readers
here count the copies (same pacing, latency, CPU per copy).  No conference server peer is
installed here (Kamailio's msrp module is a relay, not a conference switch; its imc module is
compared for group pager mode in benchmarks/group_pager.py).  Goal (issue 10 §6): CPU per
copy <= 3x the minimal writer's; p99 < 20 ms at 100 members.  Last output line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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
from simpleim.client.groupchat import GroupChat  # noqa: E402
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


def bench_account(name: str, port: int) -> Account:
    """A simpleim account of the benchmarks on the server at 127.0.0.1:``port`` (TCP, no
    IMDN requests)."""
    return Account(ClientConfig(aor=f"{name}@{DOMAIN}", password="x",
                                proxy=f"tcp:127.0.0.1:{port}", listen="tcp:127.0.0.1:0",
                                imdn=(), timers=Timers(tc1=0.5, tc2=2.0), expires=600))


async def start_group(creator: Account, names: list[str], timeout: float) -> GroupChat:
    """A group chat of ``creator`` and ``names``: an ad-hoc list of at most 200 (its 32 KiB
    limit), the others added by REFER (§7.2.1.7), 25 at a time; RuntimeError if the focus
    refused any."""
    chat = await creator.groups.start(names[:200], timeout=timeout)
    refused: dict[int, int] = {}
    for k in range(200, len(names), 25):
        for status in await asyncio.gather(*(chat.add(n) for n in names[k:k + 25])):
            if status >= 300:
                refused[status] = refused.get(status, 0) + 1
    if refused:
        raise RuntimeError(f"adding members by REFER refused: {refused}")
    return chat


async def _all_connected(creator: Account, members: int, timeout: float) -> None:
    """Until the conference event package told the initiator that every member is
    connected (the focus copies to a member from then on)."""
    joined: set[str] = set()
    others: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while len(joined) < members:
                ev = await creator.events.get()
                if isinstance(ev, ParticipantEvent) and ev.status == "connected":
                    joined.add(ev.participant)
                    joined.discard(f"sip:creator@{DOMAIN}")
                elif not isinstance(ev, ParticipantEvent):
                    others.append(repr(ev)[:200])
    except TimeoutError:
        raise RuntimeError(f"{len(joined)} of {members} members connected after {timeout} s; "
                           f"other events: {others[-5:]}") from None


async def _focus(members: int, messages: int, rate: float, tmp: Path,
                 profile: str | None = None) -> dict[str, Any]:
    names = [f"m{i:03d}" for i in range(members)]
    accounts: list[Account] = []
    async with _server(members, messages, tmp, profile) as (port, pid):
        try:
            for name in ["creator", *names]:
                acc = bench_account(name, port)
                await acc.start()
                accounts.append(acc)
            creator, others = accounts[0], accounts[1:]
            chat = await creator.groups.start(names, timeout=60)
            await _all_connected(creator, members, 60)
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


async def _line(proc: asyncio.subprocess.Process, want: str, timeout: float) -> str:
    """The next stdout line of ``proc`` starting with ``want`` (within ``timeout`` s)."""
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise RuntimeError(f"light members exited before {want!r}")
            if line.startswith(want):
                return line


async def _focus_light(members: int, messages: int, rate: float, tmp: Path,
                       profile: str | None = None, procs: int = 1) -> dict[str, Any]:
    """The same chat with light members (benchmarks/_light_members.py, ``procs`` processes
    of their own): the initiator is a simpleim account here."""
    async with _server(members, messages, tmp, profile) as (port, pid):
        share = [members // procs + (1 if i < members % procs else 0) for i in range(procs)]
        starts = [sum(share[:i]) for i in range(procs)]
        helpers = [await asyncio.create_subprocess_exec(
            sys.executable, str(BENCH_DIR / "_light_members.py"), str(port), DOMAIN,
            str(first), str(n), str(n * messages), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=1 << 26)
            for first, n in zip(starts, share, strict=True) if n]
        creator = bench_account("creator", port)
        try:
            for h in helpers:
                await _line(h, "registered", 120)
            await creator.start()
            # read the initiator's events from now on: its queue holds 1,000 (a member
            # makes two: pending, connected), the rest would be dropped
            connected = asyncio.ensure_future(_all_connected(creator, members, 900))
            t_join = time.perf_counter()
            chat = await start_group(creator, [f"m{i:04d}" for i in range(members)], 300)
            for h in helpers:
                await _line(h, "bound", 300)
            await connected
            join_s = time.perf_counter() - t_join
            server_cpu0 = _proc_cpu(pid)
            t0 = time.perf_counter()
            for i in range(messages):
                await chat.send(f"fan-out {i} {time.perf_counter_ns()}")
                await asyncio.sleep(max(0.0, t0 + (i + 1) / rate - time.perf_counter()))
            for h in helpers:
                with contextlib.suppress(TimeoutError):
                    await _line(h, "done", 30)
            elapsed = time.perf_counter() - t0
            server_cpu = _proc_cpu(pid) - server_cpu0
            latencies: list[float] = []
            unexpected = 0
            for h in helpers:
                assert h.stdin is not None
                h.stdin.write(b"stop\n")
                await h.stdin.drain()
                report = json.loads(await _line(h, "{", 60))
                latencies += [us / 1e6 for us in report["latencies_us"]]
                unexpected += report["unexpected"]
            await chat.leave()
        finally:
            await creator.close()
            for h in helpers:
                if h.returncode is None:
                    h.kill()
                await h.wait()
    got = len(latencies)
    return {"members_kind": "light", "member_processes": len(helpers),
            "join_s": round(join_s, 2), "delivered": got, "expected": messages * members,
            "seconds": round(elapsed, 3), "copies_per_s": round(got / elapsed, 1),
            "p50_ms": round(_pct(latencies, 0.5) * 1000, 2),
            "p99_ms": round(_pct(latencies, 0.99) * 1000, 2),
            "server_cpu_us_per_copy": round(server_cpu / max(1, got) * 1e6, 1),
            "unexpected_sends": unexpected}


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
    ap.add_argument("--members-kind", choices=("light", "simpleim"), default="light",
                    help="light: raw SIP/MSRP members in processes of their own that only "
                         "time the copies (the focus measured alone; default); simpleim: "
                         "simpleim accounts in this process (the whole client pipeline)")
    ap.add_argument("--member-procs", type=int, default=1,
                    help="processes for the light members (default 1)")
    ap.add_argument("--profile-server", metavar="FILE",
                    help="run the server under cProfile, statistics to FILE (pstats)")
    args = ap.parse_args()
    members = args.members or (10 if args.quick else 30)
    messages = args.messages or (60 if args.quick else 300)
    with tempfile.TemporaryDirectory() as tmp:
        if args.members_kind == "light":
            focus = await _focus_light(members, messages, args.rate, Path(tmp),
                                       args.profile_server, max(1, args.member_procs))
        else:
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
