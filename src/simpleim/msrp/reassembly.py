"""Receiving side: chunk reassembly by Message-ID and Byte-Range (RFC 4975 §5.1, §7.3.1).

Chunks may arrive out of order, twice, or interrupted (``Byte-Range: n-*/t`` ended with ``+``).
Body data is written to a :class:`ChunkSink` at its offset as it arrives; nothing is buffered
here beyond the set of received ranges.  A message is complete when a chunk flagged ``$`` has
been seen and every byte from 1 to the end of that chunk has arrived.  ``#`` aborts it.

Resume (RFC 5547 §6 ``file-range``): with ``resume_from=N`` the sink already holds bytes
``1..N`` (a partial file kept from an interrupted transfer), the sender starts at
``Byte-Range: N+1-.../total`` and the message is complete when ``N+1`` up to the end of the
``$`` chunk (the requested range's stop) has arrived.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from simpleim.errors import LocalProtocolError, MsrpParseError
from simpleim.msrp.message import FLAG_ABORT, FLAG_END, ByteRange, MsrpRequest

__all__ = [
    "ChunkSink",
    "DEFAULT_RECEIVE_LIMITS",
    "MemorySink",
    "ReceiveLimits",
    "RangeSet",
    "IncomingMessage",
    "ChunkCursor",
    "Reassembler",
]


class ChunkSink(Protocol):
    """Where a received message goes (memory, a file...).  ``offset`` is 0-based."""

    def write_at(self, offset: int, data: bytes | memoryview) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class MemorySink:
    """Keeps the message in memory (for small messages: text, IMDN, is-composing).

    Memory follows the bytes that arrived, never the offsets a peer claims: in-order data is
    appended, a chunk that starts beyond the end (out of order, or a hostile
    ``Byte-Range: 1999999991-...``) is kept aside as it is until the gap before it fills.
    """

    __slots__ = ("buffer", "closed", "aborted", "_pieces")

    def __init__(self) -> None:
        self.buffer = bytearray()          # the contiguous data from offset 0
        self.closed = False
        self.aborted = False
        self._pieces: dict[int, bytes] = {}   # offset -> data, beyond the contiguous end

    def write_at(self, offset: int, data: bytes | memoryview) -> None:
        buf = self.buffer
        if offset > len(buf):
            old = self._pieces.get(offset)
            if old is None or len(old) < len(data):
                self._pieces[offset] = bytes(data)
            return
        end = offset + len(data)
        buf[offset:end] = data          # overwrite a duplicate and/or extend
        if self._pieces:
            self._drain()

    def _drain(self) -> None:
        buf, pieces = self.buffer, self._pieces
        progress = True
        while progress and pieces:
            progress = False
            for off in sorted(pieces):
                if off > len(buf):
                    break
                data = pieces.pop(off)
                if off + len(data) > len(buf):
                    buf[off:] = data
                progress = True

    @property
    def held(self) -> int:
        """Bytes held in memory."""
        return len(self.buffer) + sum(len(p) for p in self._pieces.values())

    def close(self) -> None:
        # Complete: every byte up to the end arrived, or was held before (resume, our own
        # offset); pieces left beyond a gap are placed at their offsets (bounded by the limit
        # the reassembler enforced on their ends).
        buf = self.buffer
        for off in sorted(self._pieces):
            data = self._pieces[off]
            if off > len(buf):
                buf.extend(bytes(off - len(buf)))
            if off + len(data) > len(buf):
                buf[off:] = data
        self._pieces.clear()
        self.closed = True

    def abort(self) -> None:
        self.aborted = True
        self._pieces.clear()

    @property
    def data(self) -> bytes:
        return bytes(self.buffer)


@dataclass(frozen=True, slots=True)
class ReceiveLimits:
    """What one session accepts from its peer, whatever the peer's Byte-Range claims.

    ``max_memory_message``: largest message kept in memory (chat text, IMDN, is-composing,
    a large pager-mode message); ``max_memory``: bytes held in memory by the unfinished
    messages of one session together (duplicates and sparse chunks count as they arrive);
    ``max_messages``: messages in progress at once.  Past a limit the chunk is answered 413
    (RFC 4975 §7.3.1, §10.5) and the message dropped.  Messages written elsewhere (files)
    are bounded by ``a=max-size`` and the limit given with the sink factory.
    """

    max_memory_message: int = 16 * 1024 * 1024
    max_memory: int = 32 * 1024 * 1024
    max_messages: int = 64


DEFAULT_RECEIVE_LIMITS = ReceiveLimits()


class RangeSet:
    """Disjoint, sorted half-open byte ranges ``[start, end)`` (0-based)."""

    __slots__ = ("_starts", "_ends")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        starts, ends = self._starts, self._ends
        # fast path: in-order append/extension of the last range
        if starts and starts[-1] <= start <= ends[-1]:
            if end > ends[-1]:
                ends[-1] = end
            return
        i = bisect_left(ends, start)
        j = i
        while j < len(starts) and starts[j] <= end:
            start = min(start, starts[j])
            end = max(end, ends[j])
            j += 1
        starts[i:j] = [start]
        ends[i:j] = [end]

    def covers(self, start: int, end: int) -> bool:
        i = bisect_left(self._ends, end)
        return i < len(self._starts) and self._starts[i] <= start

    @property
    def contiguous_end(self) -> int:
        """End of the range that starts at 0 (0 when byte 0 is missing)."""
        return self._ends[0] if self._starts and self._starts[0] == 0 else 0

    @property
    def total(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends, strict=True))

    def __len__(self) -> int:
        return len(self._starts)


@dataclass(slots=True)
class IncomingMessage:
    message_id: str
    content_type: str | None
    total: int | None
    sink: ChunkSink
    first: MsrpRequest                 # the first chunk's head (headers of the message)
    ranges: RangeSet = field(default_factory=RangeSet)
    final_end: int | None = None       # end offset of the chunk flagged '$'
    complete: bool = False
    aborted: bool = False
    start: int = 0                     # bytes [0, start) were held before (resume)
    limit: int | None = None           # largest size this message may reach
    charged: int = 0                   # bytes written to a memory sink (session budget)
    #: the last chunk and its Failure-Report value while its response is held
    #: (``MsrpSession.hold_acks``): answered by ``MsrpConnection.acknowledge``
    held: tuple[MsrpRequest, str | None] | None = None

    @property
    def size(self) -> int:
        """End of the data held from byte 0 on (``start`` counts as held)."""
        return self.ranges.contiguous_end

    @property
    def received(self) -> int:
        """Bytes of this message that arrived (progress; resumed bytes not counted)."""
        return self.ranges.total - self.start


@dataclass(slots=True)
class ChunkCursor:
    """State of one chunk while its body streams in."""

    message: IncomingMessage
    offset: int          # 0-based offset of the next body byte
    start: int           # 0-based offset of the chunk's first byte
    limit: int | None    # max bytes the message may reach (a=max-size), if any


class Reassembler:
    """Reassembles the messages of one session.

    ``max_size``: our ``a=max-size`` (RFC 4975 §8.6), applied to every message.
    """

    def __init__(
        self,
        sink_factory: Callable[[MsrpRequest], ChunkSink] | None = None,
        *,
        max_size: int | None = None,
        max_messages: int | None = None,
        limits: ReceiveLimits = DEFAULT_RECEIVE_LIMITS,
    ) -> None:
        self._factory = sink_factory or (lambda _req: MemorySink())
        self._max_size = max_size
        self._limits = limits
        self._max_messages = limits.max_messages if max_messages is None else max_messages
        self._messages: dict[str, IncomingMessage] = {}
        self._resume_from = 0
        self._sink_limit: int | None = None
        self._held = 0          # bytes in memory sinks of unfinished messages

    def set_sink_factory(self, factory: Callable[[MsrpRequest], ChunkSink], *,
                         resume_from: int = 0, max_size: int | None = None) -> None:
        """Where the next messages go.  ``resume_from=N``: the sinks the factory returns
        already hold the first ``N`` bytes (RFC 5547 §6 file-range resume): messages count
        them as received, so a message sent from ``Byte-Range: N+1-`` on completes.
        ``max_size``: the largest message these sinks take (e.g. the file size limit); more
        is refused with 413 as the bytes arrive, whatever the offer or Byte-Range said."""
        if resume_from < 0:
            raise LocalProtocolError("resume_from must not be negative")
        self._factory = factory
        self._resume_from = resume_from
        self._sink_limit = max_size

    @property
    def in_progress(self) -> int:
        return len(self._messages)

    @property
    def held(self) -> int:
        """Bytes held in memory by unfinished messages (bounded by ``max_memory``)."""
        return self._held

    def _limit_for(self, sink: ChunkSink) -> int | None:
        limits = [x for x in (self._max_size, self._sink_limit) if x is not None]
        if isinstance(sink, MemorySink):
            limits.append(self._limits.max_memory_message)
        return min(limits) if limits else None

    def begin_chunk(self, req: MsrpRequest) -> ChunkCursor:
        """Validate a SEND head and open (or continue) its message.

        Raises ``MsrpParseError`` with the status to answer: 400 without Message-ID or with a bad
        Byte-Range (RFC 4975 §7.3.1), 413 when the message exceeds ``a=max-size`` or a receive
        limit (§8.6, §10.5) - judged on the claimed range first, then on the bytes that arrive -
        or too many messages are open at once.
        """
        mid = req.message_id
        if mid is None:
            raise MsrpParseError("SEND without Message-ID (RFC 4975 §7.1.1)", where="Message-ID")
        br = req.byte_range or ByteRange(1, None, None)   # absent: whole message (§7.1.1)
        msg = self._messages.get(mid)
        if msg is None:
            if len(self._messages) >= self._max_messages:
                raise MsrpParseError("too many messages in progress", status=413,
                                     where="Message-ID")
            self._check_range(br, self._max_size)
            sink = self._factory(req)
            limit = self._limit_for(sink)
            try:
                self._check_range(br, limit)
            except MsrpParseError:
                sink.abort()
                raise
            msg = IncomingMessage(mid, req.content_type, br.total, sink, req, limit=limit)
            if self._resume_from:
                msg.start = self._resume_from
                msg.ranges.add(0, self._resume_from)
            self._messages[mid] = msg
        elif br.total is not None and msg.total is not None and br.total != msg.total:
            raise MsrpParseError("Byte-Range total changed within a message",
                                 where="Byte-Range")
        else:
            self._check_range(br, msg.limit)
            if msg.total is None:
                msg.total = br.total
        start = br.start - 1
        return ChunkCursor(msg, start, start, msg.limit)

    @staticmethod
    def _check_range(br: ByteRange, limit: int | None) -> None:
        """413 before any data when the claimed range already passes ``limit``."""
        if limit is None:
            return
        if br.total is not None and br.total > limit:
            raise MsrpParseError(f"message of {br.total} bytes exceeds the limit {limit}",
                                 status=413, where="Byte-Range")
        last = br.end if br.end is not None else br.start - 1
        if last > limit:
            raise MsrpParseError(f"Byte-Range {br} beyond the limit {limit}", status=413,
                                 where="Byte-Range")

    def chunk_data(self, cur: ChunkCursor, data: bytes | memoryview) -> None:
        end = cur.offset + len(data)
        msg = cur.message
        if cur.limit is not None and end > cur.limit:
            raise MsrpParseError(f"message exceeds the limit {cur.limit}", status=413,
                                 where="body")
        if msg.total is not None and end > msg.total:
            # the data is the truth, but not past what the sender declared (RFC 4975 §7.3.1)
            raise MsrpParseError(f"data beyond the Byte-Range total {msg.total}", status=413,
                                 where="body")
        if isinstance(msg.sink, MemorySink):
            self._held += len(data)
            msg.charged += len(data)
            if self._held > self._limits.max_memory:
                raise MsrpParseError(
                    f"unfinished messages hold more than {self._limits.max_memory} bytes",
                    status=413, where="body")
        msg.sink.write_at(cur.offset, data)
        cur.offset = end

    def _release(self, msg: IncomingMessage) -> None:
        self._held -= msg.charged
        msg.charged = 0

    def end_chunk(self, cur: ChunkCursor, flag: str) -> IncomingMessage | None:
        """Record the chunk; returns the message when it completed or was aborted."""
        msg = cur.message
        msg.ranges.add(cur.start, cur.offset)
        if flag == FLAG_ABORT:
            msg.aborted = True
            msg.sink.abort()
            self._messages.pop(msg.message_id, None)
            self._release(msg)
            return msg
        if flag == FLAG_END:
            msg.final_end = cur.offset
        if msg.final_end is not None and msg.ranges.contiguous_end >= msg.final_end:
            msg.complete = True
            msg.sink.close()
            self._messages.pop(msg.message_id, None)
            self._release(msg)
            return msg
        return None

    def fail(self, cur: ChunkCursor) -> None:
        """Drop a message after an error on one of its chunks (413, 400...)."""
        msg = cur.message
        if self._messages.pop(msg.message_id, None) is not None:
            msg.aborted = True
            msg.sink.abort()
            self._release(msg)

    def abort_all(self) -> list[IncomingMessage]:
        """Connection lost: every unfinished message is aborted."""
        out = list(self._messages.values())
        for m in out:
            m.aborted = True
            m.sink.abort()
            self._release(m)
        self._messages.clear()
        return out
