"""File transfer (OMA SIMPLE IM §10, RFC 5547, CPM FT trace of seed 002).

Push (:meth:`FileTransfers.send`): one INVITE, one ``sendonly`` m-line per file with
``file-selector`` (name, type, size, sha-1 hash), ``file-transfer-id``, ``file-disposition``,
``file-date`` and a JPEG ``file-icon`` (``cid:``) carried in a ``multipart/mixed`` body next
to the SDP and a ``message/cpim`` part that asks for the transfer's IMDN.  A ``file-range``
in the answer resumes an interrupted transfer.  After the 200 to the last chunk Tc1 runs
(§10.2, §15.2): then BYE when no stream is left, else a re-INVITE with port 0 on the finished
lines.

Pull (:meth:`FileTransfers.pull`): a ``recvonly`` offer with a selector (RFC 5547 §8.3),
optionally a ``file-range`` to resume.  Files we serve for pulls are registered with
:meth:`FileTransfers.share`.

Receive (:meth:`FileTransfers.receive`, §10.3): policy / size check (too large -> declined), resume
from ``.partial/<sha1>``, hash verified on arrival, sanitized unique name in the download dir,
IMDN for the transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from email.utils import formatdate
from pathlib import Path
from typing import Any

from simpleim.content.filetransfer import BodyPart, split_file_transfer_body
from simpleim.content.imdn import NotificationType, Status
from simpleim.errors import ContentError, LocalProtocolError, ProtocolError, SdpError
from simpleim.msrp import IncomingMessage
from simpleim.sdp import (
    Capabilities,
    FileDate,
    FileDescription,
    FileRange,
    FileSelector,
    MediaDescription,
    SessionDescription,
    file_pull_stream,
    file_push_stream,
    new_transfer_id,
)
from simpleim.sdp.msrp import Direction, MsrpMedia
from simpleim.sdp.offer_answer import NegotiatedStream, StreamOutcome
from simpleim.sip.multipart import MultipartPart
from simpleim.transport.msrp import EndpointSession, MsrpTransferError
from simpleim.transport.msrp_sdp import body_parts
from simpleim.transport.sip import IncomingRequest

from .config import ClientConfig
from .context import ClientContext, MessageSink
from .downloads import DownloadDir
from .events import FileEvent
from .features import ICSI_CPM_FT, SIP_IM
from .fileio import PartialSink, file_hash, guess_type, sha1_of
from .inbox import send_pager
from .invites import (
    InviteRouter,
    accept,
    connect_negotiated,
    decide,
    establish,
    is_file_transfer,
    reject,
    ring,
)
from .pager import (
    Decoded,
    build_im,
    decode_body,
    imdn_reply,
    new_message_id,
    normalize_uri,
    sip_identity,
)
from .session import FileOffer, InviteSession, SessionFailed
from .thumbnails import make_thumbnail

__all__ = ["FileTransfers", "FileTransferSession", "TransferResult", "Progress", "TransferStart",
           "release_action", "FT_CHUNK"]

log = logging.getLogger("simpleim.client")

#: Chunk size of file streams (RFC 4975 §7.1.1 leaves it to the sender).
FT_CHUNK = 64 * 1024
#: Through an RFC 4976 relay: Kamailio's msrp module reads a frame into a 64 KiB buffer.
RELAY_CHUNK = 2048


#: RFC 4975 §7.1.1 interruption: a file chunk on a shared connection is written this many
#: bytes at a time, and ended early when a chat message / IMDN / response has to go out.
INTERRUPT_SLICE = 16 * 1024


def shares_connection(stream: EndpointSession) -> bool:
    """Whether ``stream``'s MSRP connection also carries other sessions (RFC 4975 §5.4)."""
    runner = stream.runner
    if runner is None:
        return False
    return any(s is not stream.core for s in runner.conn.sessions.values())


def use_interruption(stream: EndpointSession) -> bool:
    """Interruptible chunks (RFC 4975 §7.1.1) for a file stream that shares its connection,
    so that the other sessions' messages are not stuck behind a large chunk; a connection of
    its own keeps whole chunks.  Returns whether interruption is on."""
    core = stream.core
    if shares_connection(stream) and core.chunk_size > INTERRUPT_SLICE:
        core.interrupt_slice = INTERRUPT_SLICE
        return True
    core.interrupt_slice = None
    return False


