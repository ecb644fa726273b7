"""Abuse limits of the server: failed-authentication lockouts and overload detection.

* :class:`AuthGuard` (issue 7 item 6, pike/antiflood style): failed digest authentications are
  counted per source address and per user name in a sliding window; past the limit the source
  (or the user) is locked out for a while (403), and every failure and lockout is logged on
  one line that fail2ban can read (docs/security.md has the filter).
* :class:`LoadMonitor` (issue 7 item 7): the event loop's lag, measured by a heartbeat; the
  endpoint sheds new requests with 503 + Retry-After while it or the number of unanswered
  requests is past its bound.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["AuthGuard", "AuthLimits", "LoadMonitor", "security_log"]

# The logger of the lines docs/security.md's fail2ban filter matches.
security_log = logging.getLogger("simpleim.server.security")


@dataclass(frozen=True, slots=True)
class AuthLimits:
    """Failed authentications allowed per ``window`` seconds before a lockout of
    ``lockout`` seconds; 0 turns a limit off."""

    per_source: int = 10
    per_user: int = 20
    window: float = 60.0
    lockout: float = 300.0
    max_tracked: int = 100_000


class _Counter:
    """Failure times per key within a window, and lockouts; bounded in size."""

    __slots__ = ("limit", "failures", "locked")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.failures: dict[str, list[float]] = {}
        self.locked: dict[str, float] = {}

    def remaining(self, key: str, now: float) -> float:
        until = self.locked.get(key)
        if until is None:
            return 0.0
        if until <= now:
            del self.locked[key]
            return 0.0
        return until - now

    def fail(self, key: str, now: float, limits: AuthLimits) -> bool:
        """Count one failure; True when it starts a lockout."""
        if self.limit <= 0:
            return False
        if len(self.failures) >= limits.max_tracked:
            self._prune(now, limits)
        times = [t for t in self.failures.get(key, ()) if t > now - limits.window]
        times.append(now)
        if len(times) >= self.limit:
            self.failures.pop(key, None)
            self.locked[key] = now + limits.lockout
            return True
        self.failures[key] = times
        return False

    def _prune(self, now: float, limits: AuthLimits) -> None:
        for key in [k for k, v in self.failures.items() if v[-1] <= now - limits.window]:
            del self.failures[key]
        if len(self.failures) >= limits.max_tracked:
            self.failures.clear()  # a flood of distinct keys: start again, stay bounded
        for key in [k for k, until in self.locked.items() if until <= now]:
            del self.locked[key]


def _quoted(text: str) -> str:
    # a user name is attacker-controlled: JSON-quoted (no spaces or quotes break out of it)
    return json.dumps(text[:64], ensure_ascii=True)


class AuthGuard:
    """Counts failed authentications per source host and per user name."""

    def __init__(self, limits: AuthLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._sources = _Counter(limits.per_source)
        self._users = _Counter(limits.per_user)

    def locked_source(self, host: str) -> float:
        """Seconds left of a lockout of ``host`` (0: not locked)."""
        return self._sources.remaining(host, self._clock())

    def locked_user(self, user: str) -> float:
        return self._users.remaining(user, self._clock())

    def failure(self, host: str, port: int, transport: str, user: str | None,
                method: str) -> None:
        """Record (and log) one failed authentication."""
        now = self._clock()
        # One line per failure, the source first and unquoted (fail2ban's <HOST>), the
        # user name last and quoted: docs/security.md "fail2ban".
        security_log.warning("auth failure from %s port=%d transport=%s method=%s user=%s",
                             host, port, transport, method, _quoted(user or ""))
        limits = self.limits
        if self._sources.fail(host, now, limits):
            security_log.warning("auth lockout of source %s for %.0f s after %d failures",
                                 host, limits.lockout, limits.per_source)
        if user and self._users.fail(user, now, limits):
            security_log.warning("auth lockout of user %s for %.0f s after %d failures "
                                 "(last from %s)", _quoted(user), limits.lockout,
                                 limits.per_user, host)


class LoadMonitor:
    """Event-loop lag and utilisation from a heartbeat every ``interval`` seconds.

    ``lag`` is the heartbeat's latest delay; ``busy`` the fraction of the last interval spent
    handling received messages (from the ``busy_seconds`` counter).  Under a flood the loop
    can stay responsive while the socket's queue grows: utilisation near 1 is the signal.
    """

    def __init__(self, busy_seconds: Callable[[], float] | None = None,
                 interval: float = 0.1) -> None:
        self.interval = interval
        self.lag = 0.0
        self.busy = 0.0
        self._busy_seconds = busy_seconds
        self._busy_last = 0.0
        self._beat_at = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._schedule()

    def _schedule(self) -> None:
        loop = self._loop
        if loop is None:
            return
        self._beat_at = loop.time()
        if self._busy_seconds is not None:
            self._busy_last = self._busy_seconds()
        self._due = self._beat_at + self.interval
        self._handle = loop.call_at(self._due, self._beat)

    def _beat(self) -> None:
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        self.lag = max(0.0, now - self._due)
        if self._busy_seconds is not None and now > self._beat_at:
            self.busy = (self._busy_seconds() - self._busy_last) / (now - self._beat_at)
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._loop = None
