"""The simpleim server: wiring of endpoint, location service, registrar, proxy and auth.

``ImServer`` receives every request from its :class:`~simpleim.transport.sip.SipEndpoint`
and dispatches it, after the checks every element does (RFC 3261 §16.3 / §8.2), to:

* :class:`~simpleim.server.registrar.Registrar` for REGISTER to our domain (401 digest),
* the server itself for OPTIONS to the server (200 with Allow/Accept/Supported),
* :class:`~simpleim.server.proxy.Proxy` for everything else (407 digest for requests from
  our users; targets from :class:`~simpleim.server.location.LocationService`).

Initial requests visit the IM application-server roles as :mod:`simpleim.server.routing`
(Appendix C) says: originating side first (Participating Function checks, service-settings
PUBLISH), then terminating side (Participating Function checks, deferral to the Deferred
Messaging Function); ``sip:Deferred@DOMAIN`` and ``sip:Delete@DOMAIN`` reach the DMF.
:func:`simpleim.server.services.build_roles` is the one place where the roles are made
and wired together.

:mod:`simpleim.server.serve` runs it (store, listeners, ready line, signals, exit code).
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from simpleim.errors import ConfigError, ProtocolError, SipParseError, StorageError
from simpleim.server.auth import AuthDecision, Authenticator
from simpleim.server.callerprefs import apply_caller_preferences
from simpleim.server.config import ServerConfig
from simpleim.server.deferred import is_large_message
from simpleim.server.guard import AuthGuard, AuthLimits, LoadMonitor
from simpleim.server.identity import LocalIdentity
from simpleim.server.location import LocationService, aor_key
from simpleim.server.logging import TransactionLog
from simpleim.server.metrics import ServerMetrics, TimedStore
from simpleim.server.proxy import FailureHook, Proxy, SuccessHook, Target
from simpleim.server.registrar import Registrar
from simpleim.server.roles import Reply
from simpleim.server.routing import Role, Side, select_role, service_role
from simpleim.server.services import CoreStore, Roles, RoleServices, ServerStore
from simpleim.server.trust import RouteStamp, assert_identity, strip_identity
from simpleim.sip.message import SipLimits, SipRequest, SipResponse
from simpleim.sip.outbound import FlowWatch
from simpleim.sip.session_timer_proxy import proxy_response
from simpleim.sip.uri import SipUri
from simpleim.transport.sip import IncomingRequest, SipEndpoint
from simpleim.transport.sip_addr import TransportAddr
from simpleim.transport.sip_errors import warning_value

__all__ = ["ImServer", "ServerStore", "ALLOW", "SUPPORTED"]

log = logging.getLogger("simpleim.server")

# RFC 3261 §20.5 / §11.2: what OPTIONS advertises.
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, REGISTER, SUBSCRIBE, NOTIFY, REFER, " \
    "PUBLISH, INFO, UPDATE, PRACK"
ACCEPT = "application/sdp, message/cpim, text/plain, message/imdn+xml, multipart/mixed, " \
    "application/poc-settings+xml"
# Option tags understood by this server (RFC 3327 path; RFC 3840 option tag pref: the registrar
# stores feature tags, the proxy applies RFC 3841 caller preferences; RFC 5626 outbound:
# flow-bound registrations, see Registrar.flow_failed).
SUPPORTED = frozenset({"outbound", "path", "pref"})
_SINGLE_KEYS = ("call-id", "from", "to", "cseq")
_SINGLE_OPTIONAL = ("max-forwards", "content-type", "content-length")
_COUNTED = _SINGLE_KEYS + _SINGLE_OPTIONAL
# Optional headers the server reads after the transaction exists -> the parsing property.
_READ_LATER = {
    "route": "route", "proxy-require": "proxy_require", "require": "require",
    "accept-contact": "accept_contact", "reject-contact": "reject_contact",
}


def validate_request(req: SipRequest, max_vias: int = 70) -> None:
    """Cheap pre-transaction checks; raise SipParseError (answered 400 statelessly).

    RFC 3261 §8.1.1: To, From, CSeq, Call-ID and Via are mandatory; §7.3.1 / RFC 4475
    §3.3.8: single-valued headers may not repeat; §8.1.1.5: the CSeq method equals the
    request method.  RFC 3261 §16.3 step 1: every header the server will read later is
    parsed here, before a transaction exists (issue 7 item 3: a From that failed to parse
    while the final response was built left the transaction unanswered for ever).  The
    number of Via entries is bounded (issue 7 item 14: each costs a line in every response).
    """
    counts = dict.fromkeys(_COUNTED, 0)
    # the stored keys are the lower-case long forms (compact forms expanded, RFC 3261 §7.3.3)
    for key, _ in req.headers._items:
        if key in counts:
            counts[key] += 1
    for key in _SINGLE_KEYS:
        if counts[key] != 1:
            what = "missing" if counts[key] == 0 else "duplicated"
            raise SipParseError(f"{what} {key} header", where=key)
    for key in _SINGLE_OPTIONAL:
        if counts[key] > 1:
            raise SipParseError(f"duplicated {key} header", where=key)
    _ = req.top_via, req.to_addr, req.from_addr, req.call_id, req.max_forwards
    if req.cseq.method != req.method:
        raise SipParseError("CSeq method differs from the request method", where="CSeq")
    h = req.headers
    vias = len(req._vias())
    if vias > max_vias:
        raise SipParseError(f"too many Via entries ({vias} > {max_vias})", where="Via")
    for name in _READ_LATER:
        if name in h:
            _ = getattr(req, _READ_LATER[name])


def _fd_bounded(max_connections: int, reserve: int = 64) -> int:
    """The connection cap within the process's file-descriptor limit (issue 7 item 10):
    past the fd limit the kernel refuses connections silently, so the cap is lowered and
    that is logged once."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return max_connections
    if soft != resource.RLIM_INFINITY and max_connections > soft - reserve:
        capped = max(1, soft - reserve)
        log.warning("max TCP connections lowered from %d to %d: the open-file limit is %d "
                    "(raise it with ulimit -n / LimitNOFILE=)", max_connections, capped, soft)
        return capped
    return max_connections


