"""Transactions as the layer keeps them (RFC 3261 §17): the live :class:`Transaction`
handles, the matching keys (§17.1.3, §17.2.3 incl. the RFC 2543 fallback) and the compact
records of Completed non-INVITE transactions.  Used by
:class:`simpleim.sip.transaction_layer.TransactionLayer`, which re-exports the handles."""

from __future__ import annotations

from typing import Any, Final

from simpleim.sip.message import Headers, SipRequest, SipResponse
from simpleim.sip.transaction import TransactionMachine, TxKind, TxState
from simpleim.sip.transaction_events import Peer, SipMessage

__all__ = ["MAGIC_COOKIE", "Transaction", "ClientTransaction", "ServerTransaction"]

# RFC 3261 §8.1.1.7: branch IDs of RFC 3261 elements start with this magic cookie.
MAGIC_COOKIE: Final = "z9hG4bK"

ServerKey = tuple[str, str, "int | None", str]
LegacyKey = tuple[str, str, str, int, str, str]


class Transaction:
    """A live transaction: its machine, the request that created it and what it last sent."""

    __slots__ = ("id", "machine", "request", "peer", "reliable", "last_response", "scheduled",
                 "_request_bytes", "_response_bytes")

    def __init__(
        self,
        tx_id: str,
        machine: TransactionMachine,
        request: SipRequest,
        peer: Peer,
        reliable: bool,
    ) -> None:
        self.id = tx_id
        self.machine = machine
        self.request = request
        self.peer = peer  # where we send: the next hop (client) or the response target (server)
        self.reliable = reliable
        self.last_response: SipResponse | None = None
        self.scheduled: float | None = None  # the deadline pushed on the layer's heap
        self._request_bytes: bytes | None = None
        self._response_bytes: bytes | None = None  # last_response as sent

    @property
    def kind(self) -> TxKind:
        return self.machine.KIND

    @property
    def state(self) -> TxState:
        return self.machine.state

    @property
    def method(self) -> str:
        return self.request.method

    def request_bytes(self) -> bytes:
        if self._request_bytes is None:
            self._request_bytes = self.request.to_bytes()
        return self._request_bytes

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.method} {self.state.value}>"


class ClientTransaction(Transaction):
    """RFC 3261 §17.1: matched by (branch, CSeq method) (§17.1.3)."""

    __slots__ = ("key", "ack", "cancel_wanted", "cancel_id")

    def __init__(
        self,
        tx_id: str,
        machine: TransactionMachine,
        request: SipRequest,
        peer: Peer,
        reliable: bool,
        key: tuple[str, str],
    ) -> None:
        super().__init__(tx_id, machine, request, peer, reliable)
        self.key = key
        self.ack: SipRequest | None = None  # §17.1.1.3 ACK for a non-2xx, built once
        self.cancel_wanted = False  # §9.1: CANCEL waits for a provisional response
        self.cancel_id: str | None = None


class ServerTransaction(Transaction):
    """RFC 3261 §17.2: matched by (branch, sent-by, method) or the RFC 2543 rules (§17.2.3)."""

    __slots__ = ("source", "key", "legacy_key")

    def __init__(
        self,
        tx_id: str,
        machine: TransactionMachine,
        request: SipRequest,
        peer: Peer,
        reliable: bool,
        source: Peer,
        key: ServerKey | None,
        legacy_key: LegacyKey | None,
    ) -> None:
        super().__init__(tx_id, machine, request, peer, reliable)
        self.source = source
        self.key = key
        self.legacy_key = legacy_key


def server_key(req: SipRequest) -> ServerKey | None:
    """RFC 3261 §17.2.3: branch + sent-by + method (ACK matches the INVITE); ``None`` when
    the branch lacks the magic cookie (then the RFC 2543 rules apply)."""
    via = req.top_via
    branch = via.branch
    if branch is None or not branch.startswith(MAGIC_COOKIE):
        return None
    method = "INVITE" if req.method == "ACK" else req.method
    return (branch, via.host.lower(), via.port, method)


def legacy_key(req: SipRequest, method: str | None = None) -> LegacyKey:
    """RFC 3261 §17.2.3 RFC 2543 fallback: Request-URI, From tag, Call-ID, CSeq, top Via
    (the To tag is compared separately: an ACK carries the tag of our response)."""
    if method is None:
        method = "INVITE" if req.method == "ACK" else req.method
    return (
        str(req.uri),
        req.from_addr.tag or "",
        req.call_id,
        req.cseq.seq,
        method,
        str(req.top_via),
    )


def to_tag(msg: SipMessage) -> str:
    return msg.to_addr.tag or ""


# A Completed non-INVITE transaction kept as a compact record (see
# simpleim.sip.transaction.completed_step): a tuple of atoms only (strings, bytes, numbers and
# tuples of them), which the cyclic garbage collector stops tracking, instead of ~25 objects
# (transaction, machine, request and response with their headers and typed values).
# (id, kind, deadline, key, peer, last response bytes | None, request snapshot | None)
Record = tuple[str, TxKind, float, Any, Peer, "bytes | None", "tuple[Any, ...] | None"]
R_ID: Final = 0
R_KIND: Final = 1
R_DEADLINE: Final = 2
R_KEY: Final = 3
R_PEER: Final = 4
R_RESPONSE: Final = 5
R_REQUEST: Final = 6
COMPLETED: Final = TxState.COMPLETED
NON_INVITE_SERVER: Final = TxKind.NON_INVITE_SERVER
NON_INVITE_CLIENT: Final = TxKind.NON_INVITE_CLIENT


def snapshot_request(req: SipRequest) -> tuple[Any, ...]:
    """The request as plain values, to rebuild an equal request if it is ever needed again
    (a transport error on a record, RFC 3261 §17.2.4)."""
    h = req.headers
    return (req.method, req._uri, req._uri_text, req._uri_str, tuple(h._items),
            tuple(h._names.items()), req.body)


def restore_request(snap: tuple[Any, ...]) -> SipRequest:
    method, uri, uri_text, uri_str, items, names, body = snap
    req: SipRequest = object.__new__(SipRequest)
    req.headers = Headers._from_parsed(list(items), dict(names))
    req.body = body
    req.method = method
    req._uri = uri
    req._uri_text = uri_text
    req._uri_str = uri_str
    return req