def ft_chunk(config: ClientConfig) -> int:
    """The chunk size of file streams: small through an MSRP relay."""
    return RELAY_CHUNK if config.msrp_relay else FT_CHUNK

Progress = Callable[[str, int, int], None]
#: called once per file with (transfer id, file name) before its data flows, so that a
#: caller can label the ``progress`` calls of that transfer id
TransferStart = Callable[[str, str], None]


@dataclass(frozen=True)
class TransferResult:
    transfer_id: str
    name: str
    size: int
    status: str              # sent / received / declined / failed
    path: str | None = None
    resumed_from: int = 0
    hash_ok: bool | None = None


def _b64(data: bytes) -> bytes:
    import base64
    raw = base64.b64encode(data)
    return b"\r\n".join(raw[i:i + 76] for i in range(0, len(raw), 76))  # RFC 2045 §6.8


def release_action(finished: set[int], streams: set[int]) -> str:
    """OMA §10.2 on Tc1 expiry: ``bye`` when no unfinished stream remains, else
    ``reinvite`` (port 0 on the finished m-lines)."""
    if not streams or finished >= streams:
        return "bye"
    return "reinvite" if finished else "none"


class FileTransferSession(InviteSession):
    kind = "file"

    def __init__(self, ctx: ClientContext, peer: str, *, is_uac: bool, call_id: str,
                 image: bool = False, tc1: float | None = None) -> None:
        super().__init__(ctx, peer, is_uac=is_uac, call_id=call_id)
        self.tc1 = ctx.config.timers.tc1 if tc1 is None else tc1
        if image:
            self.kind = "image"
        self.finished: set[int] = set()
        self.released: set[int] = set()
        self._tc1: asyncio.Task[None] | None = None

    def stream_finished(self, index: int) -> None:
        """§10.2: after the 200 to the last SEND of a file, (re)start Tc1."""
        self.finished.add(index)
        if self._tc1 is not None:
            self._tc1.cancel()
        self._tc1 = self.spawn(self._tc1_expiry())

    async def _tc1_expiry(self) -> None:
        await asyncio.sleep(self.tc1)
        action = release_action(self.finished, set(self.streams))
        if action == "bye":
            await self.end("transfer complete (Tc1 expired)")
        elif action == "reinvite":
            await self.release_lines(self.finished - self.released)

    async def release_lines(self, lines: set[int]) -> None:
        """§10.2: re-INVITE setting port 0 on the finished file m-line(s) (RFC 3264 §8.2)."""
        if not lines or self.offer is None or self.dialog is None:
            return
        base = self.offer if self.is_uac else self.answer
        if base is None:
            return
        media = tuple(MediaDescription(m.media, 0, m.proto, m.formats) if i in lines
                      or m.port == 0 else m for i, m in enumerate(base.media))
        origin = replace(base.origin, sess_version=str(int(base.origin.sess_version
                                                         or "0") + 1))
        new = replace(base, origin=origin, media=media)
        resp = await self.ctx.ua.in_dialog(
            self.dialog, "INVITE", body=new.to_bytes(), content_type="application/sdp",
            headers=[("Supported", "timer"), ("Contact", self.ctx.contact)])
        if 200 <= resp.status < 300:
            if self.is_uac:
                self.offer = new
            for i in lines:
                s = self.streams.pop(i, None)
                if s is not None:
                    s.close()
                self.released.add(i)


# ---------------------------------------------------------------------------- sending

def describe(path: Path, *, disposition: str = "attachment", with_hash: bool = True,
             icon_cid: str | None = None) -> FileDescription:
    """RFC 5547 §6 description of a local file."""
    st = path.stat()
    sel = FileSelector(name=path.name, type=guess_type(path), size=st.st_size,
                       hashes=(file_hash(path),) if with_hash else ())
    return FileDescription(selector=sel, transfer_id=new_transfer_id(),
                           disposition=disposition,
                           date=FileDate(modification=formatdate(st.st_mtime, usegmt=True)),
                           icon=f"cid:{icon_cid}" if icon_cid else None)


