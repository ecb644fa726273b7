"""The account's inbox: received IMs, IMDNs and is-composing documents become events.

:class:`Inbox` is the :class:`~simpleim.client.context.MessageSink` of the message-carrying
features (pager, chat, large message, file transfer IMDNs): it emits
:class:`~simpleim.client.events.MessageEvent`, keeps the RFC 3994 receiver state, matches
IMDNs against the Tc2 tracker (OMA §15.2) and sends the delivery notification of a message
that arrived outside a session in a SIP MESSAGE (OMA §8.2.1, RFC 5438 §7.2).

:func:`send_pager` sends any body in an out-of-dialog MESSAGE (RFC 3428).
"""

from __future__ import annotations

from collections.abc import Sequence

from simpleim.content.imdn import NotificationType, Status, imdn_route

from .composing import ComposingTracker
from .context import ClientContext
from .events import ImdnEvent, MessageEvent
from .imdn import Tc2Tracker
from .pager import (
    DEFAULT_ACCEPT_CONTACT,
    Decoded,
    DeferredInfo,
    build_request,
    imdn_reply,
    new_call_id,
    new_tag,
    normalize_uri,
)
from .session import imdn_event

__all__ = ["Inbox", "send_pager"]

#: Received out-of-session IMs kept for :meth:`Inbox.mark_displayed`.
KEEP_RECEIVED = 1000


async def send_pager(ctx: ClientContext, to: str, body: bytes, content_type: str, *,
                     accept_contact: str | None = None,
                     extra: Sequence[tuple[str, str]] = ()) -> int:
    """A MESSAGE (RFC 3428 §4) with any body; ``accept_contact`` replaces the default
    ``*;+g.oma.sip-im`` (OMA §8.1.1).  Returns the final status."""
    cfg = ctx.config
    target = normalize_uri(to, cfg.domain)
    req = build_request("MESSAGE", target=target, from_uri=cfg.uri, from_tag=new_tag(),
                        call_id=new_call_id(ctx.host), body=body, content_type=content_type,
                        extra=tuple(extra),
                        accept_contact=accept_contact or DEFAULT_ACCEPT_CONTACT)
    resp = await ctx.ua.request(req)
    return resp.status


class Inbox:
    """Received content to events; IMDN bookkeeping (implements ``MessageSink``)."""

    def __init__(self, ctx: ClientContext) -> None:
        self.ctx = ctx
        self.tracker = Tc2Tracker(ctx.config.timers)
        self.composing = ComposingTracker(ctx.emit)
        # received IMs by imdn.Message-ID (bounded) so that they can be marked displayed
        self._received: dict[str, tuple[Decoded, str]] = {}
        ctx.sessions.on_removed(self.composing.forget_session)

    def sent(self, message_id: str, peer: str, wanted: set[str]) -> None:
        self.tracker.sent(message_id, peer, wanted, self.ctx.now())

    def present(self, decoded: Decoded, sender: str, mode: str,
                session_id: str | None = None, deferred: DeferredInfo | None = None,
                group: str | None = None, subject: str | None = None) -> bool:
        peer = decoded.sender or sender
        if decoded.kind == "imdn":
            self.report_imdn(decoded, sender)
            return False
        if decoded.kind == "composing" and decoded.composing is not None:
            # RFC 3994 §4.3 receiver timing (C-UP-06): active until idle / message / refresh
            self.composing.indication(peer, session_id, decoded.composing)
            return False
        self.composing.message(peer, session_id)
        cpim = decoded.cpim
        if decoded.message_id and mode != "session":
            self._received[decoded.message_id] = (decoded, peer)
            if len(self._received) > KEEP_RECEIVED:
                self._received.pop(next(iter(self._received)))
        when = cpim.datetime.text if cpim and cpim.datetime else None
        if deferred is not None and when is None:
            when = deferred.date  # the server's receive time (RFC 3261 §20.17 Date)
        self.ctx.emit(MessageEvent(peer, decoded.text, decoded.content_type, mode,
                                   decoded.message_id, session_id, decoded.disposition,
                                   when, claimed_sender=decoded.claimed_sender,
                                   deferred=deferred is not None,
                                   deferred_id=deferred.message_id if deferred else None,
                                   group=group, subject=subject))
        return True

    def deliver(self, decoded: Decoded, sender: str, mode: str,
                session_id: str | None = None, deferred: DeferredInfo | None = None,
                group: str | None = None, subject: str | None = None) -> None:
        if not self.present(decoded, sender, mode, session_id, deferred, group, subject):
            return
        doc = imdn_reply(decoded, NotificationType.DELIVERY, Status.DELIVERED,
                         me=self.ctx.config.uri, date_time=self.ctx.now_cpim())
        if doc is not None:
            # OMA §8.2.1: the delivery notification goes in a SIP MESSAGE (RFC 5438 §7.2),
            # to the first imdn.IMDN-Route (a URI-list exploder that aggregates, RFC 5438
            # §6), else to the sender.
            routes = imdn_route(doc)
            self.ctx.spawn(send_pager(self.ctx, routes[0] if routes else
                                      decoded.sender or sender, doc.to_bytes(),
                                      "message/cpim"))

    def report_imdn(self, decoded: Decoded, peer: str) -> None:
        doc = decoded.imdn
        if doc is None:
            return
        expected = self.tracker.notification(doc.message_id, doc.kind.value)
        if len(decoded.imdns) > 1 or (decoded.imdns and doc.recipient_uri):
            # RFC 5438 §8.3 aggregated IMDN: one event per recipient
            for part in decoded.imdns:
                self.ctx.emit(ImdnEvent(part.message_id, part.recipient_uri or peer,
                                        part.kind.value, part.status.value, expected))
            return
        ev = imdn_event(decoded, peer, expected)
        if ev is not None:
            self.ctx.emit(ev)

    def handle_timer(self) -> None:
        """Tc2 (OMA §15.2): forget notifications that did not come in time."""
        self.tracker.handle_timer(self.ctx.now())

    async def mark_displayed(self, message_id: str) -> bool:
        """The display notification (RFC 5438 §7.2.1.2) of an IM received outside a
        session, in a SIP MESSAGE (OMA §8.2.1); False when unknown or not asked for."""
        item = self._received.get(message_id)
        if item is None:
            return False
        decoded, sender = item
        doc = imdn_reply(decoded, NotificationType.DISPLAY, Status.DISPLAYED,
                         me=self.ctx.config.uri, date_time=self.ctx.now_cpim())
        if doc is None:
            return False
        routes = imdn_route(doc)  # RFC 5438 §6
        status = await send_pager(self.ctx, routes[0] if routes else sender, doc.to_bytes(),
                                  "message/cpim")
        return 200 <= status < 300

    def close(self) -> None:
        self.composing.close()
