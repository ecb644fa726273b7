"""INVITE set-up for every session kind, both directions, and the incoming INVITE router.

Outgoing (:func:`establish`): INVITE with the OMA §7.1.1.1 headers (Accept-Contact, Contact
with ``+g.oma.sip-im``, User-Agent, ``Supported: timer``, ``Session-Expires;refresher=uac``,
Allow) and CPM Conversation-ID / Contribution-ID; SDP offer (one m-line per stream, or a
multipart body); on the 200: dialog, RFC 3264 answer check, MSRP connect, session timer.

Incoming (:class:`InviteRouter`): OMA §7.1.2 dispatch (C-ST-00) through routes that the
features register, each keyed by what the request is (:class:`InviteFacts`: feature tags in
Accept-Contact, the asserted / preferred service, the Contact's ICSI, a file-selector in the
SDP) - large message §9.2, image share IR.79, file transfer §10.3, chat §7.1.2.1; a new
feature (conference, deferred push, history) adds a route.  :func:`accept` sends the 200
with the SDP answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from simpleim.errors import ProtocolError, SdpError, SimpleImError
from simpleim.msrp.reassembly import ReceiveLimits
from simpleim.msrp.uri import MsrpUri
from simpleim.sdp import (
    Capabilities,
    LocalEndpoint,
    MsrpMedia,
    NegotiatedStream,
    SessionDescription,
    StreamOutcome,
    build_offer,
    process_answer,
)
from simpleim.sip.dialog import Dialog
from simpleim.sip.multipart import MultipartPart, build_multipart
from simpleim.transport.msrp import EndpointSession
from simpleim.transport.msrp_sdp import (
    FilePolicy,
    PullSource,
    answer_streams,
    connect_stream,
    local_endpoint,
    sdp_of,
)
from simpleim.transport.sip import IncomingRequest

from .context import ClientContext
from .features import (
    ALLOW,
    ICSI_CPM_LARGEMSG,
    ICSI_TAG,
    LARGE_MESSAGE,
    USER_AGENT,
)
from .pager import build_request, new_tag
from .session import Invitation, InviteSession, SessionFailed
from .ua import InviteAttempt

__all__ = ["establish", "accept", "classify_invite", "CHAT_CAPS", "InviteFacts",
           "InviteRouter", "InviteRoute", "InviteHandler"]

log = logging.getLogger("simpleim.client")

#: What a chat session accepts (seed 002 CPM session; RFC 4975 §8.6).
CHAT_CAPS = Capabilities(accept_types=("message/cpim", "text/plain",
                                       "application/im-iscomposing+xml"),
                         accept_wrapped_types=("text/plain", "message/imdn+xml",
                                               "application/im-iscomposing+xml", "*"),
                         # RFC 6714 / CPM-06: a=msrp-cema in the answer when offered
                         accept_files=False, tls=False, cema=True)


def cema_target(offer: SessionDescription, o: StreamOutcome) -> tuple[str, int] | None:
    """RFC 6714 §4.1: with msrp-cema on both sides the active end connects to the offer's
    c= address and m= port (a middlebox may have rewritten them, not the path URI)."""
    if not (o.we_connect and o.local is not None and o.local.cema and o.remote is not None
            and o.remote.cema):
        return None
    media = offer.media[o.index]
    conn = offer.connection_for(media)
    if conn is None or not media.port:
        return None
    return conn.address, media.port


def new_stream(ctx: ClientContext, chunk_size: int | None = None
               ) -> tuple[LocalEndpoint, EndpointSession]:
    cfg = ctx.config
    # issue 7 item 4: what a peer may make us hold in memory, whatever its Byte-Range says
    limits = ReceiveLimits(max_memory_message=cfg.max_message_size,
                           max_memory=cfg.max_session_memory)
    s = ctx.msrp.new_session(chunk_size=chunk_size or cfg.chunk_size, receive_limits=limits)
    return local_endpoint(ctx.msrp, s), s


async def prepare_streams(ctx: ClientContext, count: int, chunk_size: int | None = None
                          ) -> list[tuple[LocalEndpoint, EndpointSession]]:
    """``count`` MSRP sessions; with ``msrp_relay`` configured each is authorized at our
    relay first (RFC 4976 §5: AUTH, then a=path = Use-Path + our URI)."""
    out = [new_stream(ctx, chunk_size) for _ in range(count)]
    relay = ctx.config.msrp_relay
    if relay is None:
        return out
    relay_uri = MsrpUri.parse(relay)
    done: list[tuple[LocalEndpoint, EndpointSession]] = []
    try:
        for _local, stream in out:
            await ctx.msrp.authenticate(stream, relay_uri, ctx.config.user,
                                            ctx.config.password)
            done.append((local_endpoint(ctx.msrp, stream), stream))
    except (ProtocolError, OSError, SimpleImError) as exc:
        for _local, stream in out:
            stream.close()
        raise SessionFailed(0, f"MSRP relay refused: {exc}") from exc
    return done


async def establish(
    ctx: ClientContext,
    session: InviteSession,
    target: str,
    make_media: Callable[[int, LocalEndpoint], MsrpMedia],
    count: int,
    *,
    accept_contact: str,
    extra_headers: Sequence[tuple[str, str]] = (),
    parts_before: Sequence[MultipartPart] = (),
    parts_after: Sequence[MultipartPart] = (),
    information: str | None = None,
    timeout: float = 60.0,
    connect: bool = True,
    chunk_size: int | None = None,
    alias: str | None = None,
    own_name: bool = True,
) -> list[NegotiatedStream]:
    """Send the INVITE and bring the negotiated MSRP streams up.  The From's display name
    is ``alias`` (a chat alias, §7.1.1.15), else the account's unless ``own_name`` is
    false (anonymous)."""
    cfg = ctx.config
    from_name = alias or (cfg.display_name if own_name else None)
    locals_: list[LocalEndpoint] = []
    media: list[MsrpMedia] = []
    for i, (local, stream) in enumerate(await prepare_streams(ctx, count, chunk_size)):
        session.streams[i] = stream
        locals_.append(local)
        media.append(make_media(i, local))
    offer = build_offer(locals_[0], media, information=information)
    session.offer = offer
    sdp = offer.to_bytes()
    if parts_before or parts_after:
        parts = [*parts_before, MultipartPart.create("application/sdp", sdp), *parts_after]
        body, ctype = build_multipart(parts)
    else:
        body, ctype = sdp, "application/sdp"
    from_tag = new_tag()
    interval = cfg.session_expires
    floor = int(cfg.timers.min_se)
    ctx.sessions.add(session)
    # RFC 4028 §7.4: a 422 (from a proxy on the way, then from the UAS) is retried with
    # its Min-SE; up to two retries (each element with a higher minimum answers once).
    for cseq in (1, 2, 3):
        headers = [
            ("Supported", "timer"),                                   # OMA §7.1.1.1 SHALL
            ("Session-Expires", f"{interval};refresher=uac"),          # §7.1.1.1 SHOULD
            ("Min-SE", str(floor)),                                    # RFC 4028 §5
            ("Allow", ALLOW),                                          # §7.1.1.1 SHOULD
            ("Conversation-ID", session.conversation_id),              # OMA CPM 2.0, seed 002
            ("Contribution-ID", session.contribution_id),
            *extra_headers,
        ]
        req = build_request("INVITE", target=target, from_uri=cfg.uri, from_tag=from_tag,
                            call_id=session.call_id, contact=ctx.contact, cseq=cseq,
                            display_name=from_name, body=body, content_type=ctype,
                            accept_contact=accept_contact, extra=tuple(headers))
        session.attempt = account_attempt = InviteAttempt()
        try:
            async with asyncio.timeout(timeout):
                result = await ctx.ua.invite(req, attempt=account_attempt,
                                                 local_contact=ctx.local_contact())
        except TimeoutError:
            account_attempt.cancel()
            session._finish("no answer")
            raise SessionFailed(408, "no answer") from None
        except asyncio.CancelledError:
            # The caller gave up (Ctrl-C, a task cancelled): CANCEL the ringing INVITE
            # (RFC 3261 §9.1) instead of leaving the callee's phone ringing.
            account_attempt.cancel()
            session._finish("cancelled by the caller")
            raise
        min_se = result.response.headers.get("Min-SE") if result.status == 422 else None
        if min_se is None or not min_se.split(";")[0].strip().isdigit():
            break
        # RFC 4028 §7.4: 422 -> retry with a Session-Expires of at least its Min-SE, and
        # that Min-SE in the request (the largest one seen).
        floor = max(floor, int(min_se.split(";")[0].strip()))
        interval = max(interval, floor)
    if result.dialog is None:
        status = result.status
        reason = result.response.reason or ""
        session._finish(f"{status} {reason}".strip())
        raise SessionFailed(status, reason)
    session.dialog = result.dialog
    session.note_peer(result.response)          # C-ST-01 (OMA §7.1.2.1 step 2)
    try:
        answer = sdp_of(result.response)
        if answer is None:
            raise SdpError("2xx without SDP answer", status=488)
        session.answer = answer
        negotiated = list(process_answer(offer, answer))
    except ProtocolError as exc:
        await session.end(f"bad answer: {exc.detail}")
        raise SessionFailed(488, exc.detail) from exc
    for n in negotiated:
        if not n.accepted:
            s = session.streams.pop(n.index, None)
            if s is not None:
                s.close()
    if connect:
        try:
            await connect_negotiated(ctx, session, negotiated)
        except (ProtocolError, OSError, TimeoutError) as exc:
            await session.end(f"MSRP connection failed: {exc}")
            raise SessionFailed(0, f"MSRP connection failed: {exc}") from exc
    session.start_timer(result.response)
    session.established.set()
    session.emit_state("established", status=result.status)
    return negotiated


async def connect_negotiated(ctx: ClientContext, session: InviteSession,
                             negotiated: Sequence[NegotiatedStream]) -> None:
    jobs = []
    for n in negotiated:
        if n.accepted and n.remote is not None and n.index in session.streams:
            jobs.append(connect_stream(ctx.msrp, session.streams[n.index], n.remote.path,
                                       n.we_connect))
    await until_ended(session, asyncio.gather(*jobs))


async def until_ended(session: InviteSession, work: Awaitable[object]) -> None:
    """Run ``work`` (MSRP set-up) unless the session ends first (BYE / CANCEL meanwhile)."""
    task = asyncio.ensure_future(work)
    ended = asyncio.ensure_future(session.ended.wait())
    try:
        done, _ = await asyncio.wait({task, ended}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
            return
        raise SessionFailed(0, f"session ended during set-up: {session.end_reason}")
    finally:
        ended.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ProtocolError, OSError,
                                     TimeoutError):
                await task


# ---------------------------------------------------------------------------- incoming

@dataclass(frozen=True)
class InviteFacts:
    """What an incoming INVITE is, as the routes see it (OMA §7.1.2, C-ST-00)."""

    accept_contact: str              # all Accept-Contact values, lower case, %3A decoded
    service: str                     # P-Preferred-Service + P-Asserted-Service, lower case
    contact_icsi: frozenset[str]     # the ICSIs of the Contact's +g.3gpp.icsi-ref
    has_file: bool                   # an m-line with a=file-selector (RFC 5547)
    focus: bool = False              # Contact with ``isfocus`` (RFC 4579 §3: a conference)
    automata: bool = False           # Contact with ``automata`` (RFC 3840: a server, e.g.
    #                                  the Deferred Messaging Function's push, §12.2.2.2)

    @classmethod
    def of(cls, inc: IncomingRequest, offer: SessionDescription | None) -> InviteFacts:
        h = inc.request.headers
        accept_contact = " ".join(h.get_all("Accept-Contact")).lower().replace("%3a", ":")
        service = " ".join(h.get_all("P-Preferred-Service")
                           + h.get_all("P-Asserted-Service")).lower()
        icsi = frozenset(v.strip().lower() for c in inc.request.contacts
                         for v in (c.params.get(ICSI_TAG) or "").strip('"')
                         .replace("%3A", ":").replace("%3a", ":").split(",") if v.strip())
        has_file = offer is not None and any(m.has("file-selector") for m in offer.media)
        focus = any("isfocus" in c.params for c in inc.request.contacts)
        automata = any("automata" in c.params for c in inc.request.contacts)
        return cls(accept_contact, service, icsi, has_file, focus, automata)

    @property
    def image_share(self) -> bool:
        """IR.79 §2.2: the image share IARI (Mercuro: pre-RFC "gsmais")."""
        return "gsma-is" in self.accept_contact or "gsmais" in self.accept_contact

    def names_service(self, icsi: str) -> bool:
        """``icsi`` in Accept-Contact or the service headers, or the Contact's only ICSI."""
        return icsi in self.accept_contact or icsi in self.service \
            or self.contact_icsi == {icsi}


