"""The server side of the IM application-server roles: how the core hands requests to them
and how their own requests reach the wire.

* :func:`build_roles` is the one place where the roles (:mod:`~simpleim.server.participating`,
  :mod:`~simpleim.server.deferred`, :mod:`~simpleim.server.settings`) are made and wired;
  they never import each other.
* :class:`RoleServices` runs the role handlers for requests the core routed to them
  (:mod:`simpleim.server.routing`) and is their
  :class:`~simpleim.server.deferred.Courier`: a request of a role goes to a user's
  registered contacts through the same endpoint and targets as proxied requests.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from simpleim.errors import ProtocolError, StorageError
from simpleim.server.auth import Authenticator, UserDirectory
from simpleim.server.callerprefs import apply_caller_preferences
from simpleim.server.config import ServerConfig, parse_host_port
from simpleim.server.controlling import (
    EXPLODER_USER,
    ConferenceFocus,
    ConferenceLimits,
    ExploderLimits,
    GroupLargeMessages,
    PagerExploder,
)
from simpleim.server.controlling.conference import is_conference_user
from simpleim.server.controlling.exploder import SessionTarget
from simpleim.server.controlling.notices import RoomNotices
from simpleim.server.deferred import (
    Courier,
    DeferredConfig,
    DeferredMessagingFunction,
    is_large_message,
)
from simpleim.server.guard import AuthGuard
from simpleim.server.history import (
    HISTORY_USER,
    HistoryConfig,
    HistoryFunction,
    Owner,
    RecordOutcome,
    SessionRecorder,
)
from simpleim.server.history.http import HistoryHttpServer, HttpAuthResult
from simpleim.server.identity import LocalIdentity
from simpleim.server.location import BindingStore, LocationService, aor_key
from simpleim.server.media import (
    B2buaConfig,
    BackToBack,
    MediaMessage,
    MediaSessions,
    MsrpListenConfig,
    ServerMsrp,
    ServerUserAgent,
    UaConfig,
)
from simpleim.server.notifier import Notifier, NotifierConfig
from simpleim.server.participating import (
    ParticipatingFunction,
    PfConfig,
    SessionPolicy,
    UserAgentPolicy,
)
from simpleim.server.proxy import Proxy, Target
from simpleim.server.roles import (
    ALLOW_METHODS,
    SERVER_PRODUCT,
    W_FUNCTION_NOT_ALLOWED,
    W_SERVICE_NOT_AUTHORISED,
    Reply,
    im_warning,
)
from simpleim.server.routing import GROUP_METHODS, Role
from simpleim.server.settings import ServiceSettingsFunction, SettingsConfig
from simpleim.server.system import SystemConfig, SystemMessageFunction
from simpleim.server.xdm import HistoryEntry, HistoryMode, StoredDeferredMetadata
from simpleim.server.xdm.function import XdmFunction, build_xdm
from simpleim.sip.headers import Headers
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.sip.session_timer_proxy import ProxyTimerPolicy
from simpleim.sip.uri import SipUri, parse_uri
from simpleim.store.aggregations import AggregationRepository
from simpleim.store.conferences import ConferenceRepository
from simpleim.store.deferred import DeferredRepository
from simpleim.store.history import HistoryKind, HistoryRepository
from simpleim.store.settings import SettingsRepository
from simpleim.store.system import SystemMessageRecord, SystemMessageRepository
from simpleim.store.xdm import XdmRepository
from simpleim.transport.sip import IncomingRequest, SipEndpoint

__all__ = ["CoreStore", "RoleServices", "Roles", "ServerStore", "build_roles", "media_listener"]

log = logging.getLogger("simpleim.server")

Spawn = Callable[[Coroutine[Any, Any, None]], None]


class CoreStore(UserDirectory, BindingStore, Protocol):
    """What the core (registrar, proxy, auth) needs from :mod:`simpleim.store`."""


class ServerStore(CoreStore, Protocol):
    """What the server needs from :mod:`simpleim.store`: the core's users and bindings
    and the repositories of the roles."""

    @property
    def deferred(self) -> DeferredRepository: ...

    @property
    def settings(self) -> SettingsRepository: ...

    @property
    def system_messages(self) -> SystemMessageRepository: ...

    @property
    def aggregations(self) -> AggregationRepository: ...

    @property
    def xdm(self) -> XdmRepository: ...

    @property
    def history(self) -> HistoryRepository: ...

    @property
    def conferences(self) -> ConferenceRepository: ...


@dataclass(frozen=True, slots=True)
class Roles:
    """The IM application-server roles of one server process."""

    participating: ParticipatingFunction
    deferred: DeferredMessagingFunction
    settings: ServiceSettingsFunction
    #: System Messages (§5.4) and their Ts1 deadlines
    system: SystemMessageFunction
    exploder: PagerExploder
    #: XDM documents (XCAP), the group directory of the Controlling Function, metadata
    xdm: XdmFunction
    #: the Conversation History Function (§13.2) and its session recorder (media rooms)
    history: HistoryFunction
    recorder: SessionRecorder
    #: PO-00: the PF's back-to-back relay (None without server media): in the path of
    #: every session with ``pf_media = "b2bua"``; in proxy mode only of the sessions a
    #: party records by setting (CH-00 method 1, :attr:`b2bua_always` False)
    b2bua: BackToBack | None = None
    #: §7.2: the conference focus with its MSRP switch (None without server media)
    focus: ConferenceFocus | None = None
    b2bua_always: bool = False


class RoleCourier(Courier, Protocol):
    """What the roles ask of the SIP/IP core (the DMF's Courier and the exploder's
    Terminator)."""

    async def terminate(self, request: SipRequest) -> int: ...


def build_roles(config: ServerConfig, store: ServerStore, courier: RoleCourier,
                clock: Callable[[], float] = time.time,
                media: MediaSessions | None = None,
                notifier: Notifier | None = None) -> Roles:
    """The one place where the roles are made and wired: each gets its repository, its
    configuration and, as a narrow Protocol, what it needs from the others.  ``media``:
    the server's INVITE/MSRP user agent (:mod:`simpleim.server.media`) for the roles that
    are session endpoints (None: no server media); ``notifier``: the server's
    SUBSCRIBE/NOTIFY dialogs (the conference event package)."""
    settings = ServiceSettingsFunction(
        store.settings,
        SettingsConfig(config.domain, min_expires=config.min_expires,
                       max_expires=config.max_expires, default_expires=config.default_expires),
        clock)
    deferred = DeferredMessagingFunction(
        store.deferred, courier,
        DeferredConfig(config.domain, default_expiry=config.deferred_default_expiry,
                       max_expiry=config.deferred_max_expiry,
                       max_large=config.media_max_message),
        clock, media=media)
    timers = config.timers
    system = SystemMessageFunction(store.system_messages, courier,
                                   SystemConfig(config.domain), clock)
    # The XDMS: groups for the Controlling Function (GroupDirectory), deferred metadata from
    # the DMF's store (§12.1.2), history metadata from the history store (§13.3.2), the
    # users' access policies for the terminating PF (§6.1.2.1 step 2).
    xdm = build_xdm(store.xdm, StoredDeferredMetadata(store.deferred, config.domain),
                    StoredHistoryMetadata(store.history, config.domain), clock,
                    max_document=config.xcap_max_document)
    participating = ParticipatingFunction(
        PfConfig(config.domain, allow_anonymity=config.allow_anonymity,
                 user_agents=UserAgentPolicy(config.pf_user_agent_allow,
                                             config.pf_user_agent_deny),
                 user_agent_error_info=config.pf_user_agent_error_info,
                 sessions=SessionPolicy(config.pf_session_max_size,
                                        config.pf_session_content_types,
                                        config.pf_session_msrp_only),
                 session_timer=ProxyTimerPolicy(int(timers.session_expires),
                                                int(timers.min_se))
                 if config.pf_session_timer else None),
        settings, system, xdm.access)
    history = HistoryFunction(store.history, settings,
                              HistoryConfig(config.domain, quota=config.history_quota),
                              media=media, notice=SystemNotice(store.system_messages),
                              clock=clock)
    recorder = SessionRecorder(history)
    b2bua = None
    if media is not None:
        # the relay's size bound is the callee's a=max-size; media_max_message only bounds
        # what a leg holds in memory (larger messages are switched chunk by chunk); the
        # history recorder sees the sessions of the users who record them (§13.2.3)
        b2bua = BackToBack(media, B2buaConfig(queue_limit=config.media_queue_limit),
                           recorder=recorder)
        recorder.attach(b2bua)
    exploder = PagerExploder(
        store.aggregations, courier,
        ExploderLimits(config.domain, max_recipients=config.exploder_max_recipients,
                       max_message_bytes=config.exploder_max_message,
                       allow_anonymity=config.allow_anonymity, ts2=config.exploder_ts2),
        clock, groups=xdm.groups)
    focus = None
    if media is not None and notifier is not None:
        # §9.3: a group's large message; offline members' copies go to the DMF (DM-04)
        large = GroupLargeMessages(media, config.domain, max_size=config.media_max_message,
                                   keeper=GroupLargeKeeper(participating, deferred, store,
                                                           config.domain, clock))
        focus = ConferenceFocus(
            store.conferences, media, notifier,
            ConferenceLimits(config.domain,
                             max_participants=config.conference_max_participants,
                             allow_anonymity=config.allow_anonymity,
                             remaining_participants=config.conference_remaining_participants,
                             allow_private_messages=config.conference_private_messages),
            clock, queue_limit=config.media_queue_limit, groups=xdm.groups,
            recorder=recorder, large=large, dialogs=b2bua)
        # §13.3.1: group chats are recorded in the focus's rooms (CH-08)
        recorder.attach_conferences(focus)
        # §7.2.3.5: queued system messages into running conferences
        system.attach_conferences(RoomNotices(focus, clock))
    return Roles(participating, deferred, settings, system, exploder, xdm, history, recorder,
                 b2bua, focus, b2bua_always=config.pf_media == "b2bua")


class GroupLargeKeeper:
    """The :class:`~simpleim.server.controlling.LargeKeeper` of the Controlling Function: a
    member of a group large message who is a served user of this domain passes its
    terminating PF's checks (PT-01: barring, access rules) and, offline, gets the message
    stored by the Deferred Messaging Function (DM-04), delivered on registration."""

    def __init__(self, participating: ParticipatingFunction,
                 deferred: DeferredMessagingFunction, store: ServerStore, domain: str,
                 clock: Callable[[], float]) -> None:
        self._pf, self._deferred, self._store = participating, deferred, store
        self._domain, self._clock = domain, clock

    def _local(self, uri: str) -> SipUri | None:
        try:
            parsed = parse_uri(uri)
        except ProtocolError:
            return None
        if not isinstance(parsed, SipUri) or not parsed.user \
                or parsed.host.lower() != self._domain.lower():
            return None
        return parsed

    def screen(self, invite: SipRequest, member: str) -> int | None:
        parsed = self._local(member)
        if parsed is None:
            return None
        reply = self._pf.terminating(invite, aor_key(parsed.user_unescaped, self._domain),
                                     self._clock())
        return None if reply is None else reply.status

    async def deferrable(self, uri: str) -> str | None:
        parsed = self._local(uri)
        if parsed is None:
            return None
        if not await self._store.user_exists(parsed.user_unescaped or ""):
            return None
        return aor_key(parsed.user_unescaped, self._domain)

    async def keep_large(self, invite: SipRequest, answer: SipResponse,
                         message: MediaMessage, recipient: str) -> None:
        await self._deferred.store_large(invite, answer, message, recipient)


class StoredHistoryMetadata:
    """The XDMS's :class:`~simpleim.server.xdm.api.HistoryMetadata` (§13.3.2, CH-09) over the
    Conversation History Function's store: one ``<history>`` per stored history, its
    reference ``ID@host``; a pager message's sender / recipient by its direction, a
    session's the owner and the peer."""

    def __init__(self, repository: HistoryRepository, host: str) -> None:
        self._repo = repository
        self._host = host

    async def history_entries(self, aor: str) -> Sequence[HistoryEntry]:
        out = []
        for r in await self._repo.of(aor):
            incoming = r.direction == "in"
            out.append(HistoryEntry(
                reference=f"{r.id}@{self._host}", received=r.started_at, size=r.size,
                sender=r.peer if incoming else r.owner,
                recipient=r.owner if incoming else r.peer, subject=r.subject,
                mode=HistoryMode.SESSION if r.kind is HistoryKind.SESSION
                else HistoryMode.LARGE if r.kind is HistoryKind.LARGE else HistoryMode.PAGER))
        return out


