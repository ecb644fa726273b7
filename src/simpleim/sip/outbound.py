"""RFC 5626 (SIP Outbound) protocol logic, sans I/O: flow keep-alives and flow liveness.

* :class:`KeepAlive` — the UA side of the CRLF keep-alive (RFC 5626 §4.4.1 / §3.5.1): a
  double-CRLF ping every 80-100 % of the Flow-Timer (95-120 s without one, TCP), a
  single-CRLF pong expected within 10 s, else the flow has failed (the UA re-registers
  over a new flow, §4.5).  A ``(state, input) -> (state, action)`` table.
* :class:`FlowWatch` — the server side: a flow bound to a registration (§5.2) that shows no
  traffic for Flow-Timer + :data:`PONG_WAIT` seconds is dead (the server then closes it and
  the registrar drops its bindings, §5.3).
* :func:`flow_timer_of` / :func:`is_outbound_contact` — header helpers for §4.2 and §6.

Nothing reads a clock: ``now`` is passed in and deadlines come out.  Jitter is passed in as
a number in [0, 1) so that the caller owns randomness.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from simpleim.errors import SipParseError

__all__ = [
    "DEFAULT_TCP_INTERVAL",
    "KaAction",
    "KaInput",
    "KaState",
    "KEEPALIVE_TABLE",
    "KeepAlive",
    "FlowWatch",
    "PONG_WAIT",
    "flow_timer_of",
    "is_outbound_contact",
    "keepalive_interval",
    "reconnect_delay",
]

FlowKey = TypeVar("FlowKey", bound=Hashable)

# RFC 5626 §4.4.1: without a Flow-Timer a UA on a connection-oriented transport sends a
# keep-alive every 95-120 s (a random value in that range).
DEFAULT_TCP_INTERVAL = (95.0, 120.0)
# RFC 5626 §4.4.1: "If a pong is not received within 10 seconds after sending a ping ...
# the flow has failed."
PONG_WAIT = 10.0


class KaState(enum.Enum):
    WAITING = "waiting"        # the flow is good; the next ping is due at the deadline
    PINGED = "pinged"          # a ping went out; a pong is due before the deadline
    FAILED = "failed"          # no pong: the flow is dead until restart()


class KaInput(enum.Enum):
    DEADLINE = "deadline"      # now >= deadline()
    PONG = "pong"              # a single CRLF arrived on the flow
    TRAFFIC = "traffic"        # a SIP message arrived on the flow (it is alive)


class KaAction(enum.Enum):
    NONE = "none"
    SEND_PING = "send-ping"    # write CRLFCRLF on the flow
    FLOW_FAILED = "flow-failed"  # close the flow; re-register over a new one (§4.5)


# (state, input) -> (new state, action); every row cites its rule.
KEEPALIVE_TABLE: dict[tuple[KaState, KaInput], tuple[KaState, KaAction]] = {
    # §4.4.1: when the keep-alive interval has passed, send a CRLFCRLF ping.
    (KaState.WAITING, KaInput.DEADLINE): (KaState.PINGED, KaAction.SEND_PING),
    # §3.5.1: a pong nobody asked for is ignored.
    (KaState.WAITING, KaInput.PONG): (KaState.WAITING, KaAction.NONE),
    # §4.4.1: keep-alives are needed only on an otherwise idle flow; traffic is no proof
    # that the far end reads, so the schedule is kept.
    (KaState.WAITING, KaInput.TRAFFIC): (KaState.WAITING, KaAction.NONE),
    # §4.4.1: the pong arrived within 10 s: the flow is good, schedule the next ping.
    (KaState.PINGED, KaInput.PONG): (KaState.WAITING, KaAction.NONE),
    # §4.4.1: a response or request on the flow while waiting: still wait for the pong.
    (KaState.PINGED, KaInput.TRAFFIC): (KaState.PINGED, KaAction.NONE),
    # §4.4.1: no pong within 10 s: the flow has failed (§4.5: register a new one).
    (KaState.PINGED, KaInput.DEADLINE): (KaState.FAILED, KaAction.FLOW_FAILED),
    # a failed flow stays failed until the UA restarts the machine on a new flow (§4.5).
    (KaState.FAILED, KaInput.DEADLINE): (KaState.FAILED, KaAction.NONE),
    (KaState.FAILED, KaInput.PONG): (KaState.FAILED, KaAction.NONE),
    (KaState.FAILED, KaInput.TRAFFIC): (KaState.FAILED, KaAction.NONE),
}


def keepalive_interval(flow_timer: int | None, jitter: float) -> float:
    """Seconds until the next ping: 80-100 % of the Flow-Timer (§4.4.1), else 95-120 s.
    ``jitter`` in [0, 1) picks the point in the range."""
    if not 0.0 <= jitter < 1.0:
        raise ValueError("jitter must be in [0, 1)")
    if flow_timer is not None and flow_timer > 0:
        low, high = 0.8 * flow_timer, float(flow_timer)
    else:
        low, high = DEFAULT_TCP_INTERVAL
    return low + (high - low) * jitter


# RFC 5626 §4.5: flow recovery backoff: base-time 30 s when every flow failed (90 s when
# some still work), max-time 1800 s.
BACKOFF_BASE_ALL_FAILED = 30.0
BACKOFF_MAX = 1800.0


def reconnect_delay(failures: int, jitter: float) -> float:
    """Seconds before the next attempt to form a flow after ``failures`` consecutive failed
    attempts (RFC 5626 §4.5: wait-time = min(max-time, base-time * 2^failures), a random
    value between 50 % and 100 % of it).  The first attempt after a flow failed is at once."""
    if failures <= 0:
        return 0.0
    if not 0.0 <= jitter < 1.0:
        raise ValueError("jitter must be in [0, 1)")
    wait = min(BACKOFF_MAX, BACKOFF_BASE_ALL_FAILED * 2.0 ** min(failures, 16))
    return wait * (0.5 + 0.5 * jitter)


class KeepAlive:
    """UA-side CRLF keep-alive machine of one flow (RFC 5626 §4.4.1)."""

    __slots__ = ("state", "_deadline", "_flow_timer")

    def __init__(self, now: float, jitter: float, flow_timer: int | None = None) -> None:
        self.state = KaState.WAITING
        self._flow_timer = flow_timer
        self._deadline = now + keepalive_interval(flow_timer, jitter)

    def deadline(self) -> float | None:
        """When :meth:`on_deadline` must be called next (None once failed)."""
        return None if self.state is KaState.FAILED else self._deadline

    def restart(self, now: float, jitter: float, flow_timer: int | None = None) -> None:
        """A new flow (after re-registration, §4.5), or a new Flow-Timer from the registrar."""
        self.state = KaState.WAITING
        self._flow_timer = flow_timer
        self._deadline = now + keepalive_interval(flow_timer, jitter)

    def _step(self, event: KaInput) -> KaAction:
        self.state, action = KEEPALIVE_TABLE[(self.state, event)]
        return action

    def on_deadline(self, now: float, jitter: float) -> KaAction:
        if self.state is KaState.FAILED or now < self._deadline:
            return KaAction.NONE
        action = self._step(KaInput.DEADLINE)
        if action is KaAction.SEND_PING:
            self._deadline = now + PONG_WAIT
        return action

    def on_pong(self, now: float, jitter: float) -> KaAction:
        before = self.state
        action = self._step(KaInput.PONG)
        if before is KaState.PINGED and self.state is KaState.WAITING:
            self._deadline = now + keepalive_interval(self._flow_timer, jitter)
        return action

    def on_traffic(self) -> KaAction:
        return self._step(KaInput.TRAFFIC)


@dataclass(frozen=True, slots=True)
class FlowWatch:
    """Server side: which flows bound to registrations are dead for lack of traffic.

    A UA told ``Flow-Timer: T`` pings at least every T seconds (§4.4.1) and waits up to
    10 s for the pong; a flow silent for T + PONG_WAIT has failed (§5.4: the Flow-Timer
    is the longest the server is prepared to wait without a keep-alive).
    """

    flow_timer: int
    # slack after the Flow-Timer: the UA's own wait for a pong (§4.4.1)
    grace: float = PONG_WAIT

    @property
    def limit(self) -> float:
        return self.flow_timer + self.grace

    def dead(self, flows: Iterable[tuple[FlowKey, float]], now: float) -> list[FlowKey]:
        """``(flow, last time bytes arrived on it)`` pairs -> the flows that died."""
        return [flow for flow, last in flows if now - last > self.limit]

    def next_check(self, flows: Iterable[tuple[FlowKey, float]], now: float) -> float:
        """When the next flow could die (now + limit when there are none)."""
        earliest = now + self.limit
        for _, last in flows:
            earliest = min(earliest, last + self.limit)
        return max(earliest, now)


def flow_timer_of(value: str | None) -> int | None:
    """The ``Flow-Timer`` header of a 2xx to REGISTER (RFC 5626 §11: 1*DIGIT) or None."""
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or len(value) > 9:
        raise SipParseError(f"bad Flow-Timer {value!r}", where="Flow-Timer")
    seconds = int(value)
    return seconds if seconds > 0 else None


def is_outbound_contact(instance: str | None, reg_id: int | None) -> bool:
    """RFC 5626 §6: a Contact with both ``+sip.instance`` and ``reg-id`` asks the registrar
    to bind this registration to the flow it arrived on."""
    return instance is not None and reg_id is not None