# The predicates of the built-in kinds.  CPM-03: large message mode is known from the
# +g.oma.sip-im.large-message tag or the CPM largemsg ICSI - not from the SDP: the RCS
# large message offer carries a=file-selector:size too.  IR.79 image share reuses the
# largemsg ICSI, so its IARI decides first (priorities below).
def is_large_tagged(f: InviteFacts) -> bool:
    return LARGE_MESSAGE in f.accept_contact


def is_image_share(f: InviteFacts) -> bool:
    return f.has_file and f.image_share


def is_large_icsi(f: InviteFacts) -> bool:
    return f.names_service(ICSI_CPM_LARGEMSG)


def is_file_transfer(f: InviteFacts) -> bool:
    return f.has_file


def is_chat(f: InviteFacts) -> bool:
    return True


#: (kind, priority, predicate) of the built-in kinds; higher priority is tried first.
BUILTIN_KINDS: tuple[tuple[str, int, Callable[[InviteFacts], bool]], ...] = (
    ("large", 400, is_large_tagged),
    ("image", 300, is_image_share),
    ("large", 200, is_large_icsi),
    ("file", 100, is_file_transfer),
    ("chat", 0, is_chat),
)


def classify_invite(inc: IncomingRequest, offer: SessionDescription | None) -> str:
    """OMA §7.1.2 dispatch (checklist C-ST-00): ``large``, ``image``, ``file`` or ``chat``."""
    facts = InviteFacts.of(inc, offer)
    return next(kind for kind, _p, matches in BUILTIN_KINDS if matches(facts))


