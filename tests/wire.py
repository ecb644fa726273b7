"""Wire recorders for client tests: what a client really puts on the wire and takes from it.

:class:`SipWire` taps one account's SIP transport (``SipNetwork.send`` and ``deliver``, the
two places every outgoing and incoming SIP message passes): each message is parsed back from
its bytes, so a header that is not on the wire is not in the record.  :class:`MsrpWire` taps
the MSRP connections (``_Runner.data_received``) of the endpoints it is given and parses the
received stream: in a direct run the SENDs one client wrote are what the other one received.

:func:`direct_pair` runs two accounts with no server in the middle: each one's outbound proxy
is the other's SIP listener, nothing registers, and the requests go straight to the peer.
:func:`wired_pair` is the same through the in-process ``simpleim server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from client_helpers import DOMAIN, FAST, PASSWORDS, client_config, free_port, running_server
from simpleim.client import Account, ClientConfig
from simpleim.msrp.message import MsrpMessage, MsrpRequest, MsrpResponse
from simpleim.msrp.parser import BodyChunk, MessageEnd, MessageHead, MsrpParser
from simpleim.sip.message import SipRequest, SipResponse, parse_message
from simpleim.transport import msrp as msrp_transport
from simpleim.transport.msrp import MsrpEndpoint
from simpleim.transport.sip_addr import TransportAddr

__all__ = ["SipWire", "MsrpWire", "WireEntry", "SipTestPeer", "direct_pair", "wired_pair",
           "scripted_peer", "wait_for"]


#: one clock for every recorder of a test run: ``seq`` orders SIP and MSRP records
_SEQ = itertools.count()


@dataclass(frozen=True)
class WireEntry:
    direction: str                       # "out" (the client sent it) / "in" (it received it)
    peer: TransportAddr
    message: SipRequest | SipResponse
    seq: int


@dataclass(frozen=True)
class MsrpEntry:
    message: MsrpMessage                 # received by the watched endpoint
    seq: int


class _Changes:
    """Wakes waiters whenever a recorder records something."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def note(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event.clear()


async def wait_for(check: Callable[[], Any], changes: _Changes, what: str,
                   timeout: float = 10.0) -> Any:
    """``check()`` once it is truthy; re-checked on every new record; fails on timeout."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = check()
                if value:
                    return value
                await changes.wait()
    except TimeoutError:
        raise AssertionError(f"not seen on the wire within {timeout} s: {what}") from None


class SipWire:
    """Every SIP message one account sends or receives, parsed from the bytes."""

    def __init__(self, account: Account) -> None:
        self.entries: list[WireEntry] = []
        self.changes = _Changes()
        net = account.endpoint.net
        send, deliver = net.send, net.deliver

        def tapped_send(data: bytes, dest: TransportAddr, tag: str | None = None) -> None:
            self._record("out", dest, data)
            send(data, dest, tag)

        def tapped_deliver(data: bytes, source: TransportAddr, local: TransportAddr) -> None:
            self._record("in", source, data)
            deliver(data, source, local)

        net.send = tapped_send              # type: ignore[method-assign]
        net.deliver = tapped_deliver        # type: ignore[method-assign]

    def _record(self, direction: str, peer: TransportAddr, data: bytes) -> None:
        if not data.strip():
            return                          # CRLF keep-alives
        self.entries.append(WireEntry(direction, peer, parse_message(bytes(data)), next(_SEQ)))
        self.changes.note()

    def requests(self, method: str | None = None, direction: str = "out") -> list[SipRequest]:
        return [e.message for e in self.entries if e.direction == direction
                and isinstance(e.message, SipRequest)
                and (method is None or e.message.method == method)]

    def responses(self, method: str | None = None, status: int | None = None,
                  direction: str = "out") -> list[SipResponse]:
        return [e.message for e in self.entries if e.direction == direction
                and isinstance(e.message, SipResponse)
                and (method is None or e.message.cseq.method == method)
                and (status is None or e.message.status == status)]

    def seq_of(self, message: SipRequest | SipResponse) -> int:
        return next(e.seq for e in self.entries if e.message is message)

    async def request(self, method: str, direction: str = "out",
                      where: Callable[[SipRequest], bool] = lambda r: True,
                      timeout: float = 10.0) -> SipRequest:
        """The first such request (waits for it)."""
        found: list[SipRequest] = await wait_for(
            lambda: [r for r in self.requests(method, direction) if where(r)], self.changes,
            f"{direction} {method}", timeout)
        return found[0]

    async def response(self, method: str, status: int, direction: str = "out",
                       timeout: float = 10.0) -> SipResponse:
        found: list[SipResponse] = await wait_for(
            lambda: self.responses(method, status, direction), self.changes,
            f"{direction} {status} to {method}", timeout)
        return found[0]


class MsrpWire:
    """The MSRP messages received by the given endpoints (requests with their joined body)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.received: dict[int, list[MsrpEntry]] = {}
        self.changes = _Changes()
        self._parsers: dict[int, tuple[MsrpParser, list[bytes]]] = {}
        self._watched: set[int] = set()
        original = msrp_transport._Runner.data_received
        wire = self

        def tapped(runner: Any, data: bytes) -> None:
            if id(runner.endpoint) in wire._watched:
                wire._feed(runner, bytes(data))
            original(runner, data)

        monkeypatch.setattr(msrp_transport._Runner, "data_received", tapped)

    def watch(self, endpoint: MsrpEndpoint) -> None:
        self._watched.add(id(endpoint))
        self.received.setdefault(id(endpoint), [])

    def _feed(self, runner: Any, data: bytes) -> None:
        parser, parts = self._parsers.setdefault(id(runner), (MsrpParser(), []))
        out = self.received[id(runner.endpoint)]
        for ev in parser.feed(data):
            if isinstance(ev, MessageHead):
                parts.clear()
                out.append(MsrpEntry(ev.message, next(_SEQ)))
            elif isinstance(ev, BodyChunk):
                parts.append(bytes(ev.data))
            elif isinstance(ev, MessageEnd):
                msg = out[-1].message
                if isinstance(msg, MsrpRequest):
                    msg.flag = ev.flag
                    msg.body = b"".join(parts) if parts else msg.body
                self.changes.note()

    def entries(self, endpoint: MsrpEndpoint) -> list[MsrpEntry]:
        return list(self.received.get(id(endpoint), []))

    def requests(self, endpoint: MsrpEndpoint, method: str = "SEND") -> list[MsrpRequest]:
        return [e.message for e in self.entries(endpoint)
                if isinstance(e.message, MsrpRequest) and e.message.method == method]

    def responses(self, endpoint: MsrpEndpoint) -> list[MsrpEntry]:
        return [e for e in self.entries(endpoint) if isinstance(e.message, MsrpResponse)]


