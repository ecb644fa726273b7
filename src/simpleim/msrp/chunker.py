"""Sending side: messages cut into SEND chunks (RFC 4975 §5.1, §7.1.1).

A message is read from a :class:`ChunkSource` a chunk at a time (never whole) and every chunk is
its own SEND transaction with ``Byte-Range: start-end/total`` and the continuation flag ``+``
(more follows), ``$`` (last chunk) or ``#`` (aborted, §7.1.1).  A chunk is handed out as a list of
buffers (head, body, end-line) for ``writelines`` - the body is not copied into the head.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from simpleim.errors import LocalProtocolError
from simpleim.msrp.message import FLAG_ABORT, FLAG_END, FLAG_MORE, ByteRange, end_line
from simpleim.msrp.reassembly import RangeSet

__all__ = [
    "whole_frame",
    "PipeSource",
    "ready",
    "ChunkSource",
    "BytesSource",
    "OutgoingState",
    "OutgoingMessage",
    "OutgoingChunk",
    "make_chunk",
    "OpenChunk",
    "open_chunk",
    "chunk_slice",
    "close_chunk",
    "DEFAULT_CHUNK_SIZE",
]

# RFC 4975 §7.1.1 recommends chunks of at most 2048 octets when other traffic shares the session
# ("to let other messages interrupt"); file transfer uses bigger chunks (configurable).
DEFAULT_CHUNK_SIZE = 2048


class ChunkSource(Protocol):
    """Sequential reader of a message body.  ``read`` returns ``b""`` at the end."""

    def read(self, n: int) -> bytes: ...

    def close(self) -> None: ...


class BytesSource:
    """A body already in memory."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    def read(self, n: int) -> bytes:
        out = self._data[self._pos: self._pos + n]
        self._pos += len(out)
        return out

    def close(self) -> None:
        self._data = b""


class PipeSource:
    """A body that is still arriving while it is sent - a relay switching the chunks of a
    message as they come in (RFC 4975 §7.1.1: each chunk carries its own Byte-Range, so a
    message may leave in other chunks than it arrived in).  The total size must be known
    (the first chunk's Byte-Range).  While nothing is buffered the message is not ready
    (:meth:`MsrpSession.next_message` skips it); ``feed`` more, then wake the connection.
    ``on_drain(buffered)`` is called after each read (back-pressure for the feeder)."""

    __slots__ = ("_chunks", "_buffered", "ended", "on_drain")

    def __init__(self, on_drain: Callable[[int], None] | None = None) -> None:
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self.ended = False
        self.on_drain = on_drain

    @property
    def available(self) -> int:
        """Bytes that can be read now."""
        return self._buffered

    def feed(self, data: bytes | memoryview) -> None:
        if data and not self.ended:
            self._chunks.append(bytes(data))
            self._buffered += len(data)

    def read(self, n: int) -> bytes:
        out: list[bytes] = []
        want = n
        while want > 0 and self._chunks:
            head = self._chunks[0]
            if len(head) <= want:
                out.append(self._chunks.popleft())
                want -= len(head)
            else:
                out.append(head[:want])
                self._chunks[0] = head[want:]
                want = 0
        data = b"".join(out)
        self._buffered -= len(data)
        if self.on_drain is not None:
            self.on_drain(self._buffered)
        return data

    def close(self) -> None:
        self.ended = True
        self._chunks.clear()
        self._buffered = 0


def ready(msg: OutgoingMessage) -> bool:
    """Can a chunk of ``msg`` be cut now?  Only a :class:`PipeSource` with nothing buffered
    (and nothing carried over) makes a message wait; an abort always goes."""
    src = msg.source
    return (not isinstance(src, PipeSource) or src.available > 0 or bool(msg._carry)
            or msg.abort_requested)


