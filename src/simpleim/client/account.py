"""The client :class:`Account`: registration, request dispatch and the public API.

::

    async with Account(ClientConfig("alice@example.test", password="pw",
                                    proxy="127.0.0.1:5060")) as alice:
        await alice.send_message("sip:bob@example.test", "hello")
        async for ev in alice.events:
            print(ev.to_json())

Registration (OMA SIMPLE IM §5.2.1, RFC 3261 §10.2): REGISTER with ``+g.oma.sip-im`` and the
CPM/RCS tags in Contact, ``Require: pref`` (dropped if the registrar answers 420), digest
auth, re-registration before expiry, de-registration (Expires: 0) on close (§5.2.3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simpleim.content.cpim import CpimDateTime
from simpleim.content.imdn import NotificationType, Status
from simpleim.errors import (
    ConfigError,
    ContentError,
    LocalProtocolError,
    ProtocolError,
    SimpleImError,
)
from simpleim.sdp import FileSelector
from simpleim.sip.auth import DigestClient
from simpleim.sip.dialog import DialogState
from simpleim.sip.headers import Address
from simpleim.sip.message import SipResponse
from simpleim.transport.msrp import MsrpEndpoint
from simpleim.transport.sip import IncomingRequest, SipEndpoint
from simpleim.transport.sip_addr import ListenSpec, TransportAddr

from . import invites
from .capabilities import (
    CapabilityCache,
    CapabilityResult,
    build_options,
    options_answer_sdp,
    options_headers,
    result_of,
    retry_decision,
)
from .composing import ComposingTracker
from .config import ClientConfig
from .downloads import DownloadDir
from .events import (
    CapabilitiesEvent,
    ErrorEvent,
    Event,
    EventStream,
    MessageEvent,
    ReadyEvent,
    RegisteredEvent,
)
from .features import USER_AGENT, contact_params
from .imdn import Tc2Tracker
from .pager import (
    Decoded,
    build_im,
    build_request,
    choose_mode,
    cpim_datetime,
    decode_body,
    imdn_reply,
    new_call_id,
    new_message_id,
    new_tag,
)
from .session import ChatSession, InviteSession, SessionFailed, imdn_event, wanted_notifications
from .ua import ClientEndpoint, UserAgent

__all__ = ["Account", "SendResult", "RegistrationError", "refresh_delay"]

log = logging.getLogger("simpleim.client")


class RegistrationError(SimpleImError):
    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"registration failed: {status} {reason}")


@dataclass(frozen=True)
class SendResult:
    """Outcome of :meth:`Account.send_message`: ``mode`` pager / large, SIP ``status``."""

    message_id: str
    mode: str
    status: int


class Account:
    """One registered identity: SIP + MSRP endpoints, sessions and the event stream."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.events = EventStream()
        self.endpoint: SipEndpoint = ClientEndpoint(self._on_request, timers=config.timers,
                                                    server_name=USER_AGENT,
                                                    ssl_client=client_tls_context(config))
        self.auth = DigestClient(config.user, config.password)
        self.ua = UserAgent(self.endpoint, config.proxy_addr, self.auth,
                            username=config.user, password=config.password)
        msrp = config.msrp_addr
        # RFC 4975 §6 / §8.1: MSRP over TLS (msrps, TCP/TLS/MSRP) when the signalling is TLS
        # and we have a certificate for our (passive side) listener.
        msrp_server = msrp_tls_context(config)
        self.msrp = MsrpEndpoint(msrp.host, msrp.port, timers=config.timers,
                                 ssl_server=msrp_server,
                                 ssl_client=client_tls_context(config) if msrp_server else None)
        self.tracker = Tc2Tracker(config.timers)
        self.capabilities = CapabilityCache(config.capability_ttl)
        self.composing = ComposingTracker(self.emit)
        self.downloads = DownloadDir(config.download_dir)
        self.sessions: dict[str, InviteSession] = {}
        self.shared_files: dict[FileSelector, Path] = {}
        # received IMs by imdn.Message-ID (bounded) so that they can be marked displayed
        self._received: dict[str, tuple[Decoded, str]] = {}
        self.local: TransportAddr | None = None
        self.contact = ""
        self.registered = asyncio.Event()
        self._reg_call_id = ""
        self._reg_tag = new_tag()
        self._reg_cseq = 0
        self._require_pref = config.require_pref
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.registration_expires = 0

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Account:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self, *, register: bool = True) -> None:
        """Open the listeners and register (raises :class:`RegistrationError`)."""
        cfg = self.config
        want = cfg.listen_addr
        self.local = await self.endpoint.listen(ListenSpec(want.transport, want.host, want.port))
        other = "tcp" if want.transport == "udp" else "udp"
        # Listen on the other transport of the same port too: answers and in-dialog requests
        # may come over either (RFC 3261 §18: a UA SHOULD listen on UDP and TCP).
        with contextlib.suppress(OSError, ProtocolError):
            await self.endpoint.listen(ListenSpec(other, want.host, self.local.port))
        await self.msrp.start()
        self._reg_call_id = new_call_id(self.local.host)
        tp = ";transport=tcp" if self.local.transport == "tcp" else ""
        hostport = self.local.hostport
        if cfg.proxy_addr.transport == "tls":
            # RFC 3261 §26.2 / §18: signalling over the TLS connection we open to the proxy;
            # our Contact names its local end, so that the proxy reuses it towards us.
            hostport = await self._open_tls(cfg.proxy_addr)
            tp = ";transport=tls"
        uri = f"sip:{cfg.user}@{hostport}{tp}"
        self.contact = f"<{uri}>{contact_params()}"
        self.spawn(self._tc2_loop())
        self.emit(ReadyEvent(cfg.uri, str(self.local), f"{self.msrp.host}:{self.msrp.port}"))
        if register:
            await self.register()
            self.spawn(self._refresh_loop())

    async def _open_tls(self, proxy: TransportAddr) -> str:
        """Open (and verify) the TLS connection to the proxy; returns its local host:port."""
        net = self.endpoint.net
        await net._connect(proxy)
        conn = net._conns.get(proxy)
        transport = None if conn is None else conn.transport
        sockname = None if transport is None else transport.get_extra_info("sockname")
        if not sockname:
            raise OSError(f"TLS connection to {proxy.host}:{proxy.port} failed")
        host = str(sockname[0])
        return f"[{host}]:{sockname[1]}" if ":" in host else f"{host}:{sockname[1]}"

    async def close(self) -> None:
        """End sessions, de-register (OMA §5.2.3: Expires 0), close the sockets."""
        if self._closing:
            return
        self._closing = True
        for s in list(self.sessions.values()):
            with contextlib.suppress(SimpleImError, OSError, TimeoutError):
                async with asyncio.timeout(3):
                    await s.end("account closing")
        if self.registered.is_set():
            with contextlib.suppress(SimpleImError, OSError, TimeoutError):
                async with asyncio.timeout(5):
                    await self.register(expires=0)
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.composing.close()
        await self.ua.close()
        await self.msrp.close()
        await self.endpoint.close()
        self.events.close()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.debug("task failed: %r", exc)
            self.emit(ErrorEvent(str(exc), getattr(exc, "status", None)))

    def emit(self, event: Event) -> None:
        self.events.put(event)

    def forget(self, session: InviteSession) -> None:
        if self.sessions.get(session.call_id) is session:
            del self.sessions[session.call_id]

    def now_cpim(self) -> CpimDateTime:
        return cpim_datetime(datetime.now(UTC), self.config.fixed_datetime)

    # ------------------------------------------------------------------ registration
    async def register(self, expires: int | None = None) -> int:
        """REGISTER (RFC 3261 §10.2); returns the granted expiry (0 when de-registered)."""
        cfg = self.config
        exp = cfg.expires if expires is None else expires
        for _ in range(3):
            self._reg_cseq += 1
            extra: list[tuple[str, str]] = [("Expires", str(exp)), ("Allow", "INVITE, ACK, "
                                            "CANCEL, BYE, OPTIONS, MESSAGE, UPDATE"),
                                            ("Supported", "path")]
            if self._require_pref:
                extra.append(("Require", "pref"))          # OMA §5.2.1 / RFC 3840
            req = build_request("REGISTER", target=f"sip:{cfg.domain}", from_uri=cfg.uri,
                                from_tag=self._reg_tag, call_id=self._reg_call_id,
                                cseq=self._reg_cseq, contact=self.contact,
                                display_name=cfg.display_name, accept_contact=None,
                                extra=tuple(extra))
            req.headers.set("To", f"<{cfg.uri}>")
            resp = await self.ua.request(req)
            self._reg_cseq = req.cseq.seq
            if resp.status == 420 and self._require_pref:
                # The registrar does not know 'pref' (RFC 3261 §8.1.3.5): retry without it.
                self._require_pref = False
                continue
            if resp.status == 423:
                mn = resp.headers.get("Min-Expires")
                if mn and mn.isdigit():
                    exp = int(mn)       # RFC 3261 §10.2.8: retry with Min-Expires
                    continue
            break
        if not 200 <= resp.status < 300:
            raise RegistrationError(resp.status, resp.reason or "")
        granted = exp
        if exp > 0:
            granted = _granted_expiry(resp, self.contact, exp)
            self.registered.set()
        else:
            self.registered.clear()
        self.registration_expires = granted
        self.emit(RegisteredEvent(cfg.uri, self.contact.split(">")[0] + ">", granted))
        return granted

    async def _refresh_loop(self) -> None:
        """Re-register before expiry (RFC 3261 §10.2.4): at the later of half the interval
        and 30 s before the end, bounded retries on failure."""
        failures = 0
        while not self._closing and failures < 20:
            delay = refresh_delay(self.registration_expires)
            await asyncio.sleep(delay if failures == 0 else min(30.0, 2.0 * failures))
            try:
                await self.register()
                failures = 0
            except (SimpleImError, OSError) as exc:
                failures += 1
                self.emit(ErrorEvent(f"re-registration failed: {exc}",
                                     getattr(exc, "status", None)))

    async def _tc2_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(1.0)
            self.tracker.handle_timer(asyncio.get_running_loop().time())

    # ------------------------------------------------------------------ pager mode
    async def send_message(self, to: str, text: str | bytes, *,
                           content_type: str = "text/plain") -> SendResult:
        """Send an IM: pager mode (MESSAGE, OMA §8.1.1) up to ``pager_max`` bytes of CPIM,
        large message mode (INVITE + MSRP, OMA §9.1) above.  Raises :class:`SessionFailed`
        with the SIP status when the recipient refused or was unreachable."""
        cfg = self.config
        target = self.normalize_uri(to)
        body = text.encode("utf-8") if isinstance(text, str) else text
        mid = new_message_id()
        cpim = build_im(sender=cfg.uri, recipient=target, body=body, content_type=content_type,
                        message_id=mid, imdn=cfg.imdn, date_time=self.now_cpim()).to_bytes()
        if choose_mode(len(cpim), cfg.pager_max) == "large":
            from .largemsg import send_large_message
            status = await send_large_message(self, target, cpim, mid)
            return SendResult(mid, "large", status)
        req = build_request("MESSAGE", target=target, from_uri=cfg.uri, from_tag=new_tag(),
                            call_id=new_call_id(self._host), body=cpim,
                            content_type="message/cpim", display_name=cfg.display_name)
        resp = await self.ua.request(req)
        accept = (resp.headers.get("Accept") or "").lower()
        if resp.status == 415 and content_type.startswith("text/") \
                and "message/cpim" not in accept:
            # RFC 3428 §11 / RFC 3261 §21.4.16: the peer lists what it takes (baresip:
            # text/plain only) - send the bare text, without CPIM and IMDN.
            status = await self.send_pager_raw(target, body, content_type)
            if not 200 <= status < 300:
                raise SessionFailed(status, "refused")
            return SendResult(mid, "pager-plain", status)
        if not 200 <= resp.status < 300:
            raise SessionFailed(resp.status, resp.reason or "")
        # OMA §8.1.1 / §15.2: store the Message-ID for Tc2 after the 202/200.
        self.tracker.sent(mid, target, wanted_notifications(cfg.imdn),
                          asyncio.get_running_loop().time())
        return SendResult(mid, "pager", resp.status)

    async def send_pager_raw(self, to: str, body: bytes, content_type: str, *,
                             accept_contact: str | None = None,
                             extra: Sequence[tuple[str, str]] = ()) -> int:
        """A MESSAGE with any body (IMDN, is-composing, plain text for non-RCS peers);
        ``accept_contact`` replaces the default ``*;+g.oma.sip-im``."""
        cfg = self.config
        kw: dict[str, Any] = {} if accept_contact is None else {"accept_contact": accept_contact}
        req = build_request("MESSAGE", target=self.normalize_uri(to), from_uri=cfg.uri,
                            from_tag=new_tag(), call_id=new_call_id(self._host), body=body,
                            content_type=content_type, extra=tuple(extra), **kw)
        resp = await self.ua.request(req)
        return resp.status

    @property
    def _host(self) -> str:
        return self.local.host if self.local is not None else "localhost"

    def normalize_uri(self, to: str) -> str:
        """``bob`` -> ``sip:bob@<our domain>``; ``bob@x`` -> ``sip:bob@x``."""
        to = to.strip()
        if to.startswith(("sip:", "sips:", "tel:")):
            return to
        if "@" not in to:
            return f"sip:{to}@{self.config.domain}"
        return f"sip:{to}"

    # ------------------------------------------------------------------ sessions
    async def start_chat(self, to: str, *, timeout: float = 60.0) -> ChatSession:
        """Invite ``to`` to a 1-1 IM session (OMA §7.1.1.2); raises :class:`SessionFailed`."""
        return await invites.start_chat(self, self.normalize_uri(to), timeout=timeout)

    async def send_files(self, to: str, paths: Sequence[str | Path], **kw: Any) -> Any:
        """Push files in one session, one m-line each (RFC 5547 §8.2, OMA §10.1)."""
        from .filetransfer import send_files
        return await send_files(self, self.normalize_uri(to), [Path(p) for p in paths], **kw)

    async def pull_file(self, frm: str, **kw: Any) -> Any:
        """Pull a file described by a selector (RFC 5547 §8.3)."""
        from .filetransfer import pull_file
        return await pull_file(self, self.normalize_uri(frm), **kw)

    async def share_image(self, to: str, path: str | Path, **kw: Any) -> Any:
        """GSMA IR.79 image share."""
        from .imageshare import share_image
        return await share_image(self, self.normalize_uri(to), Path(path), **kw)

    async def query_capabilities(self, to: str, *, use_cache: bool = True) -> CapabilityResult:
        """OPTIONS capability query (IR.79 §2.3) with the 480 retry rule; cached."""
        cfg = self.config
        target = self.normalize_uri(to)
        loop = asyncio.get_running_loop()
        if use_cache:
            cached = self.capabilities.get(target, loop.time())
            if cached is not None:
                self.emit(CapabilitiesEvent(target, cached.status, cached.names, True))
                return cached
        attempt = 0
        while True:
            req = build_options(target=target, from_uri=cfg.uri, from_tag=new_tag(),
                                call_id=new_call_id(self._host), contact=self.contact)
            resp = await self.ua.request(req)
            if not retry_decision(resp.status, attempt, cfg.options_retries):
                break
            attempt += 1
            await asyncio.sleep(cfg.options_retry_delay)
        result = result_of(target, resp, loop.time())
        self.capabilities.put(result)
        self.emit(CapabilitiesEvent(target, result.status, result.names, False))
        return result

    # ------------------------------------------------------------------ incoming
    def _on_request(self, inc: IncomingRequest) -> None:
        req = inc.request
        method = req.method
        try:
            if method == "ACK":
                s = self.sessions.get(req.call_id)
                if s is not None:
                    s.on_ack(inc)
                return
            in_dialog = req.to_addr.tag is not None
            if in_dialog:
                self._in_dialog(inc)
            elif method == "MESSAGE":
                self._on_message(inc)
            elif method == "OPTIONS":
                self._on_options(inc)
            elif method == "INVITE":
                invites.on_invite(self, inc)
            elif method in ("BYE", "UPDATE"):
                inc.reply(481)                      # RFC 3261 §12.2.2
            else:
                inc.reply(405, headers=[("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, "
                                                  "MESSAGE, UPDATE")])
        except ProtocolError as exc:
            if inc.transaction_id is not None and not inc.final_sent:
                inc.reply(exc.status if 400 <= exc.status < 700 else 400,
                          headers=[("Warning", f'399 simpleim "{exc.detail}"')])
            self.emit(ErrorEvent(exc.detail, exc.status, method))

    def _in_dialog(self, inc: IncomingRequest) -> None:
        req = inc.request
        s = self.sessions.get(req.call_id)
        if s is None or s.dialog is None:
            if req.method == "INVITE":
                # OMA §7.1.2.2: re-INVITE for an unknown session -> 606 with a Warning.
                inc.reply(606, headers=[("Warning", '399 simpleim "session does not exist"')])
            elif req.method == "MESSAGE":
                self._on_message(inc)
            else:
                inc.reply(481)
            return
        s.dialog.receive_request(req)
        if req.method == "BYE":
            s.on_bye(inc)
        elif req.method == "INVITE":
            s.on_reinvite(inc)
        elif req.method == "UPDATE":
            s.on_update(inc)
        elif req.method == "MESSAGE":
            self._on_message(inc)
        else:
            inc.reply(405)

    def _on_options(self, inc: IncomingRequest) -> None:
        """Answer OPTIONS with our tags and the IR.79 §2.3 SDP (one message m-line)."""
        resp = inc.request.create_response(200, to_tag=new_tag())
        for k, v in options_headers(self.contact):
            resp.headers.add(k, v)
        resp.headers.add("User-Agent", USER_AGENT)
        accept = inc.request.headers.get("Accept") or "application/sdp"
        if "application/sdp" in accept.lower():
            resp.body = options_answer_sdp(self.msrp.advertise_host,
                                           max_size=self.config.max_file_size)
            resp.headers.add("Content-Type", "application/sdp")
        inc.respond(resp)

    def _on_message(self, inc: IncomingRequest) -> None:
        """OMA §8.2.1: accept, store, present; IMDN delivery notification when requested."""
        req = inc.request
        sender = str(req.from_addr.uri)
        try:
            decoded = decode_body(req.content_type, req.body,
                                  content_encoding=req.headers.get("Content-Encoding"),
                                  sender=sender)
        except ContentError as exc:
            hdrs: list[tuple[str, str]] = []
            if exc.status == 415:
                hdrs.append(("Accept", "message/cpim, text/plain, message/imdn+xml, "
                                       "application/im-iscomposing+xml"))
                hdrs.append(("Accept-Encoding", "deflate, gzip"))
            inc.reply(exc.status, headers=hdrs)
            self.emit(ErrorEvent(f"bad MESSAGE from {sender}: {exc.detail}", exc.status))
            return
        # RFC 3428 §7: 200 OK; OMA §8.2.1: with User-Agent.
        inc.reply(200, headers=[("User-Agent", USER_AGENT)], to_tag=new_tag())
        self.deliver(decoded, sender, "pager")

    def deliver(self, decoded: Decoded, sender: str, mode: str,
                session_id: str | None = None) -> None:
        if decoded.kind == "imdn":
            self.report_imdn(decoded, sender)
            return
        if decoded.kind == "composing" and decoded.composing is not None:
            # RFC 3994 §4.3 receiver timing (C-UP-06): active until idle / message / refresh
            self.composing.indication(decoded.sender or sender, session_id, decoded.composing)
            return
        self.composing.message(decoded.sender or sender, session_id)
        cpim = decoded.cpim
        if decoded.message_id:
            self._received[decoded.message_id] = (decoded, decoded.sender or sender)
            if len(self._received) > 1000:
                self._received.pop(next(iter(self._received)))
        self.emit(MessageEvent(decoded.sender or sender, decoded.text, decoded.content_type,
                               mode, decoded.message_id, session_id, decoded.disposition,
                               cpim.datetime.text if cpim and cpim.datetime else None))
        doc = imdn_reply(decoded, NotificationType.DELIVERY, Status.DELIVERED,
                         me=self.config.uri, date_time=self.now_cpim())
        if doc is not None:
            # OMA §8.2.1: the delivery notification goes in a SIP MESSAGE (RFC 5438 §7.2).
            self.spawn(self.send_pager_raw(decoded.sender or sender, doc.to_bytes(),
                                           "message/cpim"))

    async def mark_displayed(self, message_id: str) -> bool:
        """Send the display notification (RFC 5438 §7.2.1.2) of a received message: inside
        its MSRP session when it came in one, else in a SIP MESSAGE (OMA §8.2.1).  False
        when the message is unknown or no display notification was asked for."""
        for s in self.sessions.values():
            if isinstance(s, ChatSession) and message_id in s.received:
                return await s.mark_displayed(message_id)
        item = self._received.get(message_id)
        if item is None:
            return False
        return await self.send_display_notification(*item)

    async def send_display_notification(self, decoded: Decoded, sender: str) -> bool:
        """The display IMDN for a pager message (RFC 5438 §7.2.1.2) over MESSAGE."""
        doc = imdn_reply(decoded, NotificationType.DISPLAY, Status.DISPLAYED,
                         me=self.config.uri, date_time=self.now_cpim())
        if doc is None:
            return False
        status = await self.send_pager_raw(sender, doc.to_bytes(), "message/cpim")
        return 200 <= status < 300

    def report_imdn(self, decoded: Decoded, peer: str) -> None:
        doc = decoded.imdn
        if doc is None:
            return
        expected = self.tracker.notification(doc.message_id, doc.kind.value)
        ev = imdn_event(decoded, peer, expected)
        if ev is not None:
            self.emit(ev)

    async def answer_reinvite(self, session: InviteSession, inc: IncomingRequest) -> None:
        await invites.answer_reinvite(self, session, inc)

    def dialog_alive(self, session: InviteSession) -> bool:
        return session.dialog is not None and session.dialog.state is DialogState.CONFIRMED

    def local_contact(self) -> Address:
        return Address.parse(self.contact, "Contact")

    def check_started(self) -> None:
        if self.local is None:
            raise LocalProtocolError("the account is not started")


