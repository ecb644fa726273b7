"""MSRP state machines as ``(state, input) -> Row(new state, action, RFC citation)`` tables.

Inputs and actions are enums; the tables are read-only mappings.  Anything not in a table is a
protocol error: :func:`step` raises ``LocalProtocolError`` for our own misuse
(``source="local"``) and ``RemoteProtocolError`` when the peer drove it there - callers do not
repeat the table's rules as guards.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Generic, TypeVar

from simpleim.errors import LocalProtocolError, RemoteProtocolError
from simpleim.msrp.chunker import OutgoingState as M

__all__ = ["Binding", "BindInput", "BindAction", "MsgInput", "MsgAction", "Row",
           "MESSAGE_TABLE", "BINDING_TABLE", "step"]

S = TypeVar("S", bound=enum.Enum)
I = TypeVar("I", bound=enum.Enum)  # noqa: E741
A = TypeVar("A", bound=enum.Enum)


class Binding(enum.Enum):
    """A session's relation to one connection (RFC 4975 §5.4, RFC 6135 §4)."""

    UNBOUND = "unbound"
    BINDING = "binding"      # active side sent its first SEND, waits for the response
    BOUND = "bound"
    CLOSED = "closed"


class MsgInput(enum.Enum):
    """What happens to an outgoing message."""

    CHUNK = "chunk"                      # a chunk ending with '+' was written
    LAST_CHUNK = "last chunk"            # the chunk ending with '$' was written
    ABORT = "abort"                      # a chunk ending with '#' was written
    ALL_ACKED = "all acked"              # the last outstanding chunk got its 200
    WRITTEN = "written"                  # a chunk was written and no response is expected
    ERROR_RESPONSE = "error response"    # a chunk got a non-200 transaction response
    TIMEOUT = "timeout"                  # a chunk got no response in time (408)
    SUCCESS_REPORT = "success report"    # a REPORT 200 covering the whole message
    FAILURE_REPORT = "failure report"    # a REPORT with an error status
    CONNECTION_LOST = "connection lost"


class MsgAction(enum.Enum):
    NONE = "none"
    SEND = "send"                          # the chunk goes out
    SEND_ABORT = "send abort"              # the chunk goes out ending with '#'
    NOTIFY_SENT = "notify sent"            # MessageSent (then forget unless a REPORT is due)
    STOP_AND_NOTIFY = "stop and notify"    # MessageFailed; send no further chunk of it
    NOTIFY_FAILED = "notify failed"        # MessageFailed
    NOTIFY_DELIVERED = "notify delivered"  # MessageDelivered
    FORGET = "forget"                      # nothing more will come for it: drop it


class BindInput(enum.Enum):
    ATTACH_ACTIVE = "attach active"      # we connected: bind with our first SEND
    ATTACH_RELAY = "attach relay"        # the AUTH connection to our relay carries it
    REQUEST_IN = "request in"            # a request naming the session arrived
    BIND_OK = "bind ok"                  # 200 to our binding SEND
    BIND_FAILED = "bind failed"          # error / timeout for our binding SEND
    CONNECTION_LOST = "connection lost"
    CLOSE = "close"                      # local teardown (SIP BYE)


class BindAction(enum.Enum):
    NONE = "none"
    SEND_BIND = "send bind"                      # empty SEND (§5.4, RFC 6135 §4)
    BIND = "bind"                                # the session now lives on this connection
    NOTIFY_BIND_FAILED = "notify bind failed"
    NOTIFY_CLOSED = "notify closed"


@dataclass(frozen=True, slots=True)
class Row(Generic[S, A]):
    """The outcome of one ``(state, input)``: new state, action, RFC citation."""

    new_state: S
    action: A
    cite: str


_I = MsgInput
_A = MsgAction

