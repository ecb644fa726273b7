"""RFC 4028 session timer for one dialog, sans-I/O: ``(state, input) -> (state, action)``."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from simpleim.sip.headers import SessionExpires
from simpleim.sip.message import SipResponse

__all__ = ["TimerState", "TimerInput", "TimerAction", "SESSION_TIMER_TABLE", "SessionTimer",
           "negotiated_interval"]


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
