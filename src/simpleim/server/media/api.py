"""What a role sees of the server's media: the :class:`MediaSessions` it is given and the
:class:`ServerSession` objects it gets back, with their value types and errors.

A role that must be an endpoint of an INVITE session with MSRP media (the Participating
Function as a B2BUA, PO-00; the Deferred Messaging Function's push, DM-06/07; the
Controlling Function's MSRP switch, §7.2.3; Conversation History, §13) is given one
:class:`MediaSessions` by :func:`simpleim.server.services.build_roles` and uses only what is
declared here.  The implementation is :class:`simpleim.server.media.ua.ServerUserAgent`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from simpleim.errors import RemoteProtocolError, SimpleImError
from simpleim.sdp import MsrpMedia
from simpleim.sdp.file_transfer import FileDescription
from simpleim.sdp.msrp import Direction
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.transport.sip import IncomingRequest

__all__ = [
    "CHAT_TYPES",
    "MediaError",
    "MediaMessage",
    "MediaPolicy",
    "MediaSessions",
    "MessageRefused",
    "OfferParams",
    "ServerSession",
    "SessionEnded",
    "SessionEvent",
    "SessionRefused",
]

#: What a chat leg of the server accepts (RFC 4975 §8.6; CPM chat: CPIM wrapping text,
#: IMDN and is-composing).
CHAT_TYPES = ("message/cpim", "text/plain", "application/im-iscomposing+xml")


class SessionRefused(SimpleImError):
    """A session did not come up: ``status`` is the SIP status (the final response of the
    INVITE we sent, or the one we answered the incoming INVITE with); ``response`` the
    final response received, if any."""

    def __init__(self, status: int, reason: str = "",
                 response: SipResponse | None = None) -> None:
        self.status, self.reason, self.response = status, reason, response
        super().__init__(f"session refused: {status} {reason}".strip())


class MessageRefused(RemoteProtocolError):
    """A room's policy refuses a received message: the sender's MSRP request is answered
    with ``status`` (RFC 4975 §7.2; e.g. 403 for a spoofed CPIM From, OMA SIMPLE IM
    §7.2.3.1) when the room holds its acknowledgements, and the message goes nowhere."""

    default_status = 403
    protocol = "msrp"


class MediaError(SimpleImError):
    """An MSRP message could not be sent: ``status`` is the MSRP status (413, 415, 408 for
    no answer or a lost connection, 481 after the session ended)."""

    def __init__(self, status: int, reason: str = "") -> None:
        self.status, self.reason = status, reason
        super().__init__(f"MSRP send failed: {status} {reason}".strip())


@dataclass(frozen=True, slots=True)
class MediaMessage:
    """One complete MSRP message (RFC 4975 §7.1: reassembled from its chunks).

    ``message_id`` is the MSRP Message-ID, which is hop-by-hop through the server;
    ``headers`` are the MSRP headers of the first chunk (To-Path, From-Path, Byte-Range
    ... included)."""

    content_type: str
    body: bytes
    message_id: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def size(self) -> int:
        return len(self.body)


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The last event of a session: BYE either way, session-timer expiry, MSRP loss."""

    reason: str
    by_peer: bool


SessionEvent = MediaMessage | SessionEnded


@dataclass(frozen=True, slots=True)
class MediaPolicy:
    """How :meth:`MediaSessions.accept` answers an offer (RFC 3264 §6, RFC 4975 §8.6).

    ``accept_types`` / ``accept_wrapped_types``: what the server leg takes (the answer
    carries the intersection with the offer); ``max_size``: our ``a=max-size`` and the bound
    past which a message is refused with MSRP 413; ``accept_files``: whether a
    ``file-selector`` push offer (RFC 5547) is accepted, up to ``max_file_size``;
    ``direction``: when set, the only direction the answer may have (e.g. ``SENDONLY`` for
    a deferred or history push to a ``recvonly`` offer) - any other offer is refused 488."""

    accept_types: tuple[str, ...] = CHAT_TYPES
    accept_wrapped_types: tuple[str, ...] = ("*",)
    max_size: int | None = None
    accept_files: bool = False
    max_file_size: int | None = None
    direction: Direction | None = None
    #: store-and-forward: the 200 to the last chunk of each received message (and its
    #: success REPORT) waits for :meth:`ServerSession.acknowledge` (DM-04, write before
    #: acknowledge)
    hold_acks: bool = False


@dataclass(frozen=True, slots=True)
class OfferParams:
    """What :meth:`MediaSessions.invite` offers: one ``m=message`` line, ``setup:actpass``
    (RFC 6135 §4: the answerer picks who connects)."""

    accept_types: tuple[str, ...] = ("message/cpim",)
    accept_wrapped_types: tuple[str, ...] = ("*",)
    direction: Direction = Direction.SENDRECV
    max_size: int | None = None
    file: FileDescription | None = None

    @classmethod
    def mirror(cls, remote: MsrpMedia) -> OfferParams:
        """The offer a B2BUA makes to the callee for a caller's stream: the same types,
        direction, max-size and file description (RFC 5547 §8)."""
        return cls(remote.accept_types, remote.accept_wrapped_types, remote.direction,
                   remote.max_size, remote.file)


