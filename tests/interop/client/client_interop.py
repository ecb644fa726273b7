"""Helpers of the client interop tests: an in-process simpleim server on an ephemeral port,
real peer processes (linphone-daemon, baresip) started in the test's tmp dir and stopped by
PID, and the asyncio glue to read their output."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from client_helpers import free_port
from needs import unavailable
from simpleim.client.account import Account
from simpleim.client.config import ClientConfig
from simpleim.server.app import ImServer
from simpleim.server.config import ServerConfig
from simpleim.store import open_store
from simpleim.timers import Timers
from simpleim.transport.sip_addr import ListenSpec
from waiting import wait_until

DOMAIN = "example.test"
#: the passwords the peer configs use (tests/interop/peers).
USERS = {"alice": "alicepw", "bob": "bobpw", "carol": "carolpw", "dave": "davepw"}
LINPHONE_PORT = 5092
BARESIP_PORT = 5094
BARESIP_CTRL = 4444
KAMAILIO_PORT = 5470
MSRP_RELAY_PORT = 2965
SIPP_PORTS = range(5480, 5490)
FAST = Timers(tc1=0.5, tc2=5.0)
#: June: liblinphone 5.1.65 rejects CPIM DateTime in January (test-peers.md §3).
JUNE = "2026-06-15T12:00:00Z"
HERE = Path(__file__).resolve().parent
#: the peers' configuration files, copied into the project (tests/interop/peers/README.md)
PEERS = HERE.parent / "peers"


def linphone_rc(tmp: Path, port: int) -> Path:
    """carol's linphone-daemon config (CPIM on) in ``tmp``, through the server on ``port``."""
    text = (PEERS / "linphone" / "carol-cpim.rc").read_text()
    text = text.replace("127.0.0.1:5070", f"127.0.0.1:{port}")
    text = text.replace("/tmp/lp/carol-cpim.db", str(tmp / "carol.db"))
    rc = tmp / "carol.rc"
    rc.write_text(text)
    return rc


def require(binary: str, package: str) -> str:
    path = shutil.which(binary) or next(
        (str(p) for p in (Path("/usr/sbin") / binary, Path("/usr/bin") / binary) if p.exists()),
        None)
    if path is None:
        unavailable(f"{binary} not installed (Debian package {package}; .ci/run installs it)")
    return path


def port_free(proto: str, port: int) -> bool:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        if proto == "tcp":
            # TIME-WAIT leftovers do not stop a server (which sets SO_REUSEADDR); a listener does
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            if proto == "tcp":
                s.listen(1)
        except OSError:
            return False
    return True


def ensure_free(*ports: tuple[str, int]) -> None:
    busy = [f"{p}/{n}" for p, n in ports if not port_free(p, n)]
    if busy:
        pytest.fail(f"port(s) {', '.join(busy)} of the client port plan are in use")


def ephemeral_port() -> int:
    """A free loopback port for TCP and UDP, outside the kernel's ephemeral range (see
    client_helpers.free_port)."""
    return free_port()


@contextlib.asynccontextmanager
async def simpleim_server(tmp: Path, port: int | None = None
                          ) -> AsyncIterator[tuple[ImServer, int]]:
    port = port or ephemeral_port()
    db = tmp / "server.db"
    store = await open_store(f"sqlite:///{db}")
    for name, pw in USERS.items():
        await store.add_user(name, DOMAIN, pw)
    cfg = ServerConfig(domain=DOMAIN, listen=(ListenSpec("udp", "127.0.0.1", port),
                                              ListenSpec("tcp", "127.0.0.1", port)),
                       db_url=f"sqlite:///{db}", log_level="warning")
    server = ImServer(cfg, store)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server, port
    finally:
        await server.close()
        await store.close()


async def wait_registered(server: ImServer, user: str, timeout: float = 20.0) -> None:
    from simpleim.server.location import aor_key
    await wait_until(lambda: server.location.lookup(aor_key(user, DOMAIN)), timeout,
                     what=f"{user} registered")


def account_config(user: str, proxy: str, tmp: Path, **kw: Any) -> ClientConfig:
    dl = tmp / f"dl-{user}"
    dl.mkdir(exist_ok=True)
    cfg = ClientConfig(aor=f"{user}@{DOMAIN}", password=USERS[user], proxy=proxy,
                       download_dir=str(dl), timers=FAST, fixed_datetime=JUNE, expires=300)
    return replace(cfg, **kw) if kw else cfg


class Proc:
    """A peer process with its stdout collected line by line (stopped by PID)."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, name: str, argv: list[str], *, env: dict[str, str] | None = None,
                    cwd: Path | None = None) -> Proc:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        return cls(proc, name)

    async def _read(self) -> None:
        out = self.proc.stdout
        if out is None:
            return
        while True:
            line = await out.readline()
            if not line:
                break
            self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))
            self._changed.set()

    def text(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, needle: str, timeout: float = 15.0) -> str:
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                self._changed.clear()
                await self._changed.wait()

    async def send(self, line: str) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.write((line + "\n").encode())
            await self.proc.stdin.drain()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(5):
                    await self.proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        self._reader.cancel()


@contextlib.asynccontextmanager
async def account(cfg: ClientConfig, *, register: bool = True) -> AsyncIterator[Account]:
    acc = Account(cfg)
    await acc.start(register=register)
    try:
        yield acc
    finally:
        await acc.close()


@contextlib.asynccontextmanager
async def kamailio(tmp: Path) -> AsyncIterator[Proc]:
    """Kamailio (client/kamailio.cfg, WITH_AUTH) on 127.0.0.1:5470 UDP+TCP, MSRP relay 2965."""
    binary = require("kamailio", "kamailio")
    ensure_free(("udp", KAMAILIO_PORT), ("tcp", KAMAILIO_PORT), ("tcp", MSRP_RELAY_PORT))
    rundir = tmp / "kam"
    rundir.mkdir()
    env = dict(os.environ, SIMPLEIM_KAM_CTL=f"unix:{rundir / 'ctl'}")
    proc = await Proc.start("kamailio", [binary, "-f", str(HERE / "kamailio.cfg"), "-DD", "-E",
                                         "-Y", str(rundir), "-P", str(rundir / "kam.pid"),
                                         "-A", "WITH_AUTH"], env=env)
    try:
        def up() -> bool:
            if proc.proc.returncode is not None:
                raise RuntimeError(f"kamailio exited:\n{proc.text()[-2000:]}")
            return (rundir / "ctl").exists() and not port_free("udp", KAMAILIO_PORT)

        await wait_until(up, 15, what="kamailio listening with its ctl socket")
        yield proc
    finally:
        await proc.stop()



def baresip_config_dir(tmp: Path, port: int) -> Path:
    """dave's baresip config (the shared peer files) registering to 127.0.0.1:``port``."""
    d = tmp / "dave"
    shutil.copytree(PEERS / "baresip" / "dave", d)
    acc = (d / "accounts").read_text().replace("127.0.0.1:5070", f"127.0.0.1:{port}")
    (d / "accounts").write_text(acc)
    return d


async def baresip_ctrl(command: str, params: str) -> bool:
    """One ctrl_tcp command (a JSON netstring); False when baresip does not listen yet."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", BARESIP_CTRL)
    except OSError:
        return False
    payload = json.dumps({"command": command, "params": params, "token": "t1"}).encode()
    writer.write(str(len(payload)).encode() + b":" + payload + b",")
    await writer.drain()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(3):
            await reader.read(4096)
    writer.close()
    return True
