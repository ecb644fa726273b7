"""Chunk switching: a large message received on one leg leaves on the other legs as its
chunks arrive, instead of after the whole message is reassembled (RFC 4975 §7.1.1: a
message may be re-chunked on the way, each chunk carrying its own Byte-Range; issue 10 §1
"chunked messages switched without waiting for the whole message").

The receiving leg's sink (:class:`SwitchSink`) feeds one
:class:`~simpleim.msrp.PipeSource` per destination leg, whose outgoing message was queued
with the same total size (and the same first byte, for a resumed file, RFC 5547 §6) when
the first chunk arrived.  Back-pressure: when a destination has more than ``high`` bytes
waiting, the receiving leg's connection is not read until every destination is below
``high / 4``.  An aborted incoming message (``#``) aborts the outgoing ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from simpleim.errors import LocalProtocolError
from simpleim.msrp import OutgoingMessage, OutgoingState, PipeSource
from simpleim.transport.msrp import EndpointSession

__all__ = ["Outlet", "SwitchSink"]

log = logging.getLogger("simpleim.server.media")

_DEAD = (OutgoingState.FAILED, OutgoingState.ABORTED)


class Outlet:
    """One destination of a switched message: its stream, pipe and outgoing message."""

    __slots__ = ("stream", "pipe", "message")

    def __init__(self, stream: EndpointSession, pipe: PipeSource,
                 message: OutgoingMessage) -> None:
        self.stream, self.pipe, self.message = stream, pipe, message

    @property
    def alive(self) -> bool:
        return self.message.state not in _DEAD and not self.pipe.ended


class SwitchSink:
    """The ChunkSink of a message switched to ``outlets`` as it arrives (0-based offsets
    from ``start``)."""

    def __init__(self, source: EndpointSession, start: int, high: int = 1 << 20) -> None:
        self.source = source
        self._loop = asyncio.get_running_loop()
        self.outlets: list[Outlet] = []
        self.next = start                     # the next byte to pass on
        self._pending: dict[int, bytes] = {}  # out-of-order pieces beyond ``next``
        self.high = high
        self.held = False
        self.switched = 0                     # bytes passed on

    def add(self, outlets: Sequence[Outlet]) -> None:
        self.outlets.extend(outlets)
        for o in outlets:
            o.pipe.on_drain = self._drained

    # -- ChunkSink
    def write_at(self, offset: int, data: bytes | memoryview) -> None:
        if offset > self.next:
            old = self._pending.get(offset)
            if old is None or len(old) < len(data):
                self._pending[offset] = bytes(data)
            return
        if offset < self.next:                # a duplicate: only the new part counts
            data = data[self.next - offset:]
            if not data:
                return
        self._pass(data)
        while self._pending:                  # pieces that arrived early now fit
            key = next((k for k in self._pending if k <= self.next), None)
            if key is None:
                break
            piece = self._pending.pop(key)[self.next - key:]
            if piece:
                self._pass(piece)

    def close(self) -> None:
        """The whole message arrived (the pipes end when their total is reached)."""
        self._pending.clear()
        self._release()

    def abort(self) -> None:
        """The sender aborted the message (``#``, RFC 4975 §7.1.1): abort the copies."""
        self._pending.clear()
        for o in self.outlets:
            if o.alive:
                try:
                    o.stream.abort(o.message.message_id)
                except LocalProtocolError:
                    pass                      # already completely sent
        self._release()

    # -- internals
    def _pass(self, data: bytes | memoryview) -> None:
        self.next += len(data)
        self.switched += len(data)
        over = False
        for o in self.outlets:
            if not o.alive:
                continue
            o.pipe.feed(data)
            # written by the destination's connection on its own turn (not from inside
            # this connection's parser)
            self._loop.call_soon(o.stream.wake)
            over = over or o.pipe.available > self.high
        if over and not self.held:
            self.held = self.source.hold_reading()

    def _drained(self, _buffered: int) -> None:
        if self.held and all(o.pipe.available <= self.high // 4
                             for o in self.outlets if o.alive):
            self._release()

    def _release(self) -> None:
        if self.held:
            self.held = False
            self.source.release_reading()
