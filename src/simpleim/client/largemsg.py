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
from dataclasses import replace
from typing import TYPE_CHECKING

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
from simpleim.transport.msrp import MsrpTransferError
from simpleim.transport.sip import IncomingRequest

from . import invites
from .events import ErrorEvent
from .features import ICSI_CPM_LARGEMSG, LARGE_MESSAGE, SIP_IM
from .pager import decode_body
from .session import InviteSession, SessionFailed

if TYPE_CHECKING:
    from .account import Account

__all__ = ["send_large_message", "receive_large_message", "LargeMessageSession"]

#: accept_files: the large message offer may carry ``a=file-selector:size:N`` (CPM-03,
#: RCS trace); the mode is known from the feature tag / ICSI, not from the SDP.
LARGE_CAPS = Capabilities(accept_types=("message/cpim", "text/plain", "*"),
                          accept_wrapped_types=("*",), accept_files=True, tls=False,
                          cema=True)                                  # RFC 6714 (CPM-06)


class LargeMessageSession(InviteSession):
    kind = "large-message"


async def send_large_message(account: Account, target: str, cpim: bytes, message_id: str,
                             *, timeout: float = 60.0) -> int:
    session = LargeMessageSession(account, target, is_uac=True,
                                  call_id=f"{secrets.token_hex(12)}@{account.msrp.host}")
    # OMA §9.1.1.2: Accept-Contact with +g.oma.sip-im.large-message; CPM largemsg ICSI.
    ac = (f'*;{SIP_IM};{LARGE_MESSAGE};+g.3gpp.icsi-ref='
          f'"{ICSI_CPM_LARGEMSG.replace(":", "%3A")}"')
    def media(_i: int, local: LocalEndpoint) -> MsrpMedia:
        m = chat_stream(local, accept_types=("message/cpim",), accept_wrapped_types=("*",),
                        direction=Direction.SENDONLY)              # §9.1.1.2: sendonly
        # RCS 5.1 / CPM 2.0 large message trace (CPM-03): a=file-selector:size:<bytes>
        return replace(m, file=FileDescription(FileSelector(size=len(cpim))))

    await invites.establish(
        account, session, target, media, 1, accept_contact=ac, timeout=timeout,
        extra_headers=[("P-Preferred-Service", ICSI_CPM_LARGEMSG)])
    stream = next(iter(session.streams.values()))
    try:
        await stream.send(cpim, "message/cpim")
    except MsrpTransferError as exc:
        await session.end(f"MSRP send failed: {exc}")
        raise SessionFailed(exc.status, exc.comment or "MSRP send failed") from exc
    # OMA §9.1.3 / §9.4.2: BYE when the response to the last chunk arrived.
    account.tracker.sent(message_id, target, {"delivery-notification", "display-notification"},
                         asyncio.get_running_loop().time())
    await session.end("large message sent")
    return 200


async def receive_large_message(account: Account, inc: IncomingRequest,
                                offer: SessionDescription) -> None:
    req = inc.request
    peer = str(req.from_addr.uri)
    session = LargeMessageSession(account, peer, is_uac=False, call_id=req.call_id)
    invitation = invites.ring(session, inc)
    invitation.accept()
    try:
        caps = replace(LARGE_CAPS, max_file_size=account.config.max_file_size)
        await invites.accept(account, session, inc, offer, caps)
    except ProtocolError as exc:
        invites.reject(session, inc, exc.status if exc.status >= 400 else 488, exc.detail)
        return
    if not session.streams:
        return
    stream = next(iter(session.streams.values()))
    try:
        async with asyncio.timeout(account.config.timers.msrp_transaction * 4):
            msg = await stream.receive()
    except TimeoutError:
        await session.end("no large message arrived")
        return
    data = msg.sink.data if isinstance(msg.sink, MemorySink) else b""
    try:
        decoded = decode_body(msg.content_type, data, sender=peer)
    except ProtocolError as exc:
        account.emit(ErrorEvent(f"undecodable large message: {exc}", 415))
    else:
        account.deliver(decoded, peer, "large", session.session_id)
    # OMA §9.2.2: the sender releases with BYE; do it ourselves if it never comes.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(account.config.timers.tc1):
            await session.ended.wait()
    await session.end("large message received")
