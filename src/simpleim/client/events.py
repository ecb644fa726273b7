"""What an :class:`~simpleim.client.account.Account` reports: typed, JSON-able events and
the bounded async queue they travel through."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields
from typing import Protocol

__all__ = [
    "Event",
    "InvitationHandle",
    "RegisteredEvent",
    "ReadyEvent",
    "MessageEvent",
    "GroupMessageEvent",
    "ParticipantEvent",
    "SessionEvent",
    "FileEvent",
    "ImdnEvent",
    "FinalReportEvent",
    "ComposingEvent",
    "CapabilitiesEvent",
    "ErrorEvent",
    "EventStream",
    "HistoryEvent",
    "DeferredListEvent",
]


class InvitationHandle(Protocol):
    """An incoming invitation waiting for the application (policy ``ask``):
    :class:`~simpleim.client.session.Invitation`."""

    def accept(self) -> None: ...

    def decline(self, status: int = 480) -> None: ...


@dataclass(frozen=True)
class Event:
    """Base: every event has a name (``event``) for the JSON output."""

    def to_json(self) -> dict[str, object]:
        """The fields as JSON values (tuples as lists), without the live invitation."""
        data: dict[str, object] = {"event": self.name}
        for f in fields(self):
            if f.name == "invitation":
                continue          # a live handle, not data
            value = getattr(self, f.name)
            data[f.name] = list(value) if isinstance(value, tuple) else value
        return data

    @property
    def name(self) -> str:
        return "event"


@dataclass(frozen=True)
class RegisteredEvent(Event):
    aor: str
    contact: str
    expires: int

    @property
    def name(self) -> str:
        return "registered" if self.expires > 0 else "unregistered"


@dataclass(frozen=True)
class ReadyEvent(Event):
    aor: str
    sip: str
    msrp: str

    @property
    def name(self) -> str:
        return "ready"


@dataclass(frozen=True)
class MessageEvent(Event):
    """An instant message: ``mode`` is ``pager``, ``large`` or ``session``, ``system`` for
    a System Message of the IM server (OMA §8.2.1 step 2: presented apart; answer it with a
    message to ``System@DOMAIN``), or ``group-advertisement`` for an extended group
    advertisement (§8.2.1 step 3: presented apart by its ``subject``; ``text`` is the
    advertisement document as received)."""

    sender: str
    text: str
    content_type: str
    mode: str
    message_id: str | None = None
    session_id: str | None = None
    imdn: tuple[str, ...] = ()
    datetime: str | None = None
    #: set when the CPIM From names someone else than ``sender`` (the authenticated SIP
    #: identity): an unverified claim, shown as such (RFC 3862 §7)
    claimed_sender: str | None = None
    #: True for a message the server stored while we were offline (OMA §12) and delivers
    #: now; ``deferred_id`` is its Message-ID URI at the server (for ``deferred delete``)
    #: and ``datetime`` the original date (CPIM DateTime, else the server's receive Date).
    deferred: bool = False
    deferred_id: str | None = None
    #: the pre-defined group a pager message was sent to (OMA §8.3.2.1 step 4: asserted by
    #: the server, ``sender`` from its Referred-By)
    group: str | None = None
    #: the SIP Subject of a pager message (an extended group advertisement, mode
    #: ``group-advertisement``, is presented by it: OMA §8.2.1 step 3)
    subject: str | None = None

    @property
    def name(self) -> str:
        return "message"


@dataclass(frozen=True)
class GroupMessageEvent(Event):
    """An IM in a group chat (OMA §7.1.3): ``group`` is the conference URI, ``sender`` the
    participant it came from (the CPIM From, checked by the focus, §7.2.3.3; an anonymous
    participant's anonymous identity, §7.2.3.2); ``system``: a system message of the
    conference itself (§7.2.3.5), its service type (``SysAdmin``, ``Announcement``,
    ``Advertisement``...: the CPIM From display name); ``alias``: the sender's chat alias
    (the CPIM From display name, else its display-text in the conference state);
    ``private``: a private message to us (the CPIM To names us, not the conference,
    §7.1.3.3)."""

    group: str
    sender: str
    text: str
    message_id: str | None = None
    mode: str = "session"
    session_id: str | None = None
    system: str | None = None
    alias: str | None = None
    private: bool = False

    @property
    def name(self) -> str:
        return "group-message"


@dataclass(frozen=True)
class ParticipantEvent(Event):
    """A change of the participant list (RFC 4575 conference state, §7.1.1.11):
    ``status`` ``connected`` / ``disconnected`` / ``pending``; ``method`` the joining or
    disconnection method (``dialed-in``, ``dialed-out``, ``departed``, ``booted``,
    ``failed``)."""

    group: str
    participant: str
    status: str
    method: str | None = None
    session_id: str | None = None

    @property
    def name(self) -> str:
        return "participant"


@dataclass(frozen=True)
class SessionEvent(Event):
    """``state``: ``invited``, ``established``, ``ended``, ``declined``, ``cancelled``."""

    session_id: str
    peer: str
    state: str
    kind: str = "chat"
    reason: str | None = None
    status: int | None = None
    invitation: InvitationHandle | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return "session"


@dataclass(frozen=True)
class FileEvent(Event):
    """File transfer / image share.  ``state``: ``offered``, ``progress``, ``received``,
    ``sent``, ``declined``, ``failed``; ``kind``: ``file`` or ``image``."""

    transfer_id: str
    peer: str
    state: str
    file_name: str | None = None
    size: int | None = None
    content_type: str | None = None
    path: str | None = None
    transferred: int = 0
    hash_ok: bool | None = None
    kind: str = "file"
    direction: str = "in"
    reason: str | None = None
    invitation: InvitationHandle | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return "file"


@dataclass(frozen=True)
class ImdnEvent(Event):
    """A delivery / display notification (RFC 5438) for one of our messages."""

    message_id: str
    peer: str
    kind: str            # delivery-notification / display-notification / processing-...
    status: str          # delivered, displayed, failed, ...
    expected: bool = True  # False when it arrived after Tc2 (OMA §15.2) or was unknown

    @property
    def name(self) -> str:
        return "imdn"


@dataclass(frozen=True)
class FinalReportEvent(Event):
    """One recipient's leg of a Final Delivery Report (OMA SIMPLE IM §5.7.2, Appendix O.1)
    for a large message we sent: ``status`` the MSRP status (200 delivered; 9999: the
    recipient's ``a=max-size``, in ``max_size``, is below the message size)."""

    message_id: str      # our IM Message-ID (CPIM imdn.Message-ID)
    uri: str
    status: int
    max_size: int | None = None
    last: bool = False   # the report was marked last="true"

    @property
    def name(self) -> str:
        return "final-report"


@dataclass(frozen=True)
class ComposingEvent(Event):
    peer: str
    state: str           # active / idle
    session_id: str | None = None

    @property
    def name(self) -> str:
        return "composing"


@dataclass(frozen=True)
class CapabilitiesEvent(Event):
    peer: str
    status: int
    services: tuple[str, ...] = ()
    cached: bool = False

    @property
    def name(self) -> str:
        return "capabilities"


@dataclass(frozen=True)
class ErrorEvent(Event):
    reason: str
    status: int | None = None
    where: str | None = None

    @property
    def name(self) -> str:
        return "error"


@dataclass(frozen=True)
class HistoryEvent(Event):
    """One item retrieved from the server's conversation history (OMA SIMPLE IM §13.3.3):
    ``kind`` ``message`` (a pager MESSAGE), ``send`` (a session message) or ``headers``
    (a session's INVITE / 200 / BYE headers); ``date``: when the server received it."""

    kind: str
    sender: str
    text: str
    date: str
    call_id: str
    message_id: str
    content_type: str

    @property
    def name(self) -> str:
        return "history"


@dataclass(frozen=True)
class DeferredListEvent(Event):
    """The Deferred Metadata read from the IM XDMS after registering with offline delivery
    off (OMA SIMPLE IM §12.1.2, Appendix J): one entry per stored message, in the same order
    in each tuple - its Message-ID URI (``simpleim deferred fetch|delete`` take it), sender,
    date and subject."""

    references: tuple[str, ...]
    senders: tuple[str, ...]
    dates: tuple[str, ...]
    subjects: tuple[str, ...]

    @property
    def name(self) -> str:
        return "deferred-list"


class EventStream:
    """A bounded queue of events; ``async for ev in stream`` until :meth:`close`."""

    def __init__(self, maxsize: int = 1000) -> None:
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self.dropped = 0

    def put(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            # A consumer that does not read must not make us grow without bound.
            self.dropped += 1

    def close(self) -> None:
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            self.dropped += 1

    async def get(self, timeout: float | None = None) -> Event | None:
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    def pending(self) -> list[Event]:
        """Take every event already queued, without waiting (the end marker stays)."""
        out: list[Event] = []
        while not self._queue.empty():
            ev = self._queue.get_nowait()
            if ev is None:
                self._queue.put_nowait(None)
                break
            out.append(ev)
        return out

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Event]:
        while True:
            ev = await self._queue.get()
            if ev is None:
                return
            yield ev
