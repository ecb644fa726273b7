"""Pager mode IMs (OMA SIMPLE IM §8.1-8.2, RFC 3428) with the switch to large message mode.

``account.pager.send("bob", "hi")``: pager mode (MESSAGE, §8.1.1) up to ``pager_max`` bytes
of CPIM, large message mode (INVITE + MSRP, §9.1) above.  Incoming MESSAGEs (§8.2.1) are
answered 200 with User-Agent, decoded and handed to the inbox (which sends the delivery
IMDN when one was asked for).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from simpleim.content.resource_lists import (
    RECIPIENT_LIST_DISPOSITION,
    RECIPIENT_LIST_MESSAGE,
    RESOURCE_LISTS_CONTENT_TYPE,
    Entry,
    ResourceList,
    ResourceLists,
)
from simpleim.errors import ContentError
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.sip.multipart import MultipartPart, build_multipart
from simpleim.transport.sip import IncomingRequest

from .context import ClientContext
from .events import ErrorEvent
from .features import USER_AGENT
from .groupchat import FACTORY_USER
from .inbox import Inbox, send_pager
from .largemsg import LargeMessages
from .pager import (
    DEFERRED_ID_HEADER,
    Decoded,
    DeferredInfo,
    build_im,
    build_request,
    choose_mode,
    decode_body,
    group_relay,
    list_message_part,
    new_call_id,
    new_message_id,
    new_tag,
    normalize_uri,
    sip_identity,
)
from .session import SessionFailed, wanted_notifications

__all__ = ["ACCEPTED_TYPES", "PagerMessages", "SendResult", "failure_reason"]

#: OMA §5.4 step 2 / §8.2.1 step 2: the Accept-Contact tag of a System Message.
SYSTEM_MESSAGE_TAG = "+g.oma.sip-im.system-message"
#: the content of an extended group advertisement (OMA §8.2.1 step 3)
GROUP_ADVERTISEMENT = "application/vnd.poc.group-advertisement+xml"

#: Appendix I EXPLODER-URI user part (the Appendix F.2 convention): sip:Exploder@DOMAIN.
EXPLODER_USER = "Exploder"
#: RFC 3261 §21.4.16: what we take, listed in a 415.
ACCEPTED_TYPES = ("message/cpim, text/plain, message/imdn+xml, "
                  "application/im-iscomposing+xml")


@dataclass(frozen=True)
class SendResult:
    """Outcome of :meth:`PagerMessages.send`: ``mode`` pager / pager-plain / large, SIP
    ``status``."""

    message_id: str
    mode: str
    status: int


def failure_reason(resp: SipResponse) -> str:
    """The reason phrase with the texts of the response's Warning headers (RFC 3261
    §20.43; OMA §5.6: ``Forbidden: 122 Function not allowed``)."""
    texts = []
    for value in resp.headers.get_all("Warning"):
        start, end = value.find('"'), value.rfind('"')
        if 0 <= start < end:
            texts.append(value[start + 1:end])
    reason = resp.reason or ""
    return ": ".join([reason, *texts]) if texts else reason


class PagerMessages:
    """The pager-mode feature of an account."""

    def __init__(self, ctx: ClientContext, inbox: Inbox, large: LargeMessages) -> None:
        self.ctx = ctx
        self.inbox = inbox
        self.large = large
        # Message-ID URIs of deferred messages already presented (bounded, in order)
        self._deferred_seen: dict[str, None] = {}

    async def send(self, to: str, text: str | bytes, *,
                   content_type: str = "text/plain", final_report: bool = False) -> SendResult:
        """Send an IM; raises :class:`SessionFailed` with the SIP status when the recipient
        refused or was unreachable.  ``final_report`` (OMA §5.7.2, for a large message to
        a pre-defined group): large message mode whatever the size, the CPIM asks for the
        Final Delivery Report, a FinalReportEvent per recipient."""
        ctx = self.ctx
        cfg = ctx.config
        target = normalize_uri(to, cfg.domain)
        body = text.encode("utf-8") if isinstance(text, str) else text
        mid = new_message_id()
        cpim = build_im(sender=cfg.uri, recipient=target, body=body, content_type=content_type,
                        message_id=mid, imdn=cfg.imdn, date_time=ctx.now_cpim(),
                        final_report=final_report).to_bytes()
        if final_report or choose_mode(len(cpim), cfg.pager_max) == "large":
            status = await self.large.send(target, cpim, mid, final_report=final_report)
            return SendResult(mid, "large", status)
        req = build_request("MESSAGE", target=target, from_uri=cfg.uri, from_tag=new_tag(),
                            call_id=new_call_id(ctx.host), body=cpim,
                            content_type="message/cpim", display_name=cfg.display_name)
        resp = await ctx.ua.request(req)
        accept = (resp.headers.get("Accept") or "").lower()
        if resp.status == 415 and content_type.startswith("text/") \
                and "message/cpim" not in accept:
            # RFC 3428 §11 / RFC 3261 §21.4.16: the peer lists what it takes (baresip:
            # text/plain only) - send the bare text, without CPIM and IMDN.
            status = await self.send_raw(target, body, content_type)
            if not 200 <= status < 300:
                raise SessionFailed(status, "refused")
            return SendResult(mid, "pager-plain", status)
        if not 200 <= resp.status < 300:
            raise SessionFailed(resp.status, failure_reason(resp))
        # OMA §8.1.1 / §15.2: store the Message-ID for Tc2 after the 202/200.
        self.inbox.sent(mid, target, wanted_notifications(cfg.imdn))
        return SendResult(mid, "pager", resp.status)

    async def send_list(self, to: Sequence[str], text: str | bytes, *,
                        content_type: str = "text/plain",
                        final_report: bool = False) -> SendResult:
        """One pager IM to several recipients through the server's URI-list exploder
        (OMA SIMPLE IM §8.1.1, RFC 5365: ``Require: recipient-list-message``, the CPIM IM
        and the recipient list in ``multipart/mixed``, sent to ``sip:Exploder@DOMAIN``);
        above the pager size a large message session to the conference factory with the
        list (§9.1.1.2 step 3, RFC 5366; mode ``large-list``).
        The server answers 202; the delivery notifications come back as one aggregated
        IMDN, an :class:`ImdnEvent` per recipient.  ``final_report``: large message mode
        whatever the size with the Final Delivery Report requested (OMA §5.7.2), a
        FinalReportEvent per recipient.  Raises :class:`SessionFailed`."""
        ctx = self.ctx
        cfg = ctx.config
        targets = list(dict.fromkeys(normalize_uri(t, cfg.domain) for t in to))
        body = text.encode("utf-8") if isinstance(text, str) else text
        mid = new_message_id()
        exploder = f"sip:{EXPLODER_USER}@{cfg.domain}"
        cpim = build_im(sender=cfg.uri, recipient=exploder, body=body,
                        content_type=content_type, message_id=mid, imdn=cfg.imdn,
                        date_time=ctx.now_cpim(), final_report=final_report).to_bytes()
        if final_report or choose_mode(len(cpim), cfg.pager_max) == "large":
            # §9.1.1.2 step 3: a large message session to the conference factory with the
            # recipient list; the server sends each recipient a copy (§9.3)
            status = await self.large.send(f"sip:{FACTORY_USER}@{cfg.domain}", cpim, mid,
                                           recipients=targets, final_report=final_report)
            return SendResult(mid, "large-list", status)
        lists = ResourceLists((ResourceList(tuple(Entry(t) for t in targets)),))
        multipart, mtype = build_multipart([
            MultipartPart.create("message/cpim", cpim),
            MultipartPart.create(RESOURCE_LISTS_CONTENT_TYPE, lists.to_bytes(),
                                 (("Content-Disposition", RECIPIENT_LIST_DISPOSITION),))])
        req = build_request("MESSAGE", target=exploder, from_uri=cfg.uri, from_tag=new_tag(),
                            call_id=new_call_id(ctx.host), body=multipart, content_type=mtype,
                            display_name=cfg.display_name,
                            extra=(("Require", RECIPIENT_LIST_MESSAGE),))
        resp = await ctx.ua.request(req)
        if not 200 <= resp.status < 300:
            raise SessionFailed(resp.status, failure_reason(resp))
        self.inbox.sent(mid, exploder, wanted_notifications(cfg.imdn))
        return SendResult(mid, "pager-list", resp.status)

    async def send_raw(self, to: str, body: bytes, content_type: str, *,
                       accept_contact: str | None = None,
                       extra: Sequence[tuple[str, str]] = ()) -> int:
        """A MESSAGE with any body (IMDN, is-composing, plain text for non-RCS peers);
        ``accept_contact`` replaces the default ``*;+g.oma.sip-im``.  Returns the status."""
        return await send_pager(self.ctx, to, body, content_type,
                                accept_contact=accept_contact, extra=extra)

    def on_message(self, inc: IncomingRequest) -> None:
        """OMA §8.2.1: accept, store, present; IMDN delivery notification when requested."""
        req = inc.request
        # issue 7 item 5: not the CPIM From; a pre-defined group's copy: its Referred-By
        sender, group = group_relay(req)
        try:
            decoded = self._decode(req, sender)
        except ContentError as exc:
            hdrs: list[tuple[str, str]] = []
            if exc.status == 415:
                hdrs.append(("Accept", ACCEPTED_TYPES))
                hdrs.append(("Accept-Encoding", "deflate, gzip"))
            inc.reply(exc.status, headers=hdrs)
            self.ctx.emit(ErrorEvent(f"bad MESSAGE from {sender}: {exc.detail}", exc.status))
            return
        # RFC 3428 §7: 200 OK; OMA §8.2.1: with User-Agent.
        inc.reply(200, headers=[("User-Agent", USER_AGENT)], to_tag=new_tag())
        self._present(req, sender, decoded, group)

    def present_stored(self, req: SipRequest) -> bool:
        """A MESSAGE the server kept for us, delivered inside a push or retrieval session
        (OMA §12.2.2.5, C-DM-05: a message/sip part): presented as if it had come by
        MESSAGE, flagged deferred with the server's receive time.  False when its content
        cannot be read (an ErrorEvent says why)."""
        sender = sip_identity(req)
        try:
            decoded = self._decode(req, sender)
        except ContentError as exc:
            self.ctx.emit(ErrorEvent(f"bad deferred message from {sender}: {exc.detail}",
                                     exc.status))
            return False
        self._present(req, sender, decoded)
        return True

    def _decode(self, req: SipRequest, sender: str) -> Decoded:
        ctype, body = list_message_part(req)  # a copy from a URI-list exploder
        return decode_body(ctype, body, content_encoding=req.headers.get("Content-Encoding"),
                           sender=sender)

    def _present(self, req: SipRequest, sender: str, decoded: Decoded,
                 group: str | None = None) -> None:
        deferred = None
        stored_id = req.headers.get(DEFERRED_ID_HEADER)
        if stored_id:
            # A message the server kept for us (OMA §12.2.2.3); the server re-sends it when
            # a crash came between our 200 and its delete: present it once only.
            key = stored_id.strip().strip("<>")
            if key in self._deferred_seen:
                return
            self._deferred_seen[key] = None
            if len(self._deferred_seen) > 10_000:
                self._deferred_seen.pop(next(iter(self._deferred_seen)))
            deferred = DeferredInfo(key, req.headers.get("Date"))
        # OMA §8.2.1 step 2: a System Message (the IM server's, §5.4) is presented apart:
        # its MessageEvent has mode "system".
        system = any(SYSTEM_MESSAGE_TAG in v.lower()
                     for v in req.headers.get_all("Accept-Contact"))
        # §8.2.1 step 3: an extended group advertisement is presented apart, by its Subject.
        mode = "system" if system else \
            "group-advertisement" if decoded.content_type == GROUP_ADVERTISEMENT else "pager"
        # OMA §12.1.4 (C-DM-04): the delivery IMDN of a deferred message goes out like any.
        self.inbox.deliver(decoded, sender, mode, deferred=deferred, group=group,
                           subject=req.headers.get("Subject"))
