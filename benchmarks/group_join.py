"""Join cost of a group chat: what the n-th participant's join costs the conference focus.

    .venv/bin/python benchmarks/group_join.py [--quick] [--sizes 10,100,500]
        [--members-kind simpleim|light]

For each n: an ad-hoc group chat of n-1 participants (the initiator and n-2 members, simpleim
accounts of this process over TCP, every one subscribed to the conference event package,
RFC 4575) on an in-process ``simpleim server`` (auth off, SQLite in a temp dir).  Once it is
quiet, the initiator adds one more member by REFER (RFC 4579); measured for that join:

* the time from the REFER until every subscriber (the n-1 old ones and the newcomer) has been
  told the newcomer is connected;
* the NOTIFYs the server sent for it: count and bytes (the whole SIP requests, as written),
  counted by wrapping the server endpoint's ``request``.

Issue 10 §6 asks that this grows linearly in n, not quadratically: each old subscriber gets one
partial-state NOTIFY naming only the newcomer (constant size), the newcomer one full-state
NOTIFY (size ~ n).  Reference points in the same run: the bytes of one full-state document per
subscriber (what a focus sending full state on every change would send: ~ n^2).
``--members-kind light``: the server and the members (benchmarks/_light_members.py, each
subscribed) in processes of their own, the NOTIFYs counted where they arrive - what makes
n = 500 measurable on two cores (500 accounts and the server on one event loop lag 1-2 s).
Last output line: JSON.  No peer here: a conference focus to compare with is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

from _common import emit, machine  # noqa: E402
from group_fanout import _all_connected, _line, _server, bench_account, start_group  # noqa: E402

from client_helpers import free_port  # noqa: E402
from simpleim.client import Account  # noqa: E402
from simpleim.client.events import ParticipantEvent  # noqa: E402
from simpleim.server.app import ImServer  # noqa: E402
from simpleim.server.config import ServerConfig  # noqa: E402
from simpleim.sip.message import SipRequest  # noqa: E402
from simpleim.store import open_store  # noqa: E402
from simpleim.transport.sip_addr import ListenSpec  # noqa: E402

DOMAIN = "example.test"


class NotifyCount:
    """NOTIFYs the server sends: count and bytes, since the last :meth:`reset`."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0
        self.largest = 0

    def reset(self) -> None:
        self.count = self.bytes = self.largest = 0

    def wrap(self, request: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def counting(req: SipRequest, *args: Any, **kw: Any) -> Any:
            if req.method == "NOTIFY":
                size = len(req.to_bytes())
                self.count += 1
                self.bytes += size
                self.largest = max(self.largest, size)
            return await request(req, *args, **kw)
        return counting


class Seen:
    """Who each account has been told is connected, from its events read from the start
    (an account's event queue holds 1,000: a setup of n members gives each ~2n)."""

    def __init__(self) -> None:
        self.by: dict[str, set[str]] = {}
        self._changed = asyncio.Event()

    async def follow(self, acc: Account) -> None:
        mine = self.by.setdefault(acc.config.aor, set())
        async for ev in acc.events:
            if isinstance(ev, ParticipantEvent) and ev.status == "connected":
                mine.add(ev.participant.removeprefix("sip:"))
                self._changed.set()

    def told(self, acc: Account, who: str) -> bool:
        return who in self.by.get(acc.config.aor, set())

    async def until(self, done: Callable[[], bool]) -> None:
        while not done():
            self._changed.clear()
            await self._changed.wait()


async def _one(n: int, tmp: Path) -> dict[str, Any]:
    port = free_port()
    db = f"sqlite:///{tmp / f'join{n}.db'}"
    store = await open_store(db)
    config = ServerConfig(domain=DOMAIN, listen=(ListenSpec("tcp", "127.0.0.1", port),),
                          db_url=db, log_level="warning", auth=False,
                          conference_max_participants=n + 1, max_tcp_per_source=4 * n + 64)
    server = ImServer(config, store)  # type: ignore[arg-type]
    await server.start()
    counter = NotifyCount()
    server.endpoint.request = counter.wrap(server.endpoint.request)  # type: ignore[method-assign]
    names = [f"j{i:03d}" for i in range(n - 1)]          # n-2 members + the one who joins
    accounts: list[Account] = []
    seen = Seen()
    followers: list[asyncio.Task[None]] = []
    try:
        for name in ["creator", *names]:
            acc = bench_account(name, port)
            await acc.start()
            accounts.append(acc)
            followers.append(asyncio.ensure_future(seen.follow(acc)))
        creator, members, newcomer = accounts[0], accounts[1:-1], accounts[-1]
        setup0 = time.perf_counter()
        chat = await start_group(creator, [m.config.aor for m in members], 120)
        inside = [creator, *members]
        async with asyncio.timeout(1200):           # everyone in, everyone told
            await seen.until(lambda: all(seen.told(acc, other.config.aor)
                                         for acc in inside for other in inside
                                         if other is not acc))
        setup = time.perf_counter() - setup0
        setup_notifies, setup_bytes = counter.count, counter.bytes
        counter.reset()
        t0 = time.perf_counter()
        status = await chat.add(newcomer.config.aor)
        who = newcomer.config.aor
        async with asyncio.timeout(120):                # its first NOTIFY is the full state
            await seen.until(lambda: all(seen.told(acc, who) for acc in inside)
                             and seen.told(newcomer, creator.config.aor))
        took = time.perf_counter() - t0
        result = {"n": n, "refer_status": status, "join_ms": round(took * 1000, 1),
                  "notifies": counter.count, "notify_bytes": counter.bytes,
                  "largest_notify": counter.largest,
                  "setup_s": round(setup, 2), "setup_notifies": setup_notifies,
                  "setup_notify_bytes": setup_bytes}
        with contextlib.suppress(Exception):
            await chat.leave()
    finally:
        for task in followers:
            task.cancel()
        for acc in reversed(accounts):
            with contextlib.suppress(Exception):
                await acc.close()
        await server.close()
        await store.close()
    # a full-state document to every subscriber on this join would be ~ n x the largest
    result["full_state_to_all_bytes"] = n * result["largest_notify"]
    return result


async def _one_light(n: int, tmp: Path) -> dict[str, Any]:
    """The same join with the members light (benchmarks/_light_members.py, subscribed to
    the conference, in a process of their own) and the server a process of its own: the
    NOTIFYs are counted where they arrive, at the n-2 old members and the newcomer (the
    initiator's one partial NOTIFY is not counted)."""
    async with _server(n, 1, tmp) as (port, _pid):
        helper = await asyncio.create_subprocess_exec(
            sys.executable, str(BENCH_DIR / "_light_members.py"), str(port), DOMAIN, "0",
            str(n - 1), "0", "subscribe", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=1 << 26)
        assert helper.stdin is not None
        creator = bench_account("creator", port)

        async def say(line: str) -> None:
            assert helper.stdin is not None
            helper.stdin.write(line.encode() + b"\n")
            await helper.stdin.drain()

        try:
            await _line(helper, "registered", 300)
            await creator.start()
            members = [f"m{i:04d}" for i in range(n - 2)]
            newcomer = f"m{n - 2:04d}"
            connected = asyncio.ensure_future(_all_connected(creator, n - 2, 1200))
            setup0 = time.perf_counter()
            chat = await start_group(creator, members, 300)
            await connected
            await say(f"wait-in {n - 2}")
            await _line(helper, "subscribed", 600)
            setup = time.perf_counter() - setup0
            await say(f"watch {newcomer}")
            t0 = time.perf_counter()
            status = await chat.add(newcomer)
            await _line(helper, "seen", 120)
            took = time.perf_counter() - t0
            await say("count")
            counted = json.loads(await _line(helper, "{", 60))
            await say("stop")
            with contextlib.suppress(Exception):
                await chat.leave()
        finally:
            await creator.close()
            if helper.returncode is None:
                helper.kill()
            await helper.wait()
    return {"n": n, "members_kind": "light", "refer_status": status,
            "join_ms": round(took * 1000, 1), "notifies": counted["notifies"],
            "notify_bytes": counted["bytes"], "largest_notify": counted["largest"],
            "setup_s": round(setup, 2),
            "full_state_to_all_bytes": n * counted["largest"]}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="n = 10, 50")
    ap.add_argument("--sizes", default=None, help="comma-separated n (default 10,100,500)")
    ap.add_argument("--members-kind", choices=("simpleim", "light"), default="simpleim",
                    help="simpleim: accounts and server in this process, every NOTIFY the "
                         "server sends counted (default); light: the server and light "
                         "subscribed members in processes of their own (benchmarks/"
                         "_light_members.py), NOTIFYs counted where they arrive")
    args = ap.parse_args()
    sizes = [int(x) for x in (args.sizes or ("10,50" if args.quick else "10,100,500"))
             .split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            row = await (_one_light(n, Path(tmp)) if args.members_kind == "light"
                         else _one(n, Path(tmp)))
            print(row, flush=True)
            rows.append(row)
    first = rows[0]
    growth = [{"n": r["n"], "bytes_per_n": round(r["notify_bytes"] / r["n"], 1),
               "x_n": round(r["n"] / first["n"], 1),
               "x_bytes": round(r["notify_bytes"] / max(1, first["notify_bytes"]), 1)}
              for r in rows]
    emit({"benchmark": "group_join", "results": rows, "growth": growth,
          "machine": machine()})


if __name__ == "__main__":
    asyncio.run(main())
