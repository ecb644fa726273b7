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
    "MemorySink",
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
    """Keeps the message in memory (for small messages: text, IMDN, is-composing)."""

    __slots__ = ("buffer", "closed", "aborted")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.closed = False
        self.aborted = False

    def write_at(self, offset: int, data: bytes | memoryview) -> None:
        end = offset + len(data)
        if end > len(self.buffer):
            self.buffer.extend(bytes(end - len(self.buffer)))
        self.buffer[offset:end] = data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    @property
    def data(self) -> bytes:
        return bytes(self.buffer)


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
    """Reassembles the messages of one session."""

    def __init__(
        self,
        sink_factory: Callable[[MsrpRequest], ChunkSink] | None = None,
        *,
        max_size: int | None = None,
        max_messages: int = 64,
    ) -> None:
        self._factory = sink_factory or (lambda _req: MemorySink())
        self._max_size = max_size
        self._max_messages = max_messages
        self._messages: dict[str, IncomingMessage] = {}
        self._resume_from = 0

    def set_sink_factory(self, factory: Callable[[MsrpRequest], ChunkSink], *,
                         resume_from: int = 0) -> None:
        """Where the next messages go.  ``resume_from=N``: the sinks the factory returns
        already hold the first ``N`` bytes (RFC 5547 §6 file-range resume): messages count
        them as received, so a message sent from ``Byte-Range: N+1-`` on completes."""
        if resume_from < 0:
            raise LocalProtocolError("resume_from must not be negative")
        self._factory = factory
        self._resume_from = resume_from

    @property
    def in_progress(self) -> int:
        return len(self._messages)

    def begin_chunk(self, req: MsrpRequest) -> ChunkCursor:
        """Validate a SEND head and open (or continue) its message.

        Raises ``MsrpParseError`` with the status to answer: 400 without Message-ID or with a bad
        Byte-Range (RFC 4975 §7.3.1), 413 when the message exceeds ``a=max-size`` (§8.6, §10.5)
        or too many messages are open at once.
        """
        mid = req.message_id
        if mid is None:
            raise MsrpParseError("SEND without Message-ID (RFC 4975 §7.1.1)", where="Message-ID")
        br = req.byte_range or ByteRange(1, None, None)   # absent: whole message (§7.1.1)
        limit = self._max_size
        if limit is not None and br.total is not None and br.total > limit:
            raise MsrpParseError(f"message of {br.total} bytes exceeds max-size {limit}",
                                 status=413, where="Byte-Range")
        msg = self._messages.get(mid)
        if msg is None:
            if len(self._messages) >= self._max_messages:
                raise MsrpParseError("too many messages in progress", status=413,
                                     where="Message-ID")
            msg = IncomingMessage(mid, req.content_type, br.total, self._factory(req), req)
            if self._resume_from:
                msg.start = self._resume_from
                msg.ranges.add(0, self._resume_from)
            self._messages[mid] = msg
        elif br.total is not None and msg.total is not None and br.total != msg.total:
            raise MsrpParseError("Byte-Range total changed within a message",
                                 where="Byte-Range")
        elif msg.total is None:
            msg.total = br.total
        start = br.start - 1
        return ChunkCursor(msg, start, start, limit)

    def chunk_data(self, cur: ChunkCursor, data: bytes | memoryview) -> None:
        end = cur.offset + len(data)
        if cur.limit is not None and end > cur.limit:
            raise MsrpParseError("message exceeds max-size", status=413, where="body")
        cur.message.sink.write_at(cur.offset, data)
        cur.offset = end

    def end_chunk(self, cur: ChunkCursor, flag: str) -> IncomingMessage | None:
        """Record the chunk; returns the message when it completed or was aborted."""
        msg = cur.message
        msg.ranges.add(cur.start, cur.offset)
        if flag == FLAG_ABORT:
            msg.aborted = True
            msg.sink.abort()
            self._messages.pop(msg.message_id, None)
            return msg
        if flag == FLAG_END:
            msg.final_end = cur.offset
        if msg.final_end is not None and msg.ranges.contiguous_end >= msg.final_end:
            msg.complete = True
            msg.sink.close()
            self._messages.pop(msg.message_id, None)
            return msg
        return None

    def fail(self, cur: ChunkCursor) -> None:
        """Drop a message after an error on one of its chunks (413, 400...)."""
        msg = cur.message
        if self._messages.pop(msg.message_id, None) is not None:
            msg.aborted = True
            msg.sink.abort()

    def abort_all(self) -> list[IncomingMessage]:
        """Connection lost: every unfinished message is aborted."""
        out = list(self._messages.values())
        for m in out:
            m.aborted = True
            m.sink.abort()
        self._messages.clear()
        return out