class ImServer:
    """Registrar + stateful proxy for one domain."""

    def __init__(
        self,
        config: ServerConfig,
        store: ServerStore | None,
        *,
        ssl_server: ssl.SSLContext | None = None,
        ssl_client: ssl.SSLContext | None = None,
        metrics: ServerMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.metrics = metrics
        role_store = store  # the roles use their repositories directly
        core_store: CoreStore | None = store
        if store is not None and metrics is not None:
            # store latency (simpleim_store_seconds) of every call the server makes
            core_store = TimedStore(store, metrics)
        self.store = core_store
        self.identity = LocalIdentity(config.domain, config.aliases)
        self.endpoint = SipEndpoint(
            self._on_request,
            timers=config.timers,
            ssl_server=ssl_server,
            ssl_client=ssl_client,
            limits=SipLimits(max_message_size=config.max_message_size,
                             max_body=config.max_message_size),
            server_name=config.domain,
            validate=partial(validate_request, max_vias=config.max_vias),
            max_transactions=config.max_transactions,
        )
        self.endpoint.on_final = self._on_final
        self.location = LocationService(core_store)
        if metrics is not None:
            metrics.watch_location(self.location.binding_count, self.location.aor_count)
        self.registrar = Registrar(config, self.location,
                                   is_local_domain=self.identity.is_local_domain)
        self.proxy = Proxy(self.endpoint, self.identity, config.timers,
                           RouteStamp(config.route_key.encode() if config.route_key else None))
        # RFC 5626 §5.3: a registration bound to a TCP/TLS flow goes when the flow goes.
        self.endpoint.net.on_connection_closed = self._on_connection_closed
        self.flow_watch = FlowWatch(config.flow_timer)
        self._flow_task: asyncio.Task[None] | None = None
        self.endpoint.on_stray_response = self.proxy.forward_stray_response
        self.auth: Authenticator | None = None
        if config.auth:
            if core_store is None:
                raise ConfigError("authentication needs a user store")
            self.auth = Authenticator(config.auth_realm, core_store,
                                      algorithms=config.auth_algorithms)
        self.auth_guard = AuthGuard(AuthLimits(
            per_source=config.auth_max_failures_source,
            per_user=config.auth_max_failures_user,
            window=config.auth_failure_window,
            lockout=config.auth_lockout,
        ))
        # Issue 7 item 7: overload shedding in the endpoint, decided here.
        self.load = LoadMonitor(lambda: self.endpoint.net.busy)
        self._shedding = False
        self._shed_logged = -1e9
        if (config.overload_max_pending > 0 or config.overload_max_lag > 0
                or config.overload_max_busy > 0):
            self.endpoint.shed = self._overloaded
            self.endpoint.shed_retry_after = config.overload_retry_after
        net = self.endpoint.net
        net.max_connections = _fd_bounded(config.max_tcp_connections)
        net.max_per_source = config.max_tcp_per_source
        net.incomplete_timeout = config.tcp_incomplete_timeout
        net.idle_timeout = config.tcp_idle_timeout
        # The IM application-server roles (OMA SIMPLE IM §6.1, §12, App. E) and their
        # handlers; RoleServices is their Courier (their requests go out through the core).
        self.services: RoleServices | None = None
        self.roles: Roles | None = None
        if role_store is not None:
            self.services = RoleServices(config, self.endpoint, self.location, self.proxy,
                                         self.identity, core_store, role_store, self._spawn,
                                         clock, guard=self.auth_guard)
            self.roles = self.services.roles
        self.tx_log = TransactionLog()
        self._tasks: set[asyncio.Task[None]] = set()
        self._purge_task: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> list[TransportAddr]:
        """Load the bindings and open every listener; returns the bound addresses."""
        loaded = await self.location.load()
        if loaded:
            log.info("loaded %d bindings from the store", loaded)
        if self.roles is not None:
            if self.services is not None:
                await self.services.start()
            users = await self.roles.deferred.load()
            settings = await self.roles.settings.load()
            waiting = await self.roles.system.load()
            policies = await self.roles.xdm.access.load()
            log.info("stored: deferred messages of %d users, settings of %d, %d owe a System "
                     "Message answer, access policies of %d", users, settings, waiting, policies)
        bound: list[TransportAddr] = []
        if self.config.overload_max_lag > 0 or self.config.overload_max_busy > 0:
            self.load.start()
        for spec in self.config.listen:
            try:
                local = await self.endpoint.listen(spec)
            except OSError as exc:
                # Name the listener that failed (which of UDP/TCP/TLS, which port) and why
                # (uvloop wraps the errno-carrying error in one without it).
                cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
                why = cause.strerror or str(cause)
                raise OSError(cause.errno, f"{spec}: {why[:1].lower()}{why[1:]}") from exc
            self.identity.add_listener(local)
            bound.append(local)
        if self.roles is not None:
            # §8.3.1: resume the exploder's stored plans and aggregations (Ts2) once the
            # listeners can carry their copies.
            resumed = await self.roles.exploder.load()
            if resumed:
                log.info("resumed %d exploded messages", resumed)
            if self.roles.focus is not None:
                # §7.2: legs are lost; ad-hoc conferences released, group sessions kept
                lost = await self.roles.focus.load()
                if lost:
                    log.info("%d conferences of the previous run reloaded", lost)
        self._purge_task = asyncio.get_running_loop().create_task(self._purge_loop())
        self._flow_task = asyncio.get_running_loop().create_task(self._flow_loop())
        if not self.config.auth:
            log.warning("AUTHENTICATION IS OFF (--no-auth): anyone can register and relay "
                        "through this server; use only for tests")
        return bound

    def _overloaded(self) -> int:
        """Shedding level: 0 none, 1 new requests without credentials, 2 every new request
        (unanswered requests past their bound).  Once shedding, the bounds to leave it are
        lower (hysteresis: 90 % of the pending bound, lag and utilisation 0.1 below theirs),
        and a start or end is logged at most once a second (the counts are cumulative)."""
        cfg = self.config
        pending = self.endpoint.unanswered
        slack = 0.9 if self._shedding else 1.0
        hard = cfg.overload_max_pending > 0 and pending > cfg.overload_max_pending * slack
        drop = 0.1 if self._shedding else 0.0
        over = hard or (cfg.overload_max_lag > 0 and self.load.lag > cfg.overload_max_lag
                        - drop) or (cfg.overload_max_busy > 0
                                    and self.load.busy > cfg.overload_max_busy - drop)
        if over != self._shedding:
            self._shedding = over
            now = time.monotonic()
            if now - self._shed_logged >= 1.0:
                self._shed_logged = now
                ep = self.endpoint
                log.warning("overload %s: unanswered=%d loop lag=%.0f ms busy=%.0f %%; %d "
                            "requests shed, %d retransmissions dropped so far",
                            "start" if over else "end", pending, self.load.lag * 1000,
                            self.load.busy * 100, ep.shed_count, ep.dropped_retransmissions)
        return 2 if hard else 1 if over else 0

    async def close(self) -> None:
        self.load.stop()
        self._closed = True
        self.endpoint.net.on_connection_closed = None
        for task in (self._purge_task, self._flow_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._purge_task = self._flow_task = None
        if self.roles is not None and self.roles.focus is not None:
            await self.roles.focus.close()
        if self.services is not None:
            await self.services.close()
        if self.roles is not None:
            await self.roles.exploder.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.endpoint.close()

    async def _purge_loop(self) -> None:
        """Drop expired bindings from the index and the store now and then (RFC 3261
        §10.3: a binding is removed when its expiration interval has passed); expire
        deferred messages (DM-08/09) and settings publications (RFC 3903 §4.1)."""
        while True:
            await asyncio.sleep(self.config.purge_interval)
            self.location.purge_expired()
            if self.store is not None:
                try:
                    await self.store.purge_expired(time.time())
                    if self.roles is not None:
                        await self.roles.settings.purge_expired()
                        await self.roles.deferred.expire()
                        # §5.4: send the queued System Messages to who is registered
                        await self.roles.system.dispatch()
                except StorageError as exc:
                    log.error("cannot purge expired state: %s", exc)

    async def health(self) -> str | None:
        """None when the server can serve (listeners open, store answering), else why not
        (``/healthz``)."""
        if self._closed:
            return "SIP listeners are closed"
        if self.store is not None:
            await self.store.user_exists("")
        return None

    def _on_connection_closed(self, peer: TransportAddr) -> None:
        if self.location.aors_on_flow(peer):
            self._spawn(self._drop_flow(peer))

    async def _drop_flow(self, flow: TransportAddr) -> None:
        try:
            dropped = await self.registrar.flow_failed(flow)
        except StorageError as exc:
            log.error("cannot drop the bindings of dead flow %s: %s", flow, exc)
            return
        if self.metrics is not None and dropped:
            self.metrics.flows_dropped.inc(len(dropped))

    async def _flow_loop(self) -> None:
        """RFC 5626 §5.4: close flows whose UA stopped sending keep-alives for longer than
        Flow-Timer + 10 s (the close drops their bindings); flows already gone (e.g. at
        start, bindings loaded from the store) are dropped at once."""
        loop = asyncio.get_running_loop()
        net = self.endpoint.net
        while True:
            now = loop.time()
            alive: list[tuple[TransportAddr, float]] = []
            for flow in self.location.flows():
                last = net.last_received(flow)
                if last is None:
                    await self._drop_flow(flow)
                else:
                    alive.append((flow, last))
            for flow in self.flow_watch.dead(alive, now):
                log.info("no keep-alive on flow %s for %.0f s: closing it", flow,
                         self.flow_watch.limit)
                net.close_connection(flow)
            await asyncio.sleep(max(1.0, self.flow_watch.next_check(alive, now) - now))

    def ready_line(self, bound: list[TransportAddr]) -> str:
        line = (f"simpleim server ready: domain={self.config.domain} listening "
                + " ".join(str(b) for b in bound))
        msrp = self.services.media.msrp if self.services is not None else None
        if msrp is not None:
            line += f" msrp=msrp://{msrp.address}"
        return line

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_final(self, inc: IncomingRequest, resp: SipResponse) -> None:
        if self.tx_log.enabled:
            self.tx_log.record(inc.request, resp.status, time.monotonic() - inc.received_at)
        metrics = self.metrics
        if metrics is not None:
            method = inc.request.method
            metrics.transaction(method, resp.status)
            if method == "INVITE" and 200 <= resp.status < 300:
                metrics.session_established(inc.request.call_id, self._session_lifetime(resp))
            elif method == "BYE":
                metrics.session_ended(inc.request.call_id)

    def _session_lifetime(self, resp: SipResponse) -> float:
        """How long a session counts as active without a refresh: the RFC 4028
        Session-Expires of the 2xx when there is one, else the configured default."""
        value = resp.headers.get("Session-Expires")
        if value:
            delta = value.split(";", 1)[0].strip()
            if delta.isdigit() and int(delta) > 0:
                return float(delta)
        return self.config.timers.session_expires

    # ------------------------------------------------------------------ dispatch

    def _reply_error(self, inc: IncomingRequest, exc: ProtocolError) -> None:
        status = exc.status if 400 <= exc.status <= 699 else 400
        inc.reply(status, headers=[("Warning", warning_value(self.config.domain, exc.detail))])

    def _on_request(self, inc: IncomingRequest) -> None:
        try:
            self._route_request(inc)
        except ProtocolError as exc:
            if inc.transaction_id is not None and not inc.final_sent:
                self._reply_error(inc, exc)
            else:
                log.debug("dropping %s: %s", inc.method, exc.detail)

    def _route_request(self, inc: IncomingRequest) -> None:
        req = inc.request
        services = self.services
        if services is not None and services.owns(req):
            # in-dialog requests of the server's own dialogs (server/media sessions, the
            # notifier's subscriptions): RFC 3261 §12.2.2, not routed
            services.on_dialog_request(inc)
            return
        if req.method == "ACK":
            self._on_ack(inc)
            return
        if not isinstance(req.uri, SipUri):
            # RFC 3261 §16.3 step 2 / §8.2.2.1: unknown Request-URI scheme -> 416.
            inc.reply(416)
            return
        check = self.proxy.preprocess_routes(req)
        uri = req.uri
        if not isinstance(uri, SipUri):
            inc.reply(416)
            return
        identity = self.identity
        in_dialog = req.to_addr.tag is not None
        has_routes = "route" in req.headers
        if has_routes and not in_dialog:
            # Issue 7 item 1 (Kamailio's remove_hf("Route") for initial requests): a Route
            # set pre-loaded beyond us neither skips authentication nor picks the next hop;
            # the request is authenticated and routed by its Request-URI like any other.
            log.info("dropping the pre-loaded Route of an initial %s from %s", req.method,
                     inc.source)
            req.headers.remove("Route")
            has_routes = False
        uri_is_local = identity.is_local_domain(uri)
        if not has_routes and (
            (req.method == "REGISTER" and uri_is_local)
            or (uri.user is None and identity.names_domain(uri))
        ):
            # §10.3 step 1: REGISTER for our domain (with or without a user part in the
            # Request-URI) is ours; other requests without a user address the server.
            self._for_us(inc)
            return
        if req.method == "REGISTER":
            # §10.3 step 1: a REGISTER for another domain would be proxied: we do not relay.
            inc.reply(403, "Relaying Forbidden")
            return
        # RFC 3261 §16.3 step 3: Max-Forwards 0 -> 483 Too Many Hops.
        mf = req.max_forwards
        if mf is not None and mf <= 0:
            inc.reply(483)
            return
        # §16.3 step 4: loop detection through our Via branches -> 482.
        if self.proxy.is_looped(req):
            inc.reply(482)
            return
        # §16.3 step 5: Proxy-Require option tags we do not know -> 420 with Unsupported.
        if "proxy-require" in req.headers:
            unknown = [t for t in req.proxy_require if t.lower() not in SUPPORTED]
            if unknown:
                inc.reply(420, headers=[("Unsupported", ", ".join(unknown))])
                return
        # RFC 3325 §5: identities asserted by a client are not trusted (and never relayed).
        strip_identity(req)
        if in_dialog:
            if not check.trusted:
                # Issue 7 item 2: a To tag alone does not make a request in-dialog for us;
                # only one following a route set we recorded skips the challenge
                # (Kamailio answers 404 Not Here).
                inc.reply(404, "Not Here")
                return
            on_success: SuccessHook | None = None
            if self.roles is not None and self.services is not None \
                    and req.method in ("INVITE", "UPDATE") and "session-expires" in req.headers:
                # RFC 4028 §8.1 on a session refresh: 422 below our minimum.
                timer = self.roles.participating.session_timer(req, initial=False)
                if isinstance(timer, Reply):
                    self.services.send_reply(inc, timer)
                    return
                if timer is not None:
                    on_success = partial(proxy_response, decision=timer)
            if has_routes or not identity.names_domain(uri) or uri.user is None:
                # §16.5 / §16.12: loose routing along the Route set we recorded.
                self.proxy.forward(inc, [self.proxy.target_for_uri(
                    uri, req.route if has_routes else [])], on_success=on_success)
            else:
                self._route_to_user(inc)
            return
        if not uri_is_local:
            # Requests to other domains are refused (no DNS, not an open relay).
            inc.reply(403, "Relaying Forbidden")
            return
        if self.auth is not None and self._needs_proxy_auth(req):
            self._spawn(self._authenticate_then_route(inc))
            return
        self._initial(inc, None, insider=self.auth is None)

    def _needs_proxy_auth(self, req: SipRequest) -> bool:
        # Requests from our own users are authenticated (RFC 3261 §22.3, 407); ACK and
        # CANCEL cannot be challenged (§22.1), in-dialog requests are not.
        from_uri = req.from_addr.uri
        return isinstance(from_uri, SipUri) and self.identity.is_local_domain(from_uri)

    async def _authenticate_then_route(self, inc: IncomingRequest) -> None:
        req = inc.request
        auth = self.auth
        if auth is None:
            return
        try:
            decision = await self._checked_auth(inc, "Proxy-Authorization", proxy=True)
        except StorageError as exc:
            log.error("user store failure: %s", exc)
            inc.reply(500)
            return
        if decision is None:
            return
        if inc.final_sent:
            return  # cancelled (487) while the credentials were checked
        from_user = req.from_addr.uri
        if isinstance(from_user, SipUri) and decision.username != from_user.user_unescaped:
            inc.reply(403, "Forbidden", [("Warning", warning_value(
                self.config.domain, "authenticated user differs from From"))])
            return
        # RFC 3261 §22.3: credentials for this proxy are consumed, not forwarded.
        req.headers.remove("Proxy-Authorization")
        if isinstance(from_user, SipUri) and from_user.user:
            # RFC 3325 §9.1: the identity we authenticated, asserted for the next hops.
            assert_identity(req, from_user.user, self.config.domain)
        try:
            self._initial(inc, decision.username)
        except ProtocolError as exc:
            self._reply_error(inc, exc)

    async def _checked_auth(
        self, inc: IncomingRequest, header: str, *, proxy: bool
    ) -> AuthDecision | None:
        """Digest check with the failed-authentication limits (issue 7 item 6); None when
        the request was answered (challenge, failure or lockout)."""
        auth = self.auth
        if auth is None:
            return None
        req = inc.request
        src = inc.source
        guard = self.auth_guard
        left = guard.locked_source(src.host)
        if left <= 0:
            decision = await auth.check(req.method, req.headers.get_all(header), proxy=proxy,
                                        body=req.body)
            if decision.username:
                left = guard.locked_user(decision.username)
        if left > 0:
            # A locked-out source or user gets 403 whatever it sends (no more guesses).
            inc.reply(403, "Forbidden", [
                ("Retry-After", str(math.ceil(left))),
                ("Warning", warning_value(self.config.domain,
                                          "too many failed authentications"))])
            return None
        if not decision.ok:
            if decision.failed:
                guard.failure(src.host, src.port, src.transport, decision.username, req.method)
            inc.reply(decision.status, decision.reason, list(decision.headers))
            return None
        return decision

    # ------------------------------------------------------------------ roles (App. C)

    def _initial(self, inc: IncomingRequest, auth_user: str | None, *,
                 insider: bool = True) -> None:
        """An initial request: service URIs, then the originating side of Appendix C.
        ``insider``: authenticated (or authentication off), see :meth:`_route_to_user`."""
        roles, services = self.roles, self.services
        req = inc.request
        uri = req.uri
        if roles is None or services is None or not isinstance(uri, SipUri):
            self._route_to_user(inc, insider=insider)
            return
        requester = services.served_user(req, auth_user)
        service = service_role(uri.user_unescaped)
        if service is not None:
            self._spawn(services.service(inc, service, requester))
            return
        role = select_role(Side.ORIGINATING, req.method, req.headers.get_all("Accept-Contact"),
                           req.headers.get("Event"))
        if role is Role.SETTINGS:
            self._spawn(services.publish(inc, requester, aor_key(uri.user_unescaped,
                                                                  self.config.domain)))
            return
        if role is Role.PARTICIPATING and requester is not None:
            reply = roles.participating.originating(req, requester, time.time())
            if reply is not None:
                services.send_reply(inc, reply)
                return
        if services.may_be_group(req.method, uri):
            # §7.2.1.3-4, §8.3.1.1: a URI nobody is registered at may be a pre-defined group
            self._spawn(services.group_or_user(inc, requester, partial(self._route_to_user,
                                                                       inc, insider=insider)))
            return
        self._route_to_user(inc, insider=insider)

    def _route_to_user(self, inc: IncomingRequest, *, insider: bool = True,
                       recorded: bool = False) -> None:
        """Fork to the bindings of the Request-URI's AOR.  ``insider``: the request was
        authenticated (or authentication is off); to outsiders an unknown and an
        unreachable user are answered alike, 404 (issue 7 item 11, as Kamailio does)."""
        req = inc.request
        uri = req.uri
        if not isinstance(uri, SipUri):
            inc.reply(416)
            return
        aor = aor_key(uri.user_unescaped, self.config.domain)
        bindings = self.location.lookup(aor)
        roles, services = self.roles, self.services
        role = Role.CORE
        if roles is not None and req.to_addr.tag is None:
            # Appendix C.3: the terminating side, indexed on the Request-URI.
            role = select_role(Side.TERMINATING, req.method,
                               req.headers.get_all("Accept-Contact"), req.headers.get("Event"))
        on_failed: FailureHook | None = None
        on_success: SuccessHook | None = None
        if roles is not None and services is not None and role is Role.PARTICIPATING:
            pf = roles.participating
            defer = services.defer
            now = time.time()
            sender = services.sender_of(req)
            reply = pf.terminating(req, aor, now)
            if reply is not None:
                services.send_reply(inc, reply)
                return
            owners = [] if recorded else roles.history.pager_owners(req, sender, aor, now)
            if owners:
                # §13 / CH-00: the sender's (PF-O) and the recipient's (PF-T) history, by
                # their hist-activation setting, stored before the message goes on.
                self._spawn(services.record_history(inc, owners, partial(
                    self._route_to_user, inc, insider=insider, recorded=True)))
                return
            if bindings and pf.hidden(req, aor, now):
                # App. E.1 invisibility: answered as for a user who is not registered.
                bindings = []
            if roles.b2bua is not None and req.method == "INVITE" and bindings and (
                    roles.b2bua_always or roles.history.records_session(req, sender, aor, now)):
                # PO-00: the PF as a B2BUA in the media path (pf_media b2bua, or CH-00)
                self._spawn(roles.b2bua.bridge(inc, aor))
                return
            timer = pf.session_timer(req, initial=True)
            if isinstance(timer, Reply):
                services.send_reply(inc, timer)
                return
            if timer is not None:
                # RFC 4028 §8 as a proxy (the PF out of the media path)
                on_success = partial(proxy_response, decision=timer)
            # Outsiders (not authenticated) get 404 for unknown and unreachable users alike
            # (issue 7 item 11): a 202 would tell them the user exists.
            if (insider or bindings) and pf.defer_unregistered(
                    req, bool(bindings), roles.deferred.has_pending(aor)):
                self._spawn(defer(inc, uri, aor, deliver=bool(bindings)))
                return
            if (insider or bindings) and is_large_message(req) and not bindings:
                # DM-04 (§12.2.2.1): the DMF answers a large message for an offline user.
                self._spawn(services.defer_large(inc, uri, aor))
                return
            if is_large_message(req):
                def on_failed(finals: list[SipResponse]) -> bool:
                    if not all(r.status in (408, 480, 503) for r in finals):
                        return False
                    self._spawn(services.defer_large(inc, uri, aor))
                    return True
            elif pf.deferrable(req):
                def on_failed(finals: list[SipResponse]) -> bool:
                    if not pf.defer_after_failure(req, [r.status for r in finals]):
                        return False
                    self._spawn(defer(inc, uri, aor, deliver=False))
                    return True
        if not bindings:
            if insider:
                self._spawn(self._not_found(inc, uri))
            else:
                inc.reply(404)
            return
        h = req.headers
        if "accept-contact" in h or "reject-contact" in h:
            # RFC 3841 §7: caller preferences select among the registered contacts.
            bindings = apply_caller_preferences(bindings, req.accept_contact,
                                                req.reject_contact)
            if not bindings:
                # RFC 3841 §7.2.4 / §10: no contact left -> 480 Temporarily Unavailable.
                inc.reply(480 if insider else 404)
                return
        targets: list[Target] = []
        for b in bindings:
            try:
                targets.append(self.proxy.target_for_binding(b))
            except ProtocolError as exc:
                # a failed RFC 5626 flow (430) is routine: its binding is being dropped
                log.log(logging.DEBUG if exc.status == 430 else logging.WARNING,
                        "unusable binding %s: %s", b.contact, exc.detail)
        if not targets:
            inc.reply(480 if insider else 404)
            return
        # Issue 7 item 8 (Kamailio max_branches): the best-preferred bindings only.
        self.proxy.forward(inc, targets[: self.config.max_branches], on_failed, on_success)

    async def _not_found(self, inc: IncomingRequest, uri: SipUri) -> None:
        # §16.5: no binding -> 480 for a known user, 404 for an unknown one.
        exists = False
        if self.store is not None and uri.user is not None:
            try:
                exists = await self.store.user_exists(uri.user_unescaped or "")
            except StorageError as exc:
                log.error("user store failure: %s", exc)
        inc.reply(480 if exists else 404)

    # ------------------------------------------------------------------ requests to us

    def _for_us(self, inc: IncomingRequest) -> None:
        req = inc.request
        # RFC 3261 §8.2.2.3: Require option tags we do not support -> 420 + Unsupported.
        unknown = [t for t in req.require if t.lower() not in SUPPORTED]
        if unknown:
            inc.reply(420, headers=[("Unsupported", ", ".join(unknown))])
            return
        if req.method == "REGISTER":
            self._spawn(self._register(inc))
        elif req.method == "OPTIONS":
            # RFC 3261 §11.2: 200 with the capabilities of the server.
            inc.reply(200, headers=[("Allow", ALLOW), ("Accept", ACCEPT),
                                    ("Supported", ", ".join(sorted(SUPPORTED)))])
        else:
            # RFC 3261 §8.2.1: a method this element does not accept as a UAS -> 405.
            inc.reply(405, headers=[("Allow", "OPTIONS, REGISTER")])

    async def _register(self, inc: IncomingRequest) -> None:
        req = inc.request
        auth_user: str | None = None
        try:
            if self.auth is not None:
                # RFC 3261 §10.3 step 3 / §22.2: REGISTER is challenged with 401.
                decision = await self._checked_auth(inc, "Authorization", proxy=False)
                if decision is None:
                    return
                auth_user = decision.username
            resp = await self.registrar.handle(req, inc.source, auth_user=auth_user)
        except StorageError as exc:
            # The binding could not be written: never acknowledge it (§10.3 step 7).
            log.error("user store failure: %s", exc)
            inc.reply(500)
            return
        except ProtocolError as exc:
            self._reply_error(inc, exc)
            return
        inc.respond(resp)
        to_uri = req.to_addr.uri
        services = self.services
        if resp.status == 200 and services is not None and isinstance(to_uri, SipUri):
            aor = aor_key(to_uri.user_unescaped, self.config.domain)
            if services.roles.deferred.has_pending(aor) and self.location.lookup(aor):
                # The user can receive again: re-send its deferred messages (msilo-style).
                self._spawn(services.deliver_pending(aor))

    # ------------------------------------------------------------------ ACK

    def _on_ack(self, inc: IncomingRequest) -> None:
        req = inc.request
        uri = req.uri
        if not isinstance(uri, SipUri):
            return
        check = self.proxy.preprocess_routes(req)
        uri = req.uri
        if not isinstance(uri, SipUri):
            return
        if not check.trusted:
            # Issue 7 item 2: an ACK for a 2xx follows the route set we recorded; any other
            # ACK matching no transaction is not ours to relay (§17.2.3: it is dropped).
            log.debug("dropping an ACK outside a route set of ours from %s", inc.source)
            return
        strip_identity(req)
        target: Target | None = None
        if req.route or not self.identity.names_domain(uri) or uri.user is None:
            target = self.proxy.target_for_uri(uri, req.route)
        else:
            bindings = self.location.lookup(aor_key(uri.user_unescaped, self.config.domain))
            if bindings:
                target = self.proxy.target_for_binding(bindings[0])
        self.proxy.forward_ack(inc, target)
