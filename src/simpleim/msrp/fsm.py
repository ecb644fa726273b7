"""MSRP state machines as ``(state, input) -> (state, action)`` tables.

Anything not in a table is a protocol error: :func:`step` raises ``LocalProtocolError`` for our
own misuse (``source="local"``) and ``RemoteProtocolError`` when the peer drove it there.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from simpleim.errors import LocalProtocolError, RemoteProtocolError
from simpleim.msrp.chunker import OutgoingState as M

__all__ = ["Binding", "MESSAGE_TABLE", "BINDING_TABLE", "step"]

S = TypeVar("S")
A = TypeVar("A")


class Binding(Enum):
    """A session's relation to one connection (RFC 4975 §5.4, RFC 6135 §4)."""

    UNBOUND = "unbound"
    BINDING = "binding"      # active side sent its first SEND, waits for the response
    BOUND = "bound"
    CLOSED = "closed"


# Outgoing message: (state, input) -> (new state, action)
MESSAGE_TABLE: dict[tuple[M, str], tuple[M, str]] = {
    # §7.1.1: a message goes out as one or more chunks; '+' continues, '$' ends.
    (M.QUEUED, "chunk"): (M.SENDING, "send"),
    (M.SENDING, "chunk"): (M.SENDING, "send"),
    (M.QUEUED, "last_chunk"): (M.SENT, "send"),
    (M.SENDING, "last_chunk"): (M.SENT, "send"),
    # §7.1.1: a sender may abandon a message: its last chunk ends with '#'.
    (M.QUEUED, "abort"): (M.ABORTED, "send_abort"),
    (M.SENDING, "abort"): (M.ABORTED, "send_abort"),
    # §7.2/§7.3: 200 for every chunk -> the message reached the next hop.  With
    # Failure-Report no/partial there is nothing to wait for ("written").
    (M.SENT, "all_acked"): (M.ACKED, "notify_sent"),
    (M.SENT, "written"): (M.ACKED, "notify_sent"),
    (M.ABORTED, "all_acked"): (M.ABORTED, "none"),
    (M.FAILED, "all_acked"): (M.FAILED, "none"),
    # §7.1.1 / §10: a negative transaction response fails the message; §10.5 413: stop sending.
    (M.SENDING, "error_response"): (M.FAILED, "stop_and_notify"),
    (M.SENT, "error_response"): (M.FAILED, "notify_failed"),
    (M.ACKED, "error_response"): (M.FAILED, "notify_failed"),
    (M.FAILED, "error_response"): (M.FAILED, "none"),
    (M.ABORTED, "error_response"): (M.ABORTED, "none"),
    # §7.3 / Timers.msrp_transaction: no response within 30 s = 408.
    (M.SENDING, "timeout"): (M.FAILED, "stop_and_notify"),
    (M.SENT, "timeout"): (M.FAILED, "notify_failed"),
    (M.FAILED, "timeout"): (M.FAILED, "none"),
    (M.ABORTED, "timeout"): (M.ABORTED, "none"),
    # §7.1.2 / §7.1.3: a success REPORT covering every byte = delivered end to end.
    (M.SENT, "success_report"): (M.DELIVERED, "notify_delivered"),
    (M.ACKED, "success_report"): (M.DELIVERED, "notify_delivered"),
    (M.DELIVERED, "success_report"): (M.DELIVERED, "none"),
    # §7.1.2 / §7.1.4: a failure REPORT.
    (M.SENDING, "failure_report"): (M.FAILED, "stop_and_notify"),
    (M.SENT, "failure_report"): (M.FAILED, "notify_failed"),
    (M.ACKED, "failure_report"): (M.FAILED, "notify_failed"),
    (M.FAILED, "failure_report"): (M.FAILED, "none"),
    # §5.4: a lost connection fails what was not yet acknowledged.
    (M.QUEUED, "connection_lost"): (M.FAILED, "notify_failed"),
    (M.SENDING, "connection_lost"): (M.FAILED, "notify_failed"),
    (M.SENT, "connection_lost"): (M.FAILED, "notify_failed"),
    (M.ACKED, "connection_lost"): (M.ACKED, "none"),
    (M.DELIVERED, "connection_lost"): (M.DELIVERED, "none"),
    (M.FAILED, "connection_lost"): (M.FAILED, "none"),
    (M.ABORTED, "connection_lost"): (M.ABORTED, "none"),
}

B = Binding
BINDING_TABLE: dict[tuple[Binding, str], tuple[Binding, str]] = {
    # RFC 4975 §5.4 / RFC 6135 §4: the active side binds the connection with its first SEND
    # (an empty SEND when it has nothing to send).
    (B.UNBOUND, "attach_active"): (B.BINDING, "send_bind"),
    # §5.4: the passive side binds a session when the first request naming it arrives.
    (B.UNBOUND, "request_in"): (B.BOUND, "bind"),
    (B.BINDING, "request_in"): (B.BOUND, "bind"),
    (B.BOUND, "request_in"): (B.BOUND, "none"),
    (B.BINDING, "bind_ok"): (B.BOUND, "bind"),
    (B.BOUND, "bind_ok"): (B.BOUND, "none"),
    # RFC 4976 §5: a session reached through our relay is bound by the AUTH connection.
    (B.UNBOUND, "attach_relay"): (B.BOUND, "bind"),
    # §5.4 / §10: the first SEND was refused (481/506/403...) or timed out (408).
    (B.BINDING, "bind_failed"): (B.CLOSED, "notify_bind_failed"),
    (B.BOUND, "bind_failed"): (B.CLOSED, "notify_bind_failed"),
    (B.UNBOUND, "connection_lost"): (B.CLOSED, "none"),
    (B.BINDING, "connection_lost"): (B.CLOSED, "notify_closed"),
    (B.BOUND, "connection_lost"): (B.CLOSED, "notify_closed"),
    (B.CLOSED, "connection_lost"): (B.CLOSED, "none"),
    (B.UNBOUND, "close"): (B.CLOSED, "none"),
    (B.BINDING, "close"): (B.CLOSED, "none"),
    (B.BOUND, "close"): (B.CLOSED, "none"),
    (B.CLOSED, "close"): (B.CLOSED, "none"),
}


def step(table: dict[tuple[S, str], tuple[S, A]], state: S, event: str,
               source: str = "local") -> tuple[S, A]:
    """One transition.  Pairs missing from ``table`` are protocol errors."""
    try:
        return table[(state, event)]
    except KeyError:
        text = f"input {event!r} not allowed in state {getattr(state, 'value', state)!r}"
        if source == "remote":
            raise RemoteProtocolError(text, status=400, where="state machine",
                                      protocol="msrp") from None
        raise LocalProtocolError(text, where="state machine", protocol="msrp") from None
