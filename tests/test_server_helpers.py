"""Helpers for the server tests: a small SIP user agent on SipEndpoint and a server factory.

(No tests here; the module is imported by tests/test_server_*.py.)
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from simpleim.server.app import ImServer
from simpleim.server.config import ServerConfig
from simpleim.sip.auth import DigestClient
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.store import Store, open_store
from simpleim.timers import Timers
from simpleim.transport.sip import IncomingRequest, SipEndpoint
from simpleim.transport.sip_addr import ListenSpec, TransportAddr
from waiting import wait_until

PASSWORDS = {"alice": "alicepw", "bob": "bobpw", "carol": "carolpw"}
DOMAIN = "example.test"
FAST_TIMERS = Timers(t1=0.05, t2=0.4, t4=0.5, timer_d_unreliable=0.5, timer_c=5.0)

Answer = Callable[[IncomingRequest], None]


def answer_ok(inc: IncomingRequest) -> None:
    """Default UAS behaviour: 200 to everything (with a Contact for INVITE)."""
    if inc.transaction_id is None:
        return
    headers = []
    if inc.method == "INVITE":
        local = inc.local
        headers.append(("Contact", f"<sip:uas@{local.hostport};transport={local.transport}>"))
    inc.reply(200, headers=headers, to_tag=secrets.token_hex(4))


class TestUA:
    """A user agent for tests: registers, sends requests, records what it receives."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        user: str,
        proxy: TransportAddr,
        *,
        transport: str = "udp",
        host: str = "127.0.0.1",
        answer: Answer | None = answer_ok,
        timers: Timers = FAST_TIMERS,
    ) -> None:
        self.user = user
        self.proxy = proxy
        self.transport = transport
        self.host = host
        self.answer = answer
        self.received: asyncio.Queue[IncomingRequest] = asyncio.Queue()
        self.endpoint = SipEndpoint(self._on_request, timers=timers)
        self.local: TransportAddr | None = None
        self._cseq = itertools.count(1)
        self.auth = DigestClient(user, PASSWORDS.get(user, "nopw"))

    async def start(self) -> TestUA:
        self.local = await self.endpoint.listen(ListenSpec(self.transport, self.host, 0))
        return self

    async def close(self) -> None:
        await self.endpoint.close()

    def _on_request(self, inc: IncomingRequest) -> None:
        self.received.put_nowait(inc)
        if self.answer is not None:
            self.answer(inc)

    @property
    def contact_uri(self) -> str:
        if self.local is None:
            raise RuntimeError("start() first")
        return f"sip:{self.user}@{self.local.hostport};transport={self.transport}"

    def request(
        self,
        method: str,
        uri: str,
        *,
        to: str | None = None,
        headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        call_id: str | None = None,
        from_user: str | None = None,
    ) -> SipRequest:
        to_value = to or f"<{uri}>"
        items: list[tuple[str, str]] = [
            ("Max-Forwards", "70"),
            ("From", f"<sip:{from_user or self.user}@{DOMAIN}>;tag={secrets.token_hex(4)}"),
            ("To", to_value),
            ("Call-ID", call_id or secrets.token_hex(8)),
            ("CSeq", f"{next(self._cseq)} {method}"),
            ("Contact", f"<{self.contact_uri}>"),
        ]
        items += list(headers)
        if body:
            items.append(("Content-Type", "text/plain"))
        return SipRequest(method, uri, items, body)

    async def send(
        self, req: SipRequest, *, auth: bool = True, dest: TransportAddr | None = None
    ) -> SipResponse:
        return await asyncio.wait_for(
            self.endpoint.request(req, dest or self.proxy, auth=self.auth if auth else None),
            10,
        )

    async def register(
        self,
        *,
        expires: int | None = 3600,
        contact: str | None = None,
        auth: bool = True,
        headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
        call_id: str | None = None,
    ) -> SipResponse:
        aor = f"sip:{self.user}@{DOMAIN}"
        extra = list(headers)
        if expires is not None:
            extra.append(("Expires", str(expires)))
        req = self.request("REGISTER", f"sip:{DOMAIN}", to=f"<{aor}>", headers=extra,
                           call_id=call_id or f"reg-{self.user}-{id(self)}")
        if contact is not None:
            req.headers.set("Contact", contact)
        return await self.send(req, auth=auth)

    async def next_request(self, timeout: float = 5.0) -> IncomingRequest:
        return await asyncio.wait_for(self.received.get(), timeout)


@dataclass
class ServerHandle:
    server: ImServer
    store: Store
    addrs: dict[str, TransportAddr] = field(default_factory=dict)
    uas: list[TestUA] = field(default_factory=list)

    def addr(self, transport: str = "udp") -> TransportAddr:
        return self.addrs[transport]

    async def ua(self, user: str, transport: str = "udp", **kw: object) -> TestUA:
        ua = TestUA(user, self.addr(transport), transport=transport, **kw)  # type: ignore[arg-type]
        await ua.start()
        self.uas.append(ua)
        return ua


@asynccontextmanager
async def running_server(
    *,
    auth: bool = True,
    transports: tuple[str, ...] = ("udp", "tcp"),
    host: str = "127.0.0.1",
    domain: str = DOMAIN,
    **config: object,
) -> AsyncIterator[ServerHandle]:
    # Tests share one event loop and a busy machine: the load-based shedding (lag,
    # utilisation) stays off unless a test asks for it; the pending bound stays on.
    config.setdefault("overload_max_lag", 0.0)
    config.setdefault("overload_max_busy", 0.0)
    store = await open_store("sqlite://:memory:")
    for user, password in PASSWORDS.items():
        await store.add_user(user, domain, password)
    cfg = ServerConfig(
        domain=domain,
        listen=tuple(ListenSpec(t, host, 0) for t in transports),
        db_url="sqlite://:memory:",
        auth=auth,
        timers=FAST_TIMERS,
        **config,  # type: ignore[arg-type]
    )
    server = ImServer(cfg, store)
    bound = await server.start()
    handle = ServerHandle(server, store, {b.transport: b for b in bound})
    try:
        yield handle
    finally:
        for ua in handle.uas:
            await ua.close()
        await server.close()
        await store.close()



async def eventually(check: Callable[[], Awaitable[bool]] | Callable[[], bool],
                     timeout: float = 3.0) -> None:
    """The server tests' name for :func:`waiting.wait_until` (fails on timeout)."""
    await wait_until(check, timeout)
