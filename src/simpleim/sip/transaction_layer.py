"""The SIP transaction layer (RFC 3261 §17, RFC 6026): matching, dispatch and timers. Sans-I/O.

Drive it like aioquic: hand it what arrived and the current time, perform what it queued::

    layer = TransactionLayer(timers=Timers(), rng=random.Random(7))
    tx = layer.send_request(invite, dest=("192.0.2.1", 5060), now=now, reliable=False)
    events = layer.receive(parse_message(data), source=addr, now=now)
    for out in layer.datagrams_to_send():
        transport.send(out.data, out.dest)
    deadline = layer.next_deadline()          # sleep until then, then:
    events += layer.handle_timer(now)

The four state machines live in :mod:`simpleim.sip.transaction`; this module matches messages to
transactions (client §17.1.3, server §17.2.3 with the RFC 2543 fallback, CANCEL §9.2), turns
machine effects into :class:`Outgoing` datagrams and TU events, and keeps one timer heap.

A non-INVITE transaction that reaches Completed over an unreliable transport only waits for
Timer J (server, 32 s) or K (client, 5 s): it is then kept as a compact record (key, final
response bytes, deadline; inputs still decided by the Completed rows of its table, see
:func:`simpleim.sip.transaction.completed_step`) in a per-kind deadline queue instead of the
heap.  Such a record counts in ``len(layer)`` but :meth:`TransactionLayer.get` no longer
returns it.
"""

from __future__ import annotations

import heapq
import itertools
import random
import secrets
from bisect import insort
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from simpleim.errors import LocalProtocolError, TransactionError
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.sip.transaction import (
    PARKABLE_KINDS,
    PARKED_TIMER,
    PARKED_TIMER_INPUT,
    TRYING_DELAY,
    Action,
    Op,
    TxInput,
    TxKind,
    TxState,
    completed_step,
    machine_for,
    response_input,
)
from simpleim.sip.transaction_build import ack_for_non2xx, cancel_request, response_destination
from simpleim.sip.transaction_events import (
    AckReceived,
    CancelReceived,
    Event,
    Outgoing,
    Peer,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    SipMessage,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailure,
)
from simpleim.sip.transaction_objects import (
    COMPLETED,
    MAGIC_COOKIE,
    NON_INVITE_SERVER,
    R_DEADLINE,
    R_ID,
    R_KEY,
    R_KIND,
    R_PEER,
    R_REQUEST,
    R_RESPONSE,
    ClientTransaction,
    LegacyKey,
    Record,
    ServerKey,
    ServerTransaction,
    Transaction,
    legacy_key,
    restore_request,
    server_key,
    snapshot_request,
    to_tag,
)
from simpleim.timers import DEFAULT_TIMERS, Timers

__all__ = [
    "MAGIC_COOKIE",
    "Peer",
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
    "Transaction",
    "ClientTransaction",
    "ServerTransaction",
    "TransactionLayer",
]


_SEND_REQUEST: Final = Op.SEND_REQUEST
_RETRANSMIT_REQUEST: Final = Op.RETRANSMIT_REQUEST
_PASS_TO_TU: Final = Op.PASS_TO_TU
_SEND_RESPONSE: Final = Op.SEND_RESPONSE
_TERMINATE: Final = Op.TERMINATE

