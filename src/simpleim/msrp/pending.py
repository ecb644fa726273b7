"""What an :class:`~simpleim.msrp.connection.MsrpConnection` keeps while it waits, sans-I/O:
an outgoing transaction until its response (RFC 4975 §7.3: 30 s, then 408) and the request
whose body is arriving now."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from simpleim.errors import MsrpParseError
from simpleim.msrp.chunker import OutgoingMessage
from simpleim.msrp.message import MsrpRequest
from simpleim.msrp.reassembly import ChunkCursor
from simpleim.msrp.session import MsrpSession

__all__ = ["Incoming", "Tx", "TxKind"]


class TxKind(enum.Enum):
    CHUNK = "chunk"        # a chunk of one of our messages
    BIND = "bind"          # the empty SEND binding a session (RFC 4975 §5.4)
    REQUEST = "request"    # any other request (AUTH...): its response goes to the caller


@dataclass(slots=True)
class Tx:
    """An outgoing transaction waiting for its response."""

    tid: str
    kind: TxKind
    session: MsrpSession | None
    message: OutgoingMessage | None
    request: MsrpRequest | None
    deadline: float | None


@dataclass(slots=True)
class Incoming:
    """The request whose body is streaming in now."""

    request: MsrpRequest
    session: MsrpSession | None
    cursor: ChunkCursor | None
    error: MsrpParseError | None
    failure_report: str | None = None     # validated Failure-Report of a SEND
    report_body: bytearray | None = None  # the body of a REPORT (§7.1.2), bounded