#: Outgoing message (RFC 4975).
MESSAGE_TABLE: Final[Mapping[tuple[M, MsgInput], Row[M, MsgAction]]] = MappingProxyType({
    (M.QUEUED, _I.CHUNK): Row(M.SENDING, _A.SEND, "RFC 4975 §7.1.1 ('+': more chunks follow)"),
    (M.SENDING, _I.CHUNK): Row(M.SENDING, _A.SEND, "RFC 4975 §7.1.1"),
    (M.QUEUED, _I.LAST_CHUNK): Row(M.SENT, _A.SEND, "RFC 4975 §7.1.1 ('$': last chunk)"),
    (M.SENDING, _I.LAST_CHUNK): Row(M.SENT, _A.SEND, "RFC 4975 §7.1.1"),
    (M.QUEUED, _I.ABORT): Row(M.ABORTED, _A.SEND_ABORT, "RFC 4975 §7.1.1 ('#': abandoned)"),
    (M.SENDING, _I.ABORT): Row(M.ABORTED, _A.SEND_ABORT, "RFC 4975 §7.1.1"),
    (M.FAILED, _I.ABORT): Row(M.FAILED, _A.NONE,
                              "RFC 4975 §7.1.1 / §10.5: a failed message's open chunk ends '#'"),
    # Every chunk answered (or written, when no responses are expected).
    (M.SENDING, _I.ALL_ACKED): Row(M.SENDING, _A.NONE, "RFC 4975 §7.1.1: more chunks to come"),
    (M.SENT, _I.ALL_ACKED): Row(M.ACKED, _A.NOTIFY_SENT,
                                "RFC 4975 §7.2 / §7.3: 200 for every chunk"),
    (M.DELIVERED, _I.ALL_ACKED): Row(M.DELIVERED, _A.FORGET, "RFC 4975 §7.1.2"),
    (M.ABORTED, _I.ALL_ACKED): Row(M.ABORTED, _A.FORGET, "RFC 4975 §7.1.1"),
    (M.FAILED, _I.ALL_ACKED): Row(M.FAILED, _A.FORGET, "RFC 4975 §7.1.1"),
    (M.SENDING, _I.WRITTEN): Row(M.SENDING, _A.NONE, "RFC 4975 §7.1.1: more chunks to come"),
    (M.SENT, _I.WRITTEN): Row(M.ACKED, _A.NOTIFY_SENT,
                              "RFC 4975 §7.3: Failure-Report no/partial: nothing to wait for"),
    (M.ABORTED, _I.WRITTEN): Row(M.ABORTED, _A.FORGET, "RFC 4975 §7.1.1"),
    (M.FAILED, _I.WRITTEN): Row(M.FAILED, _A.FORGET, "RFC 4975 §10.5"),
    # A negative transaction response fails the message; 413: stop sending it.
    (M.SENDING, _I.ERROR_RESPONSE): Row(M.FAILED, _A.STOP_AND_NOTIFY, "RFC 4975 §7.1.1, §10.5"),
    (M.SENT, _I.ERROR_RESPONSE): Row(M.FAILED, _A.NOTIFY_FAILED, "RFC 4975 §7.1.1"),
    (M.ACKED, _I.ERROR_RESPONSE): Row(M.FAILED, _A.NOTIFY_FAILED, "RFC 4975 §7.1.1"),
    (M.DELIVERED, _I.ERROR_RESPONSE): Row(M.DELIVERED, _A.NONE,
                                          "RFC 4975 §7.1.2: delivered end to end already"),
    (M.FAILED, _I.ERROR_RESPONSE): Row(M.FAILED, _A.NONE, "RFC 4975 §7.1.1"),
    (M.ABORTED, _I.ERROR_RESPONSE): Row(M.ABORTED, _A.NONE, "RFC 4975 §7.1.1"),
    # No response within the transaction timeout = 408 (Timers.msrp_transaction).
    (M.SENDING, _I.TIMEOUT): Row(M.FAILED, _A.STOP_AND_NOTIFY, "RFC 4975 §7.3"),
    (M.SENT, _I.TIMEOUT): Row(M.FAILED, _A.NOTIFY_FAILED, "RFC 4975 §7.3"),
    (M.DELIVERED, _I.TIMEOUT): Row(M.DELIVERED, _A.NONE,
                                   "RFC 4975 §7.1.2: delivered end to end already"),
    (M.FAILED, _I.TIMEOUT): Row(M.FAILED, _A.NONE, "RFC 4975 §7.3"),
    (M.ABORTED, _I.TIMEOUT): Row(M.ABORTED, _A.NONE, "RFC 4975 §7.3"),
    # A success REPORT covering every byte = delivered end to end.
    (M.SENT, _I.SUCCESS_REPORT): Row(M.DELIVERED, _A.NOTIFY_DELIVERED, "RFC 4975 §7.1.2, §7.1.3"),
    (M.ACKED, _I.SUCCESS_REPORT): Row(M.DELIVERED, _A.NOTIFY_DELIVERED,
                                      "RFC 4975 §7.1.2, §7.1.3"),
    (M.DELIVERED, _I.SUCCESS_REPORT): Row(M.DELIVERED, _A.NONE, "RFC 4975 §7.1.2"),
    # A failure REPORT.
    (M.SENDING, _I.FAILURE_REPORT): Row(M.FAILED, _A.STOP_AND_NOTIFY, "RFC 4975 §7.1.2, §7.1.4"),
    (M.SENT, _I.FAILURE_REPORT): Row(M.FAILED, _A.NOTIFY_FAILED, "RFC 4975 §7.1.2, §7.1.4"),
    (M.ACKED, _I.FAILURE_REPORT): Row(M.FAILED, _A.NOTIFY_FAILED, "RFC 4975 §7.1.2, §7.1.4"),
    (M.FAILED, _I.FAILURE_REPORT): Row(M.FAILED, _A.NONE, "RFC 4975 §7.1.2"),
    # A lost connection fails what was not yet acknowledged.
    (M.QUEUED, _I.CONNECTION_LOST): Row(M.FAILED, _A.NOTIFY_FAILED, "RFC 4975 §5.4"),
    (M.SENDING, _I.CONNECTION_LOST): Row(M.FAILED, _A.NOTIFY_FAILED, "RFC 4975 §5.4"),
    (M.SENT, _I.CONNECTION_LOST): Row(M.FAILED, _A.NOTIFY_FAILED, "RFC 4975 §5.4"),
    (M.ACKED, _I.CONNECTION_LOST): Row(M.ACKED, _A.NONE, "RFC 4975 §5.4"),
    (M.DELIVERED, _I.CONNECTION_LOST): Row(M.DELIVERED, _A.NONE, "RFC 4975 §5.4"),
    (M.FAILED, _I.CONNECTION_LOST): Row(M.FAILED, _A.NONE, "RFC 4975 §5.4"),
    (M.ABORTED, _I.CONNECTION_LOST): Row(M.ABORTED, _A.NONE, "RFC 4975 §5.4"),
})

