"""Shared helpers for the client end-to-end tests: an in-process ``simpleim server`` on an
ephemeral loopback port with a temp SQLite store, and accounts registered through it."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from simpleim.client.account import Account
from simpleim.client.config import ClientConfig
from simpleim.client.events import Event
from simpleim.server.app import ImServer
from simpleim.server.config import ServerConfig
from simpleim.store import open_store
from simpleim.timers import Timers
from simpleim.transport.sip_addr import ListenSpec

DOMAIN = "example.test"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
FAST = Timers(tc1=0.5, tc2=2.0)


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections (Linux)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A loopback port free for both TCP and UDP, for a server of a test.

    Drawn at random *below* the kernel's ephemeral range: a port handed back by a bind to
    port 0 comes from that range, and the kernel may give it to any outgoing connection of
    this host (another suite, a benchmark's thousand clients) between this check and the
    server's bind - which made a test fail with EADDRINUSE once in five runs."""
    low, _high = _ephemeral_range()
    top = max(low - 1, 20_000)
    for _ in range(200):
        port = random.randint(10_000, top)
        if _bindable(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:   # a crowded host
        s.bind(("127.0.0.1", 0))
        found: int = s.getsockname()[1]
    return found


@contextlib.asynccontextmanager
async def running_server(tmp: Path, *, store_url: str | None = None,
                         **overrides: Any) -> AsyncIterator[tuple[ImServer, int]]:
    """``overrides``: ServerConfig fields (e.g. ``pf_media="b2bua"``); ``store_url``: the
    store (default: SQLite in ``tmp``)."""
    port = free_port()
    url = store_url or f"sqlite:///{tmp / 'server.db'}"
    store = await open_store(url)
    for name, pw in PASSWORDS.items():
        if await store.get_user(name, DOMAIN) is None:  # a restart on the same store
            await store.add_user(name, DOMAIN, pw)
    config = ServerConfig(
        domain=DOMAIN,
        listen=(ListenSpec("udp", "127.0.0.1", port), ListenSpec("tcp", "127.0.0.1", port)),
        db_url=url,
        log_level="warning",
    )
    if overrides:
        config = replace(config, **overrides)
    server = ImServer(config, store)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server, port
    finally:
        await server.close()
        await store.close()


def client_config(
    user: str, port: int, tmp: Path, transport: str = "udp", **kw: Any
) -> ClientConfig:
    dl = tmp / f"dl-{user}"
    dl.mkdir(exist_ok=True)
    cfg = ClientConfig(
        aor=f"{user}@{DOMAIN}",
        password=PASSWORDS[user],
        proxy=f"{transport}:127.0.0.1:{port}",
        listen=f"{transport}:127.0.0.1:0",
        download_dir=str(dl),
        timers=FAST,
        expires=120,
    )
    return replace(cfg, **kw) if kw else cfg


async def wait_event(
    account: Account, pred: Callable[[Event], bool], timeout: float = 10.0
) -> Event:
    async with asyncio.timeout(timeout):
        while True:
            ev = await account.events.get()
            if ev is None:
                raise AssertionError("event stream closed")
            if pred(ev):
                return ev


@contextlib.asynccontextmanager
async def pair(
    tmp: Path,
    transport: str = "udp",
    *,
    alice: dict[str, Any] | None = None,
    bob: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[Account, Account]]:
    """A server plus registered alice and bob (``alice``/``bob``: config overrides,
    ``server``: ServerConfig overrides)."""
    async with running_server(tmp, **(server or {})) as (_server, port):
        a = Account(client_config("alice", port, tmp, transport, **(alice or {})))
        b = Account(client_config("bob", port, tmp, transport, **(bob or {})))
        await a.start()
        try:
            await b.start()
            try:
                yield a, b
            finally:
                await b.close()
        finally:
            await a.close()
