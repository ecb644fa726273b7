"""INVITE sessions of the client: the common dialog + MSRP + session-timer machinery and the
1-1 chat session (OMA SIMPLE IM §7.1.1.2, §7.1.2, §7.1.3; RFC 4975; RFC 4028).

:class:`InviteSession` owns the dialog, its MSRP streams (one per m-line) and the RFC 4028
timer; subclasses (chat, large message, file transfer, image share) add what they carry.
:class:`Invitation` is the incoming side's decision handle (accept / decline).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from simpleim.content.imdn import NotificationType, Status
from simpleim.content.iscomposing import ComposeSender, SenderAction
from simpleim.errors import ProtocolError, SimpleImError
from simpleim.sdp import MediaDescription, SessionDescription
from simpleim.sip.dialog import Dialog, DialogState
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.sip.session_timer import SessionTimer, TimerAction, TimerInput, negotiated_interval
from simpleim.transport.msrp import EndpointSession, MsrpTransferError
from simpleim.transport.msrp_sdp import sdp_of
from simpleim.transport.sip import IncomingRequest

from .context import ClientContext, MessageSink
from .events import ErrorEvent, ImdnEvent, SessionEvent
from .features import ALLOW
from .pager import Decoded, build_im, decode_body, imdn_reply, new_message_id
from .ua import InviteAttempt

__all__ = ["InviteSession", "ChatSession", "Invitation", "FileOffer", "SessionFailed",
           "receive_until_ended"]

log = logging.getLogger("simpleim.client")

T = TypeVar("T")


class SessionFailed(SimpleImError):
    """A session could not be set up: ``status`` is the SIP status (0 for local errors)."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status} {reason}" if status else reason)


class Invitation:
    """An incoming INVITE waiting for a decision (OMA §7.1.2.1: accept with 200 or decline)."""

    def __init__(self, session: InviteSession, inc: IncomingRequest) -> None:
        self.session = session
        self.inc = inc
        self.decided = asyncio.Event()
        self.accepted: bool | None = None
        self.decline_status = 480
        self.cancelled = False

    def accept(self) -> None:
        if self.accepted is None:
            self.accepted = True
            self.decided.set()

    def decline(self, status: int = 480) -> None:
        """Decline: 480 for a chat (OMA §7.1.2.1), 603 for image share (IR.79 §2.4),
        486 when busy."""
        if self.accepted is None:
            self.accepted = False
            self.decline_status = status
            self.decided.set()


class FileOffer:
    """One file of a file-transfer invitation (RFC 5547 §8: one m-line per file), accepted or
    declined on its own.  A declined file's m-line is answered with port 0 (RFC 3264 §6) and
    nothing of it is written; when every file is declined the INVITE itself is declined (603,
    RFC 5547 / OMA §10.3).  The invitation is decided once every file of it is."""

    def __init__(self, invitation: Invitation, group: list[FileOffer]) -> None:
        self.invitation = invitation
        self.accepted: bool | None = None
        self.decline_status = 603
        self._group = group
        group.append(self)

    @property
    def session(self) -> InviteSession:
        return self.invitation.session

    def accept(self) -> None:
        if self.accepted is None:
            self.accepted = True
            self._settle()

    def decline(self, status: int = 603) -> None:
        if self.accepted is None:
            self.accepted = False
            self.decline_status = status
            self._settle()

    def _settle(self) -> None:
        if any(o.accepted is None for o in self._group):
            return
        if any(o.accepted for o in self._group):
            self.invitation.accept()
        else:
            self.invitation.decline(self._group[0].decline_status)

    @staticmethod
    def follow(group: list[FileOffer], invitation: Invitation) -> None:
        """Files nobody decided take the invitation's decision (a policy, a timeout)."""
        for o in group:
            if o.accepted is None:
                o.accepted = bool(invitation.accepted)


