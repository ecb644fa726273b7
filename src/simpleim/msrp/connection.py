"""One MSRP connection (TCP or TLS), sans-I/O: transactions, responses, reports, binding.

Driving pattern (the asyncio layer in :mod:`simpleim.transport.msrp` does exactly this)::

    conn = MsrpConnection(timers=Timers(), resolver=endpoint.find_session)
    conn.attach(session, now)                    # active side: binds with a first SEND (§5.4)
    events = conn.receive_data(data, now)        # bytes from the socket -> events
    events += conn.pump(now)                     # cut chunks of queued messages
    transport.writelines(conn.data_to_send())    # then await drain (back-pressure)
    deadline = conn.next_deadline(); ... events = conn.handle_timer(now)

Rules implemented (RFC 4975 unless noted): responses are hop-by-hop (§7.2); no response to
REPORT (§7.1.2); ``Failure-Report: no`` -> no response, ``partial`` -> only negative ones (§7.2);
unknown method -> 501 (§12); unknown session -> 481 (§7.3); session bound to another connection
-> 506 (§5.4); unaccepted Content-Type -> 415 (§7.3.1); too large -> 413 (§10.5); 30 s without
response -> 408 (§7.3, :attr:`Timers.msrp_transaction`); success REPORT when asked (§7.1.3).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from types import MappingProxyType

from simpleim.errors import LocalProtocolError, MsrpParseError, RemoteProtocolError
from simpleim.msrp.chunker import (
    OutgoingChunk,
    OutgoingMessage,
    OutgoingState,
    PipeSource,
    chunk_slice,
    close_chunk,
    make_chunk,
    open_chunk,
    whole_frame,
)
from simpleim.msrp.events import (
    BindFailed,
    ConnectionFailed,
    MessageAborted,
    MessageDelivered,
    MessageFailed,
    MessageReceived,
    MessageSent,
    MsrpEvent,
    ProtocolViolation,
    ReportReceived,
    RequestRejected,
    ResponseReceived,
    SessionBound,
)
from simpleim.msrp.fsm import (
    BINDING_TABLE,
    MESSAGE_TABLE,
    BindAction,
    Binding,
    BindInput,
    MsgAction,
    MsgInput,
    step,
)
from simpleim.msrp.message import (
    FLAG_ABORT,
    FLAG_END,
    FLAG_MORE,
    REASONS,
    ByteRange,
    MsrpRequest,
    MsrpResponse,
    MsrpStatus,
    make_request,
)
from simpleim.msrp.parser import BodyChunk, MessageEnd, MessageHead, MsrpLimits, MsrpParser
from simpleim.msrp.pending import Incoming as _Incoming
from simpleim.msrp.pending import Tx as _Tx
from simpleim.msrp.pending import TxKind as _TxKind
from simpleim.msrp.reassembly import IncomingMessage
from simpleim.msrp.reports import add_report_body, make_report
from simpleim.msrp.session import MsrpSession, content_type_accepted, counter_ids, new_ident
from simpleim.msrp.uri import MsrpUri, parse_path
from simpleim.timers import DEFAULT_TIMERS, Timers

__all__ = [
    "MsrpConnection",
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


# ---------------------------------------------------------------------------- internals
_CHUNK_EVENT = MappingProxyType({FLAG_ABORT: MsgInput.ABORT, FLAG_END: MsgInput.LAST_CHUNK,
                                 FLAG_MORE: MsgInput.CHUNK})


class MsrpConnection:
    """See the module docstring."""

    def __init__(
        self,
        *,
        timers: Timers = DEFAULT_TIMERS,
        limits: MsrpLimits | None = None,
        resolver: Callable[[MsrpUri], MsrpSession | None] | None = None,
        max_inflight: int = 256,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self._timers = timers
        self._parser = MsrpParser(limits)
        self._resolver = resolver
        self._max_inflight = max_inflight
        # Transaction ids only need to be unique on the connection (RFC 4975 §7.1); a random
        # prefix + counter avoids a getrandom() call per chunk.  Message-IDs and session-ids
        # stay fully random (§14.1).
        self._new_id = id_factory or counter_ids()
        self._out: deque[bytes] = deque()
        self._out_bytes = 0
        self.sessions: dict[str, MsrpSession] = {}
        self._tx: dict[str, _Tx] = {}
        self._timeouts: deque[tuple[float, str]] = deque()
        self._inflight = 0
        self._cur: _Incoming | None = None
        self._in_response = False
        self._pending: list[MsrpEvent] = []
        self._rr: deque[MsrpSession] = deque()
        self.closed = False
        self.bytes_received = 0
        # The interruptible chunk whose end-line is not written yet (RFC 4975 §7.1.1): nothing
        # else may be written on the connection before it is ended.
        self._open: tuple[MsrpSession, OutgoingMessage] | None = None
        self._paths: dict[str, list[MsrpUri]] = {}
        self._resp_paths: dict[tuple[str | None, str | None], str] = {}
        # (To-Path, From-Path) header texts already checked (§7.3 / §5.4) -> the session and
        # the remote path it was checked against: later chunks of a transfer skip the checks.
        self._routes: dict[tuple[str | None, str | None],
                          tuple[MsrpSession, list[MsrpUri]]] = {}

    def _path(self, req: MsrpRequest, name: str) -> list[MsrpUri]:
        """Parsed To-Path/From-Path, cached by header text (the same for every chunk)."""
        raw = req.headers.get(name)
        if raw is None:
            raise MsrpParseError(f"missing {name}", where=name)
        path = self._paths.get(raw)
        if path is None:
            path = parse_path(raw)
            if len(self._paths) >= 64:
                self._paths.clear()
            self._paths[raw] = path
        return path

    # ------------------------------------------------------------------ sessions
    def attach(self, session: MsrpSession, now: float, *, via_relay: bool = False) -> None:
        """Bind ``session`` to this connection from the active side (RFC 4975 §5.4).

        Unless a message is already queued, an empty SEND is sent to bind the connection
        (§5.4, RFC 6135 §4).  ``via_relay``: the connection is the AUTH connection to our own
        relay, already bound for this session (RFC 4976 §5).
        """
        if via_relay:
            self._bind(session, BindInput.ATTACH_RELAY)
            return
        row = step(BINDING_TABLE, session.binding, BindInput.ATTACH_ACTIVE)
        session.binding = row.new_state
        session.connection = self
        self.sessions[session.session_id] = session
        self._rr.append(session)
        if row.action is BindAction.SEND_BIND:
            tid = self._new_id()
            req = make_request(tid, "SEND", session.to_path, [session.local_uri],
                               [("Message-ID", new_ident()), ("Success-Report", "no"),
                                ("Failure-Report", "yes")])
            self._emit(req.to_bytes(), now)
            self._add_tx(_Tx(tid, _TxKind.BIND, session, None, req,
                             now + self._timers.msrp_transaction))

    def _bind(self, session: MsrpSession, event: BindInput) -> bool:
        row = step(BINDING_TABLE, session.binding, event)
        session.binding = row.new_state
        if row.action is BindAction.BIND:
            session.connection = self
            self.sessions[session.session_id] = session
            if session not in self._rr:
                self._rr.append(session)
            self._pending.append(SessionBound(session))
            return True
        return False

    def detach(self, session: MsrpSession, now: float) -> None:
        """Tear a session down on this connection (SIP BYE); the connection may stay for others."""
        session.binding = step(BINDING_TABLE, session.binding, BindInput.CLOSE).new_state
        self.sessions.pop(session.session_id, None)
        if session in self._rr:
            self._rr.remove(session)
        for m in session.reassembler.abort_all():
            self._pending.append(MessageAborted(session, m))
        if self._open is not None and self._open[0] is session:
            self._close_open(FLAG_ABORT, now, self._pending)   # §7.1.1: abandoned
        session.connection = None

    # ------------------------------------------------------------------ output
    def _emit(self, data: bytes, now: float) -> None:
        if self._open is not None:
            # RFC 4975 §7.1.1: a chunk in progress is interrupted ("+") to let this go out.
            self._close_open(FLAG_MORE, now, self._pending)
        self._out.append(data)
        self._out_bytes += len(data)

    def data_to_send(self) -> list[bytes]:
        """Buffers to write (in order); the caller then drains the transport."""
        out = list(self._out)
        self._out.clear()
        self._out_bytes = 0
        return out

    @property
    def pending_output(self) -> int:
        return self._out_bytes

    def send_request(self, req: MsrpRequest, now: float, *, expect_response: bool = True) -> None:
        """Send any request (AUTH, NICKNAME...); its response comes back as ResponseReceived."""
        self._emit(req.to_bytes(), now)
        if expect_response:
            self._add_tx(_Tx(req.tid, _TxKind.REQUEST, None, None, req,
                             now + self._timers.msrp_transaction))

    def _add_tx(self, tx: _Tx) -> None:
        self._tx[tx.tid] = tx
        if tx.deadline is not None:
            self._timeouts.append((tx.deadline, tx.tid))

    def pump(self, now: float, budget: int = 1 << 20) -> list[MsrpEvent]:
        """Cut chunks from the sessions' queues until ``budget`` bytes are pending or the
        in-flight window is full.  Sessions take turns (one chunk each) so one big transfer does
        not starve the other sessions sharing the connection."""
        events = self._take_pending()
        if self.closed:
            return events
        idle_rounds = 0
        while (self._out_bytes < budget and self._inflight < self._max_inflight and self._rr
               and idle_rounds < len(self._rr)):
            if self._open is not None:
                self._continue_open(now, events)
                continue
            session = self._rr[0]
            self._rr.rotate(-1)
            if session.binding is not Binding.BOUND and session.binding is not Binding.BINDING:
                idle_rounds += 1
                continue
            msg = session.next_message()
            if msg is None:
                idle_rounds += 1
                continue
            idle_rounds = 0
            sl = session.interrupt_slice
            if (sl is not None and sl < session.chunk_size and msg.end is not None
                    and not msg.abort_requested and not isinstance(msg.source, PipeSource)):
                head = open_chunk(msg, self._new_id, session.to_path_text(),
                                  session.from_path_text(), session.chunk_size)
                self._out.append(head)
                self._out_bytes += len(head)
                self._open = (session, msg)
                self._next_slice(session, msg, now, events)     # never an empty chunk
                continue
            self._send_chunk(session, msg, now, events)
        return events

    def send_whole(self, session: MsrpSession, data: bytes, content_type: str, *,
                   failure_report: str = "partial") -> str | None:
        """A one-chunk message that opens no transaction (``Failure-Report: partial``/``no``,
        RFC 4975 §7.1.2) framed at once: what send() + pump() put out for it, without the
        queue (a switch's copies).  Its Message-ID; None when it cannot go now (not bound,
        messages queued - order -, a chunk open, empty or above a chunk): send() it."""
        if (self.closed or self._open is not None or session.binding is not Binding.BOUND
                or not data or len(data) > session.chunk_size or session.unsent()):
            return None
        mid = session.new_id()
        bufs = whole_frame(self._new_id, session.to_path_text(), session.from_path_text(),
                           mid, data, content_type, failure_report)
        self._out.extend(bufs)
        self._out_bytes += len(bufs[0]) + len(data) + len(bufs[2])
        return mid

    def _send_chunk(self, session: MsrpSession, msg: OutgoingMessage, now: float,
                    events: list[MsrpEvent]) -> None:
        chunk: OutgoingChunk = make_chunk(msg, self._new_id, session.to_path_text(),
                                          session.from_path_text(), session.chunk_size)
        msg.state = step(MESSAGE_TABLE, msg.state, _CHUNK_EVENT[chunk.flag]).new_state
        for b in chunk.buffers:
            if b:
                self._out.append(b)
        self._out_bytes += chunk.nbytes
        self._chunk_sent(session, msg, chunk.tid, now, events)

    def _chunk_sent(self, session: MsrpSession, msg: OutgoingMessage, tid: str, now: float,
                    events: list[MsrpEvent]) -> None:
        if msg.expects_responses:
            msg.outstanding += 1
            self._inflight += 1
            self._add_tx(_Tx(tid, _TxKind.CHUNK, session, msg, None,
                             now + self._timers.msrp_transaction))
        elif msg.outstanding == 0:
            self._settle(session, msg, MsgInput.WRITTEN, events)

    def _continue_open(self, now: float, events: list[MsrpEvent]) -> None:
        """Write the next slice of the open chunk, or end it: with ``#`` when its message was
        aborted / failed (§7.1.1, §10.5), with ``+`` when something else is waiting (another
        message of the session or another session's data - §7.1.1 interruption)."""
        if self._open is None:  # pragma: no cover - the caller checked
            return
        session, msg = self._open
        if (msg.abort_requested or msg.state is OutgoingState.FAILED
                or session.binding is Binding.CLOSED):
            self._close_open(FLAG_ABORT, now, events)
            return
        if session.next_message() is not msg or any(
                s is not session and s.binding in (Binding.BOUND, Binding.BINDING)
                and s.has_pending() for s in self._rr):
            self._close_open(FLAG_MORE, now, events)
            return
        self._next_slice(session, msg, now, events)

    def _next_slice(self, session: MsrpSession, msg: OutgoingMessage, now: float,
                    events: list[MsrpEvent]) -> None:
        data, flag = chunk_slice(msg, session.interrupt_slice or session.chunk_size)
        if data:
            self._out.append(data)
            self._out_bytes += len(data)
        if flag is not None:
            self._close_open(flag, now, events)

    def _close_open(self, flag: str, now: float, events: list[MsrpEvent]) -> None:
        """End the open chunk with ``flag`` (its transaction starts now)."""
        if self._open is None:
            return
        session, msg = self._open
        self._open = None
        if flag == FLAG_MORE and (msg.abort_requested or msg.state is OutgoingState.FAILED):
            flag = FLAG_ABORT           # it will not continue: abandon it (§7.1.1, §10.5)
        tid, tail = close_chunk(msg, flag)
        self._out.append(tail)
        self._out_bytes += len(tail)
        msg.state = step(MESSAGE_TABLE, msg.state, _CHUNK_EVENT[flag]).new_state
        self._chunk_sent(session, msg, tid, now, events)

    def _settle(self, session: MsrpSession, msg: OutgoingMessage, event: MsgInput,
                events: list[MsrpEvent]) -> None:
        """Nothing of ``msg`` is outstanding: every chunk answered or written (§7.3)."""
        row = step(MESSAGE_TABLE, msg.state, event)
        msg.state = row.new_state
        if row.action is MsgAction.NOTIFY_SENT:
            events.append(MessageSent(session, msg))
            if not msg.success_report:
                session.forget(msg)
        elif row.action is MsgAction.FORGET:
            session.forget(msg)

    def _take_pending(self) -> list[MsrpEvent]:
        ev = self._pending
        self._pending = []
        return ev

    # ------------------------------------------------------------------ input
    def receive_data(self, data: bytes, now: float) -> list[MsrpEvent]:
        """Bytes from the peer -> events.  A framing error yields ConnectionFailed (close)."""
        events = self._take_pending()
        if self.closed:
            events.append(ProtocolViolation("data after close", 400))
            return events
        self.bytes_received += len(data)
        try:
            parsed = self._parser.feed(data)
        except MsrpParseError as exc:
            self._framing_failed(exc, events, now)
            return events
        for ev in parsed:
            if isinstance(ev, BodyChunk):
                self._on_body(ev.data)
            elif isinstance(ev, MessageHead):
                if isinstance(ev.message, MsrpResponse):
                    self._on_response(ev.message, now, events)
                else:
                    self._on_request_head(ev.message)
                    if self._pending:
                        events += self._take_pending()
            else:
                self._on_end(ev, events, now)
        events += self._take_pending()
        if self._parser.error is not None:
            # complete messages before the bad bytes were handled above; now fail the stream
            self._framing_failed(self._parser.error, events, now)
        return events

    def _framing_failed(self, exc: MsrpParseError, events: list[MsrpEvent], now: float) -> None:
        """The stream cannot be resynchronised (RFC 4975 §9 framing): answer the message in
        progress if we can, drop its partial data, and report the connection failed."""
        tid = self._parser.current_tid
        cur = self._cur
        if tid is not None and cur is not None and cur.request.tid == tid:
            self._respond(cur.request, exc.status, exc.detail, now)
        if cur is not None and cur.cursor is not None and cur.session is not None:
            cur.session.reassembler.fail(cur.cursor)
        events += self._take_pending()
        events.append(ConnectionFailed(exc))

    def _on_request_head(self, req: MsrpRequest) -> None:
        cur = _Incoming(req, None, None, None)
        self._cur = cur
        headers = req.headers
        key = (headers.get("To-Path"), headers.get("From-Path"))
        route = self._routes.get(key)
        if route is not None:
            known = route[0]
            if (known.connection is self and known.binding is Binding.BOUND
                    and known.remote_path is route[1]
                    and self.sessions.get(known.session_id) is known):
                cur.session = known
                self._request_for(cur, known)
                return
            del self._routes[key]
        try:
            to_path = self._path(req, "To-Path")
            from_path = self._path(req, "From-Path")
        except MsrpParseError as exc:
            cur.error = exc
            return
        session = self.sessions.get(to_path[0].session_id or "")
        if session is None and self._resolver is not None:
            session = self._resolver(to_path[0])
        if session is None or not session.matches_to(to_path[0]) or len(to_path) != 1:
            # §7.3: the leftmost To-Path URI must be one of our sessions (and the last hop).
            cur.error = MsrpParseError("no such session", status=481, where="To-Path")
            return
        cur.session = session
        if session.connection is not None and session.connection is not self:
            cur.error = MsrpParseError("session is bound to another connection",
                                       status=506, where="To-Path")   # §5.4 / §10.10
            return
        if not session.origin_ok(from_path):
            cur.error = MsrpParseError("From-Path is not the session's peer", status=403,
                                       where="From-Path")
            return
        if session.binding is not Binding.BOUND:
            self._bind(session, BindInput.REQUEST_IN)
        if session.binding is Binding.BOUND and session.connection is self:
            if len(self._routes) >= 64:
                self._routes.clear()
            self._routes[key] = (session, session.remote_path)
        self._request_for(cur, session)

    def _request_for(self, cur: _Incoming, session: MsrpSession) -> None:
        """Method-specific checks of a request addressed to ``session``."""
        req = cur.request
        if req.method == "SEND":
            try:
                cur.failure_report = req.failure_report     # validates the header (400)
                _ = req.success_report                      # validates the header (400)
                ct = req.content_type
                if ct is not None and not content_type_accepted(ct, session.accept_types):
                    raise MsrpParseError(f"{ct} not accepted", status=415,
                                         where="Content-Type")
                br = req.byte_range
                if (ct is None and br is None) or (br is not None and br.total == 0):
                    # Empty SEND: binding / keep-alive (§5.4; some stacks send it with
                    # Byte-Range: 1-0/0).  It is no message: nothing stored, nothing surfaced.
                    return
                cur.cursor = session.reassembler.begin_chunk(req)
            except MsrpParseError as exc:
                cur.error = exc
        elif req.method not in ("REPORT",):
            cur.error = MsrpParseError(f"method {req.method} not understood", status=501,
                                       where="method")    # §12: unknown methods get 501

    def _on_body(self, data: bytes | memoryview) -> None:
        cur = self._cur
        if cur is None:  # pragma: no cover - the parser never emits body before a head
            return
        if cur.cursor is not None and cur.error is None and cur.session is not None:
            try:
                cur.session.reassembler.chunk_data(cur.cursor, data)
            except MsrpParseError as exc:
                cur.error = exc
                cur.session.reassembler.fail(cur.cursor)
        elif (cur.error is None and cur.session is not None and cur.request.method == "REPORT"
              and len(data)):
            try:            # §7.1.2: a REPORT MAY carry an informational body, not chunked
                cur.report_body = add_report_body(cur.report_body, data)
            except MsrpParseError as exc:
                cur.error, cur.report_body = exc, None
        elif (cur.cursor is None and cur.error is None and cur.session is not None
              and cur.request.method == "SEND" and len(data)):
            # §7.1.1: a SEND with a body carries Content-Type; total 0 means no body
            cur.error = MsrpParseError("body in an empty SEND (no Content-Type or total 0)",
                                       where="body")

    def _on_end(self, ev: MessageEnd, events: list[MsrpEvent], now: float) -> None:
        cur = self._cur
        self._cur = None
        if cur is None:
            if not self._in_response:  # pragma: no cover - the parser pairs heads and ends
                events.append(ProtocolViolation(f"end-line of unknown message {ev.tid}", 400))
            self._in_response = False
            return
        req, session = cur.request, cur.session
        req.flag = ev.flag
        if req.method == "REPORT":
            # §7.1.2: REPORT requests are never answered.
            if cur.error is None and session is not None:
                self._on_report(session, req, events, cur.report_body)
            elif cur.error is not None:
                events.append(ProtocolViolation(f"REPORT dropped: {cur.error.detail}",
                                                 cur.error.status))
            return
        if cur.error is not None:
            self._respond(req, cur.error.status, cur.error.detail, now)
            self._failure_report(session, req, cur.error.status, now)
            events.append(RequestRejected(session, req, cur.error.status, cur.error.detail))
            return
        if cur.cursor is None or session is None:
            self._respond(req, 200, None, now, cur.failure_report)
            return
        done = session.reassembler.end_chunk(cur.cursor, ev.flag)
        if done is not None and not done.aborted and session.hold_acks:
            done.held = (req, cur.failure_report)       # answered by acknowledge()
            events.append(MessageReceived(session, done))
            return
        self._respond(req, 200, None, now, cur.failure_report)
        if done is None:
            return
        if done.aborted:
            events.append(MessageAborted(session, done))
            return
        events.append(MessageReceived(session, done))
        if done.first.success_report:
            self._success_report(session, done, now)

    def acknowledge(self, session: MsrpSession, msg: IncomingMessage, now: float,
                    status: int = 200, comment: str | None = None, *,
                    report: bool = True) -> None:
        """Answer the held last chunk of ``msg`` (``hold_acks``): 200 or ``status``, §7.1.2/3.
        ``report=False``: no success REPORT now - the caller sends its own later
        (:meth:`send_report`, e.g. with a body)."""
        held, msg.held = msg.held, None
        if held is not None and not self.closed:
            self._respond(held[0], status, comment, now, held[1])
            if status != 200:
                self._failure_report(session, held[0], status, now)
            elif msg.first.success_report and report:
                self._success_report(session, msg, now)

    def _respond(self, req: MsrpRequest, status: int, comment: str | None, now: float,
                 fr: str | None = None) -> None:
        """Transaction response (RFC 4975 §7.2), hop-by-hop: To-Path = previous hop (first
        From-Path URI), From-Path = us (first To-Path URI)."""
        if fr is None:
            try:
                fr = req.failure_report
            except MsrpParseError:
                fr = "yes"
        if fr == "no" or (fr == "partial" and status == 200):
            return      # §7.2
        key = (req.headers.get("From-Path"), req.headers.get("To-Path"))
        paths = self._resp_paths.get(key)
        if paths is None:
            try:
                to_uri = str(self._path(req, "From-Path")[0])
            except MsrpParseError:
                self._pending.append(ProtocolViolation(
                    f"cannot answer {req.method} {req.tid}: no usable From-Path", status))
                return
            try:
                from_uri = str(self._path(req, "To-Path")[0])
            except MsrpParseError:
                from_uri = to_uri
            paths = f"To-Path: {to_uri}\r\nFrom-Path: {from_uri}\r\n"
            if len(self._resp_paths) >= 64:
                self._resp_paths.clear()
            self._resp_paths[key] = paths
        if status == 200:
            reason = "OK"
        else:
            reason = REASONS.get(status, "Error")
            if comment:
                reason = f"{reason} ({comment})"
            reason = "".join(c if 32 <= ord(c) < 127 else "?" for c in reason)
        tid = req.tid
        self._emit(f"MSRP {tid} {status:03d} {reason}\r\n{paths}-------{tid}$\r\n".encode(), now)

    def _success_report(self, session: MsrpSession, msg: IncomingMessage, now: float) -> None:
        """§7.1.3: REPORT, To-Path = the SEND's From-Path, covering the whole message."""
        end = msg.final_end if msg.final_end is not None else msg.size
        br = ByteRange(msg.start + 1, end, msg.total if msg.total is not None else end)
        req = make_report(self._new_id(), msg.first.from_path, session.local_uri,
                          msg.message_id, MsrpStatus(200, "OK"), byte_range=br)
        self._emit(req.to_bytes(), now)

    def send_report(self, session: MsrpSession, message_id: str, status: MsrpStatus,
                    now: float, *, byte_range: ByteRange | None = None, body: bytes = b"",
                    content_type: str | None = None) -> MsrpRequest:
        """An end-to-end REPORT about ``message_id`` to the session's peer, with an optional
        body, whole (RFC 4975 §7.1.2, :func:`~simpleim.msrp.reports.make_report`); nobody
        answers it.  LocalProtocolError when the session is not bound here."""
        if self.closed or session.binding is not Binding.BOUND or session.connection is not self:
            raise LocalProtocolError("REPORT on a session not bound to this connection")
        req = make_report(self._new_id(), session.to_path, session.local_uri, message_id,
                          status, byte_range=byte_range, body=body, content_type=content_type)
        self._emit(req.to_bytes(), now)
        return req

    def _failure_report(self, session: MsrpSession | None, req: MsrpRequest,
                        status: int, now: float) -> None:
        """Failure REPORT (RFC 4975 §7.1.2): our transaction response only reaches the previous
        hop; when the SEND came through relays (RFC 4976 §7: responses are hop-by-hop) and the
        sender asked for failure reports (yes/partial), tell it end to end as well."""
        if session is None or req.method != "SEND":
            return
        try:
            if req.failure_report == "no":
                return
            from_path = self._path(req, "From-Path")
            mid = req.message_id
            br = req.byte_range or ByteRange(1, None, None)
        except MsrpParseError:
            return
        if len(from_path) < 2 or mid is None:
            return
        rep = make_report(self._new_id(), from_path, session.local_uri, mid,
                          MsrpStatus(status, REASONS.get(status, "Error")), byte_range=br)
        self._emit(rep.to_bytes(), now)

    def _on_report(self, session: MsrpSession, req: MsrpRequest,
                   events: list[MsrpEvent], body: bytearray | None = None) -> None:
        events.append(ReportReceived(session, req, bytes(body) if body else b""))
        try:
            mid, status, br = req.message_id, req.status, req.byte_range
        except MsrpParseError as exc:
            events.append(ProtocolViolation(f"bad REPORT: {exc.detail}", exc.status))
            return
        msg = session.outgoing.get(mid or "")
        if msg is None or status is None:
            return
        if status.code == 200:
            # §7.1.2: the REPORT's Byte-Range tells what it covers; a resumed message
            # (RFC 5547 §6 file-range) is delivered when its own range [start, end) is.
            # Per-chunk REPORTs (one per received chunk, as some stacks send) are
            # aggregated: delivered once the reported ranges cover the whole message.
            need = msg.end if msg.end is not None else msg.offset
            if br is not None and br.end is not None:
                msg.reported.add(br.start - 1, br.end)
            if br is not None and (need <= msg.start or msg.reported.covers(msg.start, need)):
                try:
                    row = step(MESSAGE_TABLE, msg.state, MsgInput.SUCCESS_REPORT, "remote")
                except RemoteProtocolError as exc:
                    events.append(ProtocolViolation(f"success REPORT for {msg.message_id}: "
                                                    f"{exc.detail}", exc.status))
                    return
                msg.state = row.new_state
                if row.action is MsgAction.NOTIFY_DELIVERED:
                    events.append(MessageDelivered(session, msg))
                    if msg.outstanding == 0:
                        session.forget(msg)
            return
        self._fail_message(session, msg, MsgInput.FAILURE_REPORT, status.code, status.comment,
                           events)

    def _fail_message(self, session: MsrpSession, msg: OutgoingMessage, event: MsgInput,
                      status: int, comment: str | None, events: list[MsrpEvent]) -> None:
        try:
            # A REPORT or transaction response from the peer: outside the table it is the
            # peer's protocol error, reported, not raised.  (Our own timeout is local.)
            row = step(MESSAGE_TABLE, msg.state, event,
                       "local" if event is MsgInput.TIMEOUT else "remote")
        except RemoteProtocolError as exc:
            events.append(ProtocolViolation(f"{event.value} for message {msg.message_id}: "
                                            f"{exc.detail}", status))
            return
        msg.state = row.new_state
        if row.action is MsgAction.STOP_AND_NOTIFY or row.action is MsgAction.NOTIFY_FAILED:
            msg.status, msg.comment = status, comment
            events.append(MessageFailed(session, msg, status, comment))
            if row.action is MsgAction.STOP_AND_NOTIFY:
                msg.source.close()       # §10.5 (413): send no further chunk of it
        if msg.outstanding == 0:
            session.forget(msg)

    def _on_response(self, resp: MsrpResponse, now: float, events: list[MsrpEvent]) -> None:
        # The end-line event of a response follows immediately (responses have no body).
        self._cur = None
        self._in_response = True
        tx = self._tx.pop(resp.tid, None)
        if tx is None:
            events.append(ProtocolViolation(f"response {resp.status_code} for unknown "
                                            f"transaction {resp.tid}", 481))
            return
        self._complete_tx(tx, resp, resp.status_code, resp.comment, events)

    def _complete_tx(self, tx: _Tx, resp: MsrpResponse | None, code: int, comment: str | None,
                     events: list[MsrpEvent]) -> None:
        if tx.kind is _TxKind.REQUEST:
            if tx.request is not None:
                events.append(ResponseReceived(tx.request, resp))
            return
        session = tx.session
        if session is None:  # pragma: no cover - chunk/bind transactions carry their session
            return
        if tx.kind is _TxKind.BIND:
            if code == 200:
                self._bind(session, BindInput.BIND_OK)
            else:
                row = step(BINDING_TABLE, session.binding, BindInput.BIND_FAILED)
                session.binding = row.new_state
                if row.action is BindAction.NOTIFY_BIND_FAILED:
                    events.append(BindFailed(session, code, comment))
            return
        msg = tx.message
        if msg is None:  # pragma: no cover
            return
        msg.outstanding -= 1
        self._inflight -= 1
        if code != 200:
            ev = MsgInput.TIMEOUT if resp is None else MsgInput.ERROR_RESPONSE
            self._fail_message(session, msg, ev, code, comment, events)
            return
        if msg.outstanding == 0:
            self._settle(session, msg, MsgInput.ALL_ACKED, events)

    # ------------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        q = self._timeouts
        while q and q[0][1] not in self._tx:
            q.popleft()
        return q[0][0] if q else None

    def handle_timer(self, now: float) -> list[MsrpEvent]:
        """Fail transactions whose 30 s ran out (§7.3: treat as 408)."""
        events = self._take_pending()
        q = self._timeouts
        while q and q[0][0] <= now:
            _, tid = q.popleft()
            tx = self._tx.pop(tid, None)
            if tx is not None:
                self._complete_tx(tx, None, 408, "transaction timeout", events)
        return events

    # ------------------------------------------------------------------ teardown
    def connection_lost(self) -> list[MsrpEvent]:
        """The transport is gone: fail what is outstanding, abort partial incoming messages."""
        events = self._take_pending()
        if self.closed:
            return events
        self.closed = True
        for tx in list(self._tx.values()):
            if tx.kind is _TxKind.REQUEST and tx.request is not None:
                events.append(ResponseReceived(tx.request, None))
        self._tx.clear()
        self._timeouts.clear()
        self._inflight = 0
        self._open = None
        for session in list(self.sessions.values()):
            for msg in list(session.outgoing.values()):
                msg.outstanding = 0
                before = msg.state
                row = step(MESSAGE_TABLE, before, MsgInput.CONNECTION_LOST)
                msg.state = row.new_state
                if row.action is MsgAction.NOTIFY_FAILED:
                    events.append(MessageFailed(session, msg, 408, "connection lost"))
                    session.forget(msg)
            for m in session.reassembler.abort_all():
                events.append(MessageAborted(session, m))
            session.binding = step(BINDING_TABLE, session.binding,
                                   BindInput.CONNECTION_LOST).new_state
            session.connection = None
        self.sessions.clear()
        self._rr.clear()
        return events

    def close(self) -> list[MsrpEvent]:
        """Local close; same effect as a lost connection (§5.4: sessions on it end)."""
        return self.connection_lost()

    @property
    def idle(self) -> bool:
        """No transaction, no queued data: safe to close without losing anything."""
        return (not self._tx and not self._out and self._parser.idle and self._open is None
                and not any(s.has_pending() for s in self.sessions.values()))

    def check_open(self) -> None:
        if self.closed:
            raise LocalProtocolError("MSRP connection is closed")