class OutgoingState(Enum):
    QUEUED = "queued"          # nothing sent yet
    SENDING = "sending"        # some chunks sent
    SENT = "sent"              # last chunk written, responses outstanding
    ACKED = "acked"            # every chunk got 200 (or no responses are expected)
    DELIVERED = "delivered"    # success REPORT covering the whole message (§7.1.3)
    FAILED = "failed"          # negative response / 408 / failure REPORT
    ABORTED = "aborted"        # we aborted it ('#')


@dataclass(slots=True)
class OutgoingMessage:
    message_id: str
    content_type: str
    source: ChunkSource
    total: int | None
    success_report: bool = False
    failure_report: str = "yes"
    headers: tuple[tuple[str, str], ...] = ()
    state: OutgoingState = OutgoingState.QUEUED
    offset: int = 0                 # 0-based offset of the next byte to put in a chunk
    #: 0-based offset of the first byte sent (``Byte-Range`` of the first chunk starts at
    #: ``start + 1``): > 0 when resuming a file from the middle (RFC 5547 §6 file-range).
    start: int = 0
    #: 0-based end (exclusive) of what is sent; ``None`` = up to ``total`` / end of source.
    stop: int | None = None
    outstanding: int = 0            # chunks waiting for a transaction response
    status: int | None = None       # failure status, if any
    comment: str | None = None
    abort_requested: bool = False
    #: ranges ``[start, end)`` covered by success REPORTs so far (some stacks send one per
    #: chunk, RFC 4975 §7.1.2): the message is delivered when they cover all of it
    reported: RangeSet = field(default_factory=RangeSet, repr=False)
    _lookahead: bytes | None = field(default=None, repr=False)
    _static: str | None = field(default=None, repr=False)
    _carry: bytes = field(default=b"", repr=False)       # read from the source, not sent yet
    _open: OpenChunk | None = field(default=None, repr=False)   # chunk being written

    @property
    def end(self) -> int | None:
        """Where the last chunk ends (exclusive): ``stop``, else ``total``."""
        return self.stop if self.stop is not None else self.total

    @property
    def sent_bytes(self) -> int:
        """Body bytes put in chunks so far (progress)."""
        return self.offset - self.start

    @property
    def finished_sending(self) -> bool:
        return self.state not in (OutgoingState.QUEUED, OutgoingState.SENDING)

    @property
    def expects_responses(self) -> bool:
        # RFC 4975 §7.2: 'no' -> no response at all; 'partial' -> only negative ones.
        return self.failure_report == "yes"


@dataclass(slots=True)
class OpenChunk:
    """An interruptible chunk: its head (``Byte-Range: n-*/total``) is out, its body is being
    written a slice at a time and its end-line is not written yet (RFC 4975 §7.1.1)."""

    tid: str
    limit: int          # offset at which the chunk ends at the latest (chunk size / message end)
    marker: bytes       # ``-------<tid>``: must not occur in the body (§7.1)
    tail: bytes = b""   # the last body bytes written (a marker could straddle two slices)


@dataclass(slots=True)
class OutgoingChunk:
    tid: str
    message: OutgoingMessage
    buffers: list[bytes]
    byte_range: ByteRange
    flag: str
    size: int           # body bytes
    nbytes: int = -1    # bytes on the wire (head + body + end-line)

    def __post_init__(self) -> None:
        if self.nbytes < 0:
            self.nbytes = sum(len(b) for b in self.buffers)


def _static_headers(msg: OutgoingMessage, to_path: str, from_path: str) -> str:
    lines = [f"To-Path: {to_path}", f"From-Path: {from_path}", f"Message-ID: {msg.message_id}"]
    if msg.success_report:
        lines.append("Success-Report: yes")
    if msg.failure_report != "yes" or msg.success_report:
        # "yes" is the default (RFC 4975 §7.1.2); spelled out with Success-Report: yes, as
        # OMA SIMPLE IM §5.7.2 step 3 / §5.7.3 step 1 ask ("... header with value 'yes'")
        lines.append(f"Failure-Report: {msg.failure_report}")
    lines += [f"{n}: {v}" for n, v in msg.headers]
    return "\r\n".join(lines) + "\r\n"


