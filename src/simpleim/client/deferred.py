"""Deferred messages on the client (OMA SIMPLE IM §12.1).

* the IM service settings (C-SET-01) are published by
  :class:`simpleim.client.settings.ServiceSettingsFeature`.
* :meth:`DeferredFeature.retrieve` (C-DM-01, §12.1.1): an INVITE to ``sip:Deferred@DOMAIN``
  with ``a=recvonly`` (and a resource-lists body naming the messages, for some of them);
  the server sends each stored message as an MSRP SEND (``multipart/mixed`` with a
  ``message/sip`` part, or ``message/msrp`` for a large message, §12.2.2.5) and ends with BYE.
* :meth:`DeferredFeature.on_invite` (C-DM-05, §12.2.2.2): the same delivery on a session the
  server opens (its Contact says ``automata``, its offer ``a=sendonly``) when we have
  ``offline-delivery`` on; answered ``a=recvonly``.
  Each delivered message is presented like a MESSAGE (a
  :class:`~simpleim.client.events.MessageEvent` with ``deferred=True`` and the server's
  receive time), with its delivery IMDN when asked (C-DM-04).  Without ``offline-delivery``
  the server re-sends stored messages as MESSAGE when we register (msilo-style).
* :class:`DeferredFeature` deletes stored messages (C-DM-03): a REFER to
  ``sip:Delete@DOMAIN`` whose Refer-To is the message's Message-ID URI, or
  ``sip:Deferred@DOMAIN`` for all of them.  We send ``Refer-Sub: false`` (RFC 4488): the
  outcome is the REFER's final response and no subscription dialog is kept.  Several
  messages go in one REFER (:meth:`DeferredFeature.delete_many`, §12.1.3.3: RFC 5368
  multiple-refer, :mod:`simpleim.client.multirefer`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from simpleim.content.resource_lists import Entry, ResourceList, ResourceLists
from simpleim.errors import ProtocolError, SimpleImError
from simpleim.sdp import SessionDescription, chat_stream
from simpleim.sdp.msrp import Direction
from simpleim.sdp.offer_answer import Capabilities
from simpleim.sip.message import SipRequest
from simpleim.sip.multipart import MultipartPart
from simpleim.transport.sip import IncomingRequest

from .context import ClientContext
from .deferred_parts import delivered_requests
from .features import SIP_IM
from .invites import InviteFacts, InviteRouter, accept, establish, reject
from .multirefer import delete_refer
from .pager import build_request, new_call_id, new_tag
from .session import InviteSession, SessionFailed, receive_until_ended

__all__ = ["DeferredFeature", "DeferredSession", "PUSH_TYPES", "is_deferred_push"]

log = logging.getLogger("simpleim.client")

#: what a push / retrieval session carries (§12.2.2.5)
PUSH_TYPES = ("multipart/mixed", "message/sip", "message/msrp")
PUSH_CAPS = Capabilities(accept_types=PUSH_TYPES, accept_wrapped_types=("*",),
                         accept_files=False, tls=False)


class DeferredSession(InviteSession):
    kind = "deferred"


def is_deferred_push(facts: InviteFacts) -> bool:
    """§12.2.2.2 e: the DMF's push INVITE has ``automata`` in its Contact."""
    return facts.automata


def stored_requests(content_type: str, body: bytes) -> list[SipRequest]:
    """The messages a delivery SEND carries (§12.2.2.5): its message/sip and
    message/sipfrag MESSAGEs, and each large message (message/msrp part) as a MESSAGE
    (:func:`~simpleim.client.deferred_parts.delivered_requests`); a body that is not one
    of those raises ProtocolError (415)."""
    return delivered_requests(content_type, body)