#: A route's handler: runs the incoming session (the router already sent 100 Trying).
InviteHandler = Callable[[IncomingRequest, SessionDescription], Awaitable[None]]


@dataclass(frozen=True)
class InviteRoute:
    kind: str
    priority: int
    matches: Callable[[InviteFacts], bool]
    handler: InviteHandler


class InviteRouter:
    """Incoming out-of-dialog INVITEs to the feature whose route matches first (by
    priority): the checks every INVITE gets (SDP offer, RFC 4028 §8 minimum interval,
    busy) live here; what the request is decides the handler."""

    def __init__(self, ctx: ClientContext) -> None:
        self.ctx = ctx
        self._routes: list[InviteRoute] = []

    def add(self, kind: str, matches: Callable[[InviteFacts], bool], handler: InviteHandler,
            *, priority: int = 0) -> None:
        self._routes.append(InviteRoute(kind, priority, matches, handler))
        self._routes.sort(key=lambda r: -r.priority)

    @property
    def routes(self) -> tuple[InviteRoute, ...]:
        return tuple(self._routes)

    def route(self, inc: IncomingRequest, offer: SessionDescription | None
              ) -> InviteRoute | None:
        facts = InviteFacts.of(inc, offer)
        return next((r for r in self._routes if r.matches(facts)), None)

    def on_invite(self, inc: IncomingRequest) -> None:
        ctx = self.ctx
        req = inc.request
        try:
            offer = sdp_of(req)
        except ProtocolError as exc:
            inc.reply(exc.status if exc.status >= 400 else 400)
            return
        if offer is None:
            # We do not do offer-less INVITEs (RFC 3264 §4 late offer): 488.
            inc.reply(488, headers=[("Warning", '399 simpleim "INVITE without SDP offer"')])
            return
        se = req.headers.get("Session-Expires")
        min_se = int(ctx.config.timers.min_se)
        if se and se.split(";")[0].strip().isdigit() \
                and int(se.split(";")[0].strip()) < min_se:
            # RFC 4028 §8: an interval below our minimum is refused with 422 and Min-SE.
            inc.reply(422, headers=[("Min-SE", str(min_se))])
            return
        if len(ctx.sessions) >= ctx.config.max_sessions:
            inc.reply(486, headers=[("User-Agent", USER_AGENT)])  # busy (OMA §7.1.2.1: MAY)
            return
        route = self.route(inc, offer)
        if route is None:
            # RFC 3261 §21.4.18 / RFC 3841: no feature of ours takes this request.
            inc.reply(488, headers=[("Warning", '399 simpleim "no handler for this INVITE"')])
            return
        inc.reply(100)
        ctx.spawn(route.handler(inc, offer))


