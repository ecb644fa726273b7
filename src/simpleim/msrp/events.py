"""Events of an MSRP connection (:class:`simpleim.msrp.connection.MsrpConnection` returns
them from ``receive_data``/``pump``/``handle_timer``/``connection_lost``)."""

from __future__ import annotations

from dataclasses import dataclass

from simpleim.errors import MsrpParseError
from simpleim.msrp.chunker import OutgoingMessage
from simpleim.msrp.message import MsrpRequest, MsrpResponse
from simpleim.msrp.reassembly import IncomingMessage
from simpleim.msrp.session import MsrpSession

__all__ = [
    "MsrpEvent",
    "SessionBound",
    "BindFailed",
    "MessageReceived",
    "MessageAborted",
    "MessageSent",
    "MessageDelivered",
    "MessageFailed",
    "ReportReceived",
    "RequestRejected",
    "ResponseReceived",
    "ProtocolViolation",
    "ConnectionFailed",
]


@dataclass(slots=True)
class SessionBound:
    session: MsrpSession


@dataclass(slots=True)
class BindFailed:
    session: MsrpSession
    status: int
    comment: str | None


@dataclass(slots=True)
class MessageReceived:
    session: MsrpSession
    message: IncomingMessage


@dataclass(slots=True)
class MessageAborted:
    session: MsrpSession
    message: IncomingMessage


@dataclass(slots=True)
class MessageSent:
    """Every chunk reached the next hop (all 200, or no responses were asked for)."""

    session: MsrpSession
    message: OutgoingMessage


@dataclass(slots=True)
class MessageDelivered:
    """A success REPORT covering the whole message arrived (RFC 4975 §7.1.3)."""

    session: MsrpSession
    message: OutgoingMessage


@dataclass(slots=True)
class MessageFailed:
    session: MsrpSession
    message: OutgoingMessage
    status: int
    comment: str | None


@dataclass(slots=True)
class ReportReceived:
    """A REPORT for the session (RFC 4975 §7.1.2); ``body``: what it carried - REPORTs
    MAY include an informational body and are not chunked (§7.1.2), e.g. an OMA Final
    Delivery Report (OMA SIMPLE IM §5.7.3)."""

    session: MsrpSession
    request: MsrpRequest
    body: bytes = b""


@dataclass(slots=True)
class RequestRejected:
    """We answered a request with an error status (for logging / statistics)."""

    session: MsrpSession | None
    request: MsrpRequest
    status: int
    reason: str


@dataclass(slots=True)
class ResponseReceived:
    """Response to a request sent with :meth:`MsrpConnection.send_request` (e.g. AUTH)."""

    request: MsrpRequest
    response: MsrpResponse | None     # None: 408 timeout / connection lost


@dataclass(slots=True)
class ProtocolViolation:
    """The peer sent something we could not act on (logged, never silently dropped)."""

    reason: str
    status: int


@dataclass(slots=True)
class ConnectionFailed:
    """The byte stream is broken (framing error); the connection must be closed."""

    error: MsrpParseError


MsrpEvent = (SessionBound | BindFailed | MessageReceived | MessageAborted | MessageSent
             | MessageDelivered | MessageFailed | ReportReceived | RequestRejected
             | ResponseReceived | ProtocolViolation | ConnectionFailed)
