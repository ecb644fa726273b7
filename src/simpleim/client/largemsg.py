"""Large message mode (OMA SIMPLE IM §9): one message in its own MSRP session.

Sender (§9.1.1.2, checklist C-LM-02/04): INVITE with ``Accept-Contact: *;+g.oma.sip-im;
+g.oma.sip-im.large-message``, SDP ``a=sendonly``; one MSRP SEND; BYE once the 200 to the last
chunk arrived.  Receiver (§9.2.1, C-LM-06/07/08): 200 with a recvonly answer (488 when no
accept-types fit), receive the message, wait for the BYE.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import replace

from simpleim.content.final_report import FINAL_REPORT_TYPES
from simpleim.content.resource_lists import (
    RECIPIENT_LIST_INVITE,
    build_recipient_list,
    recipient_list_headers,
)
from simpleim.errors import ProtocolError
from simpleim.msrp import MemorySink
from simpleim.sdp import (
    Capabilities,
    Direction,
    FileDescription,
    FileSelector,
    LocalEndpoint,
    MsrpMedia,
    SessionDescription,
    chat_stream,
)
from simpleim.sip.multipart import MultipartPart
from simpleim.transport.msrp import MsrpTransferError
from simpleim.transport.sip import IncomingRequest

from .context import ClientContext, MessageSink
from .events import ErrorEvent
from .features import ICSI_CPM_LARGEMSG, LARGE_MESSAGE, SIP_IM
from .finalreports import FinalReportWatch
from .invites import InviteRouter, accept, establish, is_large_icsi, is_large_tagged, reject, ring
from .pager import decode_body, group_relay
from .session import InviteSession, SessionFailed

__all__ = ["LargeMessages", "LargeMessageSession", "LARGE_ACCEPT_CONTACT", "LARGE_CAPS"]

#: OMA §9.1.1.2: Accept-Contact with +g.oma.sip-im.large-message; CPM largemsg ICSI.
LARGE_ACCEPT_CONTACT = (f'*;{SIP_IM};{LARGE_MESSAGE};+g.3gpp.icsi-ref='
                        f'"{ICSI_CPM_LARGEMSG.replace(":", "%3A")}"')

#: accept_files: the large message offer may carry ``a=file-selector:size:N`` (CPM-03,
#: RCS trace); the mode is known from the feature tag / ICSI, not from the SDP.
LARGE_CAPS = Capabilities(accept_types=("message/cpim", "text/plain", "*"),
                          accept_wrapped_types=("*",), accept_files=True, tls=False,
                          cema=True)                                  # RFC 6714 (CPM-06)


class LargeMessageSession(InviteSession):
    kind = "large-message"


class LargeMessages:
    """Large message mode of an account (OMA §9)."""

    def __init__(self, ctx: ClientContext, sink: MessageSink) -> None:
        self.ctx = ctx
        self.sink = sink

    def register(self, router: InviteRouter) -> None:
        """§9.2 / CPM-03: the large-message tag or the CPM largemsg ICSI names the mode."""
        router.add("large", is_large_tagged, self.on_invite, priority=400)
        router.add("large", is_large_icsi, self.on_invite, priority=200)

    async def send(self, target: str, cpim: bytes, message_id: str, *,
                   timeout: float = 60.0, recipients: Sequence[str] = (),
                   final_report: bool = False, report_timeout: float = 60.0,
                   msrp_reports: bool = True) -> int:
        """Send one ``message/cpim`` in its own session (§9.1.1.2); returns the status.
        ``target`` a user or a pre-defined group's URI (step 4); with ``recipients`` (SIP
        URIs) the INVITE goes to ``target`` - the conference factory - with them as a URI
        list (step 3, RFC 5366) and the server sends each a copy (§9.3).
        ``final_report`` (``cpim`` carries ``FR.Final-Report: yes``, §5.7.2): the SEND asks
        for MSRP reports (Success-Report / Failure-Report yes, step 3: a MAY;
        ``msrp_reports=False`` leaves them out, the report then comes as a SEND), the
        session stays until the final report marked last came (a FinalReportEvent per
        recipient) or ``report_timeout``, then BYE."""
        ctx = self.ctx
        parts: list[MultipartPart] = []
        extra = [("P-Preferred-Service", ICSI_CPM_LARGEMSG)]
        if recipients:
            parts.append(MultipartPart.create(
                "application/resource-lists+xml", build_recipient_list(recipients).to_bytes(),
                tuple(h for h in recipient_list_headers() if h[0] != "Content-Type")))
            extra.append(("Require", RECIPIENT_LIST_INVITE))          # RFC 5366 §4
        session = LargeMessageSession(ctx, target, is_uac=True,
                                      call_id=f"{secrets.token_hex(12)}@{ctx.msrp.host}")

        def media(_i: int, local: LocalEndpoint) -> MsrpMedia:
            # §5.7.3 step 2: the report may come as a SEND of its own type
            types = ("message/cpim", *FINAL_REPORT_TYPES) if final_report else ("message/cpim",)
            m = chat_stream(local, accept_types=types,
                            accept_wrapped_types=("*",),
                            direction=Direction.SENDONLY)          # §9.1.1.2: sendonly
            # RCS 5.1 / CPM 2.0 large message trace (CPM-03): a=file-selector:size:<bytes>
            return replace(m, file=FileDescription(FileSelector(size=len(cpim))))

        await establish(ctx, session, target, media, 1, accept_contact=LARGE_ACCEPT_CONTACT,
                        timeout=timeout, extra_headers=extra, parts_after=parts)
        stream = next(iter(session.streams.values()))
        watch = FinalReportWatch(ctx, stream, target) if final_report else None
        try:
            sent = await stream.send(cpim, "message/cpim",
                                     success_report=final_report and msrp_reports)
        except MsrpTransferError as exc:
            await session.end(f"MSRP send failed: {exc}")
            raise SessionFailed(exc.status, exc.comment or "MSRP send failed") from exc
        if watch is not None:
            # §5.7.2 / §9.4.2: the session stays until the final report (not the 200)
            await watch.wait((sent.message_id, message_id), message_id, session.ended,
                             report_timeout)
        # OMA §9.1.3 / §9.4.2: BYE when the response to the last chunk arrived.
        self.sink.sent(message_id, target, {"delivery-notification", "display-notification"})
        await session.end("large message sent")
        return 200

    async def on_invite(self, inc: IncomingRequest, offer: SessionDescription) -> None:
        """§9.2.1: 200 with a recvonly answer (488 when no accept-types fit), receive the
        message, wait for the sender's BYE."""
        ctx = self.ctx
        req = inc.request
        # a pre-defined group's copy asserts the group, the sender in Referred-By (§9.3.2.1)
        peer, group = group_relay(req)
        session = LargeMessageSession(ctx, peer, is_uac=False, call_id=req.call_id)
        invitation = ring(session, inc)
        invitation.accept()
        try:
            # RFC 4975 §8.6 a=max-size: the largest message we keep (OMA Appendix O.1:
            # a Controlling Function reports 9999 with it instead of sending more)
            caps = replace(LARGE_CAPS, max_file_size=ctx.config.max_file_size,
                           max_size=ctx.config.max_message_size)
            await accept(ctx, session, inc, offer, caps)
        except ProtocolError as exc:
            reject(session, inc, exc.status if exc.status >= 400 else 488, exc.detail)
            return
        if not session.streams:
            return
        stream = next(iter(session.streams.values()))
        try:
            async with asyncio.timeout(ctx.config.timers.msrp_transaction * 4):
                msg = await stream.receive()
        except TimeoutError:
            await session.end("no large message arrived")
            return
        data = msg.sink.data if isinstance(msg.sink, MemorySink) else b""
        try:
            decoded = decode_body(msg.content_type, data, sender=peer)
        except ProtocolError as exc:
            ctx.emit(ErrorEvent(f"undecodable large message: {exc}", 415))
        else:
            self.sink.deliver(decoded, peer, "large", session.session_id, group=group)
        # OMA §9.2.2: the sender releases with BYE; do it ourselves if it never comes.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ctx.config.timers.tc1):
                await session.ended.wait()
        await session.end("large message received")
