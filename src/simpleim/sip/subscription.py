"""The notifier side of a SIP event subscription, sans-I/O (RFC 6665, which obsoletes RFC
3265; RFC 3515 for the implicit ``refer`` subscription).

Pure logic, no clock and no I/O: ``now`` comes in, the expiry deadline goes out.

* :func:`check_subscribe` answers what an initial or refreshing SUBSCRIBE may get before any
  state exists: 489 Bad Event with ``Allow-Events`` for a package we do not serve (RFC 6665
  §4.2.1.1), 423 Interval Too Brief with ``Min-Expires`` (§4.2.1.1), else the granted
  expiry (the requested one, capped at ``max_expires``; ``default`` without Expires);
* :class:`Subscription` is one subscription's state; :meth:`Subscription.step` is the table
  below.  Every accepted SUBSCRIBE is followed by a NOTIFY (§4.2.1.2); a NOTIFY carries the
  state with ``Subscription-State`` (§4.1.3, :meth:`Subscription.state_header`).

=============  ==================  ===========  ========================================
state          input               new state    action (RFC 6665 section)
=============  ==================  ===========  ========================================
INIT           SUBSCRIBE           ACTIVE       200, NOTIFY full state (§4.2.1.2)
INIT           SUBSCRIBE expires=0 TERMINATED   200, NOTIFY terminated (fetch, §4.4.3)
ACTIVE         SUBSCRIBE (refresh) ACTIVE       200, NOTIFY full state (§4.2.1.2)
ACTIVE         SUBSCRIBE expires=0 TERMINATED   200, NOTIFY terminated;timeout (§4.2.1.4)
ACTIVE         state changed       ACTIVE       NOTIFY (partial) state (§4.2.2)
ACTIVE         deadline passed     TERMINATED   NOTIFY terminated;timeout (§4.2.2)
ACTIVE         resource gone       TERMINATED   NOTIFY terminated;noresource (§4.2.2)
TERMINATED     any                 TERMINATED   481 to a SUBSCRIBE, nothing else (§4.2.1.4)
=============  ==================  ===========  ========================================
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

__all__ = [
    "SubAction",
    "SubInput",
    "SubState",
    "Subscription",
    "SubscribeCheck",
    "check_subscribe",
    "event_package",
]


class SubState(enum.Enum):
    INIT = "init"
    ACTIVE = "active"
    TERMINATED = "terminated"


class SubInput(enum.Enum):
    SUBSCRIBE = "subscribe"          # initial or refresh, expires > 0
    UNSUBSCRIBE = "unsubscribe"      # expires = 0
    CHANGED = "changed"              # the resource's state changed
    EXPIRED = "expired"              # the deadline passed
    GONE = "gone"                    # the resource went away (conference released...)


class SubAction(enum.Enum):
    NOTIFY_FULL = "notify-full"              # 200 to the SUBSCRIBE, then a full NOTIFY
    NOTIFY_PARTIAL = "notify-partial"        # a NOTIFY with what changed
    NOTIFY_TERMINATED = "notify-terminated"  # a last NOTIFY, Subscription-State terminated
    REJECT_481 = "reject-481"                # a SUBSCRIBE for a subscription that ended
    NONE = "none"


_S, _I, _A = SubState, SubInput, SubAction

#: (state, input) -> (new state, action), each row citing RFC 6665.
TRANSITIONS: dict[tuple[SubState, SubInput], tuple[SubState, SubAction]] = {
    (_S.INIT, _I.SUBSCRIBE): (_S.ACTIVE, _A.NOTIFY_FULL),                # §4.2.1.2
    (_S.INIT, _I.UNSUBSCRIBE): (_S.TERMINATED, _A.NOTIFY_TERMINATED),    # §4.4.3 (fetch)
    (_S.ACTIVE, _I.SUBSCRIBE): (_S.ACTIVE, _A.NOTIFY_FULL),              # §4.2.1.2
    (_S.ACTIVE, _I.UNSUBSCRIBE): (_S.TERMINATED, _A.NOTIFY_TERMINATED),  # §4.2.1.4
    (_S.ACTIVE, _I.CHANGED): (_S.ACTIVE, _A.NOTIFY_PARTIAL),             # §4.2.2
    (_S.ACTIVE, _I.EXPIRED): (_S.TERMINATED, _A.NOTIFY_TERMINATED),      # §4.2.2
    (_S.ACTIVE, _I.GONE): (_S.TERMINATED, _A.NOTIFY_TERMINATED),         # §4.2.2
    (_S.TERMINATED, _I.SUBSCRIBE): (_S.TERMINATED, _A.REJECT_481),       # §4.2.1.4
    (_S.TERMINATED, _I.UNSUBSCRIBE): (_S.TERMINATED, _A.REJECT_481),     # §4.2.1.4
    (_S.TERMINATED, _I.CHANGED): (_S.TERMINATED, _A.NONE),
    (_S.TERMINATED, _I.EXPIRED): (_S.TERMINATED, _A.NONE),
    (_S.TERMINATED, _I.GONE): (_S.TERMINATED, _A.NONE),
    (_S.INIT, _I.CHANGED): (_S.INIT, _A.NONE),
    (_S.INIT, _I.EXPIRED): (_S.TERMINATED, _A.NONE),
    (_S.INIT, _I.GONE): (_S.TERMINATED, _A.NONE),
}

#: the ``reason`` of the terminating NOTIFY per input (RFC 6665 §4.1.3)
_REASONS = {SubInput.UNSUBSCRIBE: "timeout", SubInput.EXPIRED: "timeout",
            SubInput.GONE: "noresource"}


def event_package(value: str | None) -> str | None:
    """The package name of an Event header value (RFC 6665 §8.2.1), lower-case."""
    if not value:
        return None
    name = value.split(";", 1)[0].strip().lower()
    return name or None


@dataclass(frozen=True, slots=True)
class SubscribeCheck:
    """The outcome of :func:`check_subscribe`: a refusal (``status`` >= 400 with its
    headers) or the ``expires`` granted."""

    status: int
    expires: int = 0
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return self.status < 300


def check_subscribe(event: str | None, expires: str | None, packages: Sequence[str], *,
                    default: int, min_expires: int, max_expires: int) -> SubscribeCheck:
    """RFC 6665 §4.2.1.1: the package and the interval of a SUBSCRIBE."""
    name = event_package(event)
    if name is None or name not in packages:
        # §4.2.1.1 / §8.2.2: 489 Bad Event, Allow-Events lists the packages we serve
        return SubscribeCheck(489, headers=(("Allow-Events", ", ".join(packages)),))
    if expires is None or not expires.strip():
        return SubscribeCheck(200, default)
    text = expires.strip()
    if not text.isdigit():
        return SubscribeCheck(400, headers=(("Warning", '399 - "bad Expires"'),))
    value = int(text)
    if 0 < value < min_expires:
        # §4.2.1.1: too short -> 423 Interval Too Brief with Min-Expires
        return SubscribeCheck(423, headers=(("Min-Expires", str(min_expires)),))
    return SubscribeCheck(200, min(value, max_expires))


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscription as its notifier holds it.  ``version`` counts the NOTIFYs with a
    body (RFC 4575 §4.6: the document version grows by one per notification)."""

    package: str
    resource: str                   # what is watched (a conference URI...)
    subscriber: str                 # the AOR of the subscriber
    state: SubState = SubState.INIT
    deadline: float = 0.0
    version: int = 0
    reason: str | None = None       # of the termination

    def step(self, event: SubInput, now: float, expires: int = 0
             ) -> tuple[Subscription, SubAction]:
        """Apply ``event`` (``expires``: granted for SUBSCRIBE) per :data:`TRANSITIONS`."""
        new_state, action = TRANSITIONS[(self.state, event)]
        sub = replace(self, state=new_state)
        if event is SubInput.SUBSCRIBE and new_state is SubState.ACTIVE:
            sub = replace(sub, deadline=now + expires)
        if new_state is SubState.TERMINATED and self.state is not SubState.TERMINATED:
            sub = replace(sub, reason=_REASONS.get(event, "timeout"))
        if action in (SubAction.NOTIFY_FULL, SubAction.NOTIFY_PARTIAL):
            sub = replace(sub, version=sub.version + 1)
        return sub, action

    def state_header(self, now: float) -> str:
        """``Subscription-State`` of the next NOTIFY (RFC 6665 §4.1.3: ``active`` with the
        time left, ``terminated`` with the reason)."""
        if self.state is SubState.TERMINATED:
            return f"terminated;reason={self.reason or 'timeout'}"
        left = max(0, math.ceil(self.deadline - now))
        return f"active;expires={left}"