class TransactionLayer:
    """All transactions of one SIP element.  See the module docstring for the driving loop.

    ``branch_factory`` (a callable returning a fresh branch) or ``rng`` (a seeded
    ``random.Random``) make branch IDs reproducible; by default they come from ``secrets``.
    ``max_transactions`` bounds the live transactions: beyond it a new incoming request is
    answered 503 statelessly (:class:`RequestRejected`), a new outgoing one raises
    :class:`TransactionError` with status 503.
    """

    def __init__(
        self,
        *,
        timers: Timers = DEFAULT_TIMERS,
        branch_factory: Callable[[], str] | None = None,
        rng: random.Random | None = None,
        max_transactions: int = 10_000,
        trying_delay: float = TRYING_DELAY,
    ) -> None:
        if max_transactions < 1:
            raise LocalProtocolError("max_transactions must be >= 1")
        self.timers = timers
        self.max_transactions = max_transactions
        self.trying_delay = trying_delay
        self._branch_factory = branch_factory
        self._rng = rng
        self._ids = itertools.count(1)
        self._seq = itertools.count()
        self._by_id: dict[str, Transaction] = {}
        self._client: dict[tuple[str, str], ClientTransaction] = {}
        self._server: dict[ServerKey, ServerTransaction] = {}
        self._legacy: dict[LegacyKey, list[ServerTransaction]] = {}
        self._heap: list[tuple[float, int, str]] = []
        # Completed non-INVITE transactions as records: by id, by matching key, and one
        # deadline queue per kind (Timer J / K have one duration each: appended in order)
        self._parked: dict[str, Record] = {}
        self._parked_server: dict[ServerKey, Record] = {}
        self._parked_client: dict[tuple[str, str], Record] = {}
        self._expiry: dict[TxKind, deque[tuple[float, str]]] = {
            kind: deque() for kind in PARKABLE_KINDS}
        self._outbox: list[Outgoing] = []
        self._entropy = b""
        self._entropy_pos = 0

    # -- queries -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_id) + len(self._parked)

    def get(self, transaction_id: str) -> Transaction | None:
        """A live transaction (``None`` for one that ended, or a Completed non-INVITE one:
        those are kept as records until Timer J / K)."""
        return self._by_id.get(transaction_id)

    def transactions(self) -> list[Transaction]:
        """The live transactions, without the Completed non-INVITE records (see :meth:`get`)."""
        return list(self._by_id.values())

    def completed_records(self) -> int:
        """How many Completed non-INVITE transactions are kept as records."""
        return len(self._parked)

    def new_branch(self) -> str:
        """A fresh branch with the RFC 3261 magic cookie (§8.1.1.7: unique in space and time)."""
        if self._branch_factory is not None:
            branch = self._branch_factory()
        elif self._rng is not None:
            branch = f"{self._rng.getrandbits(96):024x}"
        else:
            # 96 random bits from the CSPRNG, drawn in blocks (one getrandom() per 256)
            pool = self._entropy
            pos = self._entropy_pos
            if pos >= len(pool):
                pool = self._entropy = secrets.token_bytes(12 * 256)
                pos = 0
            self._entropy_pos = pos + 12
            return MAGIC_COOKIE + pool[pos : pos + 12].hex()
        return branch if branch.startswith(MAGIC_COOKIE) else MAGIC_COOKIE + branch

    def datagrams_to_send(self) -> list[Outgoing]:
        """Everything queued since the last call, in order."""
        out, self._outbox = self._outbox, []
        return out

    def earliest_scheduled(self) -> float | None:
        """A lower bound of :meth:`next_deadline` (``None``: no timer at all), in O(1): the
        earliest entry of the timer heap, which may be stale (earlier than the timer now)."""
        heap = self._heap
        best = heap[0][0] if heap else None
        for fifo in self._expiry.values():
            if fifo and (best is None or fifo[0][0] < best):
                best = fifo[0][0]
        return best

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`handle_timer` has something to do, or ``None``."""
        heap = self._heap
        best: float | None = None
        while heap:
            deadline, _, tx_id = heap[0]
            tx = self._by_id.get(tx_id)
            if tx is not None and tx.machine.next_deadline() == deadline:
                best = deadline
                break
            heapq.heappop(heap)
            if tx is not None and tx.scheduled == deadline:
                tx.scheduled = None
                self._schedule(tx)
        parked = self._parked
        for fifo in self._expiry.values():
            while fifo:
                deadline, tx_id = fifo[0]
                rec = parked.get(tx_id)
                if rec is not None and rec[R_DEADLINE] == deadline:
                    if best is None or deadline < best:
                        best = deadline
                    break
                fifo.popleft()  # the record ended before its timer
        return best

    # -- client side -------------------------------------------------------------------------

    def send_request(
        self, request: SipRequest, dest: Peer, now: float, reliable: bool = False
    ) -> ClientTransaction:
        """Start a client transaction (RFC 3261 §17.1) for ``request`` towards ``dest``.

        The top Via gets a fresh branch if it has none (§8.1.1.7).  ACK is not sent in a
        transaction (use :meth:`send_stateless`); CANCEL of a pending INVITE should go
        through :meth:`cancel`.
        """
        if request.method == "ACK":
            raise LocalProtocolError("ACK is not sent in a client transaction (§17.1.1.3)")
        if len(self._by_id) + len(self._parked) >= self.max_transactions:
            raise TransactionError("too many live transactions", status=503)
        if "Via" not in request.headers:
            raise LocalProtocolError("request has no Via header (RFC 3261 §8.1.1.7)")
        if request.top_via.branch is None:
            _set_top_via_branch(request, self.new_branch())
        branch = request.top_via.branch or ""
        if not branch.startswith(MAGIC_COOKIE):
            raise LocalProtocolError("branch must start with z9hG4bK (RFC 3261 §8.1.1.7)")
        # §17.1.3: a response matches by the top Via branch and the CSeq method.
        key = (branch, request.cseq.method)
        if key in self._client:
            raise LocalProtocolError(f"a client transaction for {key} already exists")
        kind = TxKind.INVITE_CLIENT if request.method == "INVITE" else TxKind.NON_INVITE_CLIENT
        machine = machine_for(kind, reliable=reliable, timers=self.timers)
        tx = ClientTransaction(self._next_id("c"), machine, request, dest, reliable, key)
        self._by_id[tx.id] = tx
        self._client[key] = tx
        self._feed(tx, TxInput.TU_REQUEST, now, None, None)
        return tx

    def cancel(self, transaction_id: str, now: float) -> str | None:
        """Cancel the INVITE client transaction ``transaction_id`` (RFC 3261 §9.1).

        Returns the id the CANCEL's own client transaction has (or will have), ``None`` when
        there is nothing to cancel (a final response was already received).  Before any
        provisional response the CANCEL is held back until one arrives (§9.1: MUST NOT send).
        """
        tx = self._by_id.get(transaction_id)
        if not isinstance(tx, ClientTransaction) or tx.kind is not TxKind.INVITE_CLIENT:
            raise LocalProtocolError(f"{transaction_id} is not an INVITE client transaction")
        if tx.cancel_id is not None or tx.cancel_wanted:
            return tx.cancel_id
        if tx.state is TxState.CALLING:
            tx.cancel_wanted = True
            return None
        if tx.state is not TxState.PROCEEDING:
            return None  # §9.1: a final response was received; CANCEL has no effect
        return self._send_cancel(tx, now)

    def _send_cancel(self, tx: ClientTransaction, now: float) -> str:
        tx.cancel_wanted = False
        # §9.1: the CANCEL goes to the same destination as the INVITE, its own transaction.
        cancel_tx = self.send_request(cancel_request(tx.request), tx.peer, now, tx.reliable)
        tx.cancel_id = cancel_tx.id
        return cancel_tx.id

    # -- server side -------------------------------------------------------------------------

    def send_response(
        self, response: SipResponse, now: float, transaction_id: str | None = None
    ) -> ServerTransaction:
        """Pass a response from the TU to its server transaction (found by ``transaction_id``
        or by the response's Via/CSeq, RFC 3261 §17.2.3)."""
        tx = self._find_server_for_response(response, transaction_id)
        inp = response_input(response.status, from_tu=True)
        self._feed(tx, inp, now, response, None)
        return tx

    def send_stateless(self, message: SipMessage, dest: Peer, reliable: bool = False) -> None:
        """Queue a message outside any transaction (ACK for 2xx §13.2.2.4, stateless answers)."""
        self._outbox.append(Outgoing(message.to_bytes(), dest, reliable, message, None))

    # -- input -------------------------------------------------------------------------------

    def receive(
        self, message: SipMessage, source: Peer, now: float, reliable: bool = False
    ) -> list[Event]:
        """Hand over a parsed message that arrived from ``source``; returns the TU events."""
        if isinstance(message, SipResponse):
            return self._receive_response(message, source, now)
        return self._receive_request(message, source, now, reliable)

    def transport_error(self, transaction_id: str, now: float) -> list[Event]:
        """The transport could not send a message of ``transaction_id`` (RFC 3261 §17.1.4)."""
        tx = self._by_id.get(transaction_id)
        try:
            if tx is None:
                rec = self._parked.get(transaction_id)
                if rec is None:
                    return []
                return self._record_input(rec, TxInput.TRANSPORT_ERROR)
            return self._feed(tx, TxInput.TRANSPORT_ERROR, now, None, None)
        except TransactionError:
            return []  # no transport error is possible in that state: nothing was sent

    def handle_timer(self, now: float) -> list[Event]:
        """Fire every timer due at ``now``; returns the TU events."""
        events: list[Event] = []
        heap = self._heap
        fifos = self._expiry
        parked = self._parked
        while True:
            # the earliest of the heap and of the record queues (Timer J / K), in order
            best = heap[0][0] if heap else None
            best_kind: TxKind | None = None
            for kind, fifo in fifos.items():
                if fifo and (best is None or fifo[0][0] < best):
                    best = fifo[0][0]
                    best_kind = kind
            if best is None or best > now:
                return events
            if best_kind is None:
                self._fire_heap_entry(now, events)
                continue
            deadline, tx_id = fifos[best_kind].popleft()
            rec = parked.get(tx_id)
            if rec is not None and rec[R_DEADLINE] == deadline:
                events += self._record_input(rec, PARKED_TIMER_INPUT[best_kind])

    def _fire_heap_entry(self, now: float, events: list[Event]) -> None:
        heap = self._heap
        if heap:
            deadline, _, tx_id = heapq.heappop(heap)
            tx = self._by_id.get(tx_id)
            if tx is None:
                return
            if tx.scheduled == deadline:
                tx.scheduled = None
            due = tx.machine.next_deadline()
            if due is None or due > now:
                self._schedule(tx)
                return
            effects = tx.machine.fire_due(now)
            events += self._perform(tx, effects, now, None, None)
            self._schedule(tx)

    # -- internals ---------------------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    def _schedule(self, tx: Transaction) -> None:
        if tx.id not in self._by_id:
            return
        deadline = tx.machine.next_deadline()
        if deadline is not None and deadline != tx.scheduled:
            heapq.heappush(self._heap, (deadline, next(self._seq), tx.id))
            tx.scheduled = deadline
        # Stale entries are dropped lazily; compact when they dominate.
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._by_id):
            self._heap = [e for e in self._heap if e[2] in self._by_id]
            heapq.heapify(self._heap)

    def _feed(
        self,
        tx: Transaction,
        inp: TxInput,
        now: float,
        message: SipMessage | None,
        source: Peer | None,
    ) -> list[Event]:
        machine = tx.machine
        effects = machine.handle(inp, now)
        events = self._perform(tx, effects, now, message, source)
        if machine.state is COMPLETED and machine.KIND in PARKABLE_KINDS and self._park(tx):
            return events
        self._schedule(tx)
        return events

    # -- Completed non-INVITE records ---------------------------------------------------------

    def _park(self, tx: Transaction) -> bool:
        """Replace a Completed non-INVITE transaction waiting only for Timer J / K by a
        record (see :data:`Record`); False when it has to stay a full transaction."""
        if tx.id not in self._by_id:
            return False
        machine = tx.machine
        # In Completed only Timer J (server) / K (client) runs (RFC 3261 §17.1.2.2, §17.2.2)
        kind = machine.KIND
        deadline = machine.sole_deadline(PARKED_TIMER[kind])
        if deadline is None:
            return False  # reliable transport: J / K are zero, the transaction already ended
        rec: Record
        if isinstance(tx, ServerTransaction):
            key = tx.key
            if key is None or tx.legacy_key is not None or tx._response_bytes is None:
                return False  # RFC 2543 matching needs the request and response objects
            rec = (tx.id, kind, deadline, key, tx.peer, tx._response_bytes,
                   snapshot_request(tx.request))
            if self._server.get(key) is tx:
                del self._server[key]
            self._parked_server[key] = rec
        elif isinstance(tx, ClientTransaction):
            rec = (tx.id, kind, deadline, tx.key, tx.peer, None, None)
            if self._client.get(tx.key) is tx:
                del self._client[tx.key]
            self._parked_client[tx.key] = rec
        else:  # pragma: no cover - every transaction is a client or a server one
            return False
        del self._by_id[tx.id]
        self._parked[tx.id] = rec
        fifo = self._expiry[kind]
        entry = (deadline, tx.id)
        if fifo and deadline < fifo[-1][0]:
            insort(fifo, entry)  # time went backwards (callers' clocks): keep the order
        else:
            fifo.append(entry)
        return True

    def _record_input(self, rec: Record, inp: TxInput) -> list[Event]:
        """Apply the Completed row for ``inp`` (RFC 3261 §17.1.2.2 / §17.2.2 / §17.2.4) to
        a record: only resending the final response, informing the TU of a transport
        error and terminating are possible there (checked in simpleim.sip.transaction)."""
        tx_id = rec[R_ID]
        kind = rec[R_KIND]
        _new_state, effects = completed_step(kind, inp)
        events: list[Event] = []
        for action in effects:
            op = action.op
            if op is Op.RETRANSMIT_RESPONSE:
                data = rec[R_RESPONSE]
                if data is not None:
                    self._outbox.append(
                        Outgoing(data, rec[R_PEER], False, None, tx_id))
            elif op is Op.INFORM_TRANSPORT_ERROR:
                snap = rec[R_REQUEST]
                if snap is not None:
                    events.append(TransportFailure(tx_id, restore_request(snap)))
            elif op is _TERMINATE:
                self._unpark(rec)
                events.append(TransactionTerminated(tx_id, kind))
        return events

    def _unpark(self, rec: Record) -> None:
        # §17.1.2.2 / §17.2.2: Terminated -> destroyed (its deadline entry is dropped lazily).
        self._parked.pop(rec[R_ID], None)
        table: dict[Any, Record] = (
            self._parked_server if rec[R_KIND] is NON_INVITE_SERVER else self._parked_client)
        if table.get(rec[R_KEY]) is rec:
            del table[rec[R_KEY]]

    def _queue(self, tx: Transaction, data: bytes, message: SipMessage) -> None:
        self._outbox.append(Outgoing(data, tx.peer, tx.reliable, message, tx.id))

    def _perform(
        self,
        tx: Transaction,
        effects: list[Action],
        now: float,
        message: SipMessage | None,
        source: Peer | None,
    ) -> list[Event]:
        events: list[Event] = []
        for action in effects:
            op = action.op
            if op is _SEND_REQUEST or op is _RETRANSMIT_REQUEST:
                self._outbox.append(
                    Outgoing(tx.request_bytes(), tx.peer, tx.reliable, tx.request, tx.id))
            elif op is _PASS_TO_TU:
                events += self._to_tu(tx, message, source, now)
            elif op is _SEND_RESPONSE:
                if isinstance(message, SipResponse):
                    tx.last_response = message
                    data = tx._response_bytes = message.to_bytes()
                    self._outbox.append(Outgoing(data, tx.peer, tx.reliable, message, tx.id))
            elif op is _TERMINATE:
                self._destroy(tx)
                events.append(TransactionTerminated(tx.id, tx.machine.KIND))
            elif op is Op.SEND_ACK:
                if isinstance(tx, ClientTransaction) and isinstance(message, SipResponse):
                    # §17.1.1.3: the ACK for a non-2xx is built once and re-sent as is.
                    if tx.ack is None:
                        tx.ack = ack_for_non2xx(tx.request, message)
                    self._queue(tx, tx.ack.to_bytes(), tx.ack)
            elif op is Op.RETRANSMIT_RESPONSE:
                if tx.last_response is not None:
                    self._queue(tx, tx.last_response.to_bytes(), tx.last_response)
            elif op is Op.SEND_TRYING:
                # §17.2.1 / §8.2.6.1: 100 Trying, To tag SHOULD NOT be added.
                trying = tx.request.create_response(100)
                tx.last_response = trying
                self._queue(tx, trying.to_bytes(), trying)
            elif op is Op.INFORM_TIMEOUT:
                events.append(TransactionTimeout(tx.id, tx.request))
            elif op is Op.INFORM_TRANSPORT_ERROR:
                events.append(TransportFailure(tx.id, tx.request))
        return events

    def _to_tu(
        self, tx: Transaction, message: SipMessage | None, source: Peer | None, now: float
    ) -> list[Event]:
        if isinstance(message, SipResponse):
            events: list[Event] = [ResponseReceived(tx.id, message, source)]
            if (
                isinstance(tx, ClientTransaction)
                and tx.cancel_wanted
                and tx.state is TxState.PROCEEDING
            ):
                # §9.1: the provisional response we waited for arrived: send the CANCEL now.
                self._send_cancel(tx, now)
            return events
        if isinstance(message, SipRequest):
            if message.method == "ACK":
                return [AckReceived(message, source, tx.id)]
            if message.method == "CANCEL":
                invite = self._find_cancelled_invite(message)
                pending = invite is not None and invite.state is TxState.PROCEEDING
                return [CancelReceived(
                    tx.id, message, source, invite.id if invite else None, pending)]
            return [RequestReceived(tx.id, message, source)]
        return []  # pragma: no cover - PASS_TO_TU always comes with a message

    def _destroy(self, tx: Transaction) -> None:
        # §17.1.1.2 / §17.2.1: once Terminated, the transaction MUST be destroyed immediately.
        self._by_id.pop(tx.id, None)
        if isinstance(tx, ClientTransaction):
            if self._client.get(tx.key) is tx:
                del self._client[tx.key]
        elif isinstance(tx, ServerTransaction):
            if tx.key is not None and self._server.get(tx.key) is tx:
                del self._server[tx.key]
            if tx.legacy_key is not None:
                bucket = self._legacy.get(tx.legacy_key, [])
                if tx in bucket:
                    bucket.remove(tx)
                if not bucket:
                    self._legacy.pop(tx.legacy_key, None)

    # -- responses ---------------------------------------------------------------------------

    def _receive_response(self, resp: SipResponse, source: Peer, now: float) -> list[Event]:
        branch = resp.top_via.branch if "Via" in resp.headers else None
        # §17.1.3: match on the top Via branch and the CSeq method.
        key = (branch or "", resp.cseq.method)
        tx = self._client.get(key)
        if tx is None:
            rec = self._parked_client.get(key)
            if rec is not None:
                try:
                    # §17.1.2.2: retransmitted responses in Completed are absorbed.
                    return self._record_input(rec, response_input(resp.status, from_tu=False))
                except TransactionError:
                    return []
            # §18.1.2: a response matching no transaction is passed to the core.
            return [ResponseReceived(None, resp, source)]
        try:
            inp = response_input(resp.status, from_tu=False)
            return self._feed(tx, inp, now, resp, source)
        except TransactionError:
            return []  # a stray response for this state (e.g. 1xx after the final): discard

    # -- requests ----------------------------------------------------------------------------

    def _receive_request(
        self, req: SipRequest, source: Peer, now: float, reliable: bool
    ) -> list[Event]:
        if "Via" not in req.headers:
            raise TransactionError("request without Via (RFC 3261 §8.1.1.7)", status=400)
        if req.method == "ACK":
            tx = self._match_server(req)
            if tx is None:
                # §17.2.3: an ACK for a 2xx has its own branch: it goes to the TU / dialog.
                return [AckReceived(req, source, None)]
            try:
                return self._feed(tx, TxInput.RECV_ACK, now, req, source)
            except TransactionError:
                return []  # e.g. ACK while still Proceeding: discard
        # §17.2.3: branch + sent-by + method; the RFC 2543 rules without the magic cookie.
        key = server_key(req)
        legacy: LegacyKey | None = None
        if key is not None:
            tx = self._server.get(key)
            if tx is None:
                rec = self._parked_server.get(key)
                if rec is not None:
                    try:
                        # §17.2.2: a retransmission in Completed gets the final response again.
                        return self._record_input(rec, TxInput.RECV_RETRANSMISSION)
                    except TransactionError:
                        return []
        else:
            legacy = legacy_key(req)
            tx = self._match_legacy(req, legacy, ack=False)
        if tx is not None:
            try:
                # §17.2.1 / §17.2.2: a retransmission is absorbed by its transaction.
                return self._feed(tx, TxInput.RECV_RETRANSMISSION, now, req, source)
            except TransactionError:
                return []
        if len(self._by_id) + len(self._parked) >= self.max_transactions:
            # Bounded state: refuse statelessly (RFC 3261 §21.5.4 503 Service Unavailable).
            reject = req.create_response(503)
            reject.headers.set("Retry-After", "5")
            self.send_stateless(reject, response_destination(req, source, reliable), reliable)
            return [RequestRejected(req, source, 503)]
        kind = TxKind.INVITE_SERVER if req.method == "INVITE" else TxKind.NON_INVITE_SERVER
        machine = machine_for(
            kind, reliable=reliable, timers=self.timers, trying_delay=self.trying_delay)
        peer = response_destination(req, source, reliable)
        stx = ServerTransaction(
            self._next_id("s"), machine, req, peer, reliable, source, key, legacy)
        self._by_id[stx.id] = stx
        if key is not None:
            self._server[key] = stx
        if legacy is not None:
            self._legacy.setdefault(legacy, []).append(stx)
        return self._feed(stx, TxInput.RECV_REQUEST, now, req, source)

    def _match_server(self, req: SipRequest) -> ServerTransaction | None:
        key = server_key(req)
        if key is not None:
            # §17.2.3: branch + sent-by + method (ACK -> INVITE).
            return self._server.get(key)
        return self._match_legacy(req, legacy_key(req), ack=req.method == "ACK")

    def _match_legacy(
        self, req: SipRequest, key: LegacyKey, *, ack: bool
    ) -> ServerTransaction | None:
        # §17.2.3 (RFC 2543 compatibility): Request-URI, To tag, From tag, Call-ID, CSeq and
        # top Via of the creating request; an ACK's To tag is the one of our response.
        tag = to_tag(req)
        for tx in self._legacy.get(key, ()):
            if ack:
                want = to_tag(tx.last_response) if tx.last_response is not None else ""
            else:
                want = to_tag(tx.request)
            if tag == want:
                return tx
        return None

    def _find_cancelled_invite(self, cancel: SipRequest) -> ServerTransaction | None:
        """RFC 3261 §9.2: the INVITE server transaction a CANCEL targets (same matching as
        §17.2.3, with the method INVITE)."""
        key = server_key(cancel)
        if key is not None:
            return self._server.get((key[0], key[1], key[2], "INVITE"))
        return self._match_legacy(cancel, legacy_key(cancel, "INVITE"), ack=False)

    def _find_server_for_response(
        self, resp: SipResponse, transaction_id: str | None
    ) -> ServerTransaction:
        if transaction_id is not None:
            tx = self._by_id.get(transaction_id)
            if not isinstance(tx, ServerTransaction):
                raise LocalProtocolError(f"no server transaction {transaction_id}")
            return tx
        via = resp.top_via
        branch = via.branch
        if branch is not None and branch.startswith(MAGIC_COOKIE):
            found = self._server.get((branch, via.host.lower(), via.port, resp.cseq.method))
            if found is not None:
                return found
        else:
            for bucket in self._legacy.values():
                for cand in bucket:
                    r = cand.request
                    if (
                        r.call_id == resp.call_id
                        and r.cseq.seq == resp.cseq.seq
                        and r.method == resp.cseq.method
                        and str(r.top_via) == str(via)
                    ):
                        return cand
        raise LocalProtocolError("the response matches no live server transaction")


def _set_top_via_branch(request: SipRequest, branch: str) -> None:
    """Add ``;branch=`` to the top Via (rewrites the Via headers, order kept)."""
    values = request.headers.get_all("Via")
    values[0] = f"{values[0]};branch={branch}"
    request.headers.remove("Via")
    for value in values:
        request.headers.add("Via", value)
