"""simpleim.msrp - MSRP core, sans-I/O (RFC 4975, RFC 4976 client side, RFC 6135, RFC 6714).

* :mod:`.uri`        MSRP URIs, paths, §6.1 comparison
* :mod:`.message`    requests / responses, typed headers (Byte-Range, Status...), serialization
* :mod:`.parser`     incremental stream parser (any split; bodies streamed as chunk events)
* :mod:`.chunker`    sending: chunking, continuation / abort flags
* :mod:`.reassembly` receiving: reassembly by Message-ID + Byte-Range into a sink
* :mod:`.session`    one MSRP session (paths, queue, accepted types)
* :mod:`.connection` one connection: transactions, responses, REPORTs, binding, timeouts
* :mod:`.fsm`        the state tables
* :mod:`.events`     what a connection reports (MessageReceived, MessageSent, ...)
* :mod:`.setup`      RFC 6135 / RFC 6714: who connects where
* :mod:`.relay`      RFC 4976 AUTH client
"""

from simpleim.msrp.chunker import (
    DEFAULT_CHUNK_SIZE,
    BytesSource,
    ChunkSource,
    OutgoingMessage,
    OutgoingState,
    PipeSource,
)
from simpleim.msrp.connection import (
    BindFailed,
    ConnectionFailed,
    MessageAborted,
    MessageDelivered,
    MessageFailed,
    MessageReceived,
    MessageSent,
    MsrpConnection,
    MsrpEvent,
    ProtocolViolation,
    ReportReceived,
    RequestRejected,
    ResponseReceived,
    SessionBound,
)
from simpleim.msrp.message import (
    ByteRange,
    MsrpHeaders,
    MsrpMessage,
    MsrpRequest,
    MsrpResponse,
    MsrpStatus,
    make_request,
)
from simpleim.msrp.parser import (
    BodyChunk,
    MessageEnd,
    MessageHead,
    MsrpLimits,
    MsrpParser,
    parse_stream,
)
from simpleim.msrp.reassembly import (
    DEFAULT_RECEIVE_LIMITS,
    ChunkSink,
    IncomingMessage,
    MemorySink,
    ReceiveLimits,
)
from simpleim.msrp.relay import RelayAuth, RelayGrant
from simpleim.msrp.session import MsrpSession, new_ident
from simpleim.msrp.setup import ConnectionPlan, plan_connection, resolve_setup
from simpleim.msrp.uri import MsrpUri, format_path, parse_path

__all__ = [
    "PipeSource",
    "DEFAULT_CHUNK_SIZE",
    "BindFailed",
    "BodyChunk",
    "ByteRange",
    "BytesSource",
    "ChunkSink",
    "ChunkSource",
    "ConnectionFailed",
    "ConnectionPlan",
    "IncomingMessage",
    "MemorySink",
    "ReceiveLimits",
    "DEFAULT_RECEIVE_LIMITS",
    "MessageAborted",
    "MessageDelivered",
    "MessageEnd",
    "MessageFailed",
    "MessageHead",
    "MessageReceived",
    "MessageSent",
    "MsrpConnection",
    "MsrpEvent",
    "MsrpHeaders",
    "MsrpLimits",
    "MsrpMessage",
    "MsrpParser",
    "MsrpRequest",
    "MsrpResponse",
    "MsrpSession",
    "MsrpStatus",
    "MsrpUri",
    "OutgoingMessage",
    "OutgoingState",
    "ProtocolViolation",
    "RelayAuth",
    "RelayGrant",
    "ReportReceived",
    "RequestRejected",
    "ResponseReceived",
    "SessionBound",
    "format_path",
    "make_request",
    "new_ident",
    "parse_path",
    "parse_stream",
    "plan_connection",
    "resolve_setup",
]
