"""asyncio MSRP endpoint: drives :class:`simpleim.msrp.MsrpConnection` over TCP or TLS.

::

    ep = MsrpEndpoint("127.0.0.1", 0)                 # listens (passive side), port 0 = ephemeral
    await ep.start()
    s = ep.new_session(accept_types=["*"])            # s.local_path -> a=path of our SDP
    s.set_remote_path(peer_path)                      # from the peer's SDP
    await ep.connect(s, plan)                         # active side (plan_connection(...))
    await s.send(b"hi", "text/plain")                 # waits for the 200 (or raises)
    await s.send_file("big.bin", "application/octet-stream")
    msg = await s.receive()                           # IncomingMessage (sink = memory or file)
    await ep.close()

Resume (RFC 5547 §6 file-range): the sender ``await s.send_file(path, offset=N)`` (Byte-Range
``N+1-.../size``, optionally ``length=``); the receiver ``s.receive_file(partial, resume_from=N)``
(or ``receive_with(factory, resume_from=N)``) appends to the partial file and completes when the
rest arrived.  Chunk interruption (RFC 4975 §7.1.1): ``ep.new_session(chunk_size=1 << 20,
interrupt_slice=16384)`` writes chunks as ``n-*/total`` a slice at a time and ends one with ``+``
as soon as another message or a response has to go out.

Back-pressure: chunks are cut only while the transport's write buffer is below its high-water
mark (``drain``); the reader stops reading while our own output (responses) is backed up; the
queue of received messages per session is bounded.  Connections are shared by sessions going
to the same (host, port, TLS) (RFC 4975 §5.4) - never one that is already closing (its last
session ended): a new session then gets a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from simpleim.errors import MsrpParseError, SimpleImError, TransactionError
from simpleim.msrp import (
    BindFailed,
    ByteRange,
    ChunkSink,
    ChunkSource,
    ConnectionFailed,
    ConnectionPlan,
    IncomingMessage,
    MessageAborted,
    MessageDelivered,
    MessageFailed,
    MessageReceived,
    MessageSent,
    MsrpConnection,
    MsrpEvent,
    MsrpLimits,
    MsrpRequest,
    MsrpResponse,
    MsrpSession,
    MsrpStatus,
    MsrpUri,
    OutgoingMessage,
    OutgoingState,
    ProtocolViolation,
    RelayAuth,
    RelayGrant,
    ReportReceived,
    RequestRejected,
    ResponseReceived,
    SessionBound,
    new_ident,
)
from simpleim.timers import DEFAULT_TIMERS, Timers
from simpleim.transport.msrp_files import FileSink, FileSource

__all__ = ["ACCEPTED_LINGER", "MsrpEndpoint", "EndpointSession", "MsrpTransferError",
           "FileSink", "FileSource"]

log = logging.getLogger("simpleim.transport.msrp")

#: seconds an accepted connection without sessions stays open for its opener to reuse
#: (RFC 4975 §5.4) before we close it ourselves
ACCEPTED_LINGER = 30.0


class MsrpTransferError(SimpleImError):
    """A message could not be sent (negative response, 408, failure REPORT, connection lost)."""

    def __init__(self, message_id: str, status: int, comment: str | None) -> None:
        self.message_id, self.status, self.comment = message_id, status, comment
        super().__init__(f"MSRP message {message_id} failed: {status} {comment or ''}".strip())


class EndpointSession:
    """An MSRP session on an :class:`MsrpEndpoint` (wraps the sans-I/O :class:`MsrpSession`)."""

    def __init__(self, endpoint: MsrpEndpoint, core: MsrpSession, queue_size: int) -> None:
        self.endpoint = endpoint
        self.core = core
        self._incoming: asyncio.Queue[IncomingMessage] = asyncio.Queue(queue_size)
        self._waiters: dict[str, asyncio.Future[OutgoingMessage]] = {}
        self._delivery: dict[str, asyncio.Future[OutgoingMessage]] = {}
        self.bound = asyncio.Event()
        self.bind_error: BaseException | None = None
        self.aborted: list[IncomingMessage] = []
        self.runner: _Runner | None = None
        self._refresh: asyncio.Task[None] | None = None
        #: called with each REPORT received for the session and its body (RFC 4975 §7.1.2)
        self.on_report: Callable[[MsrpRequest, bytes], None] | None = None

    @property
    def local_path(self) -> list[MsrpUri]:
        return self.core.local_path

    @property
    def local_uri(self) -> MsrpUri:
        return self.core.local_uri

    def set_remote_path(self, path: Sequence[MsrpUri]) -> None:
        self.core.set_remote_path(path)

    def receive_into(self, directory: str | Path, *, max_size: int | None = None) -> None:
        """Write incoming messages to files ``directory/<Message-ID>`` as they arrive."""
        d = Path(directory)
        self.core.set_sink_factory(lambda req: FileSink(d / (req.message_id or "msg")),
                                   max_size=max_size)

    def receive_file(self, path: str | Path, *, resume_from: int = 0,
                     max_size: int | None = None) -> None:
        """Write the next incoming message into ``path``.

        ``resume_from=N`` resumes an interrupted transfer (RFC 5547 §6 file-range
        ``N+1-stop``): ``path`` already holds bytes 1..N and is kept as it is (not truncated,
        not removed on abort); the message completes when the peer's chunks - from
        ``Byte-Range: N+1-`` on - cover the rest up to its last chunk (``$``).
        ``max_size``: refuse (413) a message growing past it, counted on received bytes."""
        p = Path(path)
        self.core.set_sink_factory(lambda _req: FileSink(p, resume=bool(resume_from)),
                                   resume_from=resume_from, max_size=max_size)

    def receive_with(self, factory: Callable[[MsrpRequest], ChunkSink], *,
                     resume_from: int = 0, max_size: int | None = None) -> None:
        """Incoming messages go to the sinks ``factory`` returns; ``resume_from`` and
        ``max_size`` as in :meth:`receive_file`."""
        self.core.set_sink_factory(factory, resume_from=resume_from, max_size=max_size)

    async def wait_bound(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            await self.bound.wait()
        if self.bind_error is not None:
            raise self.bind_error

    async def send(self, data: bytes, content_type: str = "text/plain", *,
                   success_report: bool = False, failure_report: str = "yes",
                   wait: bool = True, **kw: Any) -> OutgoingMessage:
        msg = self.core.send(data, content_type, success_report=success_report,
                             failure_report=failure_report, **kw)
        return await self._after_queue(msg, wait)

    async def send_file(self, path: str | Path, content_type: str = "application/octet-stream",
                        *, success_report: bool = False, wait: bool = True,
                        offset: int = 0, length: int | None = None,
                        **kw: Any) -> OutgoingMessage:
        """Send a file as one message, streamed a chunk at a time.

        ``offset`` / ``length``: send only bytes ``offset+1 .. offset+length`` (to the end
        when ``length`` is None) - RFC 5547 §6 file-range, e.g. to resume an interrupted
        transfer.  The chunks' Byte-Range uses the file's numbering with the file size as
        total (``offset+1-.../size``, RFC 4975 §7.1.1).  ``wait=False`` returns once queued
        (see :meth:`wait_sent`; ``msg.sent_bytes`` tells the progress)."""
        src = FileSource(path, offset)
        try:
            msg = self.core.send(source=src, total=src.size, content_type=content_type,
                                 success_report=success_report, offset=offset, length=length,
                                 **kw)
        except BaseException:
            src.close()
            raise
        return await self._after_queue(msg, wait)

    def send_source(self, source: ChunkSource, total: int, content_type: str, *,
                    offset: int = 0, failure_report: str = "yes",
                    headers: Sequence[tuple[str, str]] = ()) -> OutgoingMessage:
        """Queue a message read from ``source`` (e.g. a :class:`~simpleim.msrp.PipeSource`
        fed as the chunks of another message arrive), without waiting; ``offset``: the
        0-based position of its first byte (Byte-Range ``offset+1-.../total``).  A failure
        is logged unless :meth:`wait_sent` is awaited.  Call :meth:`wake` when the source
        has more data."""
        if self.runner is not None and self.runner.conn.closed:
            raise MsrpTransferError("-", 408, "connection closed")
        msg = self.core.send(source=source, total=total, content_type=content_type,
                             failure_report=failure_report, headers=tuple(headers),
                             offset=offset)
        fut: asyncio.Future[OutgoingMessage] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_note_failure)
        self._waiters[msg.message_id] = fut
        return msg

    def post(self, data: bytes, content_type: str, *, failure_report: str = "partial",
             backlog: int = 8) -> asyncio.Future[OutgoingMessage] | None:
        """Queue a message and write it at once, without a task switch, when the
        connection takes it now: bound, open, not pushing back, and at most ``backlog``
        messages of this session still unsent.  The future settles once the message is
        written (``Failure-Report: partial``/``no``: RFC 4975 §7.1.2, nothing more comes)
        or fails.  None: not taken, nothing queued - :meth:`send` waits instead."""
        runner = self.runner
        if (runner is None or runner.conn.closed or runner.write_blocked
                or self.core.unsent() > backlog):
            return None
        msg = self.core.send(data, content_type, failure_report=failure_report)
        fut: asyncio.Future[OutgoingMessage] = asyncio.get_running_loop().create_future()
        self._waiters[msg.message_id] = fut
        runner.wake()
        return fut

    def post_whole(self, data: bytes, content_type: str, *,
                   failure_report: str = "partial") -> bool:
        """Write a message of one chunk that needs no response at once, framed straight into
        the connection (:meth:`MsrpConnection.send_whole`: no queue, no future, nothing to
        settle - a switch's copy).  False: not taken (pushing back, queued messages of the
        session first, not bound, too large...) - :meth:`post` or :meth:`send` it instead."""
        runner = self.runner
        if runner is None or runner.conn.closed or runner.write_blocked:
            return False
        if runner.conn.send_whole(self.core, data, content_type,
                                  failure_report=failure_report) is None:
            return False
        runner.flush()
        return True

    def send_report(self, message_id: str, status: MsrpStatus, *,
                    byte_range: ByteRange | None = None, body: bytes = b"",
                    content_type: str | None = None) -> MsrpRequest:
        """A REPORT about ``message_id`` to the peer, with an optional body, written at once
        (RFC 4975 §7.1.2; :meth:`MsrpConnection.send_report`).  MsrpTransferError 481
        when the session has no open connection."""
        runner = self.runner
        if runner is None or runner.conn.closed:
            raise MsrpTransferError(message_id, 481, "no connection for the REPORT")
        req = runner.conn.send_report(self.core, message_id, status, runner.now(),
                                      byte_range=byte_range, body=body,
                                      content_type=content_type)
        runner.wake()
        return req

    def wake(self) -> None:
        """New data for a queued message (a PipeSource was fed): write what can go."""
        if self.runner is not None:
            self.runner.wake()

    def acknowledge(self, msg: IncomingMessage, status: int = 200,
                    comment: str | None = None, *, report: bool = True) -> None:
        """Answer the held last chunk of ``msg`` (``core.hold_acks``, store-and-forward):
        200 once it is kept, else ``status``; written at once.  ``report=False``: no
        success REPORT (the caller sends its own, :meth:`send_report`)."""
        runner = self.runner
        if runner is None or msg.held is None:
            msg.held = None
            return
        runner.conn.acknowledge(self.core, msg, runner.now(), status, comment, report=report)
        runner.wake()

    def hold_reading(self) -> bool:
        """Stop reading the session's connection (back-pressure); False without one."""
        if self.runner is None:
            return False
        self.runner.hold_reading()
        return True

    def release_reading(self) -> None:
        if self.runner is not None:
            self.runner.release_reading()

    async def wait_sent(self, msg: OutgoingMessage) -> OutgoingMessage:
        """Wait until every chunk of ``msg`` (queued with ``wait=False``) got its 200 - or was
        written, when no responses are asked for; raises :class:`MsrpTransferError`."""
        fut = self._waiters.get(msg.message_id)
        if fut is None:
            if msg.state in (OutgoingState.ACKED, OutgoingState.DELIVERED):
                return msg
            if msg.state in (OutgoingState.FAILED, OutgoingState.ABORTED):
                raise MsrpTransferError(msg.message_id, msg.status or 408,
                                        msg.comment or msg.state.value)
            raise TransactionError(f"message {msg.message_id} is not being sent here")
        return await asyncio.shield(fut)

    async def _after_queue(self, msg: OutgoingMessage, wait: bool) -> OutgoingMessage:
        if self.runner is not None and self.runner.conn.closed:
            self.core.forget(msg)
            msg.source.close()
            raise MsrpTransferError(msg.message_id, 408, "connection closed")
        fut: asyncio.Future[OutgoingMessage] = asyncio.get_running_loop().create_future()
        self._waiters[msg.message_id] = fut
        if msg.success_report:
            self._delivery[msg.message_id] = asyncio.get_running_loop().create_future()
        if self.runner is not None:
            self.runner.wake()
        if not wait:
            return msg
        return await fut

    async def wait_delivered(self, msg: OutgoingMessage) -> OutgoingMessage:
        """Wait for the success REPORT of a message sent with ``success_report=True``."""
        fut = self._delivery.get(msg.message_id)
        if fut is None:
            raise TransactionError("no success report was requested for this message")
        try:
            return await fut
        finally:
            self._delivery.pop(msg.message_id, None)

    def abort(self, message_id: str) -> None:
        self.core.abort(message_id)
        if self.runner is not None:
            self.runner.wake()

    def receive_nowait(self) -> IncomingMessage | None:
        """The next received message if one is queued, else None (never waits)."""
        try:
            return self._incoming.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def receive(self, timeout: float | None = None) -> IncomingMessage:
        async with asyncio.timeout(timeout):
            return await self._incoming.get()

    def close(self) -> None:
        """End the session (after SIP BYE).  The connection stays while other sessions use it;
        the last session closes it (RFC 4975 §5.4) - at once on a connection we opened; on
        one we accepted only after :data:`ACCEPTED_LINGER` seconds without a session, since
        its opener may be binding a new session to it right now (its SEND is then on the
        way: closing would leave that session unbound), and closes it itself anyway."""
        if self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None
        runner = self.runner
        if runner is not None and not runner.conn.closed:
            runner.conn.detach(self.core, runner.now())
            if not runner.conn.sessions:
                if runner.key is None:
                    runner.linger(ACCEPTED_LINGER)
                else:
                    runner.close()
        self.endpoint._sessions.pop(self.core.session_id, None)
        self.runner = None

    # -- event handling (called by the runner)
    def _settle(self, table: dict[str, asyncio.Future[OutgoingMessage]], mid: str,
                value: OutgoingMessage | BaseException) -> None:
        # delivery futures stay until wait_delivered() collects them
        fut = table.get(mid) if table is self._delivery else table.pop(mid, None)
        if fut is None or fut.done():
            return
        if isinstance(value, BaseException):
            fut.set_exception(value)
        else:
            fut.set_result(value)


