"""Connection cuts at a byte offset the test chooses (not after a wall-clock tick).

``cut_msrp_after(endpoint, n)``: the MSRP connections of ``endpoint`` (a
:class:`simpleim.transport.msrp.MsrpEndpoint`) pass exactly ``n`` received bytes to the MSRP
core, then the connection is aborted (RST, like a pulled cable).  Whatever the machine's speed,
the receiver has seen exactly ``n`` bytes of the stream when the cut happens, and the sender
cannot have got further than ``n`` + the kernel's socket buffers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from simpleim.transport import msrp as msrp_transport

__all__ = ["CutState", "cut_msrp_after"]


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