def _direct_config(user: str, my_port: int, peer_port: int, tmp: Path, **kw: Any
                   ) -> ClientConfig:
    dl = tmp / f"dl-{user}"
    dl.mkdir(exist_ok=True)
    cfg = ClientConfig(aor=f"{user}@{DOMAIN}", password=PASSWORDS[user],
                       proxy=f"udp:127.0.0.1:{peer_port}", listen=f"udp:127.0.0.1:{my_port}",
                       download_dir=str(dl), timers=FAST, expires=120)
    return replace(cfg, **kw) if kw else cfg


@contextlib.asynccontextmanager
async def direct_pair(tmp: Path, *, alice: dict[str, Any] | None = None,
                      bob: dict[str, Any] | None = None
                      ) -> AsyncIterator[tuple[Account, Account, SipWire, SipWire]]:
    """alice and bob talking to each other with no server in the middle."""
    a_port, b_port = free_port(), free_port()
    while b_port == a_port:
        b_port = free_port()
    a = Account(_direct_config("alice", a_port, b_port, tmp, **(alice or {})))
    b = Account(_direct_config("bob", b_port, a_port, tmp, **(bob or {})))
    a_wire, b_wire = SipWire(a), SipWire(b)
    await a.start(register=False)
    try:
        await b.start(register=False)
        try:
            yield a, b, a_wire, b_wire
        finally:
            await b.close()
    finally:
        await a.close()


@contextlib.asynccontextmanager
async def wired_pair(tmp: Path, *, alice: dict[str, Any] | None = None,
                     bob: dict[str, Any] | None = None,
                     server: dict[str, Any] | None = None,
                     ) -> AsyncIterator[tuple[Account, Account, SipWire, SipWire]]:
    """alice and bob registered through the in-process server, both wires recorded from the
    first REGISTER on.  ``server``: ServerConfig overrides."""
    async with running_server(tmp, **(server or {})) as (_server, port):
        a = Account(client_config("alice", port, tmp, **(alice or {})))
        b = Account(client_config("bob", port, tmp, **(bob or {})))
        a_wire, b_wire = SipWire(a), SipWire(b)
        await a.start()
        try:
            await b.start()
            try:
                yield a, b, a_wire, b_wire
            finally:
                await b.close()
        finally:
            await a.close()


class SipTestPeer(asyncio.DatagramProtocol):
    """A scripted SIP peer on UDP 127.0.0.1: ``script(request)`` returns the responses to
    send back (built with ``request.create_response``); every request is recorded."""

    def __init__(self, script: Callable[[SipRequest], list[SipResponse]]) -> None:
        self.script = script
        self.received: list[SipRequest] = []
        self.changes = _Changes()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.strip():
            return
        msg = parse_message(data)
        if not isinstance(msg, SipRequest):
            return
        self.received.append(msg)
        self.changes.note()
        assert self.transport is not None
        for resp in self.script(msg):
            self.transport.sendto(resp.to_bytes(), addr)

    async def request(self, method: str, timeout: float = 10.0) -> SipRequest:
        found: list[SipRequest] = await wait_for(
            lambda: [r for r in self.received if r.method == method], self.changes,
            f"{method} at the test peer", timeout)
        return found[0]


@contextlib.asynccontextmanager
async def scripted_peer(script: Callable[[SipRequest], list[SipResponse]]
                    ) -> AsyncIterator[SipTestPeer]:
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(
        lambda: SipTestPeer(script), local_addr=("127.0.0.1", 0))
    peer.transport = transport
    peer.port = transport.get_extra_info("sockname")[1]
    try:
        yield peer
    finally:
        transport.close()