def _note_failure(fut: asyncio.Future[OutgoingMessage]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.info("MSRP message not sent: %s", fut.exception())


def _write(t: asyncio.Transport, bufs: list[bytes]) -> None:
    """Hand ``bufs`` to the transport in order: heads and responses coalesced, bodies as
    they are (no join copy)."""
    small: list[bytes] = []
    for b in bufs:
        if len(b) < 4096:
            small.append(b)
            continue
        if small:
            t.write(b"".join(small))
            small.clear()
        t.write(b)
    if small:
        t.write(b"".join(small))


class _Runner(asyncio.Protocol):
    """One connection: an asyncio Protocol feeding the sans-I/O core synchronously.

    Incoming bytes go straight into the parser (no stream buffer copy); chunks are cut and
    written while the transport is not paused (``pause_writing``/``resume_writing`` = drain);
    reading pauses while our own output is backed up or a session's receive queue is full.
    """

    def __init__(self, endpoint: MsrpEndpoint, key: tuple[str, int, bool] | None) -> None:
        self.endpoint = endpoint
        self.key = key
        self.conn = MsrpConnection(timers=endpoint.timers, limits=endpoint.limits,
                                   resolver=endpoint._resolve,
                                   max_inflight=endpoint.max_inflight)
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.Event()
        self.closing = False
        self._write_paused = False
        self._read_paused = False
        self._holds = 0              # hold_reading() calls not released yet
        self._blocked: list[tuple[EndpointSession, IncomingMessage]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._requests: dict[str, asyncio.Future[MsrpResponse | None]] = {}
        self._loop = asyncio.get_running_loop()

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; uvloop's TCPTransport does not derive from (nor register
        # with) asyncio.Transport, so the type is not checked with isinstance (the server
        # runs on uvloop when it is installed).
        self.transport = cast(asyncio.Transport, transport)
        # Small transport buffer: chunks go straight from their bytes objects into the kernel
        # socket buffer instead of being copied into asyncio's write buffer first.  Keeping
        # both this and the endpoint's write budget small (64 KiB / 256 KiB) also keeps the
        # user-space buffers from growing and shrinking by megabytes: with 1 MiB / 256 KiB
        # the 64 KiB-chunk transfer took ~100 page faults per MiB and ~15 % more CPU.
        self.transport.set_write_buffer_limits(high=self.endpoint.transport_high,
                                               low=self.endpoint.transport_high // 4)

    def data_received(self, data: bytes) -> None:
        events = self.conn.receive_data(data, self._loop.time())
        self._dispatch(events)
        self.wake()
        if (self._write_paused and self.conn.pending_output > self.endpoint.write_budget
                and self.transport is not None and not self._read_paused):
            # our responses pile up because the peer does not read: stop reading (bounded).
            self._read_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None       # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        if self._timer is not None:
            self._timer.cancel()
        self._dispatch(self.conn.connection_lost())
        for fut in self._requests.values():
            if not fut.done():
                fut.set_result(None)
        self._requests.clear()
        self.endpoint._forget_runner(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if (self._read_paused and self.transport is not None and not self._blocked
                and not self._holds):
            self._read_paused = False
            self.transport.resume_reading()
        self.wake()

    def hold_reading(self) -> None:
        """Stop reading until :meth:`release_reading` (a relay whose other side is slower)."""
        self._holds += 1
        if self.transport is not None and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()

    def release_reading(self) -> None:
        self._holds = max(0, self._holds - 1)
        if (self._read_paused and not self._holds and not self._blocked
                and not self._write_paused and self.transport is not None):
            self._read_paused = False
            self.transport.resume_reading()

    # -- output
    def now(self) -> float:
        return self._loop.time()

    @property
    def write_blocked(self) -> bool:
        """The transport pushes back (its buffer is above the high-water mark)."""
        return self._write_paused

    def wake(self) -> None:
        """Cut chunks and write until the transport pushes back or nothing is left."""
        t = self.transport
        if t is None or self.conn.closed:
            return
        while not self._write_paused:
            events = self.conn.pump(self._loop.time(), self.endpoint.write_budget)
            bufs = self.conn.data_to_send()
            if events:
                self._dispatch(events)
            if not bufs:
                break
            _write(t, bufs)
        self._arm_timer()

    def flush(self) -> None:
        """Write what the connection framed, without pumping: after every :meth:`wake`
        nothing queued could go (write paused, or the in-flight window full - a response
        or resume_writing wakes it again), so only a frame added since is new."""
        t = self.transport
        if t is None or self.conn.closed:
            return                      # as wake(): nothing is taken from the connection
        bufs = self.conn.data_to_send()
        if bufs:
            _write(t, bufs)

    def _arm_timer(self) -> None:
        deadline = self.conn.next_deadline()
        if deadline is None or deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._dispatch(self.conn.handle_timer(self._loop.time()))
        self.wake()

    async def request(self, req: MsrpRequest) -> MsrpResponse | None:
        fut: asyncio.Future[MsrpResponse | None] = self._loop.create_future()
        self._requests[req.tid] = fut
        self.conn.send_request(req, self.now())
        self.wake()
        return await fut

    @property
    def usable(self) -> bool:
        """Open and not being closed: new sessions may be bound to it."""
        t = self.transport
        return (not self.closing and not self.conn.closed and t is not None
                and not t.is_closing())

    def linger(self, delay: float) -> None:
        """Close after ``delay`` seconds unless a session is bound to it by then."""
        def idle() -> None:
            if not self.conn.sessions and not self.closing:
                self.close()

        self._loop.call_later(delay, idle)

    def close(self) -> None:
        self.closing = True
        ep = self.endpoint
        if self.key is not None and ep._by_key.get(self.key) is self:
            del ep._by_key[self.key]       # the next _open() makes a new connection
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # -- events
    def _deliver(self, s: EndpointSession, msg: IncomingMessage) -> None:
        try:
            s._incoming.put_nowait(msg)
        except asyncio.QueueFull:
            # the application does not keep up: stop reading until it takes a message
            self._blocked.append((s, msg))
            if self.transport is not None and not self._read_paused:
                self._read_paused = True
                self.transport.pause_reading()
            self._loop.create_task(self._unblock())

    async def _unblock(self) -> None:
        while self._blocked:
            s, msg = self._blocked.pop(0)
            await s._incoming.put(msg)
        if (self._read_paused and not self._write_paused and self.transport is not None
                and not self._holds):
            self._read_paused = False
            self.transport.resume_reading()

    def _dispatch(self, events: list[MsrpEvent]) -> None:
        ep = self.endpoint
        for ev in events:
            if isinstance(ev, ResponseReceived):
                fut = self._requests.pop(ev.request.tid, None)
                if fut is not None and not fut.done():
                    fut.set_result(ev.response)
                continue
            if isinstance(ev, ConnectionFailed):
                log.warning("MSRP framing error, closing: %s", ev.error)
                if self.transport is not None:
                    for b in self.conn.data_to_send():
                        self.transport.write(b)
                self.close()
                continue
            if isinstance(ev, RequestRejected | ProtocolViolation):
                log.info("MSRP: %s", ev)
                continue
            s = ep._sessions.get(ev.session.session_id)
            if s is None:
                continue
            if isinstance(ev, MessageReceived):
                if self._blocked:
                    self._blocked.append((s, ev.message))
                else:
                    self._deliver(s, ev.message)
            elif isinstance(ev, MessageSent):
                s._settle(s._waiters, ev.message.message_id, ev.message)
            elif isinstance(ev, MessageDelivered):
                s._settle(s._delivery, ev.message.message_id, ev.message)
            elif isinstance(ev, MessageFailed):
                err = MsrpTransferError(ev.message.message_id, ev.status, ev.comment)
                s._settle(s._waiters, ev.message.message_id, err)
                s._settle(s._delivery, ev.message.message_id, err)
            elif isinstance(ev, SessionBound):
                s.runner = self
                s.bound.set()
            elif isinstance(ev, BindFailed):
                s.bind_error = MsrpTransferError("bind", ev.status, ev.comment)
                s.bound.set()
            elif isinstance(ev, MessageAborted):
                s.aborted.append(ev.message)
            elif isinstance(ev, ReportReceived) and s.on_report is not None:
                s.on_report(ev.request, ev.body)


class MsrpEndpoint:
    """Listening MSRP endpoint + the connections it opened or accepted."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_server: ssl.SSLContext | None = None,
        ssl_client: ssl.SSLContext | None = None,
        timers: Timers = DEFAULT_TIMERS,
        limits: MsrpLimits | None = None,
        max_inflight: int = 256,
        write_budget: int = 256 * 1024,
        transport_high: int = 64 * 1024,
        queue_size: int = 64,
        advertise_host: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_server = ssl_server
        self.ssl_client = ssl_client
        self.timers = timers
        self.limits = limits
        self.max_inflight = max_inflight
        self.write_budget = write_budget
        self.transport_high = transport_high
        self.queue_size = queue_size
        self.advertise_host = advertise_host or host
        self._server: asyncio.Server | None = None
        self._sessions: dict[str, EndpointSession] = {}
        self._runners: set[_Runner] = set()
        self._by_key: dict[tuple[str, int, bool], _Runner] = {}

    @property
    def scheme(self) -> str:
        return "msrps" if self.ssl_server is not None else "msrp"

    async def start(self) -> None:
        """Listen (passive side, RFC 6135 setup:passive/actpass)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accepted, self.host, self.port,
                                                ssl=self.ssl_server)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    def new_session(self, remote_path: Sequence[MsrpUri] = (), *, session_id: str | None = None,
                    **kw: Any) -> EndpointSession:
        sid = session_id or new_ident(10)
        uri = MsrpUri(self.scheme, self.advertise_host, self.port, sid, "tcp")
        core = MsrpSession(uri, remote_path, **kw)
        s = EndpointSession(self, core, self.queue_size)
        self._sessions[sid] = s
        return s

    def _resolve(self, uri: MsrpUri) -> MsrpSession | None:
        s = self._sessions.get(uri.session_id or "")
        return None if s is None else s.core

    def _accepted(self) -> _Runner:
        runner = _Runner(self, None)
        self._runners.add(runner)
        return runner

    def _forget_runner(self, runner: _Runner) -> None:
        self._runners.discard(runner)
        if runner.key is not None and self._by_key.get(runner.key) is runner:
            del self._by_key[runner.key]

    async def _open(self, host: str, port: int, tls: bool) -> _Runner:
        key = (host, port, tls)
        runner = self._by_key.get(key)
        if runner is not None and runner.usable:
            return runner          # RFC 4975 §5.4: reuse the connection to the same place
        if runner is not None:
            # Closing (its last session ended, RFC 4975 §5.4) or closed: never reuse it - a
            # session bound to it would get no response to its binding SEND / AUTH (408).
            del self._by_key[key]
        ctx: ssl.SSLContext | None = None
        if tls:
            ctx = self.ssl_client or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        _, runner = await loop.create_connection(lambda: _Runner(self, key), host, port,
                                                 ssl=ctx)
        self._runners.add(runner)
        self._by_key[key] = runner
        return runner

    async def connect(self, session: EndpointSession, plan: ConnectionPlan | None = None, *,
                      timeout: float = 10.0) -> None:
        """Active side: connect (or reuse a connection) and bind with a first SEND (§5.4).
        A passive plan only waits for the peer to bind."""
        host: str | None
        port: int | None
        if plan is None:
            first = session.core.to_path[0]
            host, port, tls, connect = first.host, first.effective_port, first.secure, True
        else:
            host, port, tls, connect = plan.host, plan.port, plan.tls, plan.connect
        if not connect or host is None or port is None:
            await session.wait_bound(timeout)
            return
        runner = await self._open(host, port, tls)
        session.runner = runner
        runner.conn.attach(session.core, runner.now())
        runner.wake()
        await session.wait_bound(timeout)

    async def authenticate(self, session: EndpointSession, relay_uri: MsrpUri, username: str,
                           password: str, *, expires: int | None = None) -> RelayGrant:
        """RFC 4976 §5: AUTH at our relay, then use its connection for the session.  The grant
        is refreshed (a new AUTH) at 80 % of its Expires while the connection lives."""
        runner = await self._open(relay_uri.host, relay_uri.effective_port, relay_uri.secure)
        auth = RelayAuth(relay_uri, session.core.local_uri, username, password, expires=expires)
        grant = await self._auth_exchange(runner, auth)
        session.core.set_relay_path(grant.use_path)
        session.runner = runner
        runner.conn.attach(session.core, runner.now(), via_relay=True)
        session.bound.set()
        self._schedule_refresh(session, runner, auth, grant)
        return grant

    async def _auth_exchange(self, runner: _Runner, auth: RelayAuth) -> RelayGrant:
        req = auth.start()
        for _ in range(4):          # AUTH, AUTH+credentials, at most two 423 adjustments
            resp = await runner.request(req)
            if resp is None:
                raise MsrpTransferError("AUTH", 408, "no response from relay")
            nxt = auth.handle_response(resp)
            if isinstance(nxt, RelayGrant):
                return nxt
            req = nxt
        raise MsrpParseError("AUTH did not complete", status=401, where="AUTH")

    def _schedule_refresh(self, session: EndpointSession, runner: _Runner, auth: RelayAuth,
                          grant: RelayGrant) -> None:
        if not grant.expires:
            return
        delay = max(1.0, grant.expires * 0.8)

        async def refresh() -> None:
            await asyncio.sleep(delay)
            if runner.conn.closed or session.runner is not runner:
                return
            try:
                new = await self._auth_exchange(runner, auth)
            except SimpleImError as exc:
                log.warning("MSRP relay AUTH refresh failed: %s", exc)
                return
            if [str(u) for u in new.use_path] != [str(u) for u in grant.use_path]:
                log.warning("MSRP relay changed the Use-Path on refresh: %s", new.use_path)
            self._schedule_refresh(session, runner, auth, new)

        session._refresh = asyncio.get_running_loop().create_task(refresh())

    async def close(self) -> None:
        for s in list(self._sessions.values()):
            s.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for r in list(self._runners):
            r.close()
        for r in list(self._runners):
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(2):
                    await r.closed.wait()

