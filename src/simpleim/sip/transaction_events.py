"""What the SIP transaction layer hands out: messages to send (:class:`Outgoing`) and the
events for the transaction user (RFC 3261 §17: the TU sees requests, responses, timeouts and
transport failures).  Split from :mod:`simpleim.sip.transaction_layer`, which re-exports them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simpleim.sip.message import SipRequest, SipResponse, parse_message
from simpleim.sip.transaction import TxKind

__all__ = [
    "Peer",
    "SipMessage",
    "Outgoing",
    "RequestReceived",
    "CancelReceived",
    "AckReceived",
    "ResponseReceived",
    "TransactionTimeout",
    "TransportFailure",
    "TransactionTerminated",
    "RequestRejected",
    "Event",
]

# A transport address; the asyncio layer may put anything hashable here (e.g. a connection id).
Peer = Any

SipMessage = SipRequest | SipResponse


class Outgoing:
    """A message the transport must send to ``dest`` (over a reliable transport or not).

    ``transaction_id``: report a send failure with ``transport_error(id, now)``.  ``message``
    is the message object; a resent response of a Completed record is only kept as bytes:
    its ``message`` is parsed from ``data`` when first read.
    """

    __slots__ = ("data", "dest", "reliable", "_message", "transaction_id")

    def __init__(
        self,
        data: bytes,
        dest: Peer,
        reliable: bool,
        message: SipMessage | None,
        transaction_id: str | None = None,
    ) -> None:
        self.data = data
        self.dest = dest
        self.reliable = reliable
        self._message = message
        self.transaction_id = transaction_id

    @property
    def message(self) -> SipMessage:
        message = self._message
        if message is None:
            message = self._message = parse_message(self.data)
        return message

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Outgoing):
            return NotImplemented
        return (self.data, self.dest, self.reliable, self.transaction_id) == (
            other.data, other.dest, other.reliable, other.transaction_id)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Outgoing(data={self.data!r}, dest={self.dest!r}, reliable={self.reliable!r}, "
                f"transaction_id={self.transaction_id!r})")


# -- events for the transaction user -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request (not ACK, not CANCEL) created server transaction ``transaction_id``."""

    transaction_id: str
    request: SipRequest
    source: Peer


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A CANCEL (its own non-INVITE server transaction, RFC 3261 §9.2).

    ``invite_transaction_id`` is the INVITE server transaction it cancels (``None``: the TU
    MUST answer 481, §9.2).  ``invite_pending`` is true while that INVITE has no final
    response yet: the TU then answers 200 to the CANCEL and 487 to the INVITE (§9.2).
    """

    transaction_id: str
    request: SipRequest
    source: Peer
    invite_transaction_id: str | None
    invite_pending: bool


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK for a 2xx (RFC 3261 §17.2.3/§13.3.1.4): it belongs to the TU / dialog.

    ``transaction_id`` is set when it matched an INVITE server transaction in the Accepted
    state (RFC 6026 §7.1), ``None`` when it matched none (the usual case: new branch).
    """

    request: SipRequest
    source: Peer
    transaction_id: str | None = None


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for client transaction ``transaction_id``.

    ``transaction_id`` is ``None`` for a response that matched no transaction (RFC 3261
    §18.1.2: passed to the core), e.g. a 2xx retransmission after the INVITE transaction ended.
    """

    transaction_id: str | None
    response: SipResponse
    source: Peer


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """Timer B/F (client) or H (server) fired: treat as 408 (RFC 3261 §8.1.3.1, §17.2.1)."""

    transaction_id: str
    request: SipRequest
    status: int = 408


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """The transport failed: treat as 503 (RFC 3261 §8.1.3.1, §17.1.4, §17.2.4)."""

    transaction_id: str
    request: SipRequest
    status: int = 503


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """The transaction reached Terminated and was destroyed (RFC 3261 §17)."""

    transaction_id: str
    kind: TxKind


@dataclass(frozen=True, slots=True)
class RequestRejected:
    """A new request was refused before creating a transaction (too many live transactions);
    the layer already queued a stateless ``status`` response (not for ACK)."""

    request: SipRequest
    source: Peer
    status: int = 503


Event = (
    RequestReceived
    | CancelReceived
    | AckReceived
    | ResponseReceived
    | TransactionTimeout
    | TransportFailure
    | TransactionTerminated
    | RequestRejected
)