def ring(session: InviteSession, inc: IncomingRequest) -> Invitation:
    """Register the invitation (180 Ringing) and its CANCEL handler (OMA §7.1.2.4)."""
    invitation = Invitation(session, inc)
    session.ctx.sessions.add(session)
    to_tag = new_tag()
    session.to_tag = to_tag
    ringing = inc.request.create_response(180, to_tag=to_tag)
    ringing.headers.add("Contact", session.ctx.contact)
    inc.respond(ringing)

    def cancelled(target: IncomingRequest) -> None:
        # OMA §7.1.2.4 / RFC 3261 §9.2: the CANCEL got 200; the INVITE gets 487.
        resp = target.request.create_response(487, to_tag=to_tag)
        target.respond(resp)
        invitation.cancelled = True
        invitation.decline(487)
        session._finish("cancelled")
        session.emit_state("cancelled")

    inc.on_cancel = cancelled
    return invitation


async def decide(ctx: ClientContext, invitation: Invitation, policy: str) -> bool:
    """Apply the policy; ``ask`` waits ``policy.answer_timeout`` for the application (OMA
    §7.1.2.1: 408 on timeout)."""
    timeout = ctx.config.policy.answer_timeout
    if policy == "accept":
        invitation.accept()
    elif policy == "decline":
        invitation.decline(invitation.decline_status)
    try:
        async with asyncio.timeout(timeout):
            await invitation.decided.wait()
    except TimeoutError:
        invitation.decline(408)
    return bool(invitation.accepted)


