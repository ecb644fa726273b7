"""A fake :class:`~simpleim.client.context.ClientContext` for unit tests of one client feature:
no server, no second account, no SIP socket.

:class:`FakeUserAgent` records every request a feature sends and answers it with what the
test scripts (``answer``: request -> response; 200 by default); :class:`FakeContext` has a
controlled clock (``clock``), records the events and the background tasks.  The MSRP endpoint
is a real one on 127.0.0.1 (a feature that sets up media needs a listener, nothing more).
:func:`incoming` builds an :class:`IncomingRequest` whose responses are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from simpleim.client.config import ClientConfig
from simpleim.client.context import SessionRegistry
from simpleim.client.events import Event
from simpleim.client.features import contact_params
from simpleim.client.ua import InviteAttempt, InviteResult
from simpleim.content.cpim import CpimDateTime
from simpleim.sip.dialog import Dialog
from simpleim.sip.headers import Address
from simpleim.sip.message import SipRequest, SipResponse, parse_message
from simpleim.timers import Timers
from simpleim.transport.msrp import MsrpEndpoint
from simpleim.transport.sip import IncomingRequest
from simpleim.transport.sip_addr import TransportAddr

T = TypeVar("T")
Answer = Callable[[SipRequest], SipResponse]

FIXED_TIME = "2026-12-04T21:00:00Z"


def ok(req: SipRequest) -> SipResponse:
    return req.create_response(200, to_tag="fake")


class FakeUserAgent:
    """Records what a feature sends; answers with ``answer``."""

    def __init__(self, answer: Answer = ok) -> None:
        self.answer = answer
        self.sent: list[SipRequest] = []
        self.answered_2xx: list[SipResponse] = []

    def _wire(self, req: SipRequest) -> SipRequest:
        # what goes on the wire: serialized and parsed back (a header that does not survive
        # the round trip is not on the wire)
        parsed = parse_message(req.to_bytes())
        assert isinstance(parsed, SipRequest)
        self.sent.append(parsed)
        return parsed

    def requests(self, method: str) -> list[SipRequest]:
        return [r for r in self.sent if r.method == method]

    async def request(self, req: SipRequest) -> SipResponse:
        return self.answer(self._wire(req))

    async def invite(self, req: SipRequest, *, attempt: InviteAttempt | None = None,
                     local_contact: Address | None = None) -> InviteResult:
        wire = self._wire(req)
        resp = self.answer(wire)
        if 200 <= resp.status < 300:
            return InviteResult(resp, Dialog.from_uac(req, resp, local_contact=local_contact),
                                req)
        return InviteResult(resp, None, req)

    async def in_dialog(self, dialog: Dialog, method: str, *,
                        headers: Iterable[tuple[str, object]] = (), body: bytes = b"",
                        content_type: str | None = None) -> SipResponse:
        req = dialog.create_request(method, headers=headers, body=body,
                                    content_type=content_type)
        return self.answer(self._wire(req))

    def answer_2xx(self, inc: IncomingRequest, resp: SipResponse, acked: asyncio.Event,
                   on_timeout: Callable[[], None]) -> None:
        self.answered_2xx.append(resp)
        inc.respond(resp)


class FakeContext:
    """Everything a feature may use, observable."""

    def __init__(self, config: ClientConfig, msrp: MsrpEndpoint, answer: Answer = ok) -> None:
        self.config = config
        self.ua = FakeUserAgent(answer)
        self.msrp = msrp
        self.sessions = SessionRegistry()
        self.host = "127.0.0.1"
        self.contact = f"<sip:{config.user}@127.0.0.1:5099>{contact_params()}"
        self.events: list[Event] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.clock = 1000.0

    def local_contact(self) -> Address:
        return Address.parse(self.contact, "Contact")

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def spawn(self, work: Awaitable[T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(work)
        self.tasks.append(task)
        return task

    def now(self) -> float:
        return self.clock

    def now_cpim(self) -> CpimDateTime:
        return CpimDateTime(FIXED_TIME)

    def of_type(self, kind: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, kind)]

    async def settle(self) -> None:
        """Wait for the background work the feature spawned (bounded: fails when stuck)."""
        async with asyncio.timeout(10):
            while any(not t.done() for t in self.tasks):
                await asyncio.gather(*self.tasks, return_exceptions=True)
        for t in self.tasks:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]


def fake_config(tmp: Path, user: str = "alice", **kw: Any) -> ClientConfig:
    cfg = ClientConfig(aor=f"{user}@example.test", password="pw", proxy="127.0.0.1:5060",
                       download_dir=str(tmp / f"dl-{user}"),
                       timers=Timers(tc1=0.2, tc2=2.0))
    return replace(cfg, **kw) if kw else cfg


@contextlib.asynccontextmanager
async def fake_context(tmp: Path, answer: Answer = ok, **kw: Any) -> AsyncIterator[FakeContext]:
    msrp = MsrpEndpoint("127.0.0.1", 0)
    await msrp.start()
    ctx = FakeContext(fake_config(tmp, **kw), msrp, answer)
    try:
        yield ctx
    finally:
        for t in ctx.tasks:
            t.cancel()
        await asyncio.gather(*ctx.tasks, return_exceptions=True)
        await msrp.close()


class _RecordingEndpoint:
    """What IncomingRequest.respond needs of an endpoint; keeps the responses."""

    def __init__(self) -> None:
        self._server: dict[str, IncomingRequest] = {}
        self.on_final: None = None
        self.responses: list[SipResponse] = []

    def _answered(self, inc: IncomingRequest) -> None:
        pass

    def _note_rejected_invite(self, inc: IncomingRequest) -> None:
        pass

    def _send_response(self, inc: IncomingRequest, response: SipResponse) -> bool:
        parsed = parse_message(response.to_bytes())
        assert isinstance(parsed, SipResponse)
        self.responses.append(parsed)
        return True


def incoming(raw: str | bytes) -> tuple[IncomingRequest, list[SipResponse]]:
    """An incoming request (raw SIP text, ``\\n`` line ends allowed) and the list its
    responses go to."""
    data = raw.encode() if isinstance(raw, str) else raw
    head, sep, body = data.partition(b"\n\n")
    if sep:
        data = head.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n\r\n" + body
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    ep = _RecordingEndpoint()
    addr = TransportAddr("udp", "127.0.0.1", 5098)
    inc = IncomingRequest(ep, msg, addr, addr, "tx-1")  # type: ignore[arg-type]
    return inc, ep.responses
