"""Conversation history (OMA SIMPLE IM §13): retrieval throughput from a large stored history,
and what recording costs the pager path, in one run.

    python benchmarks/history.py            # 100 000 stored messages, 2000 pager messages
    python benchmarks/history.py --quick    # 10 000, 400 (under a minute)

A ``simpleim server`` process (SQLite store in a temp dir, TCP on loopback) and two client
accounts in this process (alice, bob):

* **retrieval**: one recorded session of N chat messages is written into the store before the
  server starts (as the recorder writes them: an INVITE and a 200 sipfrag, N MSRP SENDs with
  their headers and a CPIM body, a BYE sipfrag); bob retrieves it with ``history.fetch``
  (INVITE to ``sip:History@DOMAIN``, one MSRP SEND ``message/msrp`` per item, BYE) - timed
  from the INVITE until the BYE; messages/s and the server's CPU per item.  The in-run
  reference is the same number of chat messages relayed live through the same server's B2BUA
  (``pf_media b2bua``, 16 sends in flight): the same MSRP stack and connection, no store.
* **recording cost**: M pager MESSAGEs alice -> bob (8 in flight) with bob's
  ``hist-activation`` pager setting off, then on (each MESSAGE written to the store before
  it is forwarded): messages/s and server CPU per message of both.

There is no external peer with a conversation history to compare with: the reference rows
are this server doing the same transport work without the history.  Last output line: one
JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import emit, machine  # noqa: E402
from msrp_b2bua import USERS, _account, _cpu_s, _free_port, _next  # noqa: E402

from simpleim.client.events import MessageEvent, SessionEvent  # noqa: E402
from simpleim.content.poc_settings import ServiceSettings  # noqa: E402
from simpleim.store import open_store  # noqa: E402
from simpleim.store.history import (  # noqa: E402
    HistoryItem,
    HistoryKind,
    HistoryRecord,
    ItemKind,
)

DOMAIN = "bench.test"
HID = "bench0000000000000000000000000001"
CPIM = ("From: <sip:alice@bench.test>\r\nTo: <sip:bob@bench.test>\r\n"
        "DateTime: 2026-12-05T08:00:00Z\r\nimdn.Message-ID: m{i}\r\n\r\n"
        "Content-Type: text/plain;charset=utf-8\r\n\r\nhistory message number {i}")


def _items(start: int, stop: int, now: float) -> list[HistoryItem]:
    owner = f"bob@{DOMAIN}"
    out = []
    for i in range(start, stop):
        body = CPIM.format(i=i).encode()
        out.append(HistoryItem(
            f"it{i:09d}", HID, owner, 1_000 + i, ItemKind.SEND, "in", now + i * 1e-3,
            "call-bench", f"msg{i}", "message/cpim", f"history message number {i}",
            (("To-Path", "msrp://127.0.0.1:2855/a;tcp"),
             ("From-Path", "msrp://127.0.0.1:2855/b;tcp"), ("Message-ID", f"msg{i}"),
             ("Content-Type", "message/cpim")), body))
    return out


async def _prepare(db: str, stored: int) -> None:
    store = await open_store(db)
    try:
        for user, pw in USERS.items():
            await store.add_user(user, DOMAIN, pw)
        now = time.time()
        head = HistoryItem("head", HID, f"bob@{DOMAIN}", 1, ItemKind.SIPFRAG, "", now,
                           "call-bench", "", "message/sipfrag", "", (),
                           b"INVITE sip:bob@bench.test SIP/2.0\r\nFrom: <sip:alice@bench.test>"
                           b"\r\nTo: <sip:bob@bench.test>\r\nCall-ID: call-bench\r\n")
        await store.history.create(HistoryRecord(
            HID, f"bob@{DOMAIN}", HistoryKind.SESSION, f"alice@{DOMAIN}", "bench", "bench",
            "call-bench", now, now + stored * 1e-3), [head])
        batch = 2000
        for start in range(0, stored, batch):
            await store.history.append_many(_items(start, min(stored, start + batch), now))
    finally:
        await store.close()


async def _server(tmp: Path, port: int, db: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLEIM_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simpleim", "server", "--domain", DOMAIN,
        "--listen", f"tcp:127.0.0.1:{port}", "--db", db, "--log-level", "warning",
        "--pf-media", "b2bua", "--msrp-listen", "127.0.0.1:0", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    if "ready" not in line:
        raise RuntimeError(f"server did not start: {line!r}")
    return proc


async def _pager(alice: Any, bob: Any, count: int, pid: int) -> tuple[float, float]:
    """Messages/s and server CPU us/message of ``count`` pager messages (8 in flight),
    timed until bob reported the last one."""
    got = 0
    done = asyncio.Event()

    async def receive() -> None:
        nonlocal got
        while got < count:
            await _next(bob, MessageEvent, 120)
            got += 1
        done.set()

    receiver = asyncio.ensure_future(receive())
    cpu0 = _cpu_s(pid)
    t0 = time.perf_counter()
    for start in range(0, count, 8):
        await asyncio.gather(*(alice.pager.send("bob", f"pager {i}")
                               for i in range(start, min(count, start + 8))))
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - t0
    cpu = _cpu_s(pid) - cpu0
    await receiver
    return count / elapsed, cpu / count * 1e6


async def run(quick: bool) -> dict[str, Any]:
    stored, pager = (10_000, 400) if quick else (100_000, 2_000)
    with tempfile.TemporaryDirectory(prefix="simpleim-history-") as tmp_name:
        tmp = Path(tmp_name)
        db = f"sqlite:///{tmp / 'history.db'}"
        t0 = time.perf_counter()
        await _prepare(db, stored)
        prepare_s = time.perf_counter() - t0
        port = _free_port()
        server = await _server(tmp, port, db)
        alice, bob = _account("alice", port, tmp), _account("bob", port, tmp)
        try:
            await alice.start()
            await bob.start()
            # retrieval of the stored session
            cpu0 = _cpu_s(server.pid)
            t0 = time.perf_counter()
            entries = await bob.history.fetch([f"{HID}@{DOMAIN}"], timeout=600)
            fetch_s = time.perf_counter() - t0
            fetch_cpu = _cpu_s(server.pid) - cpu0
            sends = [e for e in entries if e.kind == "send"]
            if len(sends) != stored or sends[-1].text != f"history message number {stored - 1}":
                raise RuntimeError(f"retrieved {len(sends)} of {stored} messages")
            # the reference: as many chat messages relayed live through the B2BUA
            chat = await alice.chats.start("bob")
            while (await _next(bob, SessionEvent)).state != "established":
                pass
            live = min(stored, 5_000 if quick else 20_000)
            got = 0
            done = asyncio.Event()

            async def receive() -> None:
                nonlocal got
                while got < live:
                    await _next(bob, MessageEvent, 300)
                    got += 1
                done.set()

            receiver = asyncio.ensure_future(receive())
            cpu0 = _cpu_s(server.pid)
            t0 = time.perf_counter()
            for start in range(0, live, 16):
                await asyncio.gather(*(chat.send(f"live {i}")
                                       for i in range(start, min(live, start + 16))))
            await asyncio.wait_for(done.wait(), 600)
            live_s = time.perf_counter() - t0
            live_cpu = _cpu_s(server.pid) - cpu0
            await receiver
            await chat.end()
            # recording cost on the pager path
            off_rate, off_cpu = await _pager(alice, bob, pager, server.pid)
            await bob.settings.publish(ServiceSettings(history_pager=True))
            on_rate, on_cpu = await _pager(alice, bob, pager, server.pid)
        finally:
            await alice.close()
            await bob.close()
            server.terminate()
            await server.wait()
    result = {
        "benchmark": "history",
        "quick": quick,
        "stored_messages": stored,
        "store_fill_s": round(prepare_s, 2),
        "retrieval_messages_per_s": round(stored / fetch_s, 1),
        "retrieval_server_cpu_us_per_message": round(fetch_cpu / stored * 1e6, 1),
        "live_relay_messages": live,
        "live_relay_messages_per_s": round(live / live_s, 1),
        "live_relay_server_cpu_us_per_message": round(live_cpu / live * 1e6, 1),
        "pager_messages": pager,
        "pager_off_messages_per_s": round(off_rate, 1),
        "pager_off_server_cpu_us_per_message": round(off_cpu, 1),
        "pager_recorded_messages_per_s": round(on_rate, 1),
        "pager_recorded_server_cpu_us_per_message": round(on_cpu, 1),
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"retrieval: {result['retrieval_messages_per_s']} msg/s from a {stored}-message "
          f"history ({result['retrieval_server_cpu_us_per_message']} us server CPU/msg); "
          f"live B2BUA relay: {result['live_relay_messages_per_s']} msg/s; pager "
          f"{off_rate:.1f} msg/s unrecorded vs {on_rate:.1f} recorded", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="10 000 stored, 400 pager")
    args = parser.parse_args(argv)
    emit(asyncio.run(run(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
