"""Connection cuts at a byte offset the test chooses (not after a wall-clock tick).

``cut_msrp_after(endpoint, n)``: the MSRP connections of ``endpoint`` (a
:class:`simpleim.transport.msrp.MsrpEndpoint`) pass exactly ``n`` received bytes to the MSRP
core, then the connection is aborted (RST, like a pulled cable).  Whatever the machine's speed,
the receiver has seen exactly ``n`` bytes of the stream when the cut happens, and the sender
cannot have got further than ``n`` + the kernel's socket buffers.

``hold_msrp_after(endpoint, n)``: the same connection is not cut but held after ``n`` bytes
(a stalled receiver) until the test lets more through: a transfer is provably still in flight.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from simpleim.transport import msrp as msrp_transport

__all__ = ["CutState", "Valve", "cut_msrp_after", "hold_msrp_after"]


class CutState:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.received = 0
        self.cut = False


@contextlib.contextmanager
def cut_msrp_after(endpoint: object, nbytes: int) -> Iterator[CutState]:
    state = CutState(nbytes)
    runner_cls = msrp_transport._Runner
    original = runner_cls.data_received

    def data_received(self: msrp_transport._Runner, data: bytes) -> None:
        if self.endpoint is not endpoint or state.cut:
            original(self, data)
            return
        room = state.limit - state.received
        if len(data) < room:
            state.received += len(data)
            original(self, data)
            return
        state.cut = True
        state.received += room
        original(self, data[:room])
        if self.transport is not None:
            self.transport.abort()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner_cls, "data_received", data_received)
        yield state


class Valve:
    """The receive side of an endpoint's MSRP connections held at a byte offset the test
    moves (:meth:`allow`): bytes past it are kept back and the socket is not read, so the
    sender stalls once the kernel's buffers are full, whatever the machine's speed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.received = 0            # bytes passed to the MSRP core
        self.held = bytearray()      # bytes read from the socket past the limit
        self.runner: msrp_transport._Runner | None = None
        self.feed: Callable[[bytes], None] | None = None

    @property
    def holding(self) -> bool:
        return bool(self.held)

    def allow(self, nbytes: int) -> None:
        """Move the offset ``nbytes`` further: held bytes go in, reading resumes."""
        self.limit += nbytes
        self._pump()

    def open(self) -> None:
        self.allow(1 << 62)

    def _pump(self) -> None:
        if self.feed is None or self.runner is None:
            return
        room = self.limit - self.received
        if room <= 0:
            return
        data = bytes(self.held[:room])
        del self.held[:room]
        self.received += len(data)
        if data:
            self.feed(data)
        transport = self.runner.transport
        if not self.held and transport is not None and not transport.is_closing():
            transport.resume_reading()


@contextlib.contextmanager
def hold_msrp_after(endpoint: object, nbytes: int) -> Iterator[Valve]:
    """The first MSRP connection of ``endpoint`` passes ``nbytes`` to the core, then holds
    (see :class:`Valve`); leaving the block lets everything through."""
    valve = Valve(nbytes)
    runner_cls = msrp_transport._Runner
    original = runner_cls.data_received

    def data_received(self: msrp_transport._Runner, data: bytes) -> None:
        if self.endpoint is not endpoint or (valve.runner not in (None, self)):
            original(self, data)
            return
        if valve.runner is None:
            valve.runner = self
            valve.feed = lambda chunk: original(self, chunk)
        valve.held += data
        valve._pump()
        if valve.held and self.transport is not None:
            self.transport.pause_reading()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner_cls, "data_received", data_received)
        try:
            yield valve
        finally:
            valve.open()
