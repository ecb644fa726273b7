"""The UAS core's 2xx retransmission until the ACK arrives (RFC 3261 §13.3.1.4, RFC 6026 §7.1).

Since RFC 6026 the INVITE server transaction no longer retransmits a 2xx: the TU does, with
an interval starting at T1 and doubling up to T2, until the ACK arrives or 64*T1 passed (the
dialog is then confirmed but the session SHOULD be ended with a BYE).  :class:`AckWait` is
that timer, sans-I/O::

    wait = AckWait(ok, now)
    ...
    if wait.handle_timer(now) is AckWaitResult.RETRANSMIT:
        layer.send_response(wait.response, now, transaction_id)   # still in Accepted
    ...
    if wait.matches(ack): wait.ack_received()
"""

from __future__ import annotations

import enum

from simpleim.errors import LocalProtocolError
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.timers import DEFAULT_TIMERS, Timers

__all__ = ["AckWait", "AckWaitResult"]


class AckWaitResult(enum.Enum):
    NOTHING = "nothing"  # not due yet, or already finished
    RETRANSMIT = "retransmit"  # pass the 2xx to the transport again
    TIMEOUT = "timeout"  # 64*T1 without ACK: SHOULD send BYE (§13.3.1.4)


class AckWait:
    """Retransmission schedule of one 2xx to an INVITE (RFC 3261 §13.3.1.4)."""

    def __init__(self, response: SipResponse, now: float, timers: Timers = DEFAULT_TIMERS) -> None:
        if not 200 <= response.status < 300 or response.cseq.method != "INVITE":
            raise LocalProtocolError("AckWait is for a 2xx response to an INVITE")
        self.response = response
        self.timers = timers
        # §13.3.1.4: the interval starts at T1 ...
        self._interval = timers.t1
        self._next: float | None = now + timers.t1
        # ... and retransmissions stop after 64*T1 without an ACK.
        self._give_up = now + 64 * timers.t1
        self.acked = False
        self.timed_out = False
        self.retransmissions = 0

    @property
    def done(self) -> bool:
        return self.acked or self.timed_out

    def next_deadline(self) -> float | None:
        if self.done or self._next is None:
            return None
        return min(self._next, self._give_up)

    def matches(self, ack: SipRequest) -> bool:
        """Whether ``ack`` acknowledges this 2xx: same Call-ID, tags and CSeq number
        (RFC 3261 §13.3.1.4 with the dialog matching of §12.2.2)."""
        r = self.response
        return (
            ack.method == "ACK"
            and ack.call_id == r.call_id
            and ack.cseq.seq == r.cseq.seq
            and ack.from_addr.tag == r.from_addr.tag
            and ack.to_addr.tag == r.to_addr.tag
        )

    def ack_received(self) -> None:
        """§13.3.1.4: retransmissions cease when the ACK for the response is received."""
        self.acked = True
        self._next = None

    def handle_timer(self, now: float) -> AckWaitResult:
        if self.done or self._next is None:
            return AckWaitResult.NOTHING
        if now >= self._give_up:
            # §13.3.1.4: no ACK for 64*T1 -> the session SHOULD be terminated (BYE).
            self.timed_out = True
            self._next = None
            return AckWaitResult.TIMEOUT
        if now < self._next:
            return AckWaitResult.NOTHING
        # §13.3.1.4: the interval doubles for each retransmission until it reaches T2.
        self._interval = min(2 * self._interval, self.timers.t2)
        self._next = now + self._interval
        self.retransmissions += 1
        return AckWaitResult.RETRANSMIT