def _tid_absent_from(data: bytes, new_tid: Callable[[], str]) -> str:
    """A fresh transaction id whose end-line ``-------<tid>`` does not occur in ``data``
    (RFC 4975 §7.1: the end-line cannot occur inside the body), re-drawn if it does."""
    for _ in range(16):
        tid = new_tid()
        if data.find(b"-------" + tid.encode("ascii")) < 0:
            return tid
    raise LocalProtocolError("could not find a transaction id absent from the body")


def make_chunk(
    msg: OutgoingMessage,
    new_tid: Callable[[], str],
    to_path: str,
    from_path: str,
    chunk_size: int,
) -> OutgoingChunk:
    """Cut the next chunk of ``msg`` (§7.1.1); the caller applies the state transition.

    The transaction id is re-drawn when the body happens to contain ``-------<tid>``
    (:func:`_tid_absent_from`).
    """
    if msg.finished_sending:
        raise LocalProtocolError(f"message {msg.message_id} has nothing left to send")
    if chunk_size < 1:
        raise LocalProtocolError("chunk size must be positive")
    if msg._static is None:
        msg._static = _static_headers(msg, to_path, from_path)
    start = msg.offset
    flag = FLAG_MORE
    if msg.abort_requested:
        data = b""
        flag = FLAG_ABORT
    elif (stop := msg.end) is not None:
        want = min(chunk_size, stop - start)
        if isinstance(msg.source, PipeSource):
            # switched as it arrives: a chunk of what is there (ends with '+', §7.1.1)
            want = min(want, msg.source.available + len(msg._carry))
        data = _take(msg, want) if want > 0 else b""
        if len(data) < want:
            flag = FLAG_ABORT           # the source ended early: abandon the message (§7.1.1)
        elif start + len(data) >= stop:
            flag = FLAG_END
    else:
        data = msg._lookahead if msg._lookahead is not None else msg.source.read(chunk_size)
        nxt = msg.source.read(chunk_size) if data else b""
        msg._lookahead = nxt or None
        if not nxt:
            flag = FLAG_END
    end = start + len(data)
    total = msg.total
    if total is None and flag == FLAG_END:
        total = end
    br = ByteRange(start + 1, end, total)
    tid = _tid_absent_from(data, new_tid)
    head = (f"MSRP {tid} SEND\r\n{msg._static}Byte-Range: {start + 1}-{end}/"
            f"{'*' if total is None else total}\r\n"
            f"Content-Type: {msg.content_type}\r\n\r\n").encode()
    tail = b"\r\n" + end_line(tid, flag)
    msg.offset = end
    if flag != FLAG_MORE:
        msg.source.close()
    # The message's state moves in the caller, through fsm.MESSAGE_TABLE.
    return OutgoingChunk(tid, msg, [head, data, tail], br, flag, len(data),
                         len(head) + len(data) + len(tail))


def whole_frame(new_tid: Callable[[], str], to_path: str, from_path: str, message_id: str,
                data: bytes, content_type: str, failure_report: str) -> list[bytes]:
    """The buffers of a message that leaves as one chunk and opens no transaction
    (``Failure-Report: partial`` or ``no``: no 200 comes back, RFC 4975 §7.1.2, §7.2): what
    :func:`make_chunk` cuts for such a message, without an :class:`OutgoingMessage` - the
    head (§7.1.1 ``Byte-Range: 1-N/N``), the body, the end-line with ``$``; the transaction
    id as :func:`make_chunk` draws it."""
    if not data:
        raise LocalProtocolError("an empty message is not framed whole")
    if failure_report not in ("partial", "no"):
        raise LocalProtocolError(f"Failure-Report {failure_report!r} expects responses")
    tid = _tid_absent_from(data, new_tid)
    n = len(data)
    head = (f"MSRP {tid} SEND\r\nTo-Path: {to_path}\r\nFrom-Path: {from_path}\r\n"
            f"Message-ID: {message_id}\r\nFailure-Report: {failure_report}\r\n"
            f"Byte-Range: 1-{n}/{n}\r\nContent-Type: {content_type}\r\n\r\n").encode()
    return [head, data, b"\r\n" + end_line(tid, FLAG_END)]


