"""One INVITE session of the server's user agent: dialog, one MSRP stream, RFC 4028 timer.

:class:`MediaSession` implements :class:`~simpleim.server.media.api.ServerSession`; the
SIP side (in-dialog requests, refreshes, BYE) goes through the :class:`DialogChannel` the
user agent gives it, the timer decisions through the sans-I/O
:class:`~simpleim.sip.session_timer.SessionTimer` table (``now`` from the event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

from simpleim.errors import ProtocolError, SimpleImError
from simpleim.msrp import ByteRange, IncomingMessage, MemorySink, MsrpStatus, OutgoingMessage
from simpleim.msrp.message import REASONS
from simpleim.sdp import MsrpMedia, SessionDescription
from simpleim.server.media.api import MediaError, MediaMessage, SessionEnded, SessionEvent
from simpleim.server.media.switch import SwitchSink
from simpleim.sip.dialog import Dialog, DialogState
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.sip.session_timer import SessionTimer, TimerAction, TimerInput
from simpleim.transport.msrp import EndpointSession, MsrpTransferError
from simpleim.transport.sip import IncomingRequest
from simpleim.transport.sip_addr import TransportAddr

__all__ = ["DialogChannel", "MediaSession", "reason_header"]

log = logging.getLogger("simpleim.server.media")


class DialogChannel(Protocol):
    """What a session needs from its user agent."""

    def now(self) -> float: ...

    async def in_dialog(self, session: MediaSession, method: str, *,
                        headers: Sequence[tuple[str, str]] = (), body: bytes = b"",
                        content_type: str | None = None) -> SipResponse: ...

    def forget(self, session: MediaSession) -> None: ...


def reason_header(text: str) -> str:
    """An RFC 3326 Reason header value carrying ``text`` (a quoted-string: no quotes,
    backslashes or line breaks in it, at most 120 characters)."""
    clean = "".join(" " if c in "\r\n\t" else "'" if c in '"\\' else c for c in text)
    return f'SIP;text="{clean[:120]}"'


class MediaSession:
    """A dialog of the server's UA with its MSRP stream (``ServerSession``)."""

    def __init__(self, channel: DialogChannel, *, dialog: Dialog, request: SipRequest,
                 response: SipResponse, peer: str, dest: TransportAddr,
                 local_sdp: SessionDescription, remote_sdp: SessionDescription,
                 local_media: MsrpMedia, remote_media: MsrpMedia,
                 stream: EndpointSession, bye_timeout: float = 32.0) -> None:
        self._channel = channel
        self.dialog = dialog
        self._request = request
        self._response = response
        #: the BYE received or sent (ServerSession.bye_request)
        self.bye_request: SipRequest | None = None
        self._peer = peer
        self.dest = dest
        self.local_sdp = local_sdp
        self.remote_sdp = remote_sdp
        self._local_media = local_media
        self._remote_media = remote_media
        self.stream = stream
        self.bye_timeout = bye_timeout
        self._closed = asyncio.Event()
        self._end_reason: str | None = None
        self._by_peer = False
        self.acked = asyncio.Event()
        self.timer = SessionTimer()
        self._timer_task: asyncio.Task[None] | None = None
        self._ending = False
        #: called once with the reason when the session ends (the relay's hook)
        self.on_end: list[Callable[[str], None]] = []
        #: in-dialog requests the user agent does not answer itself (REFER...)
        self.request_handler: Callable[[IncomingRequest], bool] | None = None
        #: received messages whose last chunk awaits acknowledge() (MediaPolicy.hold_acks)
        self._held: dict[str, IncomingMessage] = {}

    # ------------------------------------------------------------------ ServerSession
    @property
    def call_id(self) -> str:
        return self.dialog.call_id

    @property
    def request(self) -> SipRequest:
        return self._request

    @property
    def response(self) -> SipResponse:
        return self._response

    @property
    def peer(self) -> str:
        return self._peer

    @property
    def local_media(self) -> MsrpMedia:
        return self._local_media

    @property
    def remote_media(self) -> MsrpMedia:
        return self._remote_media

    @property
    def closed(self) -> asyncio.Event:
        return self._closed

    @property
    def end_reason(self) -> str | None:
        return self._end_reason

    @property
    def is_uac(self) -> bool:
        return self.dialog.is_uac

    @property
    def ended_by_peer(self) -> bool:
        return self._by_peer

    def handle_requests(self, handler: Callable[[IncomingRequest], bool]) -> None:
        self.request_handler = handler

    async def send_request(self, method: str, *, headers: Sequence[tuple[str, str]] = (),
                           body: bytes = b"", content_type: str | None = None,
                           ) -> SipResponse:
        return await self._channel.in_dialog(self, method, headers=headers, body=body,
                                             content_type=content_type)

    async def send(self, body: bytes, content_type: str, *,
                   headers: Sequence[tuple[str, str]] = (),
                   success_report: bool = False, confirmed: bool = True) -> None:
        if self._closed.is_set():
            raise MediaError(481, "session ended")
        try:
            await self.stream.send(body, content_type, headers=tuple(headers),
                                   success_report=success_report,
                                   failure_report="yes" if confirmed else "partial")
        except MsrpTransferError as exc:
            raise MediaError(exc.status, exc.comment or "") from exc
        except ProtocolError as exc:
            raise MediaError(exc.status, exc.detail) from exc

    async def deliver(self, body: bytes, content_type: str, *,
                      headers: Sequence[tuple[str, str]] = ()) -> None:
        if self._closed.is_set():
            raise MediaError(481, "session ended")
        try:
            msg = await self.stream.send(body, content_type, headers=tuple(headers),
                                         success_report=True, failure_report="yes")
            await self.stream.wait_delivered(msg)
        except MsrpTransferError as exc:
            raise MediaError(exc.status, exc.comment or "") from exc
        except ProtocolError as exc:
            raise MediaError(exc.status, exc.detail) from exc

    def report(self, message_id: str, status: int, *, body: bytes = b"",
               content_type: str | None = None, size: int | None = None) -> None:
        if self._closed.is_set():
            raise MediaError(481, "session ended")
        br = ByteRange(1, size, size) if size is not None else None
        try:
            self.stream.send_report(message_id, MsrpStatus(status, REASONS.get(status, "OK")),
                                    byte_range=br, body=body, content_type=content_type)
        except MsrpTransferError as exc:
            raise MediaError(exc.status, exc.comment or "") from exc
        except ProtocolError as exc:
            raise MediaError(exc.status, exc.detail) from exc

    def post(self, body: bytes, content_type: str,
             on_failure: Callable[[MediaError], None]) -> bool:
        if self._closed.is_set():
            return False
        if self.stream.post_whole(body, content_type):
            return True                 # written: Failure-Report partial, nothing comes back
        fut = self.stream.post(body, content_type)
        if fut is None:
            return False

        def settled(done: asyncio.Future[OutgoingMessage]) -> None:
            if done.cancelled():
                return
            exc = done.exception()
            if isinstance(exc, MsrpTransferError):
                on_failure(MediaError(exc.status, exc.comment or ""))
            elif exc is not None:
                on_failure(MediaError(408, str(exc)))

        fut.add_done_callback(settled)
        return True

    async def receive(self) -> MediaMessage | None:
        """The next received message, None once the session ended."""
        while True:
            msg = await self._next_incoming()
            if msg is None:
                return None
            if not isinstance(msg.sink, SwitchSink):
                if msg.held is not None:
                    self._held[msg.message_id] = msg
                return media_message(msg)
            # switched to the other legs as it arrived (server/media/switch.py): done

    async def _next_incoming(self) -> IncomingMessage | None:
        ready = self.stream.receive_nowait()
        if ready is not None:
            return ready                      # the common case under load: no waiting
        if self._closed.is_set():
            return None
        get = asyncio.ensure_future(self.stream.receive())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            done, _ = await asyncio.wait({get, closed}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # the reader was cancelled (a room dropping the leg): its receive goes too,
            # else it stays pending for ever (and is reported when collected)
            get.cancel()
            raise
        finally:
            closed.cancel()
        if get in done:
            return get.result()
        get.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await get
        if get.done() and not get.cancelled():
            return get.result()
        return None

    def hold_acknowledgements(self) -> None:
        self.stream.core.hold_acks = True

    def acknowledge(self, message: MediaMessage, status: int = 200, *,
                    report: bool = True) -> None:
        held = self._held.pop(message.message_id, None)
        if held is not None:
            self.stream.acknowledge(held, status, report=report)

    async def events(self) -> AsyncIterator[SessionEvent]:
        while True:
            msg = await self.receive()
            if msg is None:
                break
            yield msg
        yield SessionEnded(self._end_reason or "ended", self._by_peer)

    async def bye(self, reason: str = "") -> None:
        """BYE (RFC 3261 §15.1.1) first, then the MSRP session is released.  ``reason``
        goes on the wire too, as ``Reason: SIP;text="..."`` (RFC 3326 §2), so the peer
        learns why the server ended it (a participant too slow for a conference...)."""
        if self._closed.is_set() or self._ending:
            return
        self._ending = True
        if self.dialog.state is DialogState.CONFIRMED:
            headers = [("Reason", reason_header(reason))] if reason else []
            with contextlib.suppress(SimpleImError, OSError, TimeoutError):
                async with asyncio.timeout(self.bye_timeout):
                    await self._channel.in_dialog(self, "BYE", headers=headers)
        self.finish(reason or "BYE sent", by_peer=False)

    # ------------------------------------------------------------------ life cycle
    def finish(self, reason: str, *, by_peer: bool) -> None:
        """The session is over (BYE either way, timer, MSRP loss): release everything."""
        if self._closed.is_set():
            return
        self._end_reason = reason
        self._by_peer = by_peer
        self.dialog.terminate()
        self.timer, _ = self.timer.step(TimerInput.STOP, 0.0)
        task, self._timer_task = self._timer_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self.stream.close()
        self._channel.forget(self)
        self._closed.set()
        for hook in self.on_end:
            hook(reason)
        log.info("session %s with %s ended: %s", self.call_id, self._peer, reason)

    # ------------------------------------------------------------------ RFC 4028
    def start_timer(self, interval: float, we_refresh: bool) -> None:
        """A negotiated interval (initial 2xx or a refresh): arm the deadline (§10)."""
        event = TimerInput.NEGOTIATED_US if we_refresh else TimerInput.NEGOTIATED_PEER
        self.timer, _ = self.timer.step(event, self._channel.now(), interval)
        self._arm()

    def refreshed(self) -> None:
        """The peer refreshed with the same roles (§10)."""
        self.timer, _ = self.timer.step(TimerInput.REFRESHED, self._channel.now())
        self._arm()

    def _arm(self) -> None:
        if self._timer_task is not None:
            self._timer_task.cancel()
            self._timer_task = None
        deadline = self.timer.deadline
        if deadline is not None and not self._closed.is_set():
            self._timer_task = asyncio.get_running_loop().create_task(self._wait(deadline))

    async def _wait(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self._channel.now()))
        self._timer_task = None
        self.timer, action = self.timer.step(TimerInput.DEADLINE, self._channel.now())
        if action is TimerAction.SEND_REFRESH:
            await self._refresh()
        elif action is TimerAction.SEND_BYE:
            await self.bye("session timer expired (RFC 4028 §10)")

    async def _refresh(self) -> None:
        """RFC 4028 §7.4 / §10: refresh with UPDATE (no SDP: nothing changes) when the peer
        allows it, else a re-INVITE with the SDP in use; 408/481 end the session."""
        interval = int(self.timer.interval)
        allow = {v.strip().upper() for h in (self._request, self._response)
                 for value in h.headers.get_all("Allow") for v in value.split(",")}
        method = "UPDATE" if "UPDATE" in allow else "INVITE"
        headers = [("Session-Expires", f"{interval};refresher=uac"), ("Supported", "timer")]
        body = self.local_sdp.to_bytes() if method == "INVITE" else b""
        try:
            resp = await self._channel.in_dialog(
                self, method, headers=headers, body=body,
                content_type="application/sdp" if body else None)
        except (SimpleImError, OSError) as exc:
            await self.bye(f"session refresh failed: {exc}")
            return
        if 200 <= resp.status < 300:
            self.start_timer(float(interval), True)
        elif resp.status in (408, 481):
            self.finish(f"session refresh failed with {resp.status}", by_peer=True)
        else:
            # RFC 4028 §10: a refresh refused otherwise leaves the session as it is until
            # it expires; we keep refreshing.
            self.start_timer(float(interval), True)


def media_message(msg: IncomingMessage) -> MediaMessage:
    """A received MSRP message as the roles see it (memory sinks only)."""
    sink = msg.sink
    body = bytes(sink.buffer) if isinstance(sink, MemorySink) else b""
    head = msg.first
    return MediaMessage(msg.content_type or "", body, msg.message_id,
                        tuple(head.headers.items()))
