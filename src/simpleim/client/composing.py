"""RFC 3994 receiver timing for is-composing (C-UP-06, OMA SIMPLE IM SMM-C-020).

One :class:`~simpleim.content.iscomposing.ComposeReceiver` per (peer, session) - ``session``
is ``None`` for pager mode.  RFC 3994 §4.3: an ``active`` indication is shown until an
``idle`` one, a message from that peer, or its refresh interval (the document's
``<refresh>``, else 120 s) passes without a new ``active`` one; then an ``idle`` event is
emitted.  Repeated ``active`` refreshes emit nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from simpleim.content.iscomposing import ComposeReceiver, IsComposing, ReceiverAction

from .events import ComposingEvent

__all__ = ["ComposingTracker"]

Key = tuple[str, str | None]


class ComposingTracker:
    """The peers' composing states of one account, with their expiry timers."""

    def __init__(self, emit: Callable[[ComposingEvent], None],
                 default_refresh: float | None = None) -> None:
        self._emit = emit
        self._default = default_refresh
        self._states: dict[Key, ComposeReceiver] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}

    def state(self, peer: str, session_id: str | None = None) -> str:
        r = self._states.get((peer, session_id))
        return r.state.value if r is not None else "idle"

    def indication(self, peer: str, session_id: str | None, doc: IsComposing) -> None:
        """An is-composing document from ``peer`` (RFC 3994 §4.3)."""
        key = (peer, session_id)
        now = asyncio.get_running_loop().time()
        r = self._states.get(key) or self._new()
        r, action = r.receive(doc, now)
        self._apply(key, r, action)

    def message(self, peer: str, session_id: str | None) -> None:
        """A message from ``peer``: RFC 3994 §4.3 - the peer is idle again."""
        key = (peer, session_id)
        r = self._states.get(key)
        if r is None:
            return
        r, action = r.message_received(asyncio.get_running_loop().time())
        self._apply(key, r, action)

    def forget_session(self, session_id: str) -> None:
        for key in [k for k in self._states if k[1] == session_id]:
            self._drop(key)

    def close(self) -> None:
        for key in list(self._states):
            self._drop(key)

    # ------------------------------------------------------------------ internals
    def _new(self) -> ComposeReceiver:
        return ComposeReceiver() if self._default is None \
            else ComposeReceiver(default_refresh=self._default)

    def _apply(self, key: Key, r: ComposeReceiver, action: ReceiverAction) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        deadline = r.next_deadline()
        if deadline is None:
            self._states.pop(key, None)
        else:
            self._states[key] = r
            loop = asyncio.get_running_loop()
            self._timers[key] = loop.call_at(deadline, self._expire, key)
        if action is ReceiverAction.SHOW_ACTIVE:
            self._emit(ComposingEvent(key[0], "active", key[1]))
        elif action is ReceiverAction.SHOW_IDLE:
            self._emit(ComposingEvent(key[0], "idle", key[1]))

    def _expire(self, key: Key) -> None:
        self._timers.pop(key, None)
        r = self._states.get(key)
        if r is None:
            return
        r, action = r.handle_timer(asyncio.get_running_loop().time())
        self._apply(key, r, action)

    def _drop(self, key: Key) -> None:
        self._states.pop(key, None)
        t = self._timers.pop(key, None)
        if t is not None:
            t.cancel()
