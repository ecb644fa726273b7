"""The client :class:`Account`: registration, request dispatch and the public API.

::

    async with Account(ClientConfig("alice@example.test", password="pw",
                                    proxy="127.0.0.1:5060")) as alice:
        await alice.pager.send("sip:bob@example.test", "hello")
        async for ev in alice.events:
            print(ev.to_json())

The account is the package face: it implements :class:`~simpleim.client.context.
ClientContext` and composes the features built on it - ``pager`` (pager / large message
mode IMs), ``chats`` (1-1 sessions), ``files`` (push, pull, offered files), ``images``
(IR.79 image share), ``capabilities`` (OPTIONS) - and routes incoming requests to them:
INVITEs through the :class:`~simpleim.client.invites.InviteRouter` the features register
with, MESSAGE to the pager, OPTIONS to the capability queries.

Registration (OMA SIMPLE IM §5.2.1, RFC 3261 §10.2): REGISTER with ``+g.oma.sip-im`` and the
CPM/RCS tags in Contact, ``Require: pref`` (dropped if the registrar answers 420), digest
auth, re-registration before expiry, de-registration (Expires: 0) on close (§5.2.3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from simpleim.content.cpim import CpimDateTime
from simpleim.errors import (
    LocalProtocolError,
    ProtocolError,
    RegistrationError,
    SimpleImError,
    SipParseError,
)
from simpleim.sip.auth import DigestClient
from simpleim.sip.headers import Address
from simpleim.sip.message import SipLimits, SipResponse
from simpleim.sip.outbound import flow_timer_of
from simpleim.timers import refresh_delay
from simpleim.transport import tls
from simpleim.transport.msrp import MsrpEndpoint
from simpleim.transport.sip import IncomingRequest, SipEndpoint
from simpleim.transport.sip_addr import RELIABLE, ListenSpec, TransportAddr

from .chats import Chats
from .config import ClientConfig
from .context import SessionRegistry
from .deferred import DeferredFeature
from .deferred_meta import fetch_deferred_metadata
from .events import (
    ErrorEvent,
    Event,
    EventStream,
    ReadyEvent,
    RegisteredEvent,
)
from .features import USER_AGENT, contact_params
from .filetransfer import FileTransfers
from .groupchat import GroupChat, GroupChats
from .history import HistoryFeature
from .imageshare import ImageShares
from .inbox import Inbox
from .invites import InviteRouter
from .largemsg import LargeMessages
from .messages import PagerMessages, SendResult
from .options import CapabilityQueries
from .outbound import OutboundFlow, new_instance_id, outbound_contact_params
from .pager import build_request, cpim_datetime, new_call_id, new_tag
from .settings import ServiceSettingsFeature
from .trust import SourceTrust
from .ua import ClientEndpoint, UserAgent

T = TypeVar("T")

__all__ = ["Account", "SendResult", "RegistrationError", "refresh_delay"]

log = logging.getLogger("simpleim.client")

#: The largest SIP message the client takes on a TCP/TLS flow (a UDP datagram stays under
#: 64 KiB anyway).  The full state of a group chat grows ~360 bytes per participant (RFC 4575
#: user + endpoint): a 500-member conference's first NOTIFY is ~180 KB, above the 64 KiB a
#: UDP-sized limit allows.  Only the proxy flow (and configured sources) may send requests.
STREAM_MESSAGE_LIMIT = 1 << 20


class Account:
    """One registered identity: SIP + MSRP endpoints, sessions and the event stream."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.events = EventStream()
        endpoint = ClientEndpoint(self._on_request, timers=config.timers,
                                  server_name=USER_AGENT, ssl_client=client_tls_context(config),
                                  limits=SipLimits(max_message_size=STREAM_MESSAGE_LIMIT,
                                                   max_body=STREAM_MESSAGE_LIMIT))
        # issue 7 item 17: requests only through the proxy flow (or configured sources)
        endpoint.trust = SourceTrust(config.proxy_addr, config.trusted_sources)
        self.endpoint: SipEndpoint = endpoint
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
        self.sessions = SessionRegistry()
        self.local: TransportAddr | None = None
        self.contact = ""
        self.registered = asyncio.Event()
        self._reg_call_id = ""
        self._reg_tag = new_tag()
        self._reg_cseq = 0
        self._require_pref = config.require_pref
        self._tasks: set[asyncio.Task[object]] = set()
        self._closing = False
        self.registration_expires = 0
        #: RFC 5626 outbound on a TCP/TLS proxy flow (None on UDP or when turned off)
        self.outbound: OutboundFlow | None = None
        self.instance_id = config.instance_id or new_instance_id()
        # the features, each built on this account as its ClientContext
        self.inbox = Inbox(self)
        self.large = LargeMessages(self, self.inbox)
        self.pager = PagerMessages(self, self.inbox, self.large)
        self.chats = Chats(self, self.inbox)
        self.notify_handlers: dict[str, Callable[[IncomingRequest], None]] = {}
        self.files = FileTransfers(self, self.inbox)
        self.groups = GroupChats(self, self.inbox, self.files)
        self.images = ImageShares(self, self.files)
        self.capabilities = CapabilityQueries(self)
        self.settings = ServiceSettingsFeature(self)
        self.deferred = DeferredFeature(self, self.pager.present_stored)
        self.history = HistoryFeature(self)
        #: incoming INVITEs by what they are (OMA §7.1.2): each feature adds its routes
        self.invites = InviteRouter(self)
        for feature in (self.large, self.images, self.files, self.groups, self.chats,
                        self.deferred):
            feature.register(self.invites)

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
        if cfg.outbound and cfg.proxy_addr.transport in RELIABLE:
            # RFC 5626 §4.2: ob in the Contact URI, instance and reg-id as parameters
            self.contact = (f"<{uri};ob>{contact_params()}"
                            + outbound_contact_params(self.instance_id))
            self.outbound = OutboundFlow(self.endpoint, cfg.proxy_addr, self.register)
        self.spawn(self._tc2_loop())
        self.emit(ReadyEvent(cfg.uri, str(self.local), f"{self.msrp.host}:{self.msrp.port}"))
        if register:
            await self.register()
            self.spawn(self._refresh_loop())
            if cfg.publish_settings:
                # C-REG-01 (OMA §5.2.2): publish the IM service settings after each
                # successful initial registration (failures are logged, not raised).
                status = await self.settings.after_registration()
                if 200 <= status < 300 and not self.settings.effective().offline_delivery:
                    # §5.2.4 / §12.1.2: offline delivery off -> retrieve the Deferred
                    # Metadata from the IM XDMS (when one is configured)
                    self.spawn(self._deferred_metadata())
            if self.outbound is not None:
                self.outbound.start()

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
        if self.outbound is not None:
            self.outbound.stop()        # closing our flow is not a flow failure
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
        self.inbox.close()
        await self.ua.close()
        await self.msrp.close()
        await self.endpoint.close()
        self.events.close()

    # ------------------------------------------------------------------ ClientContext
    async def _deferred_metadata(self) -> None:
        event = await fetch_deferred_metadata(self.config)
        if event is not None:
            self.emit(event)

    def spawn(self, work: Awaitable[T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[T]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.debug("task failed: %r", exc)
            self.emit(ErrorEvent(str(exc), getattr(exc, "status", None)))

    def emit(self, event: Event) -> None:
        self.events.put(event)

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def now_cpim(self) -> CpimDateTime:
        return cpim_datetime(datetime.now(UTC), self.config.fixed_datetime)

    @property
    def host(self) -> str:
        return self.local.host if self.local is not None else "localhost"

    def local_contact(self) -> Address:
        return Address.parse(self.contact, "Contact")

    # ------------------------------------------------------------------ registration
    async def register(self, expires: int | None = None) -> int:
        """REGISTER (RFC 3261 §10.2); returns the granted expiry (0 when de-registered)."""
        cfg = self.config
        exp = cfg.expires if expires is None else expires
        for _ in range(3):
            self._reg_cseq += 1
            extra: list[tuple[str, str]] = [("Expires", str(exp)), ("Allow", "INVITE, ACK, "
                                            "CANCEL, BYE, OPTIONS, MESSAGE, UPDATE"),
                                            ("Supported", "outbound, path"
                                             if self.outbound is not None else "path")]
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
            if self.outbound is not None:
                self.outbound.registered(_flow_timer(resp))
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
            self.inbox.handle_timer()

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
                self.pager.on_message(inc)
            elif method == "OPTIONS":
                self.capabilities.on_options(inc)
            elif method == "INVITE":
                self.invites.on_invite(inc)
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
        handler = self.notify_handlers.get(req.call_id) if req.method == "NOTIFY" else None
        if handler is not None:
            handler(inc)                        # a subscription of ours (RFC 6665 §4.1.3)
            return
        if s is None or s.dialog is None:
            if req.method == "INVITE":
                # OMA §7.1.2.2: re-INVITE for an unknown session -> 606 with a Warning.
                inc.reply(606, headers=[("Warning", '399 simpleim "session does not exist"')])
            elif req.method == "MESSAGE":
                self.pager.on_message(inc)
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
            self.pager.on_message(inc)
        elif req.method == "NOTIFY" and isinstance(s, GroupChat):
            s.on_notify(inc)                    # the implicit refer subscription (RFC 3515)
        else:
            inc.reply(405)

    async def mark_displayed(self, message_id: str) -> bool:
        """Send the display notification (RFC 5438 §7.2.1.2) of a received message: inside
        its MSRP session when it came in one, else in a SIP MESSAGE (OMA §8.2.1).  False
        when the message is unknown or no display notification was asked for."""
        chat = self.chats.holding(message_id)
        if chat is not None:
            return await chat.mark_displayed(message_id)
        return await self.inbox.mark_displayed(message_id)

    def check_started(self) -> None:
        if self.local is None:
            raise LocalProtocolError("the account is not started")


def client_tls_context(config: ClientConfig) -> ssl.SSLContext | None:
    """The TLS client context (RFC 3261 §26.2.1: the proxy's certificate is verified) -
    ``tls_ca`` adds a CA file, ``tls_insecure`` turns verification off (test setups)."""
    if config.proxy_addr.transport != "tls":
        return None
    return tls.client_context(config.tls_ca, insecure=config.tls_insecure)


def msrp_tls_context(config: ClientConfig) -> ssl.SSLContext | None:
    """The msrps listener's context: only with TLS signalling and ``tls_cert``/``tls_key``."""
    if config.proxy_addr.transport != "tls" or not (config.tls_cert and config.tls_key):
        return None
    return tls.server_context(config.tls_cert, config.tls_key)


def _flow_timer(resp: SipResponse) -> int | None:
    """RFC 5626 §4.4.1: the registrar's Flow-Timer (a malformed one is ignored)."""
    try:
        return flow_timer_of(resp.headers.get("Flow-Timer"))
    except SipParseError:
        return None


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