def client_tls_context(config: ClientConfig) -> ssl.SSLContext | None:
    """The TLS client context (RFC 3261 §26.2.1: the proxy's certificate is verified) -
    ``tls_ca`` adds a CA file, ``tls_insecure`` turns verification off (test setups)."""
    if config.proxy_addr.transport != "tls":
        return None
    try:
        ctx = ssl.create_default_context(cafile=config.tls_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS CA file {config.tls_ca}: {exc}") from exc
    if config.tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def msrp_tls_context(config: ClientConfig) -> ssl.SSLContext | None:
    """The msrps listener's context: only with TLS signalling and ``tls_cert``/``tls_key``."""
    if config.proxy_addr.transport != "tls" or not (config.tls_cert and config.tls_key):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate/key: {exc}") from exc
    return ctx


def refresh_delay(expires: int) -> float:
    """When to re-register (RFC 3261 §10.2.4: before the binding expires): 30 s before the
    end for long intervals, at half the interval for short ones."""
    exp = max(expires, 2)
    return float(max(exp / 2, exp - 30) if exp > 60 else exp / 2)


def _granted_expiry(resp: SipResponse, contact: str, asked: int) -> int:
    """The expiry the registrar granted to our Contact (RFC 3261 §10.2.4)."""
    ours = Address.parse(contact, "Contact").uri
    for c in resp.contacts:
        if str(c.uri) == str(ours):
            e = c.params.get("expires")
            if e and e.isdigit():
                return int(e)
    e = resp.headers.get("Expires")
    if e and e.strip().isdigit():
        return int(e.strip())
    return asked