class ServerSession(Protocol):
    """One INVITE dialog of the server with one MSRP stream."""

    @property
    def call_id(self) -> str: ...

    @property
    def request(self) -> SipRequest:
        """The initial INVITE (received, or sent to the contact that answered)."""

    @property
    def bye_request(self) -> SipRequest | None:
        """The BYE that ended the session (received from the peer, or sent), None while it
        runs or when it ended without one (timer, MSRP loss)."""

    @property
    def response(self) -> SipResponse:
        """The 2xx that established the session (sent or received)."""

    @property
    def peer(self) -> str:
        """The far end: the asserted identity (else From) of a caller, the target AOR of a
        callee."""

    @property
    def local_media(self) -> MsrpMedia: ...

    @property
    def remote_media(self) -> MsrpMedia: ...

    @property
    def closed(self) -> asyncio.Event: ...

    @property
    def end_reason(self) -> str | None: ...

    async def send(self, body: bytes, content_type: str, *,
                   headers: Sequence[tuple[str, str]] = (),
                   success_report: bool = False, confirmed: bool = True) -> None:
        """Send one MSRP message and wait for its 200s; raises :class:`MediaError`.
        ``confirmed=False``: ``Failure-Report: partial`` (RFC 4975 §7.2) - done once
        written, only a failure is answered (and logged): a relay uses it so that its
        writing never waits for what the peer sends."""

    async def deliver(self, body: bytes, content_type: str, *,
                      headers: Sequence[tuple[str, str]] = ()) -> None:
        """Send one message with ``Success-Report: yes`` and ``Failure-Report: yes``
        (OMA SIMPLE IM §5.7.3 step 1) and wait for its success REPORT (RFC 4975 §7.1.2);
        raises :class:`MediaError` with the failure response's / REPORT's status."""

    def report(self, message_id: str, status: int, *, body: bytes = b"",
               content_type: str | None = None, size: int | None = None) -> None:
        """Send a REPORT about the peer's message ``message_id`` (Byte-Range ``1-size/size``)
        with an optional body (RFC 4975 §7.1.2: informational, not chunked), written at
        once; raises :class:`MediaError` when it cannot go."""

    def post(self, body: bytes, content_type: str,
             on_failure: Callable[[MediaError], None]) -> bool:
        """Send one message at once without waiting (``Failure-Report: partial``) when the
        stream takes it now (nothing of ours waiting, no back-pressure): True.  False:
        nothing was sent, use :meth:`send`.  ``on_failure`` hears of a later failure."""

    def events(self) -> AsyncIterator[SessionEvent]:
        """Received messages in order, then one :class:`SessionEnded`."""

    def acknowledge(self, message: MediaMessage, status: int = 200, *,
                    report: bool = True) -> None:
        """Answer the last chunk of ``message`` held by ``MediaPolicy.hold_acks``: 200 once
        the role kept it, else the MSRP failure ``status``.  ``report=False``: no success
        REPORT now even if the sender asked (the role sends its own with :meth:`report`)."""

    def hold_acknowledgements(self) -> None:
        """From now on the last chunk of each received message is answered only by
        :meth:`acknowledge` (as ``MediaPolicy.hold_acks`` does from the start)."""

    async def bye(self, reason: str = "") -> None:
        """End the session: BYE (unless already ended) and close the MSRP session."""

    @property
    def ended_by_peer(self) -> bool:
        """After :attr:`closed`: the far end ended it (its BYE), not us or a failure."""

    def handle_requests(self, handler: Callable[[IncomingRequest], bool]) -> None:
        """In-dialog requests the user agent does not answer itself (REFER, SUBSCRIBE...)
        go to ``handler`` first; it returns False for those it does not take (405)."""

    async def send_request(self, method: str, *, headers: Sequence[tuple[str, str]] = (),
                           body: bytes = b"", content_type: str | None = None,
                           ) -> SipResponse:
        """Send ``method`` within the session's dialog (e.g. a NOTIFY of an implicit REFER
        subscription, RFC 3515 §2.4.4); its final response."""


class MediaSessions(Protocol):
    """What a role is given to take part in INVITE sessions with MSRP media."""

    async def accept(self, incoming: IncomingRequest, policy: MediaPolicy = MediaPolicy(),
                     *, headers: Sequence[tuple[str, str]] = (),
                     contact: str | None = None, to_tag: str | None = None,
                     contact_params: str = "") -> ServerSession:
        """Answer an incoming INVITE with 200 + SDP answer (our MSRP path) and bring the
        MSRP stream up; raises :class:`SessionRefused` after answering with its status.
        ``contact``: our Contact (default: the UA's own, in-dialog requests come back to
        it); ``to_tag``: the To tag already used in provisional responses;
        ``contact_params``: appended to the default Contact (feature tags, RFC 3840)."""

    def reject(self, incoming: IncomingRequest, status: int, reason: str | None = None, *,
               headers: Sequence[tuple[str, str]] = ()) -> None:
        """Answer an incoming INVITE with a failure ``status`` (Server header added)."""

    async def invite(self, target: str, from_identity: str, *,
                     offer: OfferParams = OfferParams(),
                     headers: Sequence[tuple[str, str]] = (),
                     contact: str | None = None,
                     display_name: str | None = None,
                     timeout: float = 60.0,
                     on_provisional: Callable[[SipResponse], None] | None = None,
                     contact_params: str = "",
                     ) -> ServerSession:
        """Invite the registered contacts of the AOR ``target`` (forking: the first 2xx
        wins); raises :class:`SessionRefused` with the best final status.
        ``contact_params``: appended to the default Contact (feature tags, RFC 3840)."""
