"""RFC 4028 §8: what a proxy does with session timers, sans-I/O.

:func:`proxy_request` looks at a session refresh request (INVITE or UPDATE) on its way
through and returns a :class:`ProxyTimerDecision`: reject it with 422 (its Session-Expires is
below our minimum, §8.1 / §6), or forward it — possibly with a Session-Expires inserted
(§8.1: a proxy MAY insert one when the request has none) or lowered (not below any Min-SE),
and Min-SE raised to our minimum (§8.1, so that nobody downstream picks a smaller interval).
:func:`proxy_response` completes a 2xx whose UAS did not take part (§8.2): when we asked for
a session timer and the UAC supports it (``Supported: timer``), the 2xx gets
``Session-Expires: <interval>;refresher=uac`` and ``Require: timer``, so that the UAC
refreshes.
"""

from __future__ import annotations

from dataclasses import dataclass

from simpleim.errors import ProtocolError
from simpleim.sip.header_values import SessionExpires
from simpleim.sip.message import SipRequest, SipResponse

__all__ = ["ProxyTimerDecision", "ProxyTimerPolicy", "proxy_request", "proxy_response"]

#: RFC 4028 §4: the smallest Session-Expires anybody may use.
ABSOLUTE_MIN_SE = 90


@dataclass(frozen=True, slots=True)
class ProxyTimerPolicy:
    """``session_expires``: the interval we ask for when a request has none (RFC 4028 §4
    recommends 1800 s); ``min_se``: the smallest we accept (>= 90 s); ``insert``: whether
    we insert Session-Expires into initial requests that have none."""

    session_expires: int = 1800
    min_se: int = ABSOLUTE_MIN_SE
    insert: bool = True


@dataclass(frozen=True, slots=True)
class ProxyTimerDecision:
    """``reject_min_se``: answer 422 with this Min-SE.  Otherwise forward; ``interval``: the
    Session-Expires the request now carries (None: none), ``uac_supports``: the UAC said
    ``Supported: timer``, ``inserted``: we put the Session-Expires in."""

    reject_min_se: int | None = None
    interval: int | None = None
    uac_supports: bool = False
    inserted: bool = False


def _tags(values: list[str]) -> set[str]:
    return {v.strip().lower() for v in values}


def proxy_request(req: SipRequest, policy: ProxyTimerPolicy, *, initial: bool
                  ) -> ProxyTimerDecision:
    """RFC 4028 §8.1 for an INVITE / UPDATE going through (``initial``: out of dialog, where
    we may insert a Session-Expires).  Malformed Session-Expires / Min-SE raise
    :class:`~simpleim.sip.message.SipParseError` (400)."""
    if req.method not in ("INVITE", "UPDATE"):
        return ProxyTimerDecision()
    ours = max(policy.min_se, ABSOLUTE_MIN_SE)
    se = req.session_expires
    min_se = req.min_se
    try:
        supports = "timer" in _tags(req.supported)
    except ProtocolError:
        supports = False
    if se is not None and se.delta < ours:
        # §8.1: below our minimum -> 422 (Session Interval Too Small) with our Min-SE (§6).
        return ProxyTimerDecision(reject_min_se=ours)
    floor = max(ours, min_se or 0)
    if (min_se if min_se is not None else ABSOLUTE_MIN_SE) < ours:
        # §8.1: Min-SE raised to our minimum (a missing Min-SE means 90 s, §5).
        req.headers.set("Min-SE", str(ours))
    if se is None:
        if not (initial and policy.insert):
            return ProxyTimerDecision(uac_supports=supports)
        interval = max(policy.session_expires, floor)
        # §8.1: a proxy MAY insert Session-Expires (no refresher: the UAS chooses, §9).
        req.headers.set("Session-Expires", str(interval))
        return ProxyTimerDecision(interval=interval, uac_supports=supports, inserted=True)
    interval = se.delta
    if interval > policy.session_expires >= floor:
        # §8.1: a proxy MAY lower the interval, never below Min-SE.
        interval = policy.session_expires
        req.headers.set("Session-Expires", str(SessionExpires(interval, se.params)))
    return ProxyTimerDecision(interval=interval, uac_supports=supports)


def proxy_response(resp: SipResponse, decision: ProxyTimerDecision) -> None:
    """RFC 4028 §8.2 for a 2xx to a request :func:`proxy_request` forwarded: the UAS did not
    take part (no Session-Expires in the 2xx) but the UAC supports the timer -> the UAC is
    the refresher; without the UAC's support nothing can be done (the session has none)."""
    if not 200 <= resp.status < 300 or decision.interval is None:
        return
    if "session-expires" in resp.headers or not decision.uac_supports:
        return
    resp.headers.set("Session-Expires", f"{decision.interval};refresher=uac")
    required = [v.strip() for v in resp.headers.get_all("Require")]
    if "timer" not in {r.lower() for r in required}:
        resp.headers.add("Require", "timer")