async def send_stream(session: InviteSession, stream: EndpointSession, path: Path,
                      content_type: str, offset: int, size: int, transfer_id: str,
                      progress: Progress | None, *, kind: str = "file") -> None:
    """Send ``path`` from ``offset`` as one MSRP message whose Byte-Range is the file range
    (RFC 5547 file-range, RFC 4975 §7.1.1); waits for the 200 to the last chunk."""
    use_interruption(stream)
    try:
        msg = await stream.send_file(path, content_type, offset=offset,
                                     length=max(0, size - offset), wait=False)
    except MsrpTransferError as exc:
        raise SessionFailed(exc.status, exc.comment or "transfer failed") from exc
    except LocalProtocolError as exc:        # e.g. the file shrank below the offered size
        raise SessionFailed(0, str(exc)) from exc
    fut = asyncio.ensure_future(stream.wait_sent(msg))
    last = -1
    try:
        while True:
            done, _pending = await asyncio.wait({fut}, timeout=0.05)
            if msg.offset != last:
                last = msg.offset
                if progress is not None:
                    progress(transfer_id, msg.offset, size)
            if done:
                break
    finally:
        if not fut.done():
            fut.cancel()
    try:
        fut.result()
    except MsrpTransferError as exc:
        raise SessionFailed(exc.status, exc.comment or "transfer failed") from exc




# ---------------------------------------------------------------------------- pull







def _partial_key(selector: FileSelector, transfer_id: str | None) -> str:
    h = selector.hash
    if h is not None:
        return h.value.replace(":", "").lower()
    return transfer_id or "unknown"


# ---------------------------------------------------------------------------- receiving





async def _receive_or_lost(stream: EndpointSession, timeout: float, ended: asyncio.Event
                           ) -> IncomingMessage | None:
    """The next complete message, or None when the connection or the session went away."""
    recv = asyncio.ensure_future(stream.receive())
    gone = asyncio.ensure_future(ended.wait())
    waiters: set[asyncio.Future[Any]] = {recv, gone}
    lost: asyncio.Task[bool] | None = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                runner = stream.runner
                if runner is not None and lost is None:
                    lost = asyncio.ensure_future(runner.closed.wait())
                    waiters.add(lost)
                done, _ = await asyncio.wait(waiters, timeout=0.2,
                                             return_when=asyncio.FIRST_COMPLETED)
                if recv in done:
                    return recv.result()
                if (lost is not None and lost in done) or gone in done:
                    return None
                if stream.bound.is_set() and stream.runner is None:
                    return None           # closed under us (BYE)
    except TimeoutError:
        return None
    finally:
        recv.cancel()
        gone.cancel()
        if lost is not None:
            lost.cancel()


FT_CAPS = Capabilities(accept_types=("message/cpim", "*"), accept_wrapped_types=("*",),
                       accept_files=True, tls=False, cema=True)   # RFC 6714 (CPM-06)




def _neg(o: StreamOutcome) -> NegotiatedStream:
    return NegotiatedStream(o.index, o.accepted, o.local, o.remote, o.we_connect)


__all__ += ["describe", "send_stream", "ft_chunk"]


