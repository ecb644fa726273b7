"""The server's SIP user agent for INVITE sessions with MSRP media (``MediaSessions``).

* UAS (:meth:`ServerUserAgent.accept`): RFC 3264 answer from a
  :class:`~simpleim.server.media.api.MediaPolicy` with our MSRP path (RFC 4975 §8.1), RFC
  4028 §9 negotiation (422 + Min-SE), 200 with Contact / Allow / Supported / Server, dialog
  (RFC 3261 §12.1.1), 2xx retransmission over UDP until the ACK (§13.3.1.4), MSRP up
  (RFC 4975 §5.4, RFC 6135: passive when the offer lets us choose).
* UAC (:meth:`ServerUserAgent.invite`): one INVITE per registered contact of the target
  (RFC 3261 §16.6-like forking by the UA, the Courier's targets); the first 2xx wins, the
  other branches are CANCELled (§9.1) and a later 2xx is ACKed and BYEd (§13.2.4); 422 is
  retried with its Min-SE (RFC 4028 §7.4); a timeout CANCELs everything (408).
* In-dialog (:meth:`ServerUserAgent.on_request`, called by the core for every request whose
  dialog is ours): ACK, BYE (§15.1.2), re-INVITE / UPDATE as session refreshes (RFC 4028
  §9, the SDP in use answered again, RFC 3264 §8), OPTIONS; 481 for a request to our
  Contact in a dialog we do not know (§12.2.2).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from simpleim.errors import DialogError, ProtocolError, SdpError, SimpleImError
from simpleim.sdp import (
    Capabilities,
    MsrpMedia,
    SessionDescription,
    build_offer,
    process_answer,
)
from simpleim.sdp.msrp import Setup
from simpleim.server.location import aor_key
from simpleim.server.media.api import (
    MediaPolicy,
    OfferParams,
    SessionRefused,
)
from simpleim.server.media.msrp import ServerMsrp
from simpleim.server.media.session import MediaSession
from simpleim.server.proxy import Target
from simpleim.server.roles import SERVER_PRODUCT
from simpleim.sip.dialog import Dialog, DialogId, DialogTable
from simpleim.sip.headers import Headers
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.sip.session_timer import (
    negotiated_interval,
    retry_interval,
    uac_headers,
    uas_decision,
)
from simpleim.sip.uri import SipUri, parse_uri
from simpleim.transport.msrp import EndpointSession
from simpleim.transport.msrp_sdp import answer_streams, connect_stream, sdp_of
from simpleim.transport.sip import ClientRequest, IncomingRequest, SipEndpoint
from simpleim.transport.sip_2xx import resend_2xx
from simpleim.transport.sip_addr import TransportAddr

__all__ = ["CONTACT_USER", "ServerUserAgent", "TargetSource", "UaConfig"]

log = logging.getLogger("simpleim.server.media")

#: The user part of the server UA's default Contact: in-dialog requests to it for a dialog
#: we do not know are answered 481 (RFC 3261 §12.2.2) instead of being routed to a user.
CONTACT_USER = "ua~media"
#: RFC 3261 §20.5: the methods of the server's dialogs.
UA_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE"


class TargetSource(Protocol):
    """Where the registered contacts of an AOR are (the core's location + proxy)."""

    def targets(self, aor: str, request: SipRequest | None = None) -> list[Target]:
        """The contacts of ``aor`` that the caller preferences of ``request`` select."""


@dataclass(frozen=True, slots=True)
class UaConfig:
    """``session_expires``: the RFC 4028 interval the server asks for; ``min_se`` the
    smallest it accepts; ``msrp_timeout``: seconds for the MSRP connection / binding after
    the 200 (RFC 4975 §5.4); ``bye_timeout``: how long a BYE may take (Timer F)."""

    domain: str
    session_expires: int = 1800
    min_se: int = 90
    msrp_timeout: float = 30.0
    bye_timeout: float = 32.0
    product: str = SERVER_PRODUCT


def _tag() -> str:
    return secrets.token_hex(6)          # RFC 3261 §19.3: random, >= 32 bits


def _identity(req: SipRequest) -> str:
    """The caller: the asserted identity (RFC 3325) when the core put one, else From."""
    asserted = req.p_asserted_identity
    return str(asserted[0].uri if asserted else req.from_addr.uri)


class ServerUserAgent:
    """The SIP UA of the server's roles; implements ``MediaSessions``."""

    def __init__(self, endpoint: SipEndpoint, msrp: ServerMsrp | None, targets: TargetSource,
                 config: UaConfig) -> None:
        self.endpoint = endpoint
        self.msrp = msrp
        self.locator = targets
        self.config = config
        self._sessions: dict[DialogId, MediaSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ helpers
    def now(self) -> float:
        return self.endpoint.now()

    def forget(self, session: MediaSession) -> None:
        self._sessions.pop(session.dialog.id, None)

    @property
    def sessions(self) -> list[MediaSession]:
        return list(self._sessions.values())

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def contact_for(self, local: TransportAddr) -> str:
        """Our Contact on the listener ``local`` (RFC 3261 §8.1.1.8)."""
        host = f"[{local.host}]" if ":" in local.host else local.host
        return f"<sip:{CONTACT_USER}@{host}:{local.port};transport={local.transport}>"

    def _local_towards(self, dest: TransportAddr) -> TransportAddr:
        local = self.endpoint.local_for(dest)
        if local is not None:
            return local
        for listener in self.endpoint.listeners:
            if listener.transport == dest.transport:
                return listener
        raise SessionRefused(503, f"no {dest.transport} listener")

    def _media(self) -> ServerMsrp:
        if self.msrp is None:
            raise SessionRefused(488, "server media is off")
        return self.msrp

    # ------------------------------------------------------------------ UAS
    def reject(self, incoming: IncomingRequest, status: int, reason: str | None = None, *,
               headers: Sequence[tuple[str, str]] = ()) -> None:
        hdrs = [*headers, ("Server", self.config.product)]
        if reason:
            hdrs.append(("Warning", f'399 {self.config.domain} "{reason}"'))
        incoming.reply(status, headers=hdrs)

    async def accept(self, incoming: IncomingRequest, policy: MediaPolicy = MediaPolicy(),  # noqa: B008
                     *, headers: Sequence[tuple[str, str]] = (),
                     contact: str | None = None, to_tag: str | None = None,
                     contact_params: str = "") -> MediaSession:
        """UAS (see ``MediaSessions.accept``); ``to_tag``: the tag already used in
        provisional responses to this INVITE (a B2BUA relaying the callee's 180)."""
        req = incoming.request
        if incoming.final_sent or incoming.cancelled:
            raise SessionRefused(487, "cancelled")
        try:
            offer = sdp_of(req)
            if offer is None:
                raise SdpError("INVITE without SDP offer", status=488)
            decision = uas_decision(req, min_se=self.config.min_se,
                                    default=self.config.session_expires)
            if decision.reject_min_se is not None:
                # RFC 4028 §9: too small an interval -> 422 with our Min-SE.
                self.reject(incoming, 422, headers=[("Min-SE", str(decision.reject_min_se))])
                raise SessionRefused(422, "Session-Expires too small")
            msrp = self._media()
            caps = Capabilities(accept_types=policy.accept_types,
                                accept_wrapped_types=policy.accept_wrapped_types,
                                max_size=policy.max_size, setup_when_actpass=Setup.PASSIVE,
                                accept_files=policy.accept_files,
                                max_file_size=policy.max_file_size, tls=False)
            sdp, outcomes, streams = answer_streams(
                offer, lambda _i: msrp.new_leg(max_size=policy.max_size), caps)
        except ProtocolError as exc:
            self.reject(incoming, exc.status if exc.status >= 400 else 488, exc.detail)
            raise SessionRefused(exc.status, exc.detail) from exc
        chosen = next(o for o in outcomes if o.accepted)
        # One MSRP stream per server session: further offered lines are refused in the
        # answer (RFC 3264 §6: port 0) and their MSRP sessions closed.
        for index, s in streams.items():
            if index != chosen.index:
                s.close()
        sdp = replace(sdp, media=tuple(m if i == chosen.index else m.with_port(0)
                                       for i, m in enumerate(sdp.media)))
        stream = streams[chosen.index]
        stream.core.hold_acks = policy.hold_acks
        if policy.direction is not None and chosen.local is not None \
                and chosen.local.direction is not policy.direction:
            stream.close()
            self.reject(incoming, 488, f"{policy.direction.value} media only")
            raise SessionRefused(488, "direction")
        if chosen.remote is None or chosen.local is None:  # pragma: no cover - accepted
            stream.close()
            raise SessionRefused(488, "no stream")
        to_tag = to_tag or _tag()
        resp = req.create_response(200, to_tag=to_tag, copy_record_route=True)
        resp.headers.add("Contact", contact or self.contact_for(incoming.local) + contact_params)
        resp.headers.add("Allow", UA_ALLOW)
        resp.headers.add("Supported", "timer")
        resp.headers.add("Server", self.config.product)
        for name, value in decision.headers():
            resp.headers.add(name, value)
        for name, value in headers:
            resp.headers.add(name, value)
        resp.headers.add("Content-Type", "application/sdp")
        resp.body = sdp.to_bytes()
        dialog = Dialog.from_uas(req, resp)
        dest = incoming.source if incoming.source.transport != "udp" else \
            self._dest_of(dialog, incoming.source)
        session = MediaSession(self, dialog=dialog, request=req, response=resp,
                               peer=_identity(req), dest=dest, local_sdp=sdp,
                               remote_sdp=offer, local_media=chosen.local,
                               remote_media=chosen.remote, stream=stream,
                               bye_timeout=self.config.bye_timeout)
        self._sessions[dialog.id] = session
        self._answer_2xx(incoming, resp, session)
        if decision.interval is not None:
            session.start_timer(float(decision.interval), decision.refresher == "uas")
        await self._connect(session, stream, chosen.remote, chosen.we_connect)
        return session

    def _answer_2xx(self, inc: IncomingRequest, resp: SipResponse,
                    session: MediaSession) -> None:
        """Send the 2xx; over UDP resend it until the ACK (RFC 3261 §13.3.1.4), and BYE
        when no ACK comes (64*T1)."""
        inc.respond(resp)
        if inc.source.transport == "udp":
            self._spawn(self._resend_2xx(inc, resp, session))

    async def _resend_2xx(self, inc: IncomingRequest, resp: SipResponse,
                          session: MediaSession) -> None:
        if not await resend_2xx(self.endpoint, resp, inc.source, session.acked):
            await session.bye("no ACK (RFC 3261 §13.3.1.4)")

    async def _connect(self, session: MediaSession, stream: EndpointSession,
                       remote: MsrpMedia, we_connect: bool) -> None:
        msrp = self._media()
        try:
            await connect_stream(msrp.endpoint, stream, remote.path, we_connect,
                                 timeout=self.config.msrp_timeout)
        except (ProtocolError, OSError, TimeoutError, SimpleImError) as exc:
            await session.bye(f"MSRP connection failed: {exc}")
            raise SessionRefused(0, f"MSRP connection failed: {exc}") from exc
        self._spawn(self._watch_msrp(session, stream))

    async def _watch_msrp(self, session: MediaSession, stream: EndpointSession) -> None:
        """The MSRP connection is gone: the session cannot go on (BYE)."""
        runner = stream.runner
        if runner is None:
            return
        closed = asyncio.ensure_future(runner.closed.wait())
        ended = asyncio.ensure_future(session.closed.wait())
        try:
            await asyncio.wait({closed, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            ended.cancel()
        if not session.closed.is_set():
            await session.bye("MSRP connection lost")

    def _dest_of(self, dialog: Dialog, fallback: TransportAddr) -> TransportAddr:
        target = dialog.route_set[0].uri if dialog.route_set else dialog.remote_target
        if not isinstance(target, SipUri):
            return fallback
        try:
            return self.endpoint.resolve(target)
        except ProtocolError:
            return fallback

    # ------------------------------------------------------------------ UAC
    async def invite(self, target: str, from_identity: str, *,
                     offer: OfferParams = OfferParams(),  # noqa: B008
                     headers: Sequence[tuple[str, str]] = (),
                     contact: str | None = None,
                     display_name: str | None = None,
                     timeout: float = 60.0,
                     on_provisional: Callable[[SipResponse], None] | None = None,
                     contact_params: str = "",
                     ) -> MediaSession:
        try:
            uri = parse_uri(target if target.startswith(("sip:", "sips:")) else f"sip:{target}")
        except ProtocolError as exc:
            raise SessionRefused(400, f"bad target {target!r}") from exc
        if not isinstance(uri, SipUri):
            raise SessionRefused(416, f"not a SIP URI: {target}")
        target = str(uri)
        prefs = Headers()
        for name, value in headers:
            if name.lower() in ("accept-contact", "reject-contact"):
                prefs.add(name, value)
        targets = self.locator.targets(aor_key(uri.user_unescaped, uri.host),
                                       SipRequest("INVITE", uri, prefs))
        if not targets:
            raise SessionRefused(480, "no registered contact")
        msrp = self._media()
        local, stream = msrp.new_leg(max_size=offer.max_size)
        media = MsrpMedia(port=local.port, proto=local.proto, path=local.path,
                          accept_types=offer.accept_types,
                          accept_wrapped_types=offer.accept_wrapped_types,
                          max_size=offer.max_size, setup=Setup.ACTPASS,
                          direction=offer.direction, file=offer.file)
        sdp = build_offer(local, [media])
        try:
            if contact is None and contact_params:
                contact = self.contact_for(self._local_towards(targets[0].dest)) \
                    + contact_params
            branch, resp = await self._fork(target, from_identity, sdp, targets, headers,
                                            contact, display_name, timeout, on_provisional)
        except BaseException:
            stream.close()
            raise
        dialog = Dialog.from_uac(branch.request, resp)
        self._send_ack(dialog, branch.request, branch.dest)
        try:
            answer = sdp_of(resp)
            if answer is None:
                raise SdpError("2xx without SDP answer", status=488)
            negotiated = process_answer(sdp, answer)[0]
            if not negotiated.accepted or negotiated.remote is None \
                    or negotiated.local is None:
                raise SdpError("the MSRP stream was refused", status=488)
        except ProtocolError as exc:
            session_less = MediaSession(
                self, dialog=dialog, request=branch.request, response=resp, peer=target,
                dest=branch.dest, local_sdp=sdp, remote_sdp=sdp, local_media=media,
                remote_media=media, stream=stream, bye_timeout=self.config.bye_timeout)
            self._sessions[dialog.id] = session_less
            await session_less.bye(f"bad answer: {exc.detail}")
            raise SessionRefused(488, exc.detail, resp) from exc
        session = MediaSession(self, dialog=dialog, request=branch.request, response=resp,
                               peer=target, dest=branch.dest, local_sdp=sdp,
                               remote_sdp=answer, local_media=negotiated.local,
                               remote_media=negotiated.remote, stream=stream,
                               bye_timeout=self.config.bye_timeout)
        session.acked.set()
        self._sessions[dialog.id] = session
        nego = negotiated_interval(resp, we_are_uac=True)
        if nego is not None:
            session.start_timer(*nego)
        await self._connect(session, stream, negotiated.remote, negotiated.we_connect)
        return session

    def _build_invite(self, target: str, from_identity: str, call_id: str, from_tag: str,
                      cseq: int, sdp: SessionDescription, headers: Sequence[tuple[str, str]],
                      contact: str, display_name: str | None, interval: int) -> SipRequest:
        h = Headers()
        h.add("Max-Forwards", "70")                      # RFC 3261 §8.1.1.6
        name = f'"{display_name}" ' if display_name else ""
        h.add("From", f"{name}<{from_identity}>;tag={from_tag}")
        h.add("To", f"<{target}>")
        h.add("Call-ID", call_id)
        h.add("CSeq", f"{cseq} INVITE")
        h.add("Contact", contact)
        h.add("Allow", UA_ALLOW)
        h.add("User-Agent", self.config.product)
        for k, v in uac_headers(interval, self.config.min_se):    # RFC 4028 §7.1
            h.add(k, v)
        for k, v in headers:
            h.add(k, v)
        h.add("Content-Type", "application/sdp")
        return SipRequest("INVITE", parse_uri(target), h, sdp.to_bytes())

    async def _fork(self, target: str, from_identity: str, sdp: SessionDescription,
                    targets: list[Target], headers: Sequence[tuple[str, str]],
                    contact: str | None, display_name: str | None, timeout: float,
                    on_provisional: Callable[[SipResponse], None] | None,
                    ) -> tuple[ClientRequest, SipResponse]:
        call_id = f"{secrets.token_hex(10)}@{self.config.domain}"
        from_tag = _tag()
        interval = self.config.session_expires
        cseq = 1
        for _attempt in range(2):
            base = self._build_invite(
                target, from_identity, call_id, from_tag, cseq, sdp, headers,
                contact or self.contact_for(self._local_towards(targets[0].dest)),
                display_name, interval)
            won, finals = await self._branches(base, targets, timeout, on_provisional)
            if won is not None:
                return won
            retry = next((r for r in (retry_interval(f, interval) for f in finals)
                          if r is not None), None)
            if retry is None or retry == interval:
                break
            interval, cseq = retry, cseq + 1          # RFC 4028 §7.4: retry after 422
        best = min(finals, key=lambda r: (r.status // 100 != 6, r.status)) if finals else None
        status = best.status if best is not None else 408
        raise SessionRefused(status, best.reason if best is not None else "no answer", best)

    async def _branches(self, base: SipRequest, targets: list[Target], timeout: float,
                        on_provisional: Callable[[SipResponse], None] | None,
                        ) -> tuple[tuple[ClientRequest, SipResponse] | None, list[SipResponse]]:
        """Send one INVITE per target; the first 2xx wins (the others are CANCELled, a late
        2xx is ACKed and BYEd, RFC 3261 §13.2.2.4); otherwise every final response."""
        loop = asyncio.get_running_loop()
        # the first 2xx, or None once every branch gave a final failure
        winner: asyncio.Future[tuple[ClientRequest, SipResponse] | None] = loop.create_future()
        finals: list[SipResponse] = []
        clients: list[ClientRequest] = []
        sent: list[bool] = []         # set once every branch is out

        def handler(slot: list[ClientRequest]) -> Callable[[SipResponse], None]:
            def on_response(resp: SipResponse) -> None:
                if resp.status < 200:
                    if on_provisional is not None and not winner.done() and resp.status > 100:
                        on_provisional(resp)
                    return
                if 200 <= resp.status < 300 and slot:
                    client = slot[0]
                    if winner.done():
                        self._spawn(self._drop_late_2xx(client, resp))
                        return
                    winner.set_result((client, resp))
                    for other in clients:
                        if other is not client:
                            other.cancel()
                    return
                finals.append(resp)
                if sent and len(finals) >= len(clients) and not winner.done():
                    winner.set_result(None)
            return on_response

        for t in targets:
            req = base.copy()
            req.uri = t.uri
            for route in reversed(t.routes):
                req.headers.prepend("Route", route)
            slot: list[ClientRequest] = []
            try:
                slot.append(self.endpoint.send_request(req, t.dest, handler(slot)))
            except ProtocolError as exc:
                log.info("cannot invite %s: %s", t.uri, exc.detail)
                continue
            clients.append(slot[0])
        sent.append(True)
        if not clients:
            return None, [base.create_response(503)]
        if len(finals) >= len(clients):
            return None, finals
        try:
            async with asyncio.timeout(timeout):
                won = await asyncio.shield(winner)
        except TimeoutError:
            for c in clients:
                c.cancel()
            return None, [*finals, base.create_response(408)]
        except asyncio.CancelledError:
            # the caller gave up (e.g. the B2BUA's caller CANCELled): CANCEL every branch
            for c in clients:
                c.cancel()
            raise
        return won, finals

    async def _drop_late_2xx(self, client: ClientRequest, resp: SipResponse) -> None:
        """RFC 3261 §13.2.2.4: a 2xx from another branch after the first one is ACKed and
        its dialog ended with BYE."""
        try:
            dialog = Dialog.from_uac(client.request, resp)
            self._send_ack(dialog, client.request, client.dest)
            bye = dialog.create_request("BYE", headers=[("User-Agent", self.config.product)])
            await self.endpoint.request(bye, client.dest)
        except (ProtocolError, OSError) as exc:
            log.info("cannot end the extra dialog of %s: %s", client.request.uri, exc)

    def _send_ack(self, dialog: Dialog, invite: SipRequest, dest: TransportAddr) -> None:
        """ACK for a 2xx, outside any transaction (RFC 3261 §13.2.2.4)."""
        dest = self._dest_of(dialog, dest) if dialog.route_set else dest
        via = self.endpoint.via_for(dest, self.endpoint.new_branch())
        ack = dialog.create_ack(invite.cseq.seq, via=via,
                                headers=[("User-Agent", self.config.product)])
        self.endpoint.send_stateless(ack, dest)

    # ------------------------------------------------------------------ in dialog (UAC)
    async def in_dialog(self, session: MediaSession, method: str, *,
                        headers: Sequence[tuple[str, str]] = (), body: bytes = b"",
                        content_type: str | None = None) -> SipResponse:
        """A request within the session's dialog (RFC 3261 §12.2.1.1), to its first route
        or the flow / address the dialog came on."""
        dialog = session.dialog
        hdrs: list[tuple[str, object]] = [("User-Agent", self.config.product), *headers]
        if method == "INVITE":
            hdrs.append(("Allow", UA_ALLOW))
        req = dialog.create_request(method, headers=hdrs, body=body,
                                    content_type=content_type)
        if method == "BYE":
            session.bye_request = req
        dest = self._dest_of(dialog, session.dest) if dialog.route_set else session.dest
        resp = await self.endpoint.request(req, dest)
        if method != "BYE":
            dialog.receive_response(req, resp)
        if method == "INVITE" and 200 <= resp.status < 300:
            self._send_ack(dialog, req, dest)
        return resp

    # ------------------------------------------------------------------ in dialog (UAS)
    def owns(self, request: SipRequest) -> bool:
        """Is ``request`` for one of our dialogs (or our Contact)?  The core calls
        :meth:`on_request` for it instead of routing it."""
        dialog_id = DialogTable.id_for_incoming(request)
        if dialog_id is None:
            return False
        if dialog_id in self._sessions:
            return True
        uri = request.uri
        return isinstance(uri, SipUri) and uri.user == CONTACT_USER

    def on_request(self, inc: IncomingRequest) -> None:
        req = inc.request
        dialog_id = DialogTable.id_for_incoming(req)
        session = self._sessions.get(dialog_id) if dialog_id is not None else None
        if session is None:
            if req.method != "ACK":
                # RFC 3261 §12.2.2: no such dialog -> 481.
                inc.reply(481, headers=[("Server", self.config.product)])
            return
        if req.method == "ACK":
            session.acked.set()
            return
        try:
            session.dialog.receive_request(req)
        except DialogError as exc:
            inc.reply(exc.status, headers=[("Server", self.config.product)])
            return
        if req.method == "BYE":
            session.bye_request = req
            inc.reply(200, headers=[("Server", self.config.product)])
            session.finish("BYE from peer", by_peer=True)
        elif req.method in ("INVITE", "UPDATE"):
            self._refresh_from_peer(inc, session)
        elif req.method == "OPTIONS":
            inc.reply(200, headers=[("Allow", UA_ALLOW), ("Server", self.config.product)])
        elif session.request_handler is None or not session.request_handler(inc):
            inc.reply(405, headers=[("Allow", UA_ALLOW), ("Server", self.config.product)])

    def _refresh_from_peer(self, inc: IncomingRequest, session: MediaSession) -> None:
        """A re-INVITE / UPDATE: RFC 4028 §9 session refresh; the media stays as it is (the
        SDP in use is the answer, RFC 3264 §8: an unchanged description keeps its o=
        version)."""
        req = inc.request
        decision = uas_decision(req, min_se=self.config.min_se, default=None)
        if decision.reject_min_se is not None:
            inc.reply(422, headers=[("Min-SE", str(decision.reject_min_se)),
                                    ("Server", self.config.product)])
            return
        resp = req.create_response(200)
        if session.dialog.local_contact is not None:
            resp.headers.add("Contact", str(session.dialog.local_contact))
        resp.headers.add("Allow", UA_ALLOW)
        resp.headers.add("Supported", "timer")
        resp.headers.add("Server", self.config.product)
        for name, value in decision.headers():
            resp.headers.add(name, value)
        has_offer = bool(req.body) or req.method == "INVITE"
        if has_offer:
            resp.headers.add("Content-Type", "application/sdp")
            resp.body = session.local_sdp.to_bytes()
        if req.method == "INVITE":
            session.acked.clear()
            self._answer_2xx(inc, resp, session)
        else:
            inc.respond(resp)
        if decision.interval is not None:
            session.start_timer(float(decision.interval), decision.refresher == "uas")

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        """Open the MSRP listener (when server media is on)."""
        if self.msrp is not None:
            await self.msrp.start()

    async def close(self) -> None:
        """BYE every session, then close the MSRP listener."""
        await asyncio.gather(*(s.bye("server shutting down") for s in self.sessions),
                             return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.msrp is not None:
            await self.msrp.close()
