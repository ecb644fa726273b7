"""RFC 4028 session timer for one dialog, sans-I/O: ``(state, input) -> (state, action)``,
and the negotiation of the interval by a UAS (§9) and a UAC (§7), for the client and the
server's user agent alike (``now`` is passed in; deadlines come out)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from simpleim.sip.headers import SessionExpires
from simpleim.sip.message import SipRequest, SipResponse

__all__ = ["TimerState", "TimerInput", "TimerAction", "SESSION_TIMER_TABLE", "SessionTimer",
           "negotiated_interval", "ABSOLUTE_MIN_SE", "UasTimerDecision", "uas_decision",
           "uac_headers", "retry_interval"]


class TimerState(enum.Enum):
    OFF = "off"              # no Session-Expires negotiated
    REFRESHER = "refresher"  # we refresh (RFC 4028 §10: at half the interval)
    WATCHER = "watcher"      # the peer refreshes; we watch for expiry


class TimerInput(enum.Enum):
    NEGOTIATED_US = "negotiated-us"
    NEGOTIATED_PEER = "negotiated-peer"
    REFRESHED = "refreshed"
    DEADLINE = "deadline"
    STOP = "stop"


class TimerAction(enum.Enum):
    NONE = "none"
    ARM = "arm"
    SEND_REFRESH = "send-refresh"  # RFC 4028 §10: re-INVITE/UPDATE at interval/2
    SEND_BYE = "send-bye"          # RFC 4028 §10: no refresh before expiry -> BYE


S, In, A = TimerState, TimerInput, TimerAction
#: RFC 4028 §10 behaviour of a UA.
SESSION_TIMER_TABLE: dict[tuple[TimerState, TimerInput], tuple[TimerState, TimerAction]] = {
    (S.OFF, In.NEGOTIATED_US): (S.REFRESHER, A.ARM),
    (S.OFF, In.NEGOTIATED_PEER): (S.WATCHER, A.ARM),
    (S.REFRESHER, In.NEGOTIATED_US): (S.REFRESHER, A.ARM),
    (S.REFRESHER, In.NEGOTIATED_PEER): (S.WATCHER, A.ARM),
    (S.WATCHER, In.NEGOTIATED_US): (S.REFRESHER, A.ARM),
    (S.WATCHER, In.NEGOTIATED_PEER): (S.WATCHER, A.ARM),
    (S.REFRESHER, In.REFRESHED): (S.REFRESHER, A.ARM),
    (S.WATCHER, In.REFRESHED): (S.WATCHER, A.ARM),
    (S.REFRESHER, In.DEADLINE): (S.REFRESHER, A.SEND_REFRESH),
    (S.WATCHER, In.DEADLINE): (S.OFF, A.SEND_BYE),
    (S.OFF, In.DEADLINE): (S.OFF, A.NONE),
    (S.OFF, In.REFRESHED): (S.OFF, A.NONE),
    (S.OFF, In.STOP): (S.OFF, A.NONE),
    (S.REFRESHER, In.STOP): (S.OFF, A.NONE),
    (S.WATCHER, In.STOP): (S.OFF, A.NONE),
}


@dataclass(frozen=True)
class SessionTimer:
    state: TimerState = TimerState.OFF
    interval: float = 0.0
    deadline: float | None = None

    def step(self, event: TimerInput, now: float, interval: float | None = None
             ) -> tuple[SessionTimer, TimerAction]:
        new_state, action = SESSION_TIMER_TABLE[(self.state, event)]
        ivl = self.interval if interval is None else interval
        nxt = replace(self, state=new_state, interval=ivl)
        if action is TimerAction.ARM or action is TimerAction.SEND_REFRESH:
            if new_state is TimerState.REFRESHER:
                nxt = replace(nxt, deadline=now + ivl / 2)          # RFC 4028 §10
            else:
                # RFC 4028 §10: BYE at interval - min(32, interval/3) without a refresh.
                nxt = replace(nxt, deadline=now + ivl - min(32.0, ivl / 3))
        if new_state is TimerState.OFF:
            nxt = replace(nxt, deadline=None)
        return nxt, action


def negotiated_interval(response: SipResponse, *, we_are_uac: bool) -> tuple[float, bool] | None:
    """(interval, we refresh) from the 2xx Session-Expires (RFC 4028 §7.2/§9), or None."""
    value = response.headers.get("Session-Expires")
    if value is None:
        return None
    se = SessionExpires.parse(value)
    refresher = (se.params.get("refresher") or "uac").lower()
    we_refresh = (refresher == "uac") == we_are_uac
    return float(se.delta), we_refresh


# --------------------------------------------------------------------- negotiation
#: RFC 4028 §4: the smallest Session-Expires anybody may use.
ABSOLUTE_MIN_SE = 90


@dataclass(frozen=True, slots=True)
class UasTimerDecision:
    """What a UAS answers to a session refresh request (RFC 4028 §9).

    ``reject_min_se``: answer 422 with ``Min-SE: <value>`` (the interval asked for is below
    our minimum).  Otherwise ``interval`` (None: no session timer) goes into the 2xx
    ``Session-Expires`` with ``refresher``; ``require``: the 2xx carries ``Require: timer``
    (the UAC refreshes, so it must support the extension)."""

    reject_min_se: int | None = None
    interval: int | None = None
    refresher: str = "uas"
    require: bool = False

    def headers(self) -> list[tuple[str, str]]:
        """The 2xx headers of this decision (RFC 4028 §9)."""
        if self.interval is None:
            return []
        out = [("Session-Expires", f"{self.interval};refresher={self.refresher}")]
        if self.require:
            out.append(("Require", "timer"))
        return out


def _delta(value: str | None) -> int | None:
    if value is None:
        return None
    head = value.split(";", 1)[0].strip()
    return int(head) if head.isdigit() else None


def uas_decision(request: SipRequest, *, min_se: int, default: int | None
                 ) -> UasTimerDecision:
    """RFC 4028 §9 at a UAS: ``min_se`` is our minimum, ``default`` the interval we ask
    for when the request has none (None: no timer then).

    * Session-Expires below ``min_se`` -> 422 with our Min-SE (§9, §6);
    * a Session-Expires in the request is kept (we never lengthen it) with its refresher,
      ``uac`` when it names none and the UAC supports timer, else ``uas`` (§9);
    * no Session-Expires: ``default`` (not below the request's Min-SE), refreshed by us.
    """
    supported = any(t.lower() == "timer" for t in request.supported)
    asked = request.headers.get("Session-Expires")
    their_min = _delta(request.headers.get("Min-SE")) or ABSOLUTE_MIN_SE
    if asked is not None:
        interval = _delta(asked)
        if interval is None:
            return UasTimerDecision()
        if interval < min_se:
            return UasTimerDecision(reject_min_se=min_se)
        se = SessionExpires.parse(asked)
        named = (se.params.get("refresher") or "").lower()
        refresher = named if named in ("uac", "uas") else ("uac" if supported else "uas")
        return UasTimerDecision(interval=interval, refresher=refresher,
                                require=refresher == "uac")
    if default is None:
        return UasTimerDecision()
    return UasTimerDecision(interval=max(default, their_min, min_se), refresher="uas")


def uac_headers(interval: int, min_se: int) -> list[tuple[str, str]]:
    """RFC 4028 §7.1: what a UAC puts in an INVITE / UPDATE to ask for a session timer
    refreshed by itself."""
    return [("Supported", "timer"), ("Session-Expires", f"{interval};refresher=uac"),
            ("Min-SE", str(min_se))]


def retry_interval(response: SipResponse, interval: int) -> int | None:
    """RFC 4028 §7.4: after a 422 the request is retried with a Session-Expires of at least
    the response's Min-SE; None when the 422 names none."""
    their = _delta(response.headers.get("Min-SE"))
    if response.status != 422 or their is None:
        return None
    return max(interval, their)
