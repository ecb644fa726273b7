"""SUBSCRIBE/NOTIFY dialogs of the server's roles (RFC 6665 notifier; RFC 3515 implicit
``refer`` subscriptions), reusable by any role with state to publish (the conference event
package of the Controlling Function, RFC 4575; later history or deferred REFERs).

A role hands an incoming SUBSCRIBE to :meth:`Notifier.subscribe` with the function that
renders its state (:data:`Render`); the notifier answers (489 for a package it was not told
to serve, 423, 200 with Contact and Expires), creates the dialog (RFC 3261 §12.1.1), sends
the first NOTIFY with the full state (RFC 6665 §4.2.1.2), answers refreshes and
``Expires: 0`` (a last NOTIFY, ``terminated``), ends the subscription at its deadline, and
sends what the role reports with :meth:`Notifier.changed` (partial state, RFC 4575 §4.6) and
:meth:`Notifier.gone` (``terminated;reason=noresource``).  NOTIFYs of one subscription leave
in order, one at a time; a 481 / 408 to one ends it (RFC 6665 §4.2.2).  The decisions are the
sans-I/O table of :mod:`simpleim.sip.subscription`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from simpleim.errors import DialogError, ProtocolError
from simpleim.server.roles import SERVER_PRODUCT
from simpleim.sip.dialog import Dialog, DialogId, DialogTable
from simpleim.sip.message import SipRequest
from simpleim.sip.subscription import (
    SubAction,
    SubInput,
    Subscription,
    SubState,
    check_subscribe,
)
from simpleim.transport.sip import IncomingRequest, SipEndpoint
from simpleim.transport.sip_addr import TransportAddr

__all__ = ["Notifier", "NotifierConfig", "Render", "Watch"]

log = logging.getLogger("simpleim.server.notifier")

#: What a NOTIFY of ``sub`` carries: (content type, body), None for no body.  The second
#: argument: None for the whole state (first NOTIFY, refresh), else the keys of what changed
#: since the subscription's last NOTIFY (as the role named them to :meth:`Notifier.changed`).
Render = Callable[[Subscription, tuple[str, ...] | None], tuple[str, bytes] | None]


@dataclass(frozen=True, slots=True)
class NotifierConfig:
    """Intervals of the subscriptions (RFC 6665 §4.2.1.1)."""

    default_expires: int = 3600
    min_expires: int = 60
    max_expires: int = 7200


class Watch:
    """One subscription dialog: its state, dialog, renderer and where NOTIFYs go."""

    def __init__(self, sub: Subscription, dialog: Dialog, dest: TransportAddr,
                 render: Render) -> None:
        self.sub = sub
        self.dialog = dialog
        self.dest = dest
        self.render = render
        self.lock = asyncio.Lock()
        self.timer: asyncio.Task[None] | None = None
        self.notified = 0           # NOTIFYs answered 2xx
        #: changes waiting for the NOTIFY queued behind the one in flight (None: none queued;
        #: a None key: a change the role did not name -> the whole state)
        self.queued: set[str | None] | None = None

    @property
    def id(self) -> DialogId:
        return self.dialog.id


class Notifier:
    """The server's subscription dialogs (every package, every resource)."""

    def __init__(self, endpoint: SipEndpoint, config: NotifierConfig = NotifierConfig(),  # noqa: B008
                 clock: Callable[[], float] | None = None) -> None:
        self.endpoint = endpoint
        self.config = config
        self._clock = clock or endpoint.now
        self._watches: dict[DialogId, Watch] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ queries
    def watches(self, resource: str, package: str) -> list[Watch]:
        return [w for w in self._watches.values()
                if w.sub.resource == resource and w.sub.package == package
                and w.sub.state is SubState.ACTIVE]

    def owns(self, request: SipRequest) -> bool:
        """Is ``request`` within one of our subscription dialogs?"""
        dialog_id = DialogTable.id_for_incoming(request)
        return dialog_id is not None and dialog_id in self._watches

    # ------------------------------------------------------------------ SUBSCRIBE
    def subscribe(self, inc: IncomingRequest, *, packages: Sequence[str], resource: str,
                  subscriber: str, contact: str, render: Render) -> Watch | None:
        """An initial SUBSCRIBE for ``resource`` (RFC 6665 §4.2.1): refused (489, 423, 400)
        or answered 200 and followed by the first NOTIFY (the full state)."""
        req = inc.request
        cfg = self.config
        check = check_subscribe(req.headers.get("Event"), req.headers.get("Expires"),
                                packages, default=cfg.default_expires,
                                min_expires=cfg.min_expires, max_expires=cfg.max_expires)
        if not check.ok:
            inc.reply(check.status, headers=[*check.headers, ("Server", SERVER_PRODUCT)])
            return None
        package = (req.headers.get("Event") or "").split(";", 1)[0].strip().lower()
        resp = req.create_response(200, to_tag=secrets.token_hex(6), copy_record_route=True)
        resp.headers.add("Contact", contact)                   # RFC 6665 §4.2.1.1
        resp.headers.add("Expires", str(check.expires))        # §4.2.1.1: the granted one
        resp.headers.add("Server", SERVER_PRODUCT)
        try:
            dialog = Dialog.from_uas(req, resp)
        except ProtocolError as exc:
            inc.reply(400, headers=[("Warning", f'399 - "{exc.detail}"')])
            return None
        inc.respond(resp)
        watch = Watch(Subscription(package, resource, subscriber), dialog, inc.source, render)
        self._watches[dialog.id] = watch
        self._apply(watch, SubInput.SUBSCRIBE if check.expires else SubInput.UNSUBSCRIBE,
                    check.expires)
        return watch

    def on_request(self, inc: IncomingRequest) -> None:
        """A request in one of our dialogs: a refresh or ``Expires: 0`` (RFC 6665 §4.2.1.2,
        §4.2.1.4); other methods 405."""
        req = inc.request
        dialog_id = DialogTable.id_for_incoming(req)
        watch = self._watches.get(dialog_id) if dialog_id is not None else None
        if watch is None:
            inc.reply(481, headers=[("Server", SERVER_PRODUCT)])
            return
        if req.method != "SUBSCRIBE":
            inc.reply(405, headers=[("Allow", "SUBSCRIBE"), ("Server", SERVER_PRODUCT)])
            return
        try:
            watch.dialog.receive_request(req)
        except DialogError as exc:
            inc.reply(exc.status, headers=[("Server", SERVER_PRODUCT)])
            return
        if watch.sub.state is SubState.TERMINATED:
            inc.reply(481, headers=[("Server", SERVER_PRODUCT)])  # §4.2.1.4
            return
        cfg = self.config
        check = check_subscribe(req.headers.get("Event"), req.headers.get("Expires"),
                                (watch.sub.package,), default=cfg.default_expires,
                                min_expires=cfg.min_expires, max_expires=cfg.max_expires)
        if not check.ok:
            inc.reply(check.status, headers=[*check.headers, ("Server", SERVER_PRODUCT)])
            return
        inc.reply(200, headers=[("Expires", str(check.expires)), ("Server", SERVER_PRODUCT)])
        self._apply(watch, SubInput.SUBSCRIBE if check.expires else SubInput.UNSUBSCRIBE,
                    check.expires)

    # ------------------------------------------------------------------ the role's state
    def changed(self, resource: str, package: str, keys: Sequence[str] | None = None) -> int:
        """The state of ``resource`` changed (``keys``: what changed, e.g. participant URIs;
        None: not said): a partial NOTIFY to each of its active subscriptions (RFC 6665
        §4.2.2); how many were told.

        Rate limit: a subscription has one NOTIFY in flight at a time; changes made while
        one waits for its answer are gathered into the single next NOTIFY, rendered when it
        leaves with every key changed meanwhile (the whole state when a change was not
        named).  A burst of k changes thus costs a subscriber one NOTIFY per round trip, not
        k (issue 10: a group of n joining at once is not n^2 NOTIFYs)."""
        watches = self.watches(resource, package)
        named: tuple[str | None, ...] = tuple(keys) if keys is not None else (None,)
        for watch in watches:
            if watch.queued is not None:
                watch.queued.update(named)           # joins the NOTIFY already waiting
                continue
            watch.queued = set(named)
            self._spawn(self._notify_change(watch))
        return len(watches)

    def gone(self, resource: str, package: str) -> None:
        """``resource`` is no more: every subscription ends (``noresource``)."""
        for watch in self.watches(resource, package):
            self._apply(watch, SubInput.GONE)

    # ------------------------------------------------------------------ internals
    def _apply(self, watch: Watch, event: SubInput, expires: int = 0) -> None:
        now = self._clock()
        watch.sub, action = watch.sub.step(event, now, expires)
        if action is SubAction.NONE:
            return
        if watch.sub.state is SubState.ACTIVE and event is SubInput.SUBSCRIBE:
            self._arm(watch)
        body = watch.render(watch.sub, None) if action is not SubAction.NOTIFY_TERMINATED \
            else None
        state = watch.sub.state_header(now)
        if watch.sub.state is SubState.TERMINATED:
            self._forget(watch)
        self._spawn(self._notify(watch, state, body))

    def _arm(self, watch: Watch) -> None:
        if watch.timer is not None:
            watch.timer.cancel()
        loop = asyncio.get_running_loop()
        watch.timer = loop.create_task(self._expire(watch, watch.sub.deadline))

    async def _expire(self, watch: Watch, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self._clock()))
        watch.timer = None
        if watch.sub.state is SubState.ACTIVE and watch.sub.deadline <= deadline:
            self._apply(watch, SubInput.EXPIRED)    # RFC 6665 §4.2.2

    def _forget(self, watch: Watch) -> None:
        self._watches.pop(watch.id, None)
        if watch.timer is not None and watch.timer is not asyncio.current_task():
            watch.timer.cancel()
        watch.timer = None

    async def _notify(self, watch: Watch, state: str, body: tuple[str, bytes] | None) -> None:
        async with watch.lock:                      # NOTIFYs of a subscription in order
            await self._send(watch, state, body)

    async def _notify_change(self, watch: Watch) -> None:
        """The NOTIFY of the changes gathered in ``watch.queued``, rendered when its turn
        comes (after the NOTIFY in flight got its answer)."""
        async with watch.lock:
            keys, watch.queued = watch.queued or {None}, None
            if watch.sub.state is not SubState.ACTIVE:
                return
            now = self._clock()
            watch.sub, action = watch.sub.step(SubInput.CHANGED, now)
            if action is SubAction.NONE:
                return
            named = None if None in keys or action is SubAction.NOTIFY_FULL \
                else tuple(sorted(k for k in keys if k is not None))
            await self._send(watch, watch.sub.state_header(now), watch.render(watch.sub, named))

    async def _send(self, watch: Watch, state: str, body: tuple[str, bytes] | None) -> None:
        headers: list[tuple[str, object]] = [
            ("Event", watch.sub.package), ("Subscription-State", state),
            ("User-Agent", SERVER_PRODUCT)]
        ctype, data = body if body is not None else (None, b"")
        try:
            req = watch.dialog.create_request("NOTIFY", headers=headers, body=data,
                                              content_type=ctype)
            resp = await self.endpoint.request(req, watch.dest)
        except (ProtocolError, OSError) as exc:
            log.info("NOTIFY to %s not sent: %s", watch.sub.subscriber, exc)
            self._end(watch)
            return
        if resp.status in (408, 481) or resp.status >= 500 and resp.status != 503:
            # RFC 6665 §4.2.2: the subscriber is gone -> the subscription ends
            self._end(watch)
        elif 200 <= resp.status < 300:
            watch.notified += 1

    def _end(self, watch: Watch) -> None:
        if watch.sub.state is not SubState.TERMINATED:
            watch.sub, _ = watch.sub.step(SubInput.GONE, self._clock())
        self._forget(watch)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Terminate every subscription (best effort) and stop the timers."""
        for watch in list(self._watches.values()):
            if watch.sub.state is SubState.ACTIVE:
                self._apply(watch, SubInput.GONE)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        for task in list(self._tasks):
            task.cancel()
        for watch in list(self._watches.values()):
            self._forget(watch)
