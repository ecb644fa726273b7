"""Sending side: messages cut into SEND chunks (RFC 4975 §5.1, §7.1.1).

A message is read from a :class:`ChunkSource` a chunk at a time (never whole) and every chunk is
its own SEND transaction with ``Byte-Range: start-end/total`` and the continuation flag ``+``
(more follows), ``$`` (last chunk) or ``#`` (aborted, §7.1.1).  A chunk is handed out as a list of
buffers (head, body, end-line) for ``writelines`` - the body is not copied into the head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from simpleim.errors import LocalProtocolError
from simpleim.msrp.message import FLAG_ABORT, FLAG_END, FLAG_MORE, ByteRange, end_line

__all__ = [
    "ChunkSource",
    "BytesSource",
    "OutgoingState",
    "OutgoingMessage",
    "OutgoingChunk",
    "make_chunk",
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
    offset: int = 0                 # bytes already put in chunks
    outstanding: int = 0            # chunks waiting for a transaction response
    status: int | None = None       # failure status, if any
    comment: str | None = None
    abort_requested: bool = False
    _lookahead: bytes | None = field(default=None, repr=False)
    _static: str | None = field(default=None, repr=False)

    @property
    def finished_sending(self) -> bool:
        return self.state not in (OutgoingState.QUEUED, OutgoingState.SENDING)

    @property
    def expects_responses(self) -> bool:
        # RFC 4975 §7.2: 'no' -> no response at all; 'partial' -> only negative ones.
        return self.failure_report == "yes"


@dataclass(slots=True)
class OutgoingChunk:
    tid: str
    message: OutgoingMessage
    buffers: list[bytes]
    byte_range: ByteRange
    flag: str
    size: int           # body bytes

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in self.buffers)


def _static_headers(msg: OutgoingMessage, to_path: str, from_path: str) -> str:
    lines = [f"To-Path: {to_path}", f"From-Path: {from_path}", f"Message-ID: {msg.message_id}"]
    if msg.success_report:
        lines.append("Success-Report: yes")
    if msg.failure_report != "yes":
        lines.append(f"Failure-Report: {msg.failure_report}")
    lines += [f"{n}: {v}" for n, v in msg.headers]
    return "\r\n".join(lines) + "\r\n"


def make_chunk(
    msg: OutgoingMessage,
    new_tid: Callable[[], str],
    to_path: str,
    from_path: str,
    chunk_size: int,
) -> OutgoingChunk:
    """Cut the next chunk of ``msg`` (§7.1.1); the caller applies the state transition.

    The transaction id is re-drawn when the body happens to contain ``-------<tid>``: RFC 4975
    §7.1 requires that the end-line cannot occur inside the body.
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
    elif msg.total is not None:
        want = min(chunk_size, msg.total - start)
        data = msg.source.read(want) if want > 0 else b""
        if len(data) < want:
            flag = FLAG_ABORT           # the source ended early: abandon the message (§7.1.1)
        elif start + len(data) >= msg.total:
            flag = FLAG_END
    else:
        data = msg._lookahead if msg._lookahead is not None else msg.source.read(chunk_size)
        nxt = msg.source.read(chunk_size) if data else b""
        msg._lookahead = nxt or None
        if not nxt:
            flag = FLAG_END
    end = start + len(data)
    br = ByteRange(start + 1, end, end if flag == FLAG_END else msg.total)
    tid = new_tid()
    for _ in range(16):
        if data.find(b"-------" + tid.encode("ascii")) < 0:
            break
        tid = new_tid()
    else:
        raise LocalProtocolError("could not find a transaction id absent from the body")
    head = (f"MSRP {tid} SEND\r\n{msg._static}Byte-Range: {br}\r\n"
            f"Content-Type: {msg.content_type}\r\n\r\n").encode()
    tail = b"\r\n" + end_line(tid, flag)
    msg.offset = end
    if flag != FLAG_MORE:
        msg.source.close()
    # The message's state moves in the caller, through fsm.MESSAGE_TABLE.
    return OutgoingChunk(tid, msg, [head, data, tail], br, flag, len(data))