class DeferredFeature:
    """Deleting the messages the server stored for us (OMA §12.1.3)."""

    def __init__(self, ctx: ClientContext,
                 present: Callable[[SipRequest], bool] | None = None) -> None:
        self.ctx = ctx
        #: presents a stored MESSAGE (PagerMessages.present_stored)
        self.present = present

    def register(self, router: InviteRouter) -> None:
        router.add("deferred", is_deferred_push, self.on_invite, priority=200)

    async def on_invite(self, inc: IncomingRequest, offer: SessionDescription) -> None:
        """C-DM-05: the server pushes our stored messages; answered ``a=recvonly``."""
        ctx = self.ctx
        session = DeferredSession(ctx, str(inc.request.from_addr.uri), is_uac=False,
                                  call_id=inc.request.call_id)
        try:
            await accept(ctx, session, inc, offer, PUSH_CAPS)
        except ProtocolError as exc:
            reject(session, inc, exc.status if exc.status >= 400 else 488, exc.detail)
            return
        await self._drain(session, timeout=None)

    async def retrieve(self, message_ids: Sequence[str] | None = None, *,
                       timeout: float = 60.0) -> int:
        """C-DM-01 (§12.1.1): fetch the stored messages - all, or ``message_ids`` - over a
        session with ``a=recvonly``; each is presented as a MessageEvent (``deferred``).
        How many arrived: 0 when nothing is stored (the server's 488 + "125 No messages",
        §12.2.1.1.2 step 1); raises :class:`~simpleim.client.session.SessionFailed` with
        the SIP status otherwise."""
        ctx = self.ctx
        target = f"sip:Deferred@{ctx.config.domain}"
        parts: list[MultipartPart] = []
        if message_ids:
            doc = ResourceLists((ResourceList(tuple(Entry(self.message_uri(m))
                                                    for m in message_ids)),))
            parts.append(MultipartPart.create("application/resource-lists+xml",
                                              doc.to_bytes()))
        session = DeferredSession(ctx, target, is_uac=True,
                                  call_id=f"{new_tag()}{new_tag()}@{ctx.msrp.host}")
        try:
            await establish(ctx, session, target,
                            lambda i, local: chat_stream(local, accept_types=PUSH_TYPES,
                                                         accept_wrapped_types=("*",),
                                                         direction=Direction.RECVONLY),
                            1, accept_contact=f"*;{SIP_IM}", parts_after=parts,
                            timeout=timeout)
        except SessionFailed as exc:
            if exc.status == 488:       # our offer is a=recvonly: nothing is stored
                return 0
            raise
        return await self._drain(session, timeout=timeout)

    async def _drain(self, session: InviteSession, timeout: float | None) -> int:
        """Present what the server sends until its BYE; how many messages."""
        count = 0

        def take(msg: object) -> None:
            nonlocal count
            sink = getattr(msg, "sink", None)
            data = bytes(sink.data) if sink is not None and hasattr(sink, "data") else b""
            ctype = getattr(msg, "content_type", None) or ""
            try:
                requests = stored_requests(ctype, data)
            except SimpleImError as exc:
                log.info("deferred delivery: unreadable item (%s)", exc)
                return
            for req in requests:
                if self.present is not None and self.present(req):
                    count += 1

        await receive_until_ended(session, take, timeout)
        return count

    def message_uri(self, message_id: str) -> str:
        """``ID``, ``ID@host`` or ``sip:ID@host`` -> the Message-ID URI (DM-05 form)."""
        text = message_id.strip().strip("<>")
        if text.startswith("sip:"):
            return text
        if "@" not in text:
            text = f"{text}@{self.ctx.config.domain}"
        return "sip:" + text

    async def _refer(self, refer_to: str) -> int:
        cfg = self.ctx.config
        req = build_request(
            "REFER", target=f"sip:Delete@{cfg.domain}", from_uri=cfg.uri, from_tag=new_tag(),
            call_id=new_call_id(self.ctx.host), contact=self.ctx.contact,
            extra=(("Refer-To", f"<{refer_to}>"), ("Refer-Sub", "false")))
        resp = await self.ctx.ua.request(req)
        return resp.status

    async def delete(self, message_ids: Sequence[str]) -> list[int]:
        """Delete the given stored messages; one final status per message (2xx: deleted,
        403: not ours, 404: no such message)."""
        return [await self._refer(self.message_uri(m)) for m in message_ids]

    async def delete_many(self, message_ids: Sequence[str]) -> int:
        """§12.1.3.3: several stored messages in one REFER (RFC 5368 multiple-refer, a
        resource-lists body of their Message-ID URIs); its final status (2xx: deleted)."""
        req = delete_refer(self.ctx, [self.message_uri(m) for m in message_ids])
        return (await self.ctx.ua.request(req)).status

    async def delete_all(self) -> int:
        """Delete every stored message (§12.1.3.4: Refer-To sip:Deferred@DOMAIN)."""
        return await self._refer(f"sip:Deferred@{self.ctx.config.domain}")