B = Binding
_BI = BindInput
_BA = BindAction

#: A session's binding to a connection.
BINDING_TABLE: Final[Mapping[tuple[Binding, BindInput], Row[Binding, BindAction]]] = \
    MappingProxyType({
        (B.UNBOUND, _BI.ATTACH_ACTIVE): Row(B.BINDING, _BA.SEND_BIND,
                                            "RFC 4975 §5.4, RFC 6135 §4: bind with a SEND"),
        (B.UNBOUND, _BI.REQUEST_IN): Row(B.BOUND, _BA.BIND,
                                         "RFC 4975 §5.4: the first request naming it binds"),
        (B.BINDING, _BI.REQUEST_IN): Row(B.BOUND, _BA.BIND, "RFC 4975 §5.4"),
        (B.BOUND, _BI.REQUEST_IN): Row(B.BOUND, _BA.NONE, "RFC 4975 §5.4"),
        (B.BINDING, _BI.BIND_OK): Row(B.BOUND, _BA.BIND, "RFC 4975 §5.4"),
        (B.BOUND, _BI.BIND_OK): Row(B.BOUND, _BA.NONE, "RFC 4975 §5.4"),
        (B.UNBOUND, _BI.ATTACH_RELAY): Row(B.BOUND, _BA.BIND,
                                           "RFC 4976 §5: the AUTH connection carries it"),
        (B.BINDING, _BI.BIND_FAILED): Row(B.CLOSED, _BA.NOTIFY_BIND_FAILED,
                                          "RFC 4975 §5.4 / §10: first SEND refused or 408"),
        (B.BOUND, _BI.BIND_FAILED): Row(B.CLOSED, _BA.NOTIFY_BIND_FAILED, "RFC 4975 §5.4"),
        (B.UNBOUND, _BI.CONNECTION_LOST): Row(B.CLOSED, _BA.NONE, "RFC 4975 §5.4"),
        (B.BINDING, _BI.CONNECTION_LOST): Row(B.CLOSED, _BA.NOTIFY_CLOSED, "RFC 4975 §5.4"),
        (B.BOUND, _BI.CONNECTION_LOST): Row(B.CLOSED, _BA.NOTIFY_CLOSED, "RFC 4975 §5.4"),
        (B.CLOSED, _BI.CONNECTION_LOST): Row(B.CLOSED, _BA.NONE, "RFC 4975 §5.4"),
        (B.UNBOUND, _BI.CLOSE): Row(B.CLOSED, _BA.NONE, "RFC 4975 §5.4 (SIP BYE)"),
        (B.BINDING, _BI.CLOSE): Row(B.CLOSED, _BA.NONE, "RFC 4975 §5.4 (SIP BYE)"),
        (B.BOUND, _BI.CLOSE): Row(B.CLOSED, _BA.NONE, "RFC 4975 §5.4 (SIP BYE)"),
        (B.CLOSED, _BI.CLOSE): Row(B.CLOSED, _BA.NONE, "RFC 4975 §5.4 (SIP BYE)"),
    })


def step(table: Mapping[tuple[S, I], Row[S, A]], state: S, event: I,
         source: str = "local") -> Row[S, A]:
    """One transition.  Pairs missing from ``table`` are protocol errors."""
    try:
        return table[(state, event)]
    except KeyError:
        text = f"input {event.value!r} not allowed in state {state.value!r}"
        if source == "remote":
            raise RemoteProtocolError(text, status=400, where="state machine",
                                      protocol="msrp") from None
        raise LocalProtocolError(text, where="state machine", protocol="msrp") from None
