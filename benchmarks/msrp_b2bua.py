"""Chat messages through the server's MSRP back-to-back relay (PO-00, ``--pf-media b2bua``)
vs the same chat with the MSRP going client to client (``--pf-media proxy``), in one run.

    python benchmarks/msrp_b2bua.py            # 300 round trips, 3000 messages, 64 MiB file
    python benchmarks/msrp_b2bua.py --quick    # 100, 600, 16 MiB (under 30 s)

For each case a ``simpleim server`` process (SQLite store in a temp dir, TCP on loopback) and
two simpleim client accounts in this process (alice and bob, registered over TCP): alice
starts a chat session with bob, then

* **latency**: one message at a time, from ``ChatSession.send`` until bob's account reports
  the message (CPIM with IMDN request; bob's delivery IMDN flows back meanwhile);
* **throughput**: messages sent ``--window`` at a time (each ``send`` waits for its MSRP 200),
  timed until bob reported the last one;
* **file**: one file (64 MiB; 16 MiB with ``--quick``) by RFC 5547 push, from
  ``files.send`` until bob has it with its hash checked (switched chunk by chunk through the
  relay).

Reported: p50 / p99 latency (ms), messages/s, the server process's CPU per message, and the
b2bua/direct ratios; the added latency is p50(b2bua) - p50(direct).  Both clients run in
this process: the message rate is bounded by them (about the same in both cases), the
relay's own cost shows in the server CPU per message.  Last output line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import emit, machine  # noqa: E402

from simpleim.client import Account, ClientConfig  # noqa: E402
from simpleim.client.events import FileEvent, MessageEvent, SessionEvent  # noqa: E402
from simpleim.store import open_store  # noqa: E402
from simpleim.timers import Timers  # noqa: E402

DOMAIN = "bench.test"
USERS = {"alice": "alice-pw", "bob": "bob-pw"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _start_server(tmp: Path, port: int, mode: str) -> asyncio.subprocess.Process:
    db = f"sqlite:///{tmp / f'{mode}.db'}"
    store = await open_store(db)
    for user, pw in USERS.items():
        await store.add_user(user, DOMAIN, pw)
    await store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLEIM_")}
    log = os.environ.get("BENCH_LOG")          # e.g. BENCH_LOG=info: the server's log
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simpleim", "server", "--domain", DOMAIN,
        "--listen", f"tcp:127.0.0.1:{port}", "--db", db, "--log-level", log or "warning",
        "--pf-media", mode, "--msrp-listen", "127.0.0.1:0", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=None if log else asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    if "ready" not in line:
        raise RuntimeError(f"server did not start: {line!r}")
    return proc


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _account(user: str, port: int, tmp: Path) -> Account:
    dl = tmp / f"dl-{user}"
    dl.mkdir(exist_ok=True)
    return Account(ClientConfig(aor=f"{user}@{DOMAIN}", password=USERS[user],
                                proxy=f"tcp:127.0.0.1:{port}", listen="tcp:127.0.0.1:0",
                                download_dir=str(dl), expires=600,
                                timers=Timers(tc1=0.5)))


async def _next(account: Account, kind: type, timeout: float = 30.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            ev = await account.events.get()
            if ev is None:
                raise RuntimeError("event stream closed")
            if isinstance(ev, kind):
                return ev


async def _file(alice: Account, bob: Account, path: Path, server_pid: int
                ) -> tuple[float, float]:
    """Seconds from ``files.send`` until bob has the file (hash checked), server CPU s."""
    cpu0 = _cpu_s(server_pid)
    t0 = time.perf_counter()
    sending = asyncio.ensure_future(alice.files.send("bob", [path]))
    while True:
        ev = await _next(bob, FileEvent, 300)
        if ev.state == "received":
            break
    elapsed = time.perf_counter() - t0
    cpu = _cpu_s(server_pid) - cpu0
    if ev.hash_ok is not True:
        raise RuntimeError("file hash mismatch")
    results = await sending          # the session ends after Tc1 (OMA §10.2)
    if [r.status for r in results] != ["sent"]:
        raise RuntimeError(f"file transfer failed: {results}")
    return elapsed, cpu


async def _case(mode: str, tmp: Path, rounds: int, count: int, window: int,
                file: Path) -> dict[str, Any]:
    port = _free_port()
    server = await _start_server(tmp, port, mode)
    alice, bob = _account("alice", port, tmp), _account("bob", port, tmp)
    try:
        await alice.start()
        await bob.start()
        chat = await alice.chats.start("bob")
        while True:
            ev = await _next(bob, SessionEvent)
            if ev.state == "established":
                break
        # latency: one at a time
        lat: list[float] = []
        for i in range(rounds):
            t0 = time.perf_counter()
            await chat.send(f"ping {i}")
            await _next(bob, MessageEvent)
            lat.append((time.perf_counter() - t0) * 1000)
        # throughput: `window` sends in flight
        got = 0
        done = asyncio.Event()

        async def receive() -> None:
            nonlocal got
            while got < count:
                await _next(bob, MessageEvent, 120)
                got += 1
            done.set()

        receiver = asyncio.ensure_future(receive())
        cpu0 = _cpu_s(server.pid)
        t0 = time.perf_counter()
        for start in range(0, count, window):
            await asyncio.gather(*(chat.send(f"m{i}")
                                   for i in range(start, min(count, start + window))))
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - t0
        server_cpu = _cpu_s(server.pid) - cpu0
        await receiver
        await chat.end()
        file_s, file_cpu = await _file(alice, bob, file, server.pid)
    finally:
        await alice.close()
        await bob.close()
        server.terminate()
        await server.wait()
    lat.sort()
    return {
        "case": mode,
        "p50_ms": round(statistics.median(lat), 3),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3),
        "messages_per_s": round(count / elapsed, 1),
        # the server process's CPU per chat message of the throughput phase (its delivery
        # IMDN included: two MSRP messages relayed in the b2bua case)
        "server_cpu_us_per_message": round(server_cpu / count * 1e6, 1),
        "rounds": rounds,
        "messages": count,
        "file_mb_per_s": round(file.stat().st_size / file_s / 1e6, 1),
        "file_server_cpu_s_per_gib": round(file_cpu / file.stat().st_size * (1 << 30), 2),
    }


async def run(quick: bool, window: int) -> dict[str, Any]:
    rounds, count, size = (100, 600, 16 << 20) if quick else (300, 3000, 64 << 20)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="simpleim-b2bua-") as tmp:
        file = Path(tmp) / "file.bin"
        with open(file, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(size >> 20):
                f.write(block)
        for mode in ("proxy", "b2bua"):
            row = await _case(mode, Path(tmp), rounds, count, window, file)
            label = "direct" if mode == "proxy" else "b2bua"
            print(f"{label:7s} p50 {row['p50_ms']:7.3f} ms  p99 {row['p99_ms']:7.3f} ms  "
                  f"{row['messages_per_s']:8.1f} msg/s  server CPU "
                  f"{row['server_cpu_us_per_message']:6.1f} us/msg; file "
                  f"{row['file_mb_per_s']:6.1f} MB/s, server CPU "
                  f"{row['file_server_cpu_s_per_gib']:5.2f} s/GiB", flush=True)
            rows[label] = row
    d, b = rows["direct"], rows["b2bua"]
    return {
        "benchmark": "msrp_b2bua",
        "quick": quick,
        "window": window,
        "direct": d,
        "b2bua": b,
        "added_latency_p50_ms": round(b["p50_ms"] - d["p50_ms"], 3),
        "throughput_ratio": round(b["messages_per_s"] / d["messages_per_s"], 3),
        "file_ratio": round(b["file_mb_per_s"] / d["file_mb_per_s"], 3),
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="100 round trips + 600 messages")
    parser.add_argument("--window", type=int, default=16, help="sends in flight (default 16)")
    args = parser.parse_args(argv)
    emit(asyncio.run(run(args.quick, args.window)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