def reject(session: InviteSession, inc: IncomingRequest, status: int,
           reason: str | None = None) -> None:
    """Decline (OMA §7.1.2.1: 480; IR.79 §2.4: 603; 486 busy; 488 media)."""
    resp = inc.request.create_response(status, to_tag=session.to_tag or new_tag())
    resp.headers.add("User-Agent", USER_AGENT)
    if reason:
        resp.headers.add("Warning", f'399 simpleim "{reason}"')
    inc.respond(resp)
    session._finish(reason or f"declined with {status}")
    session.emit_state("declined", reason, status)


async def accept(ctx: ClientContext, session: InviteSession, inc: IncomingRequest,
                 offer: SessionDescription, caps: Capabilities, *,
                 file_policy: FilePolicy | None = None, pull_source: PullSource | None = None,
                 extra_headers: Sequence[tuple[str, str]] = (),
                 connect: bool = True, chunk_size: int | None = None) -> list[StreamOutcome]:
    """200 OK with the SDP answer (OMA §7.1.2.1), dialog (RFC 3261 §12.1.1), MSRP up."""
    req = inc.request
    session.note_peer(req)                      # C-ST-01: OMA §7.1.2.1 step 2
    if ctx.msrp.ssl_server is not None:
        # our MSRP is msrps-only (TLS signalling + certificate): TCP/TLS/MSRP offers only
        caps = replace(caps, tls=True, plain_tcp=False)
    prepared = await prepare_streams(ctx, len(offer.media), chunk_size)
    sdp, outcomes, streams = answer_streams(
        offer, lambda i: prepared[i], caps, file_policy=file_policy,
        pull_source=pull_source)
    session.offer, session.answer, session.streams = offer, sdp, streams
    to_tag = session.to_tag or new_tag()
    resp = req.create_response(200, to_tag=to_tag, copy_record_route=True)
    resp.headers.add("Contact", ctx.contact)
    resp.headers.add("User-Agent", USER_AGENT)
    resp.headers.add("Allow", ALLOW)
    resp.headers.add("Supported", "timer")
    se = req.headers.get("Session-Expires")
    if se:
        # RFC 4028 §9: echo the interval with the refresher (uac when not chosen).
        resp.headers.add("Session-Expires", se if "refresher" in se
                         else f"{se.split(';')[0].strip()};refresher=uac")
        if "timer" in [t.lower() for t in req.supported]:
            resp.headers.add("Require", "timer")
    for k, v in extra_headers:
        resp.headers.add(k, v)
    for name in ("Conversation-ID", "Contribution-ID"):
        value = req.headers.get(name)
        if value:
            resp.headers.add(name, value)
            # OMA CPM 2.0: the session keeps the peer's identifiers (IMDN, FT trace)
            setattr(session, name.lower().replace("-", "_"), value.strip())
    resp.headers.add("Content-Type", "application/sdp")
    resp.body = sdp.to_bytes()
    session.dialog = Dialog.from_uas(req, resp)
    ctx.sessions.add(session)

    def no_ack() -> None:
        session.spawn(session.end("no ACK (RFC 3261 §13.3.1.4)"))

    ctx.ua.answer_2xx(inc, resp, session.acked, no_ack)
    session.start_timer(resp)
    if connect:
        jobs = []
        for o in outcomes:
            if o.accepted and o.remote is not None and o.index in streams:
                jobs.append(connect_stream(ctx.msrp, streams[o.index], o.remote.path,
                                           o.we_connect, cema_to=cema_target(offer, o)))
        try:
            await until_ended(session, asyncio.gather(*jobs))
        except (ProtocolError, OSError, TimeoutError) as exc:
            await session.end(f"MSRP connection failed: {exc}")
            raise SessionFailed(0, f"MSRP connection failed: {exc}") from exc
    session.established.set()
    session.emit_state("established", status=200)
    return outcomes


__all__ += ["ring", "decide", "reject", "connect_negotiated", "new_stream", "prepare_streams",
            "until_ended", "BUILTIN_KINDS"]
