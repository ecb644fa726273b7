"""Every protocol timer of simpleim, in one frozen dataclass.

Values are seconds (floats).  Sans-I/O cores take a :class:`Timers` and the
current time ``now`` as arguments and hand back *deadlines*; the asyncio layer
sleeps until the earliest deadline.  Nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Timers", "DEFAULT_TIMERS", "refresh_delay"]


@dataclass(frozen=True, slots=True)
class Timers:
    # RFC 3261 §17.1.1.1 / Table 4: T1 RTT estimate, T2 max non-INVITE retransmit, T4 max
    # time a message stays in the network.
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    # RFC 3261 §17.1.1.2 Timer B = 64*T1 (INVITE client timeout), Timer F = 64*T1.
    # Timer D: wait time for response retransmits, >32 s for UDP, 0 for reliable.
    timer_d_unreliable: float = 32.0
    # RFC 6026 §8.4 Timer L (Accepted state, server) and Timer M (client) = 64*T1.
    # Timer C (proxy INVITE, RFC 3261 §16.6 step 11) > 3 min.
    timer_c: float = 180.0
    # RFC 4975 §7.3: an MSRP transaction with no response within 30 s has failed (408).
    msrp_transaction: float = 30.0
    # RFC 3994 §4.2: is-composing refresh (default 120 s suggested max 'refresh') and idle timeout
    # (default 15 s).
    composing_idle: float = 15.0
    composing_refresh: float = 90.0
    # RFC 4028: session refresh interval and the floor (Min-SE, §5: at least 90 s).
    session_expires: float = 1800.0
    min_se: float = 90.0
    # OMA SIMPLE IM §15.2: Tc1 (file transfer, wait after last chunk) and Tc2 (IMDN wait).
    tc1: float = 30.0
    tc2: float = 10.0
    # RFC 5626 §4.4.1: CRLF keep-alive interval on connection-oriented transports.
    keepalive: float = 95.0

    @property
    def timer_b(self) -> float:
        return 64 * self.t1

    @property
    def timer_f(self) -> float:
        return 64 * self.t1

    @property
    def timer_h(self) -> float:
        return 64 * self.t1

    @property
    def timer_j_unreliable(self) -> float:
        return 64 * self.t1

    @property
    def timer_l(self) -> float:
        return 64 * self.t1

    @property
    def timer_m(self) -> float:
        return 64 * self.t1


DEFAULT_TIMERS = Timers()


def refresh_delay(expires: int) -> float:
    """When to refresh soft state that expires after ``expires`` seconds (a registration,
    RFC 3261 §10.2.4; a publication, RFC 3903 §4.2): 30 s before the end for long
    intervals, at half the interval for short ones."""
    exp = max(expires, 2)
    return float(max(exp / 2, exp - 30) if exp > 60 else exp / 2)