class InviteSession:
    """One INVITE dialog with MSRP streams."""

    kind = "session"

    def __init__(self, ctx: ClientContext, peer: str, *, is_uac: bool, call_id: str) -> None:
        self.ctx = ctx
        self.peer = peer
        self.is_uac = is_uac
        self.call_id = call_id
        self.dialog: Dialog | None = None
        self.streams: dict[int, EndpointSession] = {}
        self.offer: SessionDescription | None = None
        self.answer: SessionDescription | None = None
        self.established = asyncio.Event()
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self.acked = asyncio.Event()
        self.ack_waiters: list[asyncio.Event] = []   # 2xx to re-INVITEs waiting for ACK
        self._ending = False
        self.timer = SessionTimer()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer_task: asyncio.Task[None] | None = None
        self.attempt: InviteAttempt | None = None
        self.to_tag: str | None = None
        self.conversation_id = secrets.token_hex(16)
        #: C-ST-01: the peer's Allow methods and Supported option tags (empty: not sent)
        self.peer_allow: tuple[str, ...] = ()
        #: the peer's User-Agent / Server values (its release, OMA Appendix F)
        self.peer_agents: tuple[str, ...] = ()
        self.peer_supported: tuple[str, ...] = ()
        self.contribution_id = secrets.token_hex(16)

    @property
    def session_id(self) -> str:
        return self.call_id

    def spawn(self, coro: Awaitable[T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.debug("session task failed: %r", exc)
            if isinstance(exc, ProtocolError | SimpleImError | OSError):
                self.ctx.emit(ErrorEvent(str(exc), getattr(exc, "status", None),
                                             self.session_id))

    def emit_state(self, state: str, reason: str | None = None, status: int | None = None,
                   invitation: Invitation | None = None) -> None:
        self.ctx.emit(SessionEvent(self.session_id, self.peer, state, self.kind, reason,
                                       status, invitation))

    # ------------------------------------------------------------------ session timer
    def start_timer(self, response: SipResponse) -> None:
        """OMA §7.1.1.1: on the 200, start the session timer with its Session-Expires."""
        nego = negotiated_interval(response, we_are_uac=self.is_uac)
        if nego is None:
            return
        interval, we_refresh = nego
        now = self.ctx.now()
        ev = TimerInput.NEGOTIATED_US if we_refresh else TimerInput.NEGOTIATED_PEER
        self.timer, _ = self.timer.step(ev, now, interval)
        self._arm_timer()

    def refreshed(self) -> None:
        self.timer, _ = self.timer.step(TimerInput.REFRESHED, self.ctx.now())
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer_task is not None:
            self._timer_task.cancel()
        if self.timer.deadline is not None:
            self._timer_task = self.spawn(self._timer_wait(self.timer.deadline))

    async def _timer_wait(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self.ctx.now()))
        self.timer, action = self.timer.step(TimerInput.DEADLINE, self.ctx.now())
        if action is TimerAction.SEND_REFRESH:
            self._timer_task = None
            await self.refresh()
        elif action is TimerAction.SEND_BYE:
            self._timer_task = None
            await self.end("session timer expired (RFC 4028 §10)")

    def local_sdp(self) -> SessionDescription | None:
        """The SDP in use on our side (our offer as UAC, our answer as UAS), with the m-lines
        closed since (RFC 3264 §8.2) at port 0."""
        sdp = self.offer if self.is_uac else self.answer
        if sdp is None:
            return None
        media = tuple(m if i in self.streams or m.port == 0 else m.with_port(0)
                      for i, m in enumerate(sdp.media))
        return replace(sdp, media=media)

    async def refresh(self) -> None:
        """Session refresh (OMA SIMPLE IM §7.1.1.8, RFC 4028 §7.4): a re-INVITE with
        ``Supported: timer``, ``Session-Expires;refresher=uac`` and the SDP in use; the 2xx
        decides who refreshes next (its refresher, RFC 4028 §7.2: OMA §7.1.2.2 peers answer
        'uas'); 422 is retried with its Min-SE; a peer refusing the re-INVITE (405/501) is
        refreshed with UPDATE (RFC 4028 §7.4 allows either)."""
        if self.dialog is None or self.dialog.state is not DialogState.CONFIRMED:
            return
        cfg = self.ctx.config
        interval = int(self.timer.interval) or cfg.session_expires
        sdp = self.local_sdp()
        method = "INVITE" if sdp is not None and (not self.peer_allow
                                                  or "INVITE" in self.peer_allow) else "UPDATE"
        resp: SipResponse | None = None
        for _ in range(3):
            headers = [("Session-Expires", f"{interval};refresher=uac"),
                       ("Supported", "timer"), ("Min-SE", str(int(cfg.timers.min_se))),
                       ("Allow", ALLOW)]
            body = sdp.to_bytes() if method == "INVITE" and sdp is not None else b""
            resp = await self.ctx.ua.in_dialog(
                self.dialog, method, headers=headers, body=body,
                content_type="application/sdp" if body else None)
            min_se = resp.headers.get("Min-SE") if resp.status == 422 else None
            if min_se is not None and min_se.split(";")[0].strip().isdigit():
                # RFC 4028 §7.4: 422 -> retry with Session-Expires >= its Min-SE.
                interval = max(interval, int(min_se.split(";")[0].strip()))
                continue
            if resp.status in (405, 501) and method == "INVITE":
                method = "UPDATE"
                continue
            if resp.status == 491:
                # RFC 3261 §14.1: glare with the peer's re-INVITE - retry after 0-2 s.
                await asyncio.sleep(secrets.randbelow(2000) / 1000)
                continue
            break
        if resp is None:
            return
        if 200 <= resp.status < 300:
            self.note_peer(resp)
            nego = negotiated_interval(resp, we_are_uac=True)
            now = self.ctx.now()
            if nego is None:
                # RFC 4028 §7.2: no Session-Expires in the 2xx - the peer has no timer; we
                # keep refreshing with the interval we asked for.
                self.timer, _ = self.timer.step(TimerInput.NEGOTIATED_US, now, float(interval))
            else:
                ev = TimerInput.NEGOTIATED_US if nego[1] else TimerInput.NEGOTIATED_PEER
                self.timer, _ = self.timer.step(ev, now, nego[0])
            self._arm_timer()
        elif resp.status in (408, 481):
            await self.end(f"refresh failed with {resp.status}")

    def note_peer(self, msg: SipRequest | SipResponse) -> None:
        """OMA SIMPLE IM §7.1.2.1 step 2 (C-ST-01): store the methods the peer supports
        (Allow) and its option tags (Supported), from its INVITE / 200 / refreshes."""
        allow = [v.strip().upper() for v in msg.headers.get_all("Allow") if v.strip()]
        if allow:
            self.peer_allow = tuple(allow)
        supported = [v.strip().lower() for v in msg.headers.get_all("Supported") if v.strip()]
        if supported or "supported" in msg.headers:
            self.peer_supported = tuple(supported)
        agents = msg.headers.get_all("Server") + msg.headers.get_all("User-Agent")
        if agents:
            self.peer_agents = tuple(agents)

    # ------------------------------------------------------------------ ending
    async def end(self, reason: str = "local hangup") -> None:
        """BYE (OMA §7.1.1.16 / RFC 3261 §15.1.1) and release the MSRP streams."""
        if self.ended.is_set() or self._ending:
            return
        self._ending = True
        dialog = self.dialog
        if dialog is not None and dialog.state is DialogState.CONFIRMED:
            # BYE first, then release the MSRP streams (OMA §7.1.1.16: "On 200, release the
            # user plane"), so that the peer sees the BYE and not a lost connection.
            with contextlib.suppress(ProtocolError, OSError, TimeoutError):
                async with asyncio.timeout(self.ctx.config.timers.timer_f):
                    await self.ctx.ua.in_dialog(dialog, "BYE")
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self.end_reason = reason
        self.ended.set()
        self.timer, _ = self.timer.step(TimerInput.STOP, 0.0)
        if self._timer_task is not None:
            self._timer_task.cancel()
        for s in self.streams.values():
            s.close()
        current = asyncio.current_task()
        for t in list(self._tasks):
            if t is not current:
                t.cancel()
        self.ctx.sessions.forget(self)
        self.on_ended(reason)
        self.emit_state("ended", reason)

    def on_ended(self, reason: str) -> None:
        """Hook for subclasses."""

    # ------------------------------------------------------------------ in-dialog requests
    def on_bye(self, inc: IncomingRequest) -> None:
        # OMA §7.1.2.3: 200 OK to the BYE and release the MSRP resources.
        inc.reply(200)
        if self.dialog is not None:
            self.dialog.terminate()
        self._finish("remote hangup")

    def on_update(self, inc: IncomingRequest) -> None:
        """RFC 4028 §9: a session refresh; answer 200 with Session-Expires, restart the timer."""
        self.note_peer(inc.request)
        if self.too_brief(inc):
            return
        se = inc.request.headers.get("Session-Expires")
        headers: list[tuple[str, str]] = [("Supported", "timer")]
        if se:
            headers.append(("Session-Expires", se))
        resp = inc.request.create_response(200)
        for k, v in headers:
            resp.headers.add(k, v)
        if self.dialog is not None and self.dialog.local_contact is not None:
            resp.headers.add("Contact", str(self.dialog.local_contact))
        inc.respond(resp)
        if se:
            self.is_refresh_peer(resp)

    def too_brief(self, inc: IncomingRequest) -> bool:
        """RFC 4028 §8: a refresh with a Session-Expires below our Min-SE -> 422 + Min-SE."""
        se = (inc.request.headers.get("Session-Expires") or "").split(";")[0].strip()
        min_se = int(self.ctx.config.timers.min_se)
        if se.isdigit() and int(se) < min_se:
            inc.reply(422, headers=[("Min-SE", str(min_se))])
            return True
        return False

    def is_refresh_peer(self, resp: SipResponse) -> None:
        nego = negotiated_interval(resp, we_are_uac=False)
        if nego is not None:
            now = self.ctx.now()
            ev = TimerInput.NEGOTIATED_US if nego[1] else TimerInput.NEGOTIATED_PEER
            self.timer, _ = self.timer.step(ev, now, nego[0])
            self._arm_timer()

    def on_reinvite(self, inc: IncomingRequest) -> None:
        """OMA §7.1.2.2: a re-INVITE; the default keeps the media (answers our last SDP)
        and handles streams set to port 0 by the peer (RFC 3264 §8.2)."""
        self.note_peer(inc.request)
        self.spawn(self.answer_reinvite(inc))

    async def answer_reinvite(self, inc: IncomingRequest) -> None:
        """OMA §7.1.2.2: validate the new offer; streams set to port 0 are closed (RFC 3264
        §8.2); the others keep their MSRP session.  200 with Session-Expires;refresher=uas."""
        req = inc.request
        if self.too_brief(inc):                     # RFC 4028 §8: 422 with Min-SE
            return
        try:
            offer = sdp_of(req)
        except ProtocolError as exc:
            inc.reply(exc.status if exc.status >= 400 else 400)
            return
        refused = unusable_lines(offer) if offer is not None else []
        if refused:
            # OMA §7.1.2.2: no acceptable media parameters / accept-types -> 488 (the session
            # goes on with what it had).
            inc.reply(488, headers=[("Warning", f'399 simpleim "{refused[0]}"')])
            return
        answer = self.answer if not self.is_uac else None
        lines = []
        if offer is not None:
            prev = self.answer if not self.is_uac else self.offer
            for index, media in enumerate(offer.media):
                if media.port == 0:
                    s = self.streams.pop(index, None)
                    if s is not None:
                        s.close()
                    lines.append(MediaDescription(media.media, 0, media.proto, media.formats))
                elif prev is not None and index < len(prev.media):
                    lines.append(prev.media[index])
                else:
                    lines.append(media.with_port(0))
            if prev is not None:
                answer = replace(prev, media=tuple(lines))
        resp = req.create_response(200)
        resp.headers.add("Contact", self.ctx.contact)
        resp.headers.add("Supported", "timer")
        se = req.headers.get("Session-Expires")
        if se:
            resp.headers.add("Session-Expires", f"{se.split(';')[0].strip()};refresher=uas")
        if answer is not None:
            resp.headers.add("Content-Type", "application/sdp")
            resp.body = answer.to_bytes()
        acked = asyncio.Event()
        self.ack_waiters.append(acked)
        self.ctx.ua.answer_2xx(inc, resp, acked, lambda: None)
        if se:
            self.is_refresh_peer(resp)
        if not self.streams:
            with contextlib.suppress(ProtocolError, OSError):
                await self.end("all streams closed")

    def on_ack(self, inc: IncomingRequest) -> None:
        # RFC 3261 §13.3.1.4: the ACK stops the 2xx retransmissions (initial or re-INVITE).
        self.acked.set()
        for ev in self.ack_waiters:
            ev.set()
        self.ack_waiters.clear()


class ChatSession(InviteSession):
    """A 1-1 IM session: CPIM messages with IMDN, is-composing (OMA §7.1.3, RFC 3994)."""

    kind = "chat"

    def __init__(self, ctx: ClientContext, sink: MessageSink, peer: str, *, is_uac: bool,
                 call_id: str) -> None:
        super().__init__(ctx, peer, is_uac=is_uac, call_id=call_id)
        self.sink = sink
        self.composer = ComposeSender(idle_timeout=ctx.config.timers.composing_idle,
                                      refresh=ctx.config.timers.composing_refresh)
        self._compose_task: asyncio.Task[None] | None = None
        self.received: dict[str, Decoded] = {}
        self.on_message: Callable[[Decoded], None] | None = None

    @property
    def identity(self) -> str:
        """Who we are in this session: the From and recipient of our IMDNs (a group chat:
        the identity the conference gives us, an anonymous one when we are anonymous)."""
        return self.ctx.config.uri

    @property
    def stream(self) -> EndpointSession:
        if not self.streams:
            raise SessionFailed(0, "no MSRP stream")
        return next(iter(self.streams.values()))

    def start_media(self) -> None:
        self.spawn(self._receive_loop())
        self.spawn(self._watch_connection())

    async def _watch_connection(self) -> None:
        """IR.79 §2.1 / RFC 4975 §5.4: the side that lost the MSRP connection ends the SIP
        session (BYE)."""
        runner = self.stream.runner
        if runner is None:
            return
        await runner.closed.wait()
        if not self.ended.is_set() and not self._ending:
            await self.end("MSRP connection lost")

    async def send(self, text: str, *, content_type: str = "text/plain") -> str:
        """Send an IM in the session (CPIM with IMDN request, seed 002); returns its
        imdn.Message-ID.  Waits for the MSRP 200 (RFC 4975 §7.2)."""
        cfg = self.ctx.config
        mid = new_message_id()
        cpim = build_im(sender=cfg.uri, recipient=self.peer, body=text.encode("utf-8"),
                        content_type=content_type, message_id=mid, imdn=cfg.imdn,
                        date_time=self.ctx.now_cpim())
        self.sink.sent(mid, self.peer, wanted_notifications(cfg.imdn))
        self.composer, _ = self.composer.message_sent(self.ctx.now())
        try:
            await self.stream.send(cpim.to_bytes(), "message/cpim")
        except MsrpTransferError as exc:
            raise SessionFailed(exc.status, exc.comment or "MSRP send failed") from exc
        return mid

    async def composing(self, active: bool = True) -> None:
        """Report typing (RFC 3994 §4 / OMA §7.1.3.4): ``active`` on activity, idle when
        the user cleared the input."""
        now = self.ctx.now()
        if active:
            self.composer, action = self.composer.composing(now)
        else:
            from simpleim.content.iscomposing import SenderInput
            self.composer, action = self.composer.step(SenderInput.CLEARED, now)
        await self._composing_action(action)
        if self._compose_task is None or self._compose_task.done():
            self._compose_task = self.spawn(self._compose_timer())

    async def _composing_action(self, action: SenderAction) -> None:
        doc = self.composer.document(action, lastactive=datetime.now(UTC).isoformat(
            timespec="seconds").replace("+00:00", "Z"))
        if doc is None:
            return
        await self.stream.send(doc.to_bytes(), "application/im-iscomposing+xml")

    async def _compose_timer(self) -> None:
        for _ in range(10_000):
            deadline = self.composer.next_deadline()
            if deadline is None:
                return
            await asyncio.sleep(max(0.0, deadline - self.ctx.now()))
            self.composer, action = self.composer.handle_timer(self.ctx.now())
            await self._composing_action(action)

    async def mark_displayed(self, message_id: str) -> bool:
        """Send the display notification for a received message (RFC 5438 §7.2.1.2)."""
        decoded = self.received.get(message_id)
        if decoded is None:
            return False
        doc = imdn_reply(decoded, NotificationType.DISPLAY, Status.DISPLAYED,
                         me=self.identity, date_time=self.ctx.now_cpim())
        if doc is None:
            return False
        await self.stream.send(doc.to_bytes(), "message/cpim")
        return True

    async def _receive_loop(self) -> None:
        stream = self.stream
        while not self.ended.is_set():
            msg = await stream.receive()
            sink = msg.sink
            data = bytes(getattr(sink, "data", b""))
            # One bad message (undecodable XML, a CPIM we cannot read, an IMDN we cannot
            # answer...) is reported and skipped: the loop serves the session's next ones.
            try:
                decoded = decode_body(msg.content_type, data, sender=self.peer)
                await self.deliver(decoded)
            except SimpleImError as exc:
                status = exc.status if isinstance(exc, ProtocolError) else 415
                self.ctx.emit(ErrorEvent(f"undecodable MSRP message: {exc}", status,
                                         self.session_id))

    async def deliver(self, decoded: Decoded) -> None:
        if not self.sink.present(decoded, self.peer, "session", self.session_id):
            return                                 # an IMDN or an is-composing document
        mid = decoded.message_id
        if mid is not None:
            self.received[mid] = decoded
            if len(self.received) > 1000:
                self.received.pop(next(iter(self.received)))
        if self.on_message is not None:
            self.on_message(decoded)
        self.acknowledge(decoded)

    def acknowledge(self, decoded: Decoded) -> None:
        """RFC 5438 §7.2.1.1: the delivery notification when positive-delivery was asked."""
        doc = imdn_reply(decoded, NotificationType.DELIVERY, Status.DELIVERED,
                         me=self.identity, date_time=self.ctx.now_cpim())
        if doc is not None:
            # Not awaited here: the receive loop must not wait for the peer's 200 to our
            # IMDN - while it waits, our receive queue fills, the connection stops being
            # read, and that 200 is never read (a deadlock under a burst of messages).
            self.spawn(self._send_quietly(doc.to_bytes()))

    async def _send_quietly(self, body: bytes) -> None:
        with contextlib.suppress(MsrpTransferError):
            await self.stream.send(body, "message/cpim")


def unusable_lines(offer: SessionDescription) -> list[str]:
    """Why the m-lines of a re-INVITE offer that are not closed (port 0) cannot be taken:
    not an MSRP message stream, or no accept-types (OMA §7.1.2.2, RFC 4975 §8.6)."""
    out: list[str] = []
    for index, media in enumerate(offer.media):
        if media.port == 0:
            continue
        if media.media != "message" or not media.proto.upper().endswith("MSRP"):
            out.append(f"m-line {index}: {media.media} {media.proto} is not an MSRP stream")
        elif not (media.get("accept-types") or "").strip():
            out.append(f"m-line {index}: no accept-types")
    return out


def wanted_notifications(imdn: tuple[str, ...]) -> set[str]:
    """The IMDN kinds a Disposition-Notification request asks for (RFC 5438 §6.3)."""
    out: set[str] = set()
    for item in imdn:
        if item in ("positive-delivery", "negative-delivery"):
            out.add(NotificationType.DELIVERY.value)
        elif item == "display":
            out.add(NotificationType.DISPLAY.value)
    return out


__all__ += ["wanted_notifications", "imdn_event", "unusable_lines"]


def imdn_event(decoded: Decoded, peer: str, expected: bool) -> ImdnEvent | None:
    doc = decoded.imdn
    if doc is None:
        return None
    return ImdnEvent(doc.message_id, decoded.sender or peer, doc.kind.value, doc.status.value,
                     expected)


async def receive_until_ended(session: InviteSession, take: Callable[[object], None],
                              timeout: float | None) -> None:
    """Hand each message received on the session's (first) stream to ``take`` until the
    peer ends the session (a server delivering stored items ends with BYE: history
    retrieval §13.3.3, deferred messages §12.2.2.5), then what was still queued."""
    stream = next(iter(session.streams.values()))
    async with asyncio.timeout(timeout):
        while not session.ended.is_set():
            get = asyncio.ensure_future(stream.receive())
            ended = asyncio.ensure_future(session.ended.wait())
            done, _ = await asyncio.wait({get, ended}, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            if get in done:
                take(get.result())
            else:
                get.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await get
    while (msg := stream.receive_nowait()) is not None:
        take(msg)
