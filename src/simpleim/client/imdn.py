"""IMDN bookkeeping on the sending side: Tc2 (OMA SIMPLE IM §15.2), sans-I/O.

OMA §8.1.1 / §15.2: on the 202 (or 200) to a pager message that asked for a delivery report,
the client SHOULD store at least the Message-ID for Tc2 to correlate notifications; Tc2
stops when the report arrives and on expiry the stored data is removed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from simpleim.timers import DEFAULT_TIMERS, Timers

__all__ = ["Tc2Tracker", "Pending", "TrackInput", "TRACK_TABLE"]


class TrackInput(enum.Enum):
    SENT = "sent"                    # 2xx to the MESSAGE / MSRP 200 to the SEND
    NOTIFICATION = "notification"    # an IMDN for the Message-ID arrived
    TC2_EXPIRED = "tc2-expired"


class TrackState(enum.Enum):
    NONE = "none"
    WAITING = "waiting"
    DONE = "done"


#: (state, input) -> (next state, action); OMA SIMPLE IM §15.2 Tc2 row.
TRACK_TABLE: dict[tuple[TrackState, TrackInput], tuple[TrackState, str]] = {
    (TrackState.NONE, TrackInput.SENT): (TrackState.WAITING, "start-tc2"),
    (TrackState.WAITING, TrackInput.NOTIFICATION): (TrackState.WAITING, "report"),
    (TrackState.WAITING, TrackInput.TC2_EXPIRED): (TrackState.DONE, "forget"),
    (TrackState.NONE, TrackInput.NOTIFICATION): (TrackState.NONE, "report-unexpected"),
    (TrackState.DONE, TrackInput.NOTIFICATION): (TrackState.DONE, "report-unexpected"),
}


@dataclass
class Pending:
    message_id: str
    peer: str
    deadline: float
    wanted: set[str] = field(default_factory=set)


def _step(state: TrackState, event: TrackInput) -> tuple[TrackState, str]:
    return TRACK_TABLE.get((state, event), (state, "ignore"))


class Tc2Tracker:
    """Message-IDs waiting for IMDNs, each until its Tc2 deadline (bounded)."""

    def __init__(self, timers: Timers = DEFAULT_TIMERS, *, max_entries: int = 10_000) -> None:
        self.timers = timers
        self.max_entries = max_entries
        self._pending: dict[str, Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._pending

    def sent(self, message_id: str, peer: str, wanted: set[str], now: float) -> None:
        """The message was accepted: start Tc2 (§15.2 'On receiving 202 Accept')."""
        if not wanted:
            return
        _state, action = _step(TrackState.NONE, TrackInput.SENT)
        if action != "start-tc2":  # pragma: no cover - the table says so
            return
        if len(self._pending) >= self.max_entries:
            oldest = min(self._pending.values(), key=lambda p: p.deadline)
            del self._pending[oldest.message_id]
        self._pending[message_id] = Pending(message_id, peer, now + self.timers.tc2,
                                            set(wanted))

    def notification(self, message_id: str, kind: str) -> bool:
        """An IMDN arrived; returns whether it was expected (Message-ID stored, Tc2 running).
        §15.2 stops Tc2 for the message once every requested report came in."""
        p = self._pending.get(message_id)
        state = TrackState.NONE if p is None else TrackState.WAITING
        _state, action = _step(state, TrackInput.NOTIFICATION)
        if p is None or action != "report":
            return False
        p.wanted.discard(kind)
        if not p.wanted:
            del self._pending[message_id]
        return True

    def next_deadline(self) -> float | None:
        if not self._pending:
            return None
        return min(p.deadline for p in self._pending.values())

    def handle_timer(self, now: float) -> list[Pending]:
        """§15.2: on Tc2 expiry the stored Message-ID is removed; returns the expired ones."""
        gone = [p for p in self._pending.values() if p.deadline <= now]
        for p in gone:
            if _step(TrackState.WAITING, TrackInput.TC2_EXPIRED)[1] == "forget":
                del self._pending[p.message_id]
        return gone