class FileTransfers:
    """File transfer of an account: push, pull, files offered for pulls, incoming (§10)."""

    def __init__(self, ctx: ClientContext, sink: MessageSink) -> None:
        self.ctx = ctx
        self.sink = sink
        cfg = ctx.config
        self.downloads = DownloadDir(cfg.download_dir, partial_ttl=cfg.partial_ttl,
                                     max_bytes=cfg.max_download_bytes)
        #: files offered for pulls (RFC 5547 §8.3), see :meth:`share`
        self.shared: dict[FileSelector, Path] = {}

    def register(self, router: InviteRouter) -> None:
        """OMA §10.3: an offer with a file-selector (push or pull) is a file transfer."""
        router.add("file", is_file_transfer, self.on_invite, priority=100)

    async def on_invite(self, inc: IncomingRequest, offer: SessionDescription) -> None:
        await self.receive(inc, offer, image=False)

    async def send(self, to: str, files: Sequence[str | Path], *,
                   thumbnail: bool = True, disposition: str = "attachment",
                   progress: Progress | None = None, timeout: float = 60.0,
                   wait_release: bool = True, tc1: float | None = None,
                   on_start: TransferStart | None = None,
                   conversation: tuple[str, str] | None = None
                   ) -> list[TransferResult]:
        """Push ``files`` to ``to`` in one session (one m-line each, OMA §10.1, RFC 5547
        §8.2); one :class:`TransferResult` per file, in order.

        ``on_start(transfer_id, name)`` is called for each accepted file before its first
        ``progress(transfer_id, done, total)`` call.

        ``tc1`` overrides the Tc1 wait after the last file (§10.2: 0 when the caller knows no
        further file follows, e.g. the CLI).  ``conversation``: the Conversation-ID and
        Contribution-ID of the session the transfer belongs to (CPM CR "File Transfer in
        Group Chat" Change 4, 7.4.1.1 step 2)."""
        if not files:
            raise SessionFailed(0, "no file given")
        cfg = self.ctx.config
        target = normalize_uri(to, cfg.domain)
        paths = [Path(f) for f in files]
        descs: list[FileDescription] = []
        icons: list[MultipartPart] = []
        for p in paths:
            if not p.is_file():
                raise SessionFailed(0, f"not a file: {p}")
            cid: str | None = None
            if thumbnail and guess_type(p).startswith("image/"):
                thumb = make_thumbnail(p)
                if thumb is not None:
                    cid = f"{secrets.token_hex(8)}@{cfg.domain}"
                    # RFC 5547 §6 file-icon + RFC 2392 cid; base64 keeps the SIP body 7-bit
                    # clean (RFC 2045 §6.8, as the Mercuro client does).
                    icons.append(MultipartPart.create("image/jpeg", _b64(thumb), [
                        ("Content-ID", f"<{cid}>"), ("Content-Transfer-Encoding", "base64"),
                        ("Content-Disposition", "icon")]))
            descs.append(describe(p, disposition=disposition, icon_cid=cid))
        # CPM FT (seed 002): a message/cpim part carries the IMDN request of the transfer.
        mid = new_message_id()
        cpim = build_im(sender=cfg.uri, recipient=target, body=b"", content_type="text/plain",
                        message_id=mid, imdn=("positive-delivery", "negative-delivery"),
                        date_time=self.ctx.now_cpim())
        session = FileTransferSession(self.ctx, target, is_uac=True, tc1=tc1,
                                      call_id=f"{secrets.token_hex(12)}@{self.ctx.msrp.host}")
        if conversation is not None:
            session.conversation_id, session.contribution_id = conversation
        ac = f'*;{SIP_IM};+g.3gpp.icsi-ref="{ICSI_CPM_FT.replace(":", "%3A")}"'
        negotiated = await establish(
            self.ctx, session, target,
            lambda i, local: file_push_stream(local, descs[i]), len(descs),
            accept_contact=ac, parts_before=[MultipartPart.create("message/cpim",
                                                                  cpim.to_bytes())],
            parts_after=icons, timeout=timeout, chunk_size=ft_chunk(self.ctx.config),
            extra_headers=[("P-Preferred-Service", ICSI_CPM_FT)])     # seed 002 CPM FT
        self.sink.sent(mid, target, {NotificationType.DELIVERY.value})
        results: list[TransferResult] = []

        async def one(i: int) -> TransferResult:
            d = descs[i]
            size = d.selector.size or 0
            name = d.selector.name or paths[i].name
            tid = d.transfer_id or ""
            n = negotiated[i]
            if not n.accepted or i not in session.streams:
                self.ctx.emit(FileEvent(tid, target, "declined", name, size, d.selector.type,
                                        direction="out"))
                return TransferResult(tid, name, size, "declined")
            rng = n.remote.file.range if n.remote is not None and n.remote.file else None
            offset = max(0, (rng.start - 1)) if rng is not None else 0
            offset = min(offset, size)
            if on_start is not None:
                on_start(tid, name)
            try:
                await send_stream(session, session.streams[i], paths[i],
                                  d.selector.type or "application/octet-stream", offset, size,
                                  tid, progress)
            except SessionFailed as exc:
                self.ctx.emit(FileEvent(tid, target, "failed", name, size, d.selector.type,
                                        transferred=offset, direction="out",
                                        reason=exc.reason))
                return TransferResult(tid, name, size, "failed", resumed_from=offset)
            session.stream_finished(i)
            self.ctx.emit(FileEvent(tid, target, "sent", name, size, d.selector.type,
                                    str(paths[i]), size, direction="out"))
            return TransferResult(tid, name, size, "sent", str(paths[i]), offset)

        results = list(await asyncio.gather(*(one(i) for i in range(len(descs)))))
        if any(r.status == "failed" for r in results):
            await session.end("transfer failed")
        elif wait_release:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(cfg.timers.tc1 + 10):
                    await session.ended.wait()
        return results

    def share(self, path: str | Path) -> FileDescription:
        """Offer ``path`` for pulls (RFC 5547 §8.3): matched by name, type, size or hash."""
        desc = describe(Path(path))
        self.shared[desc.selector] = Path(path)
        return desc

    def _find_shared(self, selector: FileSelector) -> tuple[FileDescription, Path] | None:
        for sel, path in self.shared.items():
            if selector.matches(sel) and path.is_file():
                return FileDescription(selector=sel), path
        return None

    async def pull(self, source: str, selector: FileSelector, *, timeout: float = 60.0,
                   progress: Progress | None = None) -> TransferResult:
        """Pull a file from ``source`` (``recvonly`` offer, RFC 5547 §8.3), resuming from a
        partial copy with ``a=file-range`` when one is kept for the selector's hash."""
        frm = normalize_uri(source, self.ctx.config.domain)
        session = FileTransferSession(self.ctx, frm, is_uac=True,
                                      call_id=f"{secrets.token_hex(12)}@{self.ctx.msrp.host}")
        key = _partial_key(selector, None)
        already = self.downloads.partial_size(key) if selector.hash else 0

        def media(i: int, local: object) -> MsrpMedia:
            m = file_pull_stream(local, selector, accept_types=("*",))  # type: ignore[arg-type]
            if already and selector.size and already < selector.size and m.file is not None:
                # RFC 5547 §6: file-range asks only for the part we miss.
                m = replace(m, file=replace(m.file, range=FileRange(already + 1, selector.size)))
            return m

        ac = f'*;{SIP_IM};+g.3gpp.icsi-ref="{ICSI_CPM_FT.replace(":", "%3A")}"'
        negotiated = await establish(self.ctx, session, frm, media, 1, accept_contact=ac,
                                     timeout=timeout, chunk_size=ft_chunk(self.ctx.config),
                                     connect=False)
        n = negotiated[0]
        if not n.accepted or n.remote is None or n.remote.file is None:
            await session.end("pull refused")
            raise SessionFailed(404, "file not available")
        desc = n.remote.file
        stream = session.streams[0]
        result_task = asyncio.ensure_future(
            self.receive_into(session, 0, stream, desc, key_override=key, progress=progress))
        await connect_negotiated(self.ctx, session, negotiated)
        result = await result_task
        await session.end("pull complete")
        return result

    async def receive_into(self, session: InviteSession, index: int,
                           stream: EndpointSession, desc: FileDescription, *,
                           key_override: str | None = None, imdn: Decoded | None = None,
                           progress: Progress | None = None) -> TransferResult:
        """Receive one file stream into the partial store, verify the hash, move it into the
        download directory (sanitized, unique name)."""
        sel = desc.selector
        key = key_override or _partial_key(sel, desc.transfer_id)
        tid = desc.transfer_id or key
        name = sel.name or "file"
        kind = "image" if session.kind == "image" else "file"
        rng = desc.range
        already = (rng.start - 1) if rng is not None else 0
        partial = self.downloads.partial_path(key)
        if not already and partial.exists():
            partial.unlink()
        sink = PartialSink(partial)
        # Issue 7 item 9: the limit holds on the bytes that arrive, not on the offer: never
        # more than the declared size, the configured maximum, or the room left in the
        # download directory (the core answers 413 and drops the message past it).
        limits = [x for x in (sel.size, self.ctx.config.max_file_size) if x is not None]
        room = self.downloads.room()
        if room is not None:
            limits.append(already + room)
        # RFC 5547 §6 file-range: the partial file holds bytes 1..already; the message starts at
        # Byte-Range already+1 and completes when the requested range has arrived.
        stream.receive_with(lambda _req: sink, resume_from=already,
                            max_size=min(limits) if limits else None)
        peer = session.peer

        async def watch() -> None:
            last = -1
            while True:
                await asyncio.sleep(0.1)
                if sink.written != last:
                    last = sink.written
                    if progress is not None:
                        progress(tid, last, sel.size or 0)

        watcher = asyncio.ensure_future(watch())
        try:
            msg = await _receive_or_lost(stream, self.ctx.config.timers.msrp_transaction * 4,
                                         session.ended)
        finally:
            watcher.cancel()
            sink.close()
        if msg is None or not msg.complete:
            have = partial.stat().st_size if partial.exists() else 0
            self.ctx.emit(FileEvent(tid, peer, "failed", name, sel.size, sel.type,
                                    transferred=have, kind=kind, reason="interrupted"))
            return TransferResult(tid, name, sel.size or 0, "failed", resumed_from=already)
        if sel.size is not None:
            with open(partial, "r+b") as f:
                f.truncate(sel.size)
        hash_ok: bool | None = None
        h = sel.hash
        if h is not None and h.algorithm.lower() == "sha-1":
            # RFC 5547 §6: the hash lets the receiver check the file it got.
            try:
                hash_ok = sha1_of(partial) == h.digest()
            except SdpError:
                hash_ok = False
        if hash_ok is False:
            partial.unlink(missing_ok=True)
            # RFC 5438 §7.2.1.1: negative delivery notification when it was asked for.
            self._send_imdn(imdn, peer, Status.FAILED, session)
            self.ctx.emit(FileEvent(tid, peer, "failed", name, sel.size, sel.type,
                                    transferred=sel.size or 0, hash_ok=False, kind=kind,
                                    reason="hash mismatch"))
            return TransferResult(tid, name, sel.size or 0, "failed", hash_ok=False)
        final = self.downloads.finish(partial, name)
        session_ft = session if isinstance(session, FileTransferSession) else None
        if session_ft is not None:
            session_ft.finished.add(index)
        self.ctx.emit(FileEvent(tid, peer, "received", name, sel.size, sel.type, str(final),
                                sel.size or 0, hash_ok, kind=kind))
        self._send_imdn(imdn, peer, Status.DELIVERED, session)
        return TransferResult(tid, name, sel.size or 0, "received", str(final), already, hash_ok)

    def _send_imdn(self, imdn: Decoded | None, peer: str, status: Status,
                   session: InviteSession | None = None) -> None:
        """CPM FT trace (rcs5.1-cpm2.0-messaging-flows, step 14; CPM-06): the transfer's IMDN
        goes in a SIP MESSAGE with the CPM file transfer ICSI in Accept-Contact and
        P-Preferred-Service, and the session's Conversation-ID / Contribution-ID."""
        if imdn is None:
            return
        doc = imdn_reply(imdn, NotificationType.DELIVERY, status, me=self.ctx.config.uri,
                         date_time=self.ctx.now_cpim())
        if doc is None:
            return
        extra = [("P-Preferred-Service", ICSI_CPM_FT)]
        if session is not None:
            extra += [("Contribution-ID", session.contribution_id),
                      ("Conversation-ID", session.conversation_id)]
        self.ctx.spawn(send_pager(
            self.ctx, imdn.sender or peer, doc.to_bytes(), "message/cpim",
            accept_contact=f'*;+g.3gpp.icsi-ref="{ICSI_CPM_FT.replace(":", "%3A")}"',
            extra=extra))

    async def receive(self, inc: IncomingRequest, offer: SessionDescription,
                      *, image: bool) -> None:
        """OMA §10.3 / IR.79 §2.4: an incoming file transfer or image share."""
        req = inc.request
        peer = sip_identity(req)
        cfg = self.ctx.config
        session = FileTransferSession(self.ctx, peer, is_uac=False, call_id=req.call_id,
                                      image=image)
        # The multipart body may carry the CPIM (IMDN request) and the icons (RFC 5547 §6).
        cpim_decoded: Decoded | None = None
        icons: dict[int, int] = {}
        try:
            parts = [BodyPart.of(p.headers.items(), p.body) for p in body_parts(req)]
            ftb = split_file_transfer_body(parts)
            if ftb.cpim is not None:
                cpim_decoded = decode_body("message/cpim", ftb.cpim.to_bytes(), sender=peer)
            for i, m in enumerate(offer.media):
                d = FileDescription.from_media(m)
                if d is not None and d.icon:
                    icon = ftb.icon(d.icon)
                    if icon is not None:
                        icons[i] = len(icon.data)
        except (ContentError, ProtocolError) as exc:
            log.info("ignoring unreadable file-transfer body parts: %s", exc)
        pushes = [(i, FileDescription.from_media(m)) for i, m in enumerate(offer.media)
                  if m.port != 0 and m.has("file-selector")]
        invitation = ring(session, inc)
        invitation.decline_status = 603     # IR.79 §2.4 / RFC 5547: decline with 603
        # Each offered file is accepted or declined on its own (FileOffer).
        group: list[FileOffer] = []
        choices: list[tuple[FileDescription, FileOffer]] = []
        for i, d in pushes:
            if d is None:
                continue
            choice = FileOffer(invitation, group)
            choices.append((d, choice))
            self.ctx.emit(FileEvent(d.transfer_id or "", peer, "offered", d.selector.name,
                                    d.selector.size, d.selector.type, kind=session.kind,
                                    reason=f"icon {icons[i]} bytes" if i in icons else None,
                                    invitation=choice))
        policy = cfg.policy.images if image else cfg.policy.files
        ok = await decide(self.ctx, invitation, policy)
        FileOffer.follow(group, invitation)
        if invitation.cancelled:
            return
        if not ok:
            reject(session, inc, invitation.decline_status, "declined by the user")
            return
        declined = [d for d, choice in choices if choice.accepted is False]
        too_big = [d for _i, d in pushes if d is not None and cfg.max_file_size is not None
                   and (d.selector.size or 0) > cfg.max_file_size]
        if too_big and len(too_big) == len(pushes):
            reject(session, inc, 603, "file too large")
            return
        recv_descs: dict[int, FileDescription] = {}
        serve: dict[int, tuple[FileDescription, Path, FileRange | None]] = {}

        self.downloads.expire_partials()
        room = self.downloads.room()

        def file_policy(d: FileDescription) -> bool | FileDescription:
            if d in declined:
                declined.remove(d)
                return False          # declined by the user: port 0 (RFC 3264 §6)
            if cfg.max_file_size is not None and (d.selector.size or 0) > cfg.max_file_size:
                return False          # §10.3: user choice / limits: stream rejected (port 0)
            key = _partial_key(d.selector, d.transfer_id)
            have = self.downloads.partial_size(key) if d.selector.hash else 0
            size = d.selector.size or 0
            if room is not None and size - have > room:
                return False          # the download directory is full (issue 7 item 9)
            if 0 < have < size:
                # RFC 5547 §6 file-range: ask only for what is missing (resume).
                return replace(d, range=FileRange(have + 1, size))
            return True

        def pull_source(sel: FileSelector) -> FileDescription | None:
            found = self._find_shared(sel)
            return found[0] if found else None

        caps = replace(FT_CAPS, max_file_size=cfg.max_file_size)
        try:
            outcomes = await accept(self.ctx, session, inc, offer, caps,
                                    file_policy=file_policy, pull_source=pull_source,
                                    connect=False, chunk_size=ft_chunk(self.ctx.config))
        except ProtocolError as exc:
            reject(session, inc, 603 if exc.status == 488 and too_big else
                   (exc.status if exc.status >= 400 else 488), exc.detail)
            return
        for o in outcomes:
            if not o.accepted or o.local is None or o.local.file is None or o.remote is None:
                continue
            if o.local.direction is Direction.RECVONLY:
                recv_descs[o.index] = replace(o.remote.file or o.local.file,
                                              range=o.local.file.range)
            elif o.local.direction is Direction.SENDONLY:
                found = self._find_shared(o.remote.file.selector) if o.remote.file else None
                if found is not None:
                    serve[o.index] = (o.local.file, found[1], o.remote.file.range
                                      if o.remote.file else None)
        jobs = [self.receive_into(session, i, session.streams[i], d, imdn=cpim_decoded)
                for i, d in recv_descs.items()]
        tasks = [asyncio.ensure_future(j) for j in jobs]
        try:
            await connect_negotiated(self.ctx, session, [
                _neg(o) for o in outcomes if o.accepted])
        except (ProtocolError, OSError, TimeoutError) as exc:
            for t in tasks:
                t.cancel()
            await session.end(f"MSRP connection failed: {exc}")
            return
        for i, (d, path, rng) in serve.items():
            size = d.selector.size or path.stat().st_size
            offset = (rng.start - 1) if rng is not None else 0
            try:
                await send_stream(session, session.streams[i], path,
                                  d.selector.type or "application/octet-stream", offset, size,
                                  d.transfer_id or "", None)
                session.stream_finished(i)
                self.ctx.emit(FileEvent(d.transfer_id or "", peer, "sent", d.selector.name,
                                        size, d.selector.type, str(path), size,
                                        direction="out"))
            except SessionFailed as exc:
                self.ctx.emit(FileEvent(d.transfer_id or "", peer, "failed", d.selector.name,
                                        size, d.selector.type, direction="out",
                                        reason=exc.reason))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        if any(isinstance(r, TransferResult) and r.status == "failed" for r in results):
            await session.end("transfer interrupted")
            return
        # §10.2: the sender releases (BYE / port 0 after Tc1); end it ourselves if it never does.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(cfg.timers.tc1 + 30):
                await session.ended.wait()
        await session.end("transfer complete")