def _take(msg: OutgoingMessage, n: int) -> bytes:
    """Up to ``n`` body bytes: first what was read but not sent (``_carry``), then the source."""
    carry = msg._carry
    if not carry:
        return msg.source.read(n)
    if len(carry) >= n:
        msg._carry = carry[n:]
        return carry[:n]
    msg._carry = b""
    return carry + msg.source.read(n - len(carry))


# ---------------------------------------------------------------- interruptible chunks
# RFC 4975 §7.1.1: a sender that may interrupt a chunk (to let another message go first)
# sends it with "Byte-Range: n-*/total" - the end is not known when the head leaves - and ends
# it with the "+" flag wherever it stops; the receiver takes the chunk's end from the data that
# actually arrived.  The chunk is written a slice at a time: open_chunk -> chunk_slice ... ->
# close_chunk.

def open_chunk(
    msg: OutgoingMessage,
    new_tid: Callable[[], str],
    to_path: str,
    from_path: str,
    chunk_size: int,
) -> bytes:
    """Start an interruptible chunk of ``msg`` (whose end must be known); returns its head."""
    if msg.finished_sending or msg._open is not None:
        raise LocalProtocolError(f"message {msg.message_id} cannot open a chunk now")
    stop = msg.end
    if stop is None:
        raise LocalProtocolError("interruptible chunks need a message of known size")
    if chunk_size < 1:
        raise LocalProtocolError("chunk size must be positive")
    if msg._static is None:
        msg._static = _static_headers(msg, to_path, from_path)
    start = msg.offset
    tid = new_tid()
    msg._open = OpenChunk(tid, min(start + chunk_size, stop), b"-------" + tid.encode("ascii"))
    total = "*" if msg.total is None else msg.total
    return (f"MSRP {tid} SEND\r\n{msg._static}Byte-Range: {start + 1}-*/{total}\r\n"
            f"Content-Type: {msg.content_type}\r\n\r\n").encode()


def chunk_slice(msg: OutgoingMessage, size: int) -> tuple[bytes, str | None]:
    """The next piece (at most ``size`` bytes) of the open chunk's body, and the flag to end
    the chunk with right after it, if it must end: ``$`` (message complete), ``+`` (chunk
    full) or ``#`` (the source ended early).  When the piece would put ``-------<tid>`` into
    the body (§7.1) nothing is returned with ``+``: the chunk ends before it and the data
    waits for the next chunk (which has another transaction id)."""
    oc = msg._open
    stop = msg.end
    if oc is None or stop is None:
        raise LocalProtocolError(f"message {msg.message_id} has no open chunk")
    want = min(size, oc.limit - msg.offset)
    data = _take(msg, want) if want > 0 else b""
    seen = oc.tail + data
    if seen.find(oc.marker) >= 0:
        msg._carry = data + msg._carry
        return b"", FLAG_MORE
    keep = len(oc.marker) - 1
    oc.tail = seen[-keep:] if len(seen) > keep else seen
    msg.offset += len(data)
    if len(data) < want:
        return data, FLAG_ABORT        # the source ended early: abandon the message (§7.1.1)
    if msg.offset >= stop:
        return data, FLAG_END
    if msg.offset >= oc.limit:
        return data, FLAG_MORE
    return data, None


def close_chunk(msg: OutgoingMessage, flag: str) -> tuple[str, bytes]:
    """End the open chunk with ``flag`` (``+`` interrupts it, RFC 4975 §7.1.1): returns its
    transaction id and the CRLF + end-line to write."""
    oc = msg._open
    if oc is None:
        raise LocalProtocolError(f"message {msg.message_id} has no open chunk")
    msg._open = None
    if flag != FLAG_MORE:
        msg.source.close()
    return oc.tid, b"\r\n" + end_line(oc.tid, flag)
