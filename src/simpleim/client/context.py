"""The narrow context every client feature is built on (a leaf module: no feature imports).

A feature (chats, pager messages, large messages, file transfer, image share, capability
queries) gets a :class:`ClientContext` - the user agent, the MSRP endpoint, the frozen
config, an event sink, a task spawner, the session registry and a clock - and nothing of the
:class:`~simpleim.client.account.Account` that composes them.  Tests give a feature a fake
context (tests/client_fakes.py) and see what it puts on the wire without a server.

:class:`MessageSink` is what the message-carrying features hand received content to (the
inbox: events, is-composing state, IMDN tracking); :class:`SessionHandle` is what the request
dispatcher needs of an INVITE session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Protocol, TypeVar

from simpleim.content.cpim import CpimDateTime
from simpleim.sip.dialog import Dialog
from simpleim.sip.headers import Address
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.transport.msrp import MsrpEndpoint
from simpleim.transport.sip import IncomingRequest

from .config import ClientConfig
from .events import Event
from .pager import Decoded, DeferredInfo
from .ua import InviteAttempt, InviteResult

__all__ = ["ClientContext", "MessageSink", "SessionHandle", "SessionRegistry", "SipUserAgent"]

T = TypeVar("T")


class SipUserAgent(Protocol):
    """The SIP requests a feature sends (:class:`~simpleim.client.ua.UserAgent`)."""

    async def request(self, req: SipRequest) -> SipResponse:
        """An out-of-dialog request through the outbound proxy, one digest retry."""
        ...

    async def invite(self, req: SipRequest, *, attempt: InviteAttempt | None = None,
                     local_contact: Address | None = None) -> InviteResult:
        """An INVITE; the 2xx is ACKed and its dialog returned (RFC 3261 §13.2.2.4)."""
        ...

    async def in_dialog(self, dialog: Dialog, method: str, *,
                        headers: Iterable[tuple[str, object]] = (), body: bytes = b"",
                        content_type: str | None = None) -> SipResponse:
        """``method`` within ``dialog`` (RFC 3261 §12.2.1.1)."""
        ...

    def answer_2xx(self, inc: IncomingRequest, resp: SipResponse, acked: asyncio.Event,
                   on_timeout: Callable[[], None]) -> None:
        """A 2xx to an INVITE, retransmitted over UDP until the ACK (§13.3.1.4)."""
        ...


class SessionHandle(Protocol):
    """What the request dispatcher needs of an INVITE session (RFC 3261 §12.2.2)."""

    @property
    def call_id(self) -> str: ...

    @property
    def session_id(self) -> str: ...

    @property
    def dialog(self) -> Dialog | None: ...

    def on_ack(self, inc: IncomingRequest) -> None: ...

    def on_bye(self, inc: IncomingRequest) -> None: ...

    def on_update(self, inc: IncomingRequest) -> None: ...

    def on_reinvite(self, inc: IncomingRequest) -> None: ...

    async def end(self, reason: str = "local hangup") -> None: ...


class SessionRegistry:
    """The account's live INVITE sessions by Call-ID; listeners hear of removals (the inbox
    drops a session's is-composing state)."""

    def __init__(self) -> None:
        self._by_call_id: dict[str, SessionHandle] = {}
        self._removed: list[Callable[[str], None]] = []

    def add(self, session: SessionHandle) -> None:
        self._by_call_id[session.call_id] = session

    def forget(self, session: SessionHandle) -> None:
        if self._by_call_id.get(session.call_id) is session:
            del self._by_call_id[session.call_id]
        for listener in self._removed:
            listener(session.session_id)

    def on_removed(self, listener: Callable[[str], None]) -> None:
        self._removed.append(listener)

    def get(self, call_id: str) -> SessionHandle | None:
        return self._by_call_id.get(call_id)

    def __getitem__(self, call_id: str) -> SessionHandle:
        return self._by_call_id[call_id]

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._by_call_id

    def __len__(self) -> int:
        return len(self._by_call_id)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._by_call_id))

    def values(self) -> list[SessionHandle]:
        return list(self._by_call_id.values())


class ClientContext(Protocol):
    """What a client feature may use (no service locator: nothing else)."""

    @property
    def config(self) -> ClientConfig: ...

    @property
    def ua(self) -> SipUserAgent: ...

    @property
    def msrp(self) -> MsrpEndpoint: ...

    @property
    def sessions(self) -> SessionRegistry: ...

    @property
    def contact(self) -> str:
        """Our Contact header value with the feature tags (OMA §5.2.1)."""
        ...

    @property
    def host(self) -> str:
        """Our SIP host (for Call-IDs)."""
        ...

    def local_contact(self) -> Address: ...

    @property
    def notify_handlers(self) -> dict[str, Callable[[IncomingRequest], None]]:
        """NOTIFYs of our subscriptions by Call-ID (a group chat's conference state)."""
        ...

    def emit(self, event: Event) -> None: ...

    def spawn(self, work: Awaitable[T]) -> asyncio.Task[T]:
        """Run ``work`` in the background; a failure becomes an :class:`ErrorEvent`."""
        ...

    def now(self) -> float:
        """Monotonic seconds (timers: Tc1, Tc2, session timer)."""
        ...

    def now_cpim(self) -> CpimDateTime:
        """The wall-clock time for CPIM DateTime (RFC 3862 §5.5)."""
        ...


class MessageSink(Protocol):
    """Where received IMs, IMDNs and is-composing documents go (the account's inbox)."""

    def present(self, decoded: Decoded, sender: str, mode: str,
                session_id: str | None = None, deferred: DeferredInfo | None = None,
                group: str | None = None) -> bool:
        """Emit what ``decoded`` is; True when it was a message (not an IMDN / composing)."""
        ...

    def deliver(self, decoded: Decoded, sender: str, mode: str,
                session_id: str | None = None, deferred: DeferredInfo | None = None,
                group: str | None = None) -> None:
        """:meth:`present` plus the delivery IMDN in a SIP MESSAGE (OMA §8.2.1)."""
        ...

    def sent(self, message_id: str, peer: str, wanted: set[str]) -> None:
        """An IM went out asking for ``wanted`` notifications (Tc2, OMA §15.2)."""
        ...