class SystemNotice:
    """§13.2.3 step 1a ii: the storage-full notice as a queued System Message (§5.4), sent
    by the System Message role once the user is registered."""

    def __init__(self, repository: SystemMessageRepository) -> None:
        self._repo = repository

    async def storage_full(self, aor: str, text: str) -> None:
        await self._repo.add(SystemMessageRecord(secrets.token_hex(8), aor, text,
                                                 "text/plain;charset=utf-8", time.time()))



def _subscribed(req: SipRequest) -> bool:
    """RFC 3515 §2.4.4 / RFC 4488: a REFER subscribes implicitly unless Refer-Sub: false."""
    return (req.headers.get("Refer-Sub") or "true").strip().lower() != "false"


def media_listener(config: ServerConfig) -> ServerMsrp | None:
    """The MSRP listener of the server's user agent (``msrp_listen``), None when off."""
    addr = config.msrp_address()
    if addr is None:
        return None
    host, port, fallback, advertise = addr
    return ServerMsrp(MsrpListenConfig(host, port, fallback_ephemeral=fallback,
                                       advertise=advertise,
                                       max_message=config.media_max_message))


class RoleServices:
    """Role handlers and the roles' Courier, over the core's endpoint, location and proxy."""

    def __init__(self, config: ServerConfig, endpoint: SipEndpoint, location: LocationService,
                 proxy: Proxy, identity: LocalIdentity, store: CoreStore | None,
                 role_store: ServerStore, spawn: Spawn,
                 clock: Callable[[], float] = time.time, guard: AuthGuard | None = None) -> None:
        self.config = config
        self.endpoint = endpoint
        self.location = location
        self.clock = clock
        self.proxy = proxy
        self.identity = identity
        self.store = store
        self._spawn = spawn
        #: the failed-authentication counters of the core (also for the history endpoint)
        self.guard = guard
        self.media = ServerUserAgent(endpoint, media_listener(config), self, UaConfig(
            config.domain, session_expires=int(config.timers.session_expires),
            min_se=int(config.timers.min_se), bye_timeout=config.timers.timer_f))
        #: SUBSCRIBE/NOTIFY dialogs of the roles (RFC 6665 notifier)
        self.notifier = Notifier(endpoint, NotifierConfig(
            min_expires=min(60, config.min_expires), max_expires=max(7200, config.max_expires)))
        self.roles = build_roles(config, role_store, self, clock, self.media,
                                 self.notifier)
        #: the history HTTP endpoint (``history_http_listen``) and its bound address
        self.history_http: HistoryHttpServer | None = None
        self.history_http_addr: tuple[str, int] | None = None
        self._http_auth = Authenticator(config.auth_realm, role_store,
                                        algorithms=config.auth_algorithms)

    async def start(self) -> None:
        """Open the server media (MSRP) and the history HTTP endpoint when configured."""
        await self.media.start()
        listen = self.config.history_http_listen
        if listen is not None:
            http = HistoryHttpServer(self.roles.history, self.http_auth, self.config.domain)
            host, port = parse_host_port(listen, 8090)
            self.history_http_addr = await http.start(host, port)
            self.history_http = http
            log.info("history HTTP endpoint on http://%s:%d/history",
                     *self.history_http_addr)

    async def close(self) -> None:
        if self.history_http is not None:
            await self.history_http.close()
            self.history_http = None
        await self.notifier.close()
        await self.media.close()

    async def http_auth(self, method: str, values: Sequence[str], host: str,
                        port: int) -> HttpAuthResult:
        """HTTP digest (RFC 7616) against the user store, the SIP realm and algorithms; failed
        authentications count towards the same lockouts as SIP ones (issue 7 item 6)."""
        guard = self.guard
        left = guard.locked_source(host) if guard is not None else 0.0
        decision = await self._http_auth.check(method, values, proxy=False)
        if guard is not None and decision.username:
            left = max(left, guard.locked_user(decision.username))
        if left > 0:
            return HttpAuthResult(None, 403, (("Retry-After", str(math.ceil(left))),))
        if decision.ok and decision.username:
            return HttpAuthResult(decision.username)
        if guard is not None and decision.failed:
            guard.failure(host, port, "http", decision.username, method)
        return HttpAuthResult(None, decision.status if decision.status != 400 else 401,
                              decision.headers)

    def owns(self, request: SipRequest) -> bool:
        """In-dialog requests of the server's own dialogs (INVITE sessions and
        subscriptions): answered here, not routed (RFC 3261 §12.2.2)."""
        return self.media.owns(request) or self.notifier.owns(request)

    def on_dialog_request(self, inc: IncomingRequest) -> None:
        if self.notifier.owns(inc.request):
            self.notifier.on_request(inc)
        else:
            self.media.on_request(inc)

    def served_user(self, req: SipRequest, auth_user: str | None) -> str | None:
        """The AOR of the served user who sent ``req`` (§5.1: the authenticated
        originator; with authentication off, a From in our domain)."""
        if auth_user is not None:
            return aor_key(auth_user, self.config.domain)
        from_uri = req.from_addr.uri
        if not self.config.auth and isinstance(from_uri, SipUri) \
                and self.identity.is_local_domain(from_uri):
            return aor_key(from_uri.user_unescaped, self.config.domain)
        return None

    def sender_of(self, req: SipRequest) -> str | None:
        """The served user who sent ``req``: the identity the core asserted
        (P-Asserted-Identity, RFC 3325), else (authentication off) a local From."""
        for asserted in req.p_asserted_identity:
            uri = asserted.uri
            if isinstance(uri, SipUri) and self.identity.is_local_domain(uri):
                return aor_key(uri.user_unescaped, self.config.domain)
        return None if self.config.auth else self.served_user(req, None)

    def send_reply(self, inc: IncomingRequest, reply: Reply, to_tag: str | None = None) -> None:
        # §6.1.1.1: responses of the IM server carry Server (Appendix F.1).
        headers = [*reply.headers, ("Server", SERVER_PRODUCT)]
        if not reply.body:
            inc.reply(reply.status, reply.reason, headers, to_tag=to_tag)
            return
        if to_tag is None and inc.request.to_addr.tag is None:
            to_tag = secrets.token_hex(6)  # RFC 3261 §8.2.6.2
        resp = inc.request.create_response(reply.status, reply.reason, to_tag=to_tag)
        for name, value in headers:
            resp.headers.add(name, value)
        resp.body = reply.body
        inc.respond(resp)

    async def service(self, inc: IncomingRequest, service: Role,
                       requester: str | None) -> None:
        """sip:Deferred@DOMAIN (INVITE, §12.2.1), sip:Delete@DOMAIN (REFER: deferred
        messages §12.2.2.7 or histories §13.2.5, by the resource the REFER names),
        sip:History@DOMAIN (INVITE: retrieval §13.2.1; REFER: start / stop recording
        §13.2.2.2, §13.2.6) and sip:System@DOMAIN (MESSAGE: the answer to a System
        Message, §5.4 / Ts1)."""
        roles = self.roles
        req = inc.request
        if requester is None:
            # §12.2.1 step 1 / §13.2.2.1 step 1a: only a served, authenticated user ->
            # 403 + Warning 127.
            self.send_reply(inc, Reply(403, headers=(
                ("Warning", im_warning(self.config.domain, W_SERVICE_NOT_AUTHORISED)),)))
            return
        if service is Role.CONFERENCE or (service is Role.EXPLODER and req.method == "INVITE"
                                          and is_large_message(req)):
            # §7.2 the focus; §9.3.1.1 a large message to a URI list at the exploder too
            await self._conference(inc, requester)
            return
        wanted = {Role.DEFERRED: ("INVITE",), Role.SYSTEM: ("MESSAGE",),
                  Role.EXPLODER: ("MESSAGE",),
                  Role.HISTORY: ("INVITE", "REFER")}.get(service, ("REFER",))
        if req.method not in wanted:
            self.send_reply(inc, Reply(405, headers=(("Allow", ", ".join(wanted)),)))
            return
        try:
            if service is Role.EXPLODER:
                # §8.3.1.1: the plan is stored before the 202 (StorageError: 500)
                self.send_reply(inc, await roles.exploder.handle(req, requester))
                return
            if service is Role.HISTORY:
                await self._history(inc, requester)
                return
            if service is Role.SYSTEM:
                reply = await roles.system.answer(req, requester)
            elif service is Role.DEFERRED:
                answer = await roles.deferred.retrieve(inc, requester)
                if answer is None:
                    return                       # answered: a delivery session (DM-07)
                reply = answer
            elif await roles.history.names_history(req, requester):
                # §13.2.5.1: the delete bin is shared; Refer-To sip:History@DOMAIN or a
                # history reference -> the Conversation History Function
                reply = await roles.history.delete(req, requester)
            else:
                reply = await roles.deferred.delete(req, requester)
        except StorageError as exc:
            log.error("%s store failure: %s", service.value, exc)
            if not inc.final_sent:
                self.send_reply(inc, Reply(500))
            return
        tag = secrets.token_hex(6)
        self.send_reply(inc, reply, to_tag=tag)
        if service is Role.DELETE and reply.status < 300 and _subscribed(req):
            # §12.2.2.7 step 5 / §13.2.5.2 step 4 / RFC 3515 §2.4.4: NOTIFY the outcome
            # in the REFER dialog.
            self._spawn(self._notify_refer(inc, tag, reply.status, "Delete"))

    async def _conference(self, inc: IncomingRequest, requester: str) -> None:
        """§7.2: the conference factory and the conferences (the focus)."""
        focus = self.roles.focus
        if focus is None:
            # §11.1: no focus without server media (msrp_listen off)
            self.send_reply(inc, Reply(404))
            return
        try:
            user = inc.request.uri.user if isinstance(inc.request.uri, SipUri) else None
            if (user or "").lower() == EXPLODER_USER.lower():
                await focus.large_adhoc(inc, requester)
                return
            # §8.3.1.1 step 3 / §8.3.2.1 step 7c: a MESSAGE to the session's members
            to = focus.session_target(user or "", requester) \
                if inc.request.method == "MESSAGE" and is_conference_user(user) else None
            reply = await self.roles.exploder.handle_session(inc.request, to, requester) \
                if isinstance(to, SessionTarget) else to or await focus.handle(inc, requester)
        except StorageError as exc:
            log.error("conference store failure: %s", exc)
            reply = Reply(500)
        if reply is not None and not inc.final_sent:
            self.send_reply(inc, reply)

    def may_be_group(self, method: str, uri: SipUri) -> bool:
        """An initial request that may address a pre-defined group: INVITE / SUBSCRIBE /
        MESSAGE to a URI of our domain at which nobody is registered."""
        return method in GROUP_METHODS and bool(uri.user) \
            and self.identity.names_domain(uri) \
            and not self.location.lookup(aor_key(uri.user_unescaped, self.config.domain))

    async def group_or_user(self, inc: IncomingRequest, requester: str | None,
                            user: Callable[[], None]) -> None:
        """An initial INVITE / SUBSCRIBE / MESSAGE to a local URI nobody is registered at: a
        pre-defined group's URI goes to the focus (§7.2.1.3 / §7.2.1.4) or, MESSAGE, to
        the exploder (§8.3.1.1); anything else on to the user (``user``)."""
        focus = self.roles.focus
        req = inc.request
        uri = req.uri
        if not isinstance(uri, SipUri) or (focus is None and req.method != "MESSAGE"):
            user()
            return
        try:
            group = await self.roles.xdm.groups.group(
                f"sip:{uri.user_unescaped}@{self.config.domain}")
            if group is None:
                user()
                return
            if requester is None:
                # only a served, authenticated user (§7.2.1.3 step 3) -> 403 + 127
                self.send_reply(inc, Reply(403, headers=(
                    ("Warning", im_warning(self.config.domain, W_SERVICE_NOT_AUTHORISED)),)))
                return
            reply: Reply | None
            if req.method == "MESSAGE":
                # §8.3.1.1 step 2: group pager mode, through the exploder (202 after the
                # plan is stored)
                reply = await self.roles.exploder.handle_group(req, group, requester)
            elif focus is None:
                reply = Reply(404)                      # §11.1: no focus without media
            else:
                reply = await focus.handle_group(inc, group, requester)
        except StorageError as exc:
            log.error("group store failure: %s", exc)
            reply = Reply(500)
        if reply is not None and not inc.final_sent:
            self.send_reply(inc, reply)

    async def _history(self, inc: IncomingRequest, requester: str) -> None:
        """sip:History@DOMAIN: retrieval (INVITE) or recording on user directive (REFER)."""
        roles = self.roles
        req = inc.request
        if req.method == "INVITE":
            await roles.history.retrieve(inc, requester)
            return
        outcome: RecordOutcome = await roles.recorder.refer(req, requester)
        host = self.config.domain
        if outcome.status == 403:
            # §13.2.2.2 step 1: not a participant of that session -> 403 + Warning 127
            self.send_reply(inc, Reply(403, headers=(
                ("Warning", im_warning(host, W_SERVICE_NOT_AUTHORISED)),)))
            return
        if outcome.status == 507:
            # §13.2.2.1 step 1b: not enough resources -> 486 + Warning 122
            self.send_reply(inc, Reply(486, headers=(
                ("Warning", im_warning(host, W_FUNCTION_NOT_ALLOWED)),)))
            return
        if outcome.status >= 300:
            # §13.2.6 step 2b ii: not an existing session -> 404
            self.send_reply(inc, Reply(outcome.status, outcome.reason))
            return
        tag = secrets.token_hex(6)
        subscribed = _subscribed(req)
        headers: tuple[tuple[str, str], ...] = (("Allow", ALLOW_METHODS),)
        if not subscribed:
            # §13.2.6 step 2a ii: Refer-Sub: false echoed (RFC 4488 §4)
            headers += (("Refer-Sub", "false"),)
        # §13.2.2.2 steps 4-6: 2xx (RFC 3515 §2.4.2: 202), then the NOTIFY of the outcome
        self.send_reply(inc, Reply(202, headers=headers), to_tag=tag)
        if subscribed:
            self._spawn(self._notify_refer(inc, tag, outcome.status, HISTORY_USER))

    async def _notify_refer(self, inc: IncomingRequest, tag: str, status: int,
                            user: str) -> None:
        req = inc.request
        contacts = req.contacts
        if not contacts or not isinstance(contacts[0].uri, SipUri):
            return
        target = contacts[0].uri
        h = Headers()
        h.add("Max-Forwards", "70")
        h.add("From", f"{req.headers.get('To')};tag={tag}")
        h.add("To", req.headers.get("From") or "")
        h.add("Call-ID", req.call_id)
        h.add("CSeq", "1 NOTIFY")
        h.add("Contact", f"<sip:{user}@{self.config.domain}>")
        h.add("Event", "refer")
        h.add("Subscription-State", "terminated;reason=noresource")
        h.add("User-Agent", SERVER_PRODUCT)
        h.add("Content-Type", "message/sipfrag;version=2.0")
        reason = "OK" if status == 200 else "Accepted"
        notify = SipRequest("NOTIFY", target, h, f"SIP/2.0 {status} {reason}\r\n".encode())
        dest = inc.source if inc.source.transport in ("tcp", "tls") \
            else self.endpoint.resolve(target)
        try:
            await self.endpoint.request(notify, dest)
        except ProtocolError as exc:
            log.info("NOTIFY for the %s REFER not sent: %s", user, exc.detail)

    async def record_history(self, inc: IncomingRequest, owners: list[Owner],
                             then: Callable[[], None]) -> None:
        """CH-00 method 1 for a pager MESSAGE: store it in the owners' history first (write
        before acknowledge), then let it go on (``then``); a store failure is 500."""
        try:
            await self.roles.history.record_message(inc.request, owners)
        except StorageError as exc:
            log.error("history store failure: %s", exc)
            self.send_reply(inc, Reply(500))
            return
        then()

    async def publish(self, inc: IncomingRequest, requester: str | None, target: str) -> None:
        roles = self.roles
        try:
            outcome = await roles.settings.publish(inc.request, requester, target)
        except StorageError as exc:
            log.error("settings store failure: %s", exc)
            self.send_reply(inc, Reply(500))
            return
        self.send_reply(inc, outcome.reply)
        if outcome.settings is not None and outcome.settings.offline_delivery \
                and outcome.aor is not None:
            # §6.1.1.5 step 7 / §12.2.2.2 (DM-06): deliver the stored messages now.
            self._spawn(self.deliver_pending(outcome.aor))

    def _oma_client(self, aor: str) -> bool:
        """A registered contact of ``aor`` with the IM feature tag (an OMA IM client)."""
        return any(name == "+g.oma.sip-im" for b in self.location.lookup(aor)
                   for name, _ in b.params)

    async def deliver_pending(self, aor: str) -> None:
        """The stored messages of ``aor`` go out: pushed over an MSRP session (DM-06/07)
        to an OMA client that has ``offline-delivery`` on, else re-sent as MESSAGE (plain
        SIP clients, msilo-style; also when the push session is refused)."""
        roles = self.roles
        try:
            if roles.deferred.has_pending(aor) and self._oma_client(aor) \
                    and roles.settings.settings_of(aor, self.clock()).offline_delivery:
                pushed = await roles.deferred.push(aor)
                if pushed:
                    log.info("pushed %d deferred messages to %s", pushed, aor)
            count = await roles.deferred.deliver_pending(aor)
        except (StorageError, ProtocolError) as exc:
            log.error("delivery of deferred messages to %s failed: %s", aor, exc)
            return
        if count:
            log.info("delivered %d deferred messages to %s", count, aor)

    async def defer(self, inc: IncomingRequest, uri: SipUri, aor: str, deliver: bool) -> None:
        """PT-01 step 5 -> DM-05: store, then (and only then) 202 Accepted."""
        roles = self.roles
        try:
            if self.store is not None and not await self.store.user_exists(
                    uri.user_unescaped or ""):
                self.send_reply(inc, Reply(404))
                return
            await roles.deferred.defer(inc.request, aor)
        except StorageError as exc:
            # Not stored: never acknowledged (the sender keeps its copy).
            log.error("cannot store a deferred message for %s: %s", aor, exc)
            self.send_reply(inc, Reply(500))
            return
        # §6.1.1.1 / Appendix F.1: the PF's answers carry Server (send_reply adds it).
        self.send_reply(inc, Reply(202))
        if deliver:
            self._spawn(self.deliver_pending(aor))

    async def defer_large(self, inc: IncomingRequest, uri: SipUri, aor: str) -> None:
        """DM-04: a large message session for ``aor``, who cannot take it, is answered by
        the Deferred Messaging Function (480 without server media, 404 for no such user)."""
        try:
            if self.store is not None and not await self.store.user_exists(
                    uri.user_unescaped or ""):
                self.send_reply(inc, Reply(404))
                return
        except StorageError as exc:
            log.error("user store failure: %s", exc)
            self.send_reply(inc, Reply(500))
            return
        if not await self.roles.deferred.defer_large(inc, aor):
            self.send_reply(inc, Reply(480))

    # ------------------------------------------------------------------ Courier (roles)

    def targets(self, aor: str, request: SipRequest | None = None) -> list[Target]:
        """The branch targets of ``aor``'s registered contacts, those the caller preferences
        of ``request`` select (RFC 3841 §7), at most ``max_branches``."""
        bindings = self.location.lookup(aor)
        if request is not None and ("accept-contact" in request.headers
                                    or "reject-contact" in request.headers):
            bindings = apply_caller_preferences(bindings, request.accept_contact,
                                                request.reject_contact)
        targets: list[Target] = []
        for b in bindings:
            try:
                targets.append(self.proxy.target_for_binding(b))
            except ProtocolError as exc:
                log.warning("unusable binding %s: %s", b.contact, exc.detail)
        return targets[: self.config.max_branches]

    async def deliver(self, aor: str, request: SipRequest) -> int:
        """Send ``request`` to every registered contact of ``aor`` (forking, RFC 3261
        §16.6); the first 2xx status, else the lowest failure (480: none registered)."""
        targets = self.targets(aor)
        if not targets:
            return 480
        statuses = await asyncio.gather(*(self._send_to(t, request) for t in targets))
        ok = [st for st in statuses if 200 <= st < 300]
        return ok[0] if ok else min(statuses)

    async def _send_to(self, target: Target, request: SipRequest) -> int:
        req = request.copy()
        req.uri = target.uri
        for route in reversed(target.routes):
            req.headers.prepend("Route", route)
        try:
            resp = await self.endpoint.request(req, target.dest)
        except ProtocolError as exc:
            log.info("cannot send %s to %s: %s", req.method, target.uri, exc.detail)
            return 503
        return resp.status

    async def terminate(self, request: SipRequest) -> int:
        """A copy of the exploder (§8.3.2.1) through the terminating Participating Function
        of its recipient (PT-01): barring (403), delivery, deferral (202); 403 for other
        domains (no relaying)."""
        uri = request.uri
        if not isinstance(uri, SipUri) or not self.identity.is_local_domain(uri):
            return 403
        aor = aor_key(uri.user_unescaped, self.config.domain)
        reply = self.roles.participating.terminating(request, aor, time.time())
        if reply is not None:
            return reply.status
        return await self.originate(request)

    async def originate(self, request: SipRequest) -> int:
        """A new request of the server (an IMDN of the DMF): delivered to a served user's
        contacts, or deferred for them like any message when they cannot take it."""
        uri = request.uri
        roles = self.roles
        if not isinstance(uri, SipUri) or not self.identity.is_local_domain(uri):
            return 403  # no relaying to other domains
        aor = aor_key(uri.user_unescaped, self.config.domain)
        if self.location.lookup(aor) and not roles.deferred.has_pending(aor):
            status = await self.deliver(aor, request)
            if not roles.participating.defer_after_failure(request, [status]):
                return status
        if self.store is None or not await self.store.user_exists(uri.user_unescaped or ""):
            return 404
        if not roles.participating.deferrable(request):
            return 480
        await roles.deferred.defer(request, aor)
        return 202
