"""asyncio SIP endpoint: sockets + the sans-I/O transaction layer + one timer.

:class:`SipEndpoint` owns the listeners (:class:`~simpleim.transport.sip_net.SipNetwork`)
and a :class:`~simpleim.sip.transaction_layer.TransactionLayer`.  It parses what arrives,
stamps ``received``/``rport`` on the top Via of requests (RFC 3261 §18.2.1, RFC 3581 §4),
feeds the layer, sends what the layer queues and keeps exactly one ``loop.call_at`` armed
on the layer's next deadline (aioquic style).

Server side: every new request is handed to ``handler(IncomingRequest)``; answer it with
:meth:`IncomingRequest.respond` (through its server transaction).  CANCEL is answered here
(RFC 3261 §9.2) and reported to the cancelled request's ``on_cancel`` callback.

Client side: :meth:`SipEndpoint.send_request` starts a client transaction with a callback
per response; :meth:`SipEndpoint.request` awaits the final response and can answer one
401/407 digest challenge with a :class:`~simpleim.sip.auth.DigestClient`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from collections.abc import Callable
from typing import Any

from simpleim.errors import (
    AuthError,
    LocalProtocolError,
    ProtocolError,
    SipParseError,
)
from simpleim.sip.auth import DigestClient
from simpleim.sip.message import SipLimits, SipRequest, SipResponse, parse_message
from simpleim.sip.transaction_layer import (
    AckReceived,
    CancelReceived,
    Event,
    Outgoing,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailure,
)
from simpleim.sip.uri import SipUri
from simpleim.timers import DEFAULT_TIMERS, Timers
from simpleim.transport.sip_addr import RELIABLE, ListenSpec, TransportAddr, normalize_host
from simpleim.transport.sip_errors import error_response_bytes
from simpleim.transport.sip_net import SipNetwork
from simpleim.transport.sip_overload import Shed, overload_response, shed_verdict
from simpleim.transport.sip_requests import (
    ClientRequest,
    IncomingRequest,
    RequestHandler,
    ResponseCallback,
)
from simpleim.transport.sip_resolve import resolve_uri

__all__ = [
    "SipEndpoint",
    "IncomingRequest",
    "ClientRequest",
    "RequestHandler",
    "ResponseCallback",
    "resolve_uri",
]

log = logging.getLogger("simpleim.transport.sip")


# Granularity of the transaction timers' wake-ups (seconds); T1 is 500 ms (RFC 3261 §17.1.1.1).
TIMER_TICK = 0.01


class SipEndpoint:
    """One SIP element's transports and transactions."""

    def __init__(
        self,
        handler: RequestHandler | None = None,
        *,
        timers: Timers = DEFAULT_TIMERS,
        ssl_server: ssl.SSLContext | None = None,
        ssl_client: ssl.SSLContext | None = None,
        limits: SipLimits | None = None,
        max_transactions: int = 200_000,
        host_map: dict[str, str] | None = None,
        server_name: str = "simpleim",
        on_stray_response: Callable[[SipResponse, TransportAddr], None] | None = None,
        validate: Callable[[SipRequest], None] | None = None,
    ) -> None:
        self.handler = handler
        self.limits = limits or SipLimits()
        self.layer = TransactionLayer(timers=timers, max_transactions=max_transactions)
        self.net = SipNetwork(
            self._on_message,
            on_error=self._on_transport_error,
            ssl_server=ssl_server,
            ssl_client=ssl_client,
            max_message_size=self.limits.max_message_size,
        )
        # Lifetime bounds of server transactions without a final response (seconds):
        # RFC 3261 §16.6 step 11 Timer C for INVITE, 64*T1 for the rest, plus a margin.
        self.max_invite_lifetime = timers.timer_c + 64 * timers.t1
        self.max_noninvite_lifetime = 2 * 64 * timers.t1
        self._sweeper: asyncio.TimerHandle | None = None
        # Overload shedding (issue 7 item 7): while ``shed()`` is true, a new request is
        # answered 503 + Retry-After from its raw bytes (no parse, no transaction) and a
        # retransmission of a request still being handled is dropped before parsing.
        self.shed: Callable[[], int] | None = None
        self.shed_retry_after = 2
        self.shed_count = 0
        self.dropped_retransmissions = 0
        # requests handed to the handler and not yet answered finally, by top Via branch
        self.unanswered = 0
        self._pending_branches: set[str] = set()
        self.host_map = dict(host_map or {})
        self.server_name = server_name
        self.on_stray_response = on_stray_response
        # Checks run on each request before it reaches the transaction layer; a
        # ProtocolError raised there is answered statelessly with its status.
        self.validate = validate
        # Called with each final response sent by a server transaction (logging).
        self.on_final: Callable[[IncomingRequest, SipResponse], None] | None = None
        # The last transport failure towards each destination, in words ("connection
        # refused"): a locally made 503 (RFC 3261 §8.1.3.1) can then be explained.
        self.transport_errors: dict[TransportAddr, str] = {}
        self._server: dict[str, IncomingRequest] = {}
        # INVITE server transactions answered with >= 300: (Call-ID, CSeq, From tag) -> id.
        self._rejected: dict[tuple[str, int, str], str] = {}
        self._rejected_keys: dict[str, tuple[str, int, str]] = {}
        self._client: dict[str, ClientRequest] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._receiving = False
        # via_for(): "SIP/2.0/<T> <sent-by>;branch=" per (transport, IPv6?), valid while the
        # listener list is unchanged (SipNetwork.generation; 0 = listeners set up by hand)
        self._via_prefix: dict[tuple[str, bool], tuple[int, str]] = {}
        # (host, port) destinations of the transaction layer -> TransportAddr
        self._dests: dict[Any, TransportAddr] = {}
        # (host, port) sources handed to the transaction layer -> TransportAddr
        self._sources: dict[Any, TransportAddr] = {}

    # ------------------------------------------------------------------ lifecycle

    async def listen(self, spec: ListenSpec) -> TransportAddr:
        """Open a listener (``port`` 0 picks a free port); returns the bound address."""
        self._loop = asyncio.get_running_loop()
        return await self.net.listen(spec)

    @property
    def listeners(self) -> list[TransportAddr]:
        return list(self.net.listeners)

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.net.close()

    def now(self) -> float:
        """The clock the transaction layer runs on (the event loop's monotonic time)."""
        return self._now()

    def _now(self) -> float:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    # ------------------------------------------------------------------ receiving

    def _on_message(self, data: bytes, source: TransportAddr, local: TransportAddr) -> None:
        # Everything queued while handling one message is sent by one flush at the end.
        self._receiving = True
        try:
            self._receive(data, source, local)
        finally:
            self._receiving = False
            self._flush()

    def _receive(self, data: bytes, source: TransportAddr, local: TransportAddr) -> None:
        shed = self.shed
        if shed is not None and not data.startswith(b"SIP/"):
            level = shed()
            if level and self._shed(data, source, level > 1):
                return
        try:
            msg = parse_message(data, self.limits)
        except SipParseError as exc:
            self._reject_unparsable(data, exc, source)
            return
        reliable = source.transport in RELIABLE
        now = self._now()
        if isinstance(msg, SipRequest):
            try:
                if self.validate is not None:
                    self.validate(msg)
                self._stamp_via(msg, source)
                events = self.layer.receive(
                    msg, source if reliable else (source.host, source.port), now, reliable
                )
            except ProtocolError as exc:
                self._reject_unparsable(data, exc, source)
                return
        else:
            try:
                events = self.layer.receive(msg, source, now, reliable)
            except ProtocolError as exc:
                # RFC 3261 §18.1.2: a response that cannot be matched/parsed is discarded.
                log.debug("dropping bad response from %s: %s", source, exc)
                return
        self._dispatch(events, local)

    def _shed(self, data: bytes, source: TransportAddr, hard: bool) -> bool:
        """Under overload: True if ``data`` (a request) was dealt with without parsing."""
        verdict = shed_verdict(data, self._pending_branches, hard)
        if verdict is Shed.RETRANSMISSION:
            self.dropped_retransmissions += 1
            return True
        if verdict is Shed.PASS:
            return False
        self.shed_count += 1
        out = overload_response(data, self.server_name, self.shed_retry_after)
        if out is not None:
            self.net.send(out, source)
        return True

    def _stamp_via(self, req: SipRequest, source: TransportAddr) -> None:
        # RFC 3261 §18.2.1: add "received" when the sent-by host differs from the source;
        # RFC 3581 §4: fill in "rport" (and received) when the client asked for it.
        via = req.top_via
        first = req.headers.get("Via") or ""
        if "rport" not in first.lower() and normalize_host(via.bare_host) == source.host:
            return  # nothing to add: same host, no rport asked (the common case)
        stamped = via.with_received(source.host, source.port)
        if stamped.params is via.params:
            return
        values = req.headers.get_all("Via")
        values[0] = str(stamped)
        req.headers.set("Via", ", ".join(values))

    def _reject_unparsable(self, data: bytes, exc: ProtocolError, source: TransportAddr) -> None:
        """Answer a broken request when enough of it is readable, else drop it."""
        out = error_response_bytes(data, exc, self.server_name)
        if out is None:
            log.info("dropping unparsable message from %s: %s", source, exc)
            return
        log.info("rejecting malformed request from %s with %d: %s", source, exc.status,
                 exc.detail)
        self.net.send(out, source)

    def _dispatch(self, events: list[Event], local: TransportAddr) -> None:
        for ev in events:
            if isinstance(ev, ResponseReceived):
                self._on_response(ev)
            elif isinstance(ev, TransactionTerminated):
                self._terminated(ev.transaction_id)
            elif isinstance(ev, RequestReceived):
                inc = IncomingRequest(self, ev.request, self._addr(ev.source), local,
                                      ev.transaction_id)
                self._server[ev.transaction_id] = inc
                self.unanswered += 1
                branch = ev.request.top_via.branch
                if branch:
                    self._pending_branches.add(branch)
                self._call_handler(inc)
            elif isinstance(ev, AckReceived):
                if ev.transaction_id is None and self._absorb_stray_ack(ev):
                    continue
                self._call_handler(
                    IncomingRequest(self, ev.request, self._addr(ev.source), local, None)
                )
            elif isinstance(ev, CancelReceived):
                self._on_cancel(ev, local)
            elif isinstance(ev, TransactionTimeout | TransportFailure):
                self._on_failure(ev.transaction_id, ev.request, ev.status)
            elif isinstance(ev, RequestRejected):
                log.warning("request refused (%d): too many transactions", ev.status)

    def _terminated(self, transaction_id: str) -> None:
        self._server.pop(transaction_id, None)
        if self._rejected_keys:
            key = self._rejected_keys.pop(transaction_id, None)
            if key is not None:
                self._rejected.pop(key, None)
        self._client.pop(transaction_id, None)

    def _note_rejected_invite(self, inc: IncomingRequest) -> None:
        req = inc.request
        if inc.transaction_id is None:
            return
        try:
            key = (req.call_id, req.cseq.seq, req.from_addr.tag or "")
        except ProtocolError:
            return  # no stray ACK can be matched to it: nothing to remember
        self._rejected[key] = inc.transaction_id
        self._rejected_keys[inc.transaction_id] = key

    def _absorb_stray_ack(self, ev: AckReceived) -> bool:
        """An ACK for a non-2xx final response must reuse the INVITE's branch (RFC 3261
        §17.1.1.3), but some UAs (e.g. SIPp scenarios answering a 407) send a new one.
        Such an ACK would otherwise be routed as an ACK for a 2xx; it is given to the
        INVITE server transaction it acknowledges (same Call-ID, CSeq number, From tag)."""
        if not self._rejected:
            return False
        req = ev.request
        try:
            key = (req.call_id, req.cseq.seq, req.from_addr.tag or "")
        except ProtocolError:
            return False
        tx_id = self._rejected.get(key)
        inc = self._server.get(tx_id) if tx_id is not None else None
        if inc is None:
            return False
        branch = inc.request.top_via.branch
        if branch is None:
            return False
        patched = req.copy()
        values = patched.headers.get_all("Via")
        top = patched.top_via
        values[0] = str(top.__class__(top.transport, top.host, top.port,
                                      top.params.with_param("branch", branch),
                                      top.protocol))
        patched.headers.set("Via", ", ".join(values))
        source = ev.source
        reliable = isinstance(source, TransportAddr) and source.transport in RELIABLE
        try:
            self.layer.receive(patched, source, self._now(), reliable)
        except ProtocolError:
            return False
        return True

    def _call_handler(self, inc: IncomingRequest) -> None:
        handler = self.handler
        if handler is None:
            if inc.transaction_id is not None:
                inc.reply(501 if inc.method != "OPTIONS" else 200)
            return
        try:
            handler(inc)
        except ProtocolError as exc:
            # A protocol error is one log line (issue 7 item 3), and the request is answered.
            log.info("%s from %s failed: %s", inc.method, inc.source, exc)
            if inc.transaction_id is not None and not inc.final_sent:
                status = exc.status if 400 <= exc.status <= 699 else 500
                try:
                    inc.respond(inc.request.create_response(status))
                except ProtocolError:
                    pass  # unanswerable: the sweeper ends its transaction
        if inc.transaction_id is not None and self._sweeper is None and self._server:
            self._arm_sweeper()

    def _answered(self, inc: IncomingRequest) -> None:
        self.unanswered -= 1
        branch = inc.request.top_via.branch
        if branch:
            self._pending_branches.discard(branch)

    # ------------------------------------------------------------------ lifetime bound

    def _arm_sweeper(self) -> None:
        loop = self._loop or asyncio.get_running_loop()
        interval = max(0.05, min(self.max_noninvite_lifetime, self.max_invite_lifetime) / 4)
        self._sweeper = loop.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        """Answer 408 to every request left without a final response past its lifetime
        (Kamailio's max_inv_lifetime / max_noninv_lifetime): every server transaction ends,
        whatever the code above it did (issue 7 item 3)."""
        self._sweeper = None
        if self._closed:
            return
        now = time.monotonic()
        stale = [inc for inc in self._server.values() if not inc.final_sent and now - (
            inc.received_at + (self.max_invite_lifetime if inc.request.method == "INVITE"
                               else self.max_noninvite_lifetime)) > 0]
        for inc in stale:
            log.warning("%s from %s unanswered after its lifetime: 408", inc.method,
                        inc.source)
            try:
                inc.respond(inc.request.create_response(408))
            except ProtocolError:
                pass
            if not inc.final_sent and inc.transaction_id is not None:
                self._server.pop(inc.transaction_id, None)  # nothing more can be done
                self._answered(inc)
        if stale:
            self._flush()
        if self._server:
            self._arm_sweeper()

    def _addr(self, source: Any) -> TransportAddr:
        if isinstance(source, TransportAddr):
            return source
        addr = self._sources.get(source)
        if addr is None:
            addr = TransportAddr("udp", source[0], source[1])
            if len(self._sources) >= 4096:
                self._sources.clear()
            self._sources[source] = addr
        return addr

    def _on_cancel(self, ev: CancelReceived, local: TransportAddr) -> None:
        req = ev.request
        if ev.invite_transaction_id is None:
            # RFC 3261 §9.2: no matching transaction -> 481.
            self._respond_tx(ev.transaction_id, req.create_response(481))
            return
        # RFC 3261 §9.2: the CANCEL itself is answered 200 (its own transaction) ...
        self._respond_tx(ev.transaction_id, req.create_response(200))
        target = self._server.get(ev.invite_transaction_id)
        if target is None or not ev.invite_pending or target.final_sent:
            return
        target.cancelled = True
        if target.on_cancel is not None:
            target.on_cancel(target)
        else:
            # ... and the INVITE gets 487 Request Terminated (§9.2).
            target.reply(487)

    def _respond_tx(self, transaction_id: str, response: SipResponse) -> bool:
        try:
            self.layer.send_response(response, self._now(), transaction_id)
        except ProtocolError as exc:
            log.info("cannot respond %d on %s: %s", response.status, transaction_id,
                     exc.detail)
            return False
        return True

    def _send_response(self, inc: IncomingRequest, response: SipResponse) -> bool:
        if inc.transaction_id is None:
            return False
        sent = self._respond_tx(inc.transaction_id, response)
        if not self._receiving:
            self._flush()
        return sent

    # ------------------------------------------------------------------ client side

    def via_for(self, dest: TransportAddr, branch: str) -> str:
        """Our Via value towards ``dest`` (RFC 3261 §18.1.1, rport per RFC 3581 §3)."""
        net = self.net
        key = (dest.transport, ":" in dest.host)
        cached = self._via_prefix.get(key)
        if cached is None or cached[0] != net.generation or cached[0] == 0:
            local = net.local_for(dest.transport, dest.host)
            if local is None:
                raise LocalProtocolError(f"no listener to send to {dest}")
            prefix = f"SIP/2.0/{dest.transport.upper()} {local.hostport};branch="
            cached = self._via_prefix[key] = (net.generation, prefix)
        return f"{cached[1]}{branch};rport"

    def local_for(self, dest: TransportAddr) -> TransportAddr | None:
        return self.net.local_for(dest.transport, dest.host)

    def new_branch(self) -> str:
        return self.layer.new_branch()

    def resolve(self, uri: SipUri) -> TransportAddr:
        return resolve_uri(uri, self.host_map)

    def send_request(
        self,
        request: SipRequest,
        dest: TransportAddr,
        on_response: ResponseCallback,
        *,
        add_via: bool = True,
    ) -> ClientRequest:
        """Start a client transaction; ``on_response`` gets every response (1xx and final;
        a timeout or transport failure arrives as a locally made 408 / 503)."""
        if add_via:
            request.headers.prepend("Via", self.via_for(dest, self.layer.new_branch()))
        now = self._now()
        tx = self.layer.send_request(request, dest, now, dest.transport in RELIABLE)
        client = ClientRequest(self, request, dest, tx.id, on_response)
        self._client[tx.id] = client
        if not self._receiving:
            self._flush()
        return client

    def send_keepalive(self, dest: TransportAddr) -> bool:
        """RFC 5626 §4.4.1: a CRLF ping on an open connection to ``dest`` (the peer answers
        with a CRLF pong, §3.5.1).  Returns False when no connection is open."""
        if dest.transport not in RELIABLE or not self.net.has_connection(dest):
            return False
        self.net.send(b"\r\n\r\n", dest)
        return True

    def send_stateless(self, message: SipRequest | SipResponse, dest: TransportAddr) -> None:
        """Send outside any transaction (ACK for a 2xx, §13.2.2.4; stateless forwarding)."""
        self.net.send(message.to_bytes(), dest)

    def _cancel(self, client: ClientRequest) -> None:
        if client.final is not None:
            return
        try:
            self.layer.cancel(client.transaction_id, self._now())
        except ProtocolError as exc:
            log.debug("cannot cancel %s: %s", client.transaction_id, exc)
            return
        if not self._receiving:
            self._flush()

    def _on_response(self, ev: ResponseReceived) -> None:
        client = self._client.get(ev.transaction_id) if ev.transaction_id else None
        if client is None:
            if self.on_stray_response is not None:
                self.on_stray_response(ev.response, self._addr(ev.source))
            return
        resp = ev.response
        if resp.status >= 200:
            if client.final is not None and not (
                client.request.method == "INVITE" and resp.status < 300
            ):
                return
            client.final = resp
            if client.request.method != "INVITE":
                # RFC 3261 §17.1.2.2: after its final response a non-INVITE client transaction
                # only absorbs retransmissions (Completed, Timer K): nothing more reaches us.
                del self._client[client.transaction_id]
        client.on_response(resp)

    def _on_failure(self, transaction_id: str, request: SipRequest, status: int) -> None:
        client = self._client.get(transaction_id)
        if client is not None:
            if client.final is None:
                # RFC 3261 §8.1.3.1: a timeout is treated as 408, a transport error as 503.
                resp = request.create_response(status)
                client.final = resp
                client.on_response(resp)
            return
        inc = self._server.get(transaction_id)
        if inc is not None:
            log.debug("server transaction %s failed with %d", transaction_id, status)

    def _on_transport_error(self, dest: TransportAddr, reason: str, tags: list[str]) -> None:
        if len(self.transport_errors) >= 256:
            self.transport_errors.clear()
        self.transport_errors[dest] = reason
        now = self._now()
        for tag in tags:
            events = self.layer.transport_error(tag, now)
            self._dispatch(events, dest)
        self._flush()

    async def request(
        self,
        request: SipRequest,
        dest: TransportAddr | None = None,
        *,
        auth: DigestClient | None = None,
        on_provisional: ResponseCallback | None = None,
    ) -> SipResponse:
        """Send ``request`` in a client transaction and return its final response.

        ``dest`` defaults to the Request-URI (or first Route, RFC 3261 §8.1.2).  With
        ``auth``, a 401/407 is answered once (RFC 3261 §22.2, §22.3): the request is re-sent
        with a new branch, CSeq + 1 and the credentials.
        """
        if dest is None:
            dest = self._default_dest(request)
        response = await self._request_once(request, dest, on_provisional)
        if auth is None or response.status not in (401, 407):
            if auth is not None:
                # RFC 3261 §22.2: any answer but 401/407 means the credentials passed.
                auth.accepted()
            return response
        try:
            credentials = auth.respond(
                method=request.method,
                uri=str(request.uri),
                www_authenticate=response.headers.get_all("WWW-Authenticate"),
                proxy_authenticate=response.headers.get_all("Proxy-Authenticate"),
                body=request.body,
            )
        except AuthError as exc:
            log.info("cannot answer the challenge: %s", exc.detail)
            return response
        retry = request.copy()
        # RFC 3261 §22.2 / §8.1.3.5: the retry is a new transaction (new branch, CSeq + 1).
        vias = retry.headers.get_all("Via")
        retry.headers.remove("Via")
        for value in vias[1:]:
            retry.headers.add("Via", value)
        cseq = retry.cseq
        retry.headers.set("CSeq", f"{cseq.seq + 1} {cseq.method}")
        for name, value in credentials:
            retry.headers.remove(name)
            retry.headers.add(name, value)
        response = await self._request_once(retry, dest, on_provisional)
        if response.status not in (401, 407):
            auth.accepted()
        # Reflect the CSeq used so that a caller building the next request can continue.
        request.headers.set("CSeq", retry.headers.get("CSeq") or str(cseq))
        return response

    def _default_dest(self, request: SipRequest) -> TransportAddr:
        routes = request.route
        target = routes[0].uri if routes else request.uri
        if not isinstance(target, SipUri):
            raise LocalProtocolError(f"cannot send to {target}")
        return self.resolve(target)

    async def _request_once(
        self,
        request: SipRequest,
        dest: TransportAddr,
        on_provisional: ResponseCallback | None,
    ) -> SipResponse:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[SipResponse] = loop.create_future()

        def on_response(resp: SipResponse) -> None:
            if resp.status < 200:
                if on_provisional is not None:
                    on_provisional(resp)
            elif not done.done():
                done.set_result(resp)

        self.send_request(request, dest, on_response)
        return await done

    # ------------------------------------------------------------------ output + timers

    def _flush(self) -> None:
        layer = self.layer
        out = layer.datagrams_to_send()
        if out:
            send = self.net.send
            for item in out:
                send(item.data, self._dest_of(item), item.transaction_id)
        armed = self._timer_at
        if armed is not None:
            earliest = layer.earliest_scheduled()
            if earliest is None or armed <= earliest:
                return  # the armed wake-up comes no later than any timer (usual case)
        self._arm_timer(layer.next_deadline())

    def _dest_of(self, item: Outgoing) -> TransportAddr:
        dest = item.dest
        if isinstance(dest, TransportAddr):
            return dest
        addr = self._dests.get(dest)
        if addr is None:
            addr = TransportAddr("udp", normalize_host(str(dest[0])), int(dest[1]))
            if len(self._dests) >= 4096:
                self._dests.clear()
            self._dests[dest] = addr
        return addr

    def _arm_timer(self, deadline: float | None) -> None:
        if deadline is None or self._closed:
            return  # an already armed wake-up that finds nothing due is harmless
        armed = self._timer_at
        if armed is not None and armed <= deadline:
            return  # (rounding up below could only move the deadline later)
        # Wake-ups are rounded up to a tick, so that one wake-up serves every timer due
        # within it (thousands of transactions per second each end with a timer).
        deadline = math.ceil(deadline / TIMER_TICK) * TIMER_TICK
        if armed is not None and armed <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        loop = self._loop or asyncio.get_running_loop()
        self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        events = self.layer.handle_timer(self._now())
        if events:
            self._dispatch(events, self.net.listeners[0] if self.net.listeners else
                           TransportAddr("udp", "0.0.0.0", 0))
        self._flush()
