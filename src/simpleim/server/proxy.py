"""Stateful proxy (RFC 3261 §16) for the served domain.

Interface (used by :mod:`simpleim.server.app`, which does the §16.3 checks and decides the
targets): :meth:`Proxy.preprocess_routes` (§16.4), :meth:`Proxy.is_looped` (§16.3 step 4),
:meth:`Proxy.target_for_binding` / :meth:`Proxy.target_for_uri` (§16.5),
:meth:`Proxy.forward` (fork to the targets and relay the responses, §16.6-§16.10),
:meth:`Proxy.forward_ack` (ACK for 2xx, stateless, §16.11) and
:meth:`Proxy.forward_stray_response` (2xx retransmissions after the client transaction
ended, §16.7 / §18.1.2).

The per-request path is kept lean: no database access (targets come from the in-memory
location service), one request copy per branch, bodies never copied.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import NamedTuple

from simpleim.errors import LocalProtocolError, ProtocolError
from simpleim.server.identity import LocalIdentity
from simpleim.server.location import Binding, flow_of
from simpleim.server.trust import RouteStamp
from simpleim.sip.headers import Address, Via
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.sip.uri import SipUri, parse_uri
from simpleim.timers import Timers
from simpleim.transport.sip import ClientRequest, IncomingRequest, SipEndpoint
from simpleim.transport.sip_addr import RELIABLE, TransportAddr, normalize_host

__all__ = ["FailureHook", "Proxy", "RouteCheck", "SuccessHook", "Target", "loop_hash",
           "select_best_response", "via_destination"]

log = logging.getLogger("simpleim.server.proxy")

# RFC 3261 §16.6 step 4 / §12.1.1: requests that create dialogs are record-routed.
_DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
# RFC 3261 §16.7 step 6: 4xx responses that help the client resubmit are preferred.
_PREFERRED_4XX = (401, 407, 415, 420, 484)
#: Called with the final responses of a request none of whose branches succeeded.
FailureHook = Callable[[list[SipResponse]], bool]
#: Called with each 2xx before it is relayed (it may add header fields, RFC 4028 §8.2).
SuccessHook = Callable[[SipResponse], None]


class RouteCheck(NamedTuple):
    """What :meth:`Proxy.preprocess_routes` found: how many of our own entries it consumed
    and whether one of them carried the stamp of this dialog (a route set we recorded)."""

    popped: int
    trusted: bool


class Target:
    """One branch target: the Request-URI to use, the next hop and the Route set to push."""

    __slots__ = ("uri", "dest", "routes", "uri_text")

    def __init__(
        self,
        uri: SipUri,
        dest: TransportAddr,
        routes: Sequence[str] = (),
        uri_text: str | None = None,
    ) -> None:
        self.uri = uri
        self.dest = dest
        self.routes = tuple(routes)
        # str(uri) when already known (cached per binding contact)
        self.uri_text = uri_text


def loop_hash(req: SipRequest) -> str:
    """The loop-detection part of our branch (RFC 3261 §16.6 step 8 / §16.3 step 4).

    It covers what a looping request keeps unchanged: Request-URI (as received), From
    and To (with their tags), Call-ID, CSeq number, Route, Proxy-Require and
    Proxy-Authorization.
    A spiral (new Request-URI) gets a different value, a loop the same.  The value only
    has to be stable within this process (loops come back to the same process).
    """
    h = req.headers
    present = h._firsts if h._firsts is not None else h._build_firsts()
    parts = (
        str(req.uri),
        h.get("From"),  # the raw values hold the tags and are as stable as they are
        h.get("To"),
        req.call_id,
        req.cseq.seq,
        tuple(h._lines("route")) if "route" in present else (),
        tuple(h._lines("proxy-require")) if "proxy-require" in present else (),
        tuple(h._lines("proxy-authorization")) if "proxy-authorization" in present else (),
    )
    return f"{hash(parts) & 0xFFFFFFFFFFFF:012x}"


def select_best_response(responses: Sequence[SipResponse]) -> SipResponse | None:
    """RFC 3261 §16.7 step 6: 6xx first; else the lowest class, preferring 401/407/415/420/
    484 among 4xx; a 503 becomes 500."""
    if not responses:
        return None
    six = [r for r in responses if r.status >= 600]
    if six:
        return six[0]
    lowest = min(r.status // 100 for r in responses)
    candidates = [r for r in responses if r.status // 100 == lowest]
    if lowest == 4:
        for preferred in _PREFERRED_4XX:
            for r in candidates:
                if r.status == preferred:
                    return r
    best = candidates[0]
    if best.status == 503:
        # §16.7 step 6: "If the selected response is a 503, the proxy MUST change it to 500".
        changed = best.copy()
        changed.status = 500
        changed.reason = "Server Internal Error"
        return changed
    return best


def _pop_top_via(msg: SipResponse) -> None:
    # RFC 3261 §16.7 step 3: the proxy removes the topmost Via (its own) from the response.
    h = msg.headers
    items = h._items
    pos = [i for i, (k, _) in enumerate(items) if k == "via"]
    if len(pos) == 2 and "," not in items[pos[0]][1] and "," not in items[pos[1]][1]:
        # the common case (our Via + the previous hop's, one per line): the same result as
        # below (the remaining value in the first Via line's place), without re-splitting
        rest = items[pos[1]][1].strip(" \t")
        del items[pos[1]]
        h._replace_line(pos[0], rest)
        return
    vias = h.get_all("Via")
    msg.headers.remove("Via")
    # one Via per line (issue 7 item 14: 200 Vias joined made one 41 KB line, over the
    # peers' line limits); the Vias stay in order, before the other headers' lines
    for value in reversed(vias[1:]):
        msg.headers.prepend("Via", value)


class _Branch:
    """One forked client transaction of a proxied request."""

    __slots__ = ("client", "final", "method")

    def __init__(self, method: str) -> None:
        self.client: ClientRequest | None = None
        self.final = False
        self.method = method


class _ProxyTransaction:
    """The response context of one proxied request (RFC 3261 §16.7)."""

    __slots__ = ("proxy", "inc", "branches", "finals", "done", "timer_c", "is_invite",
                 "pending", "on_failed", "on_success")

    def __init__(self, proxy: Proxy, inc: IncomingRequest,
                 on_failed: FailureHook | None = None,
                 on_success: SuccessHook | None = None) -> None:
        self.on_failed = on_failed
        self.on_success = on_success
        self.proxy = proxy
        self.inc = inc
        self.branches: list[_Branch] = []
        self.finals: list[SipResponse] = []
        self.done = False
        self.timer_c: asyncio.TimerHandle | None = None
        self.is_invite = inc.request.method == "INVITE"
        self.pending = 0

    def on_response(self, branch: _Branch, resp: SipResponse) -> None:
        status = resp.status
        if status == 100:
            return  # §16.7 step 5: 100 Trying is not forwarded.
        if status < 200:
            if self.is_invite:
                self._restart_timer_c()
            if not self.done:
                # §16.7 step 5: provisional responses other than 100 are forwarded at once.
                _pop_top_via(resp)
                self.inc.respond(resp)
            return
        if status < 300 and self.on_success is not None:
            self.on_success(resp)
        if branch.final:
            # A further 2xx on an INVITE branch (RFC 6026 §7.2: forwarded as well).
            if status < 300 and self.is_invite:
                _pop_top_via(resp)
                self.proxy._send_upstream(self.inc, resp)
            return
        branch.final = True
        # The branch's client transaction holds a callback to this context: drop the link
        # back so that the relay's objects are freed by reference counting when the client
        # transaction ends, not left to the cyclic garbage collector (its pauses grow with
        # the number of live transactions).  Only pending branches are ever cancelled.
        branch.client = None
        self.pending -= 1
        if status < 300:
            # §16.7 step 5: 2xx are forwarded immediately (all of them for INVITE).
            first = not self.done
            self.done = True
            _pop_top_via(resp)
            if first:
                self.inc.respond(resp)
            elif self.is_invite:
                self.proxy._send_upstream(self.inc, resp)
            # §16.7 step 10: on a 2xx to INVITE the pending branches are cancelled.
            self._cancel_pending()
        else:
            self.finals.append(resp)
            if status >= 600 and self.is_invite:
                # §16.7 step 10: a 6xx cancels the other pending branches.
                self._cancel_pending()
        if self.pending <= 0:
            self._finish()

    def _finish(self) -> None:
        if self.timer_c is not None:
            self.timer_c.cancel()
            self.timer_c = None
        if self.done:
            return
        self.done = True
        if self.on_failed is not None:
            hook, self.on_failed = self.on_failed, None
            if hook(self.finals or [self.inc.request.create_response(408)]):
                return  # the hook answers (e.g. the message was deferred: 202)
        best = select_best_response(self.finals)
        if best is None:
            best = self.inc.request.create_response(408)
            self.inc.respond(best)
            return
        # §16.7 step 7: collect every challenge of 401/407 branches into the response.
        if best.status in (401, 407):
            for other in self.finals:
                if other is best or other.status not in (401, 407):
                    continue
                for name in ("WWW-Authenticate", "Proxy-Authenticate"):
                    for value in other.headers.get_lines(name):
                        best.headers.add(name, value)
        _pop_top_via(best)
        self.inc.respond(best)

    def _cancel_pending(self) -> None:
        for branch in self.branches:
            if not branch.final and branch.client is not None and branch.method == "INVITE":
                branch.client.cancel()

    def cancel(self, _inc: IncomingRequest) -> None:
        """§16.10: an incoming CANCEL cancels every pending client transaction."""
        if not self.branches:
            self.inc.reply(487)
            self.done = True
            return
        self._cancel_pending()

    def _restart_timer_c(self) -> None:
        # RFC 3261 §16.6 step 11 / §16.7 step 2: Timer C (> 3 min) restarts on provisionals.
        if self.timer_c is not None:
            self.timer_c.cancel()
        loop = asyncio.get_running_loop()
        self.timer_c = loop.call_later(self.proxy.timers.timer_c, self._timer_c_fired)

    def _timer_c_fired(self) -> None:
        self.timer_c = None
        # §16.8: on Timer C the proxy cancels the branch (or acts as if it got a 408).
        self._cancel_pending()


def _callback(ctx: _ProxyTransaction, slot: _Branch) -> Callable[[SipResponse], None]:
    def on_response(resp: SipResponse) -> None:
        ctx.on_response(slot, resp)

    return on_response


class Proxy:
    """Forwards requests statefully to their targets and relays the responses back."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        identity: LocalIdentity,
        timers: Timers,
        stamp: RouteStamp | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.identity = identity
        self.timers = timers
        self.stamp = stamp or RouteStamp()
        # Parsed and resolved contact URIs of bindings (bindings are immutable values).
        self._contacts: dict[str, tuple[SipUri, TransportAddr, str]] = {}

    # ------------------------------------------------------------------ targets

    def target_for_binding(self, binding: Binding) -> Target:
        """RFC 3261 §16.5 + RFC 3327 §5.3: the contact as Request-URI, the stored Path as
        Route set, and the connection the registration came over when it is still open
        (connection reuse, RFC 5626 §5.3)."""
        cached = self._contacts.get(binding.contact)
        if cached is None:
            parsed = parse_uri(binding.contact, "Contact")
            if not isinstance(parsed, SipUri):
                raise LocalProtocolError(f"contact {binding.contact} is not a SIP URI")
            cached = (parsed, self.endpoint.resolve(parsed), str(parsed))
            if len(self._contacts) > 10_000:
                self._contacts.clear()
            self._contacts[binding.contact] = cached
        uri, resolved, uri_text = cached
        flow = flow_of(binding)
        if flow is not None:
            # RFC 5626 §5.3: a flow-bound contact is reached over its flow only; a flow
            # that is gone makes the branch fail at once (430 Flow Failed at an edge; the
            # caller leaves the binding out) instead of waiting for Timer F.
            if not self.endpoint.net.has_connection(flow):
                raise LocalProtocolError(f"flow {flow} of {binding.contact} failed",
                                         status=430)
            return Target(uri, flow, (), uri_text)
        routes = binding.path
        if routes:
            first = Address.parse(routes[0], "Path").uri
            if not isinstance(first, SipUri):
                raise LocalProtocolError("Path entry is not a SIP URI")
            return Target(uri, self.endpoint.resolve(first), routes, uri_text)
        src = binding.source
        if src is not None and src[0] in RELIABLE:
            flow = TransportAddr(src[0], src[1], src[2])
            if self.endpoint.net.has_connection(flow):
                return Target(uri, flow, (), uri_text)
        return Target(uri, resolved, (), uri_text)

    def target_for_uri(self, uri: SipUri, routes: Sequence[Address] = ()) -> Target:
        """Next hop of a request: the top Route if it is a loose router (§16.6 step 6-7),
        else the Request-URI."""
        if routes:
            first = routes[0].uri
            if isinstance(first, SipUri):
                return Target(uri, self.endpoint.resolve(first))
        return Target(uri, self.endpoint.resolve(uri))

    # ------------------------------------------------------------------ forwarding

    def forward(self, inc: IncomingRequest, targets: Sequence[Target],
                on_failed: FailureHook | None = None,
                on_success: SuccessHook | None = None) -> None:
        """Fork ``inc`` in parallel to ``targets`` (RFC 3261 §16.6) and relay responses.

        ``on_failed`` sees every final response when no branch succeeded, before the best
        one is chosen (§16.7 step 6); returning True means it answers the request itself
        (the terminating Participating Function defers the message instead, PT-01 step 5).
        ``on_success`` sees each 2xx before it is relayed (RFC 4028 §8.2).
        """
        req = inc.request
        if inc.final_sent:
            return  # already answered (e.g. cancelled before targets were known)
        ctx = _ProxyTransaction(self, inc, on_failed, on_success)
        if req.method == "INVITE":
            inc.on_cancel = ctx.cancel
            # §16.2: a stateful proxy SHOULD answer 100 Trying to INVITE at once.
            inc.reply(100)
        try:
            # §16.6 step 3: decrement Max-Forwards (483 when already 0 is checked before).
            mf = req.max_forwards
            new_mf = str((70 if mf is None else mf) - 1)
            loop_part = loop_hash(req)
        except ProtocolError as exc:
            inc.reply(exc.status if exc.status >= 400 else 400)
            return
        record_route = req.method in _DIALOG_CREATING and req.to_addr.tag is None
        for target in targets:
            branch_req = req.copy()
            # §16.6 step 2: the Request-URI is replaced by the target.
            if target.uri_text is not None:
                branch_req.set_uri(target.uri, target.uri_text)
            else:
                branch_req.uri = target.uri
            branch_req.headers.set("Max-Forwards", new_mf)
            for route in reversed(target.routes):
                # RFC 3327 §5.3: the stored Path becomes the top of the Route set.
                branch_req.headers.prepend("Route", route)
            if record_route:
                self._add_record_route(branch_req, inc.local, target.dest)
            # §16.6 step 8: our Via, with a branch whose first part detects loops.
            branch = f"z9hG4bK{loop_part}.{self.endpoint.new_branch()[7:19]}"
            try:
                via = self.endpoint.via_for(target.dest, branch)
            except LocalProtocolError:
                ctx.finals.append(req.create_response(503))
                continue
            branch_req.headers.prepend("Via", via)
            ctx.pending += 1
            slot = _Branch(req.method)
            ctx.branches.append(slot)
            try:
                slot.client = self.endpoint.send_request(
                    branch_req, target.dest, _callback(ctx, slot), add_via=False
                )
            except ProtocolError as exc:
                ctx.branches.remove(slot)
                ctx.pending -= 1
                ctx.finals.append(req.create_response(exc.status if exc.status >= 400
                                                      else 503))
                continue
        if req.method == "INVITE":
            ctx._restart_timer_c()
        if ctx.pending <= 0:
            ctx._finish()

    def _add_record_route(
        self, req: SipRequest, incoming: TransportAddr, dest: TransportAddr
    ) -> None:
        # §16.6 step 4: Record-Route so that in-dialog requests come through us (lr).
        outgoing = self.endpoint.local_for(dest) or incoming
        stamp = self.stamp.stamp(req.call_id)
        req.add_record_route(self.identity.record_route(incoming, stamp))
        if outgoing != incoming:
            # RFC 5658 §3.2: double Record-Route when the two legs use different interfaces;
            # the value nearest to the callee (top) names the outgoing side.
            req.add_record_route(self.identity.record_route(outgoing, stamp))

    def _send_upstream(self, inc: IncomingRequest, resp: SipResponse) -> None:
        """Send a further 2xx after the server transaction's first final (RFC 6026 §7.1:
        passed through the Accepted state)."""
        inc.respond_again(resp)

    # ------------------------------------------------------------------ routing helpers

    def preprocess_routes(self, req: SipRequest) -> RouteCheck:
        """RFC 3261 §16.4: undo a strict router's rewrite, then drop our own Route(s).

        Returns how many of our own route entries were consumed and whether one of them
        carried this dialog's stamp (issue 7 item 2: only then did we record the route set).
        """
        popped = 0
        trusted = False
        if "route" not in req.headers:
            uri = req.uri
            if isinstance(uri, SipUri) and uri.user is None and self.identity.is_us(uri):
                trusted = self.stamp.valid(uri, req.call_id)
            return RouteCheck(0, trusted)
        uri = req.uri
        if isinstance(uri, SipUri) and self.identity.is_us(uri) and uri.user is None:
            routes = req.route
            if routes:
                # §16.4: the Request-URI is a value we put in Record-Route: the previous hop
                # is a strict router; the last Route value is the real Request-URI.
                trusted = self.stamp.valid(uri, req.call_id)
                req.uri = routes[-1].uri
                values = req.headers.get_all("Route")[:-1]
                req.headers.remove("Route")
                for value in values:
                    req.headers.add("Route", value)
                popped += 1
        while True:
            routes = req.route
            if not routes:
                return RouteCheck(popped, trusted)
            top = routes[0].uri
            if not isinstance(top, SipUri) or not self.identity.is_us(top):
                return RouteCheck(popped, trusted)
            # §16.4: "If the first value in the Route header field indicates this proxy,
            # the proxy MUST remove that value from the request."
            trusted = trusted or self.stamp.valid(top, req.call_id)
            req.pop_route()
            popped += 1

    def forward_ack(self, inc: IncomingRequest, target: Target | None) -> None:
        """§16.11-like stateless forwarding of an ACK for a 2xx along its Route."""
        req = inc.request
        if target is None:
            return
        try:
            mf = req.max_forwards
            if mf is not None and mf <= 0:
                return
            req.headers.set("Max-Forwards", str((70 if mf is None else mf) - 1))
            req.uri = target.uri
            # A stateless branch must be the same for retransmissions (§16.11): derive it
            # from the ACK's own branch.
            top = req.top_via.branch or ""
            branch = "z9hG4bK" + hashlib.blake2s(top.encode(), digest_size=8).hexdigest()
            req.headers.prepend("Via", self.endpoint.via_for(target.dest, branch))
        except ProtocolError as exc:
            log.debug("dropping ACK: %s", exc)
            return
        self.endpoint.send_stateless(req, target.dest)

    def forward_stray_response(self, resp: SipResponse, source: TransportAddr) -> None:
        """RFC 3261 §16.7 / §18.1.2: a 2xx to INVITE matching no transaction (a
        retransmission) is forwarded statelessly along the Via path."""
        try:
            if resp.cseq.method != "INVITE" or not 200 <= resp.status < 300:
                return
            vias = resp.via
            if len(vias) < 2 or not self._is_our_via(vias[0]):
                return
            _pop_top_via(resp)
            nxt = vias[1]
        except ProtocolError:
            return
        self.endpoint.send_stateless(resp, via_destination(nxt))

    def _is_our_via(self, via: Via) -> bool:
        return self.identity.is_our_sent_by(via.host, via.port)

    def is_looped(self, req: SipRequest) -> bool:
        """RFC 3261 §16.3 step 4: a Via of ours whose branch carries the loop hash this
        request would get again means the request looped (482)."""
        ours = [v for v in req._vias() if self._is_our_via(v)]
        if not ours:
            return False
        prefix = f"z9hG4bK{loop_hash(req)}."
        return any((v.branch or "").startswith(prefix) for v in ours)


def via_destination(via: Via) -> TransportAddr:
    """Where a response goes for a Via value (RFC 3261 §18.2.2, RFC 3581 §4)."""
    transport = via.transport.lower()
    if transport not in ("udp", "tcp", "tls"):
        transport = "udp"
    host = normalize_host(via.maddr or via.received or via.bare_host)
    port = via.rport or via.port or (5061 if transport == "tls" else 5060)
    return TransportAddr(transport, host, port)
