"""GSMA IR.79 image share (§2.4-2.6) and the Mercuro variant.

Sender: INVITE with ``Accept-Contact: *;+g.3gpp.cs-voice;+g.3gpp.iari-ref="...gsma-is"``
(IR.79 §2.2 service identifiers), Contact with the same tags, SDP ``sendonly``,
``accept-types:*``, ``file-selector`` with type (and size), ``file-transfer-id``,
``file-disposition:render`` and an ``i=`` line (IR.79 §2.4); the whole image en bloc in one
SEND (IR.79 §2.5 recommendation).  JPEG is mandatory, GIF/PNG/BMP accepted (§2.6).

Receiver: :meth:`simpleim.client.filetransfer.FileTransfers.receive` with ``image=True``
(answer ``recvonly`` with the file-selector echoed, 603 to decline, chunks reassembled - the
Mercuro client sends 2048-byte chunks and a multipart SDP with a base64 icon).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from simpleim.sdp import (
    FileDescription,
    FileSelector,
    SessionDescription,
    image_share_stream,
    new_transfer_id,
)
from simpleim.transport.sip import IncomingRequest

from .context import ClientContext
from .events import FileEvent
from .features import CS_VOICE, IARI_IMAGE_SHARE, ICSI_CPM_LARGEMSG
from .fileio import file_hash
from .filetransfer import (
    FileTransfers,
    FileTransferSession,
    Progress,
    TransferResult,
    send_stream,
)
from .invites import InviteRouter, establish, is_image_share
from .pager import normalize_uri
from .session import SessionFailed
from .thumbnails import IMAGE_TYPES, guess_image_type

__all__ = ["ImageShares", "IMAGE_SHARE_ACCEPT_CONTACT", "image_description"]

_IARI = f'+g.3gpp.iari-ref="{IARI_IMAGE_SHARE.replace(":", "%3A")}"'
_ICSI = f'+g.3gpp.icsi-ref="{ICSI_CPM_LARGEMSG.replace(":", "%3A")}"'
#: IR.79 §2.2-2.4: CS voice + the image share IARI + the (reused) CPM largemsg ICSI.
IMAGE_SHARE_ACCEPT_CONTACT = f"*;{CS_VOICE};{_IARI};{_ICSI}"


def image_description(path: Path) -> FileDescription:
    ctype = guess_image_type(path)
    if ctype not in IMAGE_TYPES:
        # IR.79 §2.6: JPEG mandatory, GIF/BMP/PNG optional - nothing else.
        raise SessionFailed(0, f"{path.name} is not a JPEG, GIF, PNG or BMP image")
    size = path.stat().st_size
    # IR.79 §2.4: "strongly recommended to set a=file-selector:type:image/jpeg size:<size>".
    sel = FileSelector(name=path.name, type=ctype, size=size, hashes=(file_hash(path),))
    return FileDescription(selector=sel, transfer_id=new_transfer_id(), disposition="render")


class ImageShares:
    """GSMA IR.79 image share of an account; the receiving side is the file transfer
    feature's (an image share INVITE is a file transfer with the image share IARI)."""

    def __init__(self, ctx: ClientContext, files: FileTransfers) -> None:
        self.ctx = ctx
        self.files = files

    def register(self, router: InviteRouter) -> None:
        """IR.79 §2.2: a file offer with the image share IARI (before large message: image
        share reuses the CPM largemsg ICSI)."""
        router.add("image", is_image_share, self.on_invite, priority=300)

    async def on_invite(self, inc: IncomingRequest, offer: SessionDescription) -> None:
        await self.files.receive(inc, offer, image=True)

    async def share(self, to: str, image: str | Path, *, title: str | None = None,
                    timeout: float = 60.0, progress: Progress | None = None,
                    chunk_size: int | None = None) -> TransferResult:
        """Share ``image`` with ``to``; ``chunk_size`` None sends it en bloc (IR.79 §2.5),
        e.g. 2048 acts like the Mercuro client.  Raises :class:`SessionFailed`."""
        ctx = self.ctx
        target = normalize_uri(to, ctx.config.domain)
        path = Path(image)
        desc = image_description(path)
        size = desc.selector.size or 0
        session = FileTransferSession(ctx, target, is_uac=True, image=True,
                                      call_id=f"{secrets.token_hex(12)}@{ctx.msrp.host}")
        info = title or path.name
        await establish(
            ctx, session, target,
            lambda i, local: image_share_stream(local, desc, title=info), 1,
            accept_contact=IMAGE_SHARE_ACCEPT_CONTACT, timeout=timeout,
            # IR.79 §2.2: "the UE must populate P-Preferred-Service" with the largemsg ICSI.
            extra_headers=[("P-Preferred-Service", ICSI_CPM_LARGEMSG)],
            # IR.79 §2.5: send all data en bloc in one MSRP SEND.
            chunk_size=chunk_size or max(size, 2048))
        stream = session.streams.get(0)
        tid = desc.transfer_id or ""
        if stream is None:
            await session.end("image stream refused")
            raise SessionFailed(488, "image stream refused")
        try:
            await send_stream(session, stream, path, desc.selector.type or "image/jpeg", 0, size,
                              tid, progress, kind="image")
        except SessionFailed as exc:
            await session.end("image transfer failed")
            ctx.emit(FileEvent(tid, target, "failed", path.name, size, desc.selector.type,
                               kind="image", direction="out", reason=exc.reason))
            raise
        ctx.emit(FileEvent(tid, target, "sent", path.name, size, desc.selector.type,
                           str(path), size, kind="image", direction="out"))
        # IR.79 §2.5: the last 200 tells the transfer succeeded; release the session.
        await session.end("image sent")
        return TransferResult(tid, path.name, size, "sent", str(path))
