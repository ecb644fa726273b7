"""The terminating Participating Function in the media path (PO-00, OMA SIMPLE IM §6.1: the
PF "MAY act as a B2BUA"): a back-to-back user agent for a 1-1 MSRP session.

The caller's INVITE is not forwarded: the server invites the callee's registered contacts
itself (leg B) with an offer that mirrors the caller's stream (same accept-types, wrapped
types, direction, max-size, file-selector - RFC 4975 §8.6, RFC 5547 §8) but the server's MSRP
path, relays the callee's provisional responses, and when the callee answers, answers the
caller (leg A) with what the callee accepted and the server's path again.  Both MSRP
sessions end at the server; a 2-leg :class:`~simpleim.server.media.room.Room` copies the
messages both ways.  A BYE on either leg ends the other (BYE); a CANCEL of the caller
cancels leg B; a failure of leg B is the caller's final response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from simpleim.errors import ProtocolError
from simpleim.sdp import MsrpMedia
from simpleim.sdp.msrp import is_msrp_media
from simpleim.server.media.api import (
    MediaPolicy,
    MediaSessions,
    OfferParams,
    ServerSession,
    SessionRefused,
)
from simpleim.server.media.room import Overflow, Recorder, Room
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.sip.replaces import Replaces
from simpleim.transport.msrp_sdp import sdp_of
from simpleim.transport.sip import IncomingRequest

__all__ = ["B2buaConfig", "BackToBack", "COPIED_HEADERS", "msrp_offer"]

log = logging.getLogger("simpleim.server.media")

#: Headers of the caller's INVITE that leg B carries as they are: the service and identity
#: the PF asserted (RFC 3325, RFC 3323), caller preferences (RFC 3841: the callee's client
#: classifies the INVITE by them, OMA §7.1.2), and the CPM conversation identifiers.
COPIED_HEADERS = ("Accept-Contact", "Reject-Contact", "P-Asserted-Identity", "Privacy",
                  "Referred-By", "Subject", "Priority", "P-Preferred-Service",
                  "P-Asserted-Service", "Conversation-ID", "Contribution-ID",
                  "InReplyTo-Contribution-ID")
#: Headers of the callee's 2xx that the caller's 2xx carries (OMA CPM 2.0 identifiers).
ANSWER_HEADERS = ("Conversation-ID", "Contribution-ID")


@dataclass(frozen=True, slots=True)
class B2buaConfig:
    """``queue_limit``: messages queued per direction before the sender is slowed down;
    ``max_size``: the largest message relayed (None: the legs' receive limits);
    ``invite_timeout``: how long the callee may ring."""

    queue_limit: int = 64
    max_size: int | None = None
    invite_timeout: float = 90.0


def msrp_offer(request: SipRequest) -> MsrpMedia | None:
    """The first MSRP stream of an INVITE's offer, None without one (or unparsable)."""
    try:
        offer = sdp_of(request)
    except ProtocolError:
        return None
    if offer is None:
        return None
    for media in offer.media:
        if media.port and is_msrp_media(media):
            try:
                return MsrpMedia.from_media(media, offer)
            except ProtocolError:
                return None
    return None


def _copied(request: SipRequest | SipResponse, names: Sequence[str]) -> list[tuple[str, str]]:
    return [(name, value) for name in names for value in request.headers.get_all(name)]


def _user(uri: str) -> str:
    return uri.strip().strip("<>").split(";", 1)[0].removeprefix("sip:").lower()


def _tags_of(session: ServerSession) -> tuple[str, str]:
    """(From tag of the INVITE, To tag of its 2xx) of a leg."""
    return session.request.from_addr.tag or "", session.response.to_addr.tag or ""


def _tags(session: ServerSession) -> set[str]:
    return set(_tags_of(session))


class BackToBack:
    """Bridges an incoming INVITE to the callee through the server (PF B2BUA mode)."""

    def __init__(self, ua: MediaSessions, config: B2buaConfig = B2buaConfig(),  # noqa: B008
                 recorder: Recorder | None = None) -> None:
        self.ua = ua
        self.config = config
        self.recorder = recorder
        self.rooms: set[Room] = set()

    async def bridge(self, incoming: IncomingRequest, target: str) -> None:
        """Run the whole session: leg B, leg A, the relay, the teardown."""
        try:
            await self._bridge(incoming, target)
        except ProtocolError as exc:
            log.info("B2BUA session to %s failed: %s", target, exc.detail)
            if not incoming.final_sent:
                self.ua.reject(incoming, exc.status if 400 <= exc.status < 700 else 500,
                               exc.detail)

    async def _bridge(self, incoming: IncomingRequest, target: str) -> None:
        req = incoming.request
        remote = msrp_offer(req)
        if remote is None:
            self.ua.reject(incoming, 488, "no MSRP stream in the offer")
            return
        incoming.reply(100)
        to_tag = f"b2b{id(incoming) & 0xFFFFFF:06x}"

        def ringing(resp: SipResponse) -> None:
            # relay the callee's progress (RFC 3261 §16.7 does the same for a proxy)
            if not incoming.final_sent:
                incoming.reply(resp.status, resp.reason, to_tag=to_tag)

        name = req.from_addr.display_name
        invite = asyncio.ensure_future(self.ua.invite(
            target, str(req.from_addr.uri), offer=OfferParams.mirror(remote),
            headers=_copied(req, COPIED_HEADERS), display_name=name,
            timeout=self.config.invite_timeout, on_provisional=ringing))

        def cancelled(_inc: IncomingRequest) -> None:
            invite.cancel()
            incoming.reply(487, to_tag=to_tag)

        incoming.on_cancel = cancelled
        try:
            leg_b = await invite
        except asyncio.CancelledError:
            return
        except SessionRefused as exc:
            if not incoming.final_sent:
                status = exc.status if 300 <= exc.status < 700 else 480
                self.ua.reject(incoming, status, exc.reason or None)
            return
        if incoming.cancelled or incoming.final_sent:
            await leg_b.bye("caller cancelled")
            return
        answered = leg_b.remote_media
        policy = MediaPolicy(
            accept_types=answered.accept_types or remote.accept_types,
            accept_wrapped_types=answered.accept_wrapped_types or ("*",),
            max_size=self._max_size(answered),
            accept_files=remote.file is not None, max_file_size=None)
        try:
            leg_a = await self.ua.accept(incoming, policy, to_tag=to_tag,
                                         headers=_copied(leg_b.response, ANSWER_HEADERS))
        except SessionRefused as exc:
            await leg_b.bye(f"caller leg failed: {exc.reason}")
            return
        await self.relay(leg_a, leg_b)

    def peer_dialog(self, replaces: Replaces, requester: str) -> Replaces | None:
        """OMA SIMPLE IM §7.1.1.6 through the B2BUA: ``replaces`` names the requester's leg
        of a bridged session (as the requester's peer would see it); the other leg's dialog
        as *its* client sees it, for the ``Replaces`` of the focus's INVITE to that client
        (RFC 3891 §3).  None when no bridged session of the requester has that dialog."""
        for room in self.rooms:
            legs = {leg.name: leg.session for leg in room.legs}
            for mine, other in (("caller", "callee"), ("callee", "caller")):
                session, peer = legs.get(mine), legs.get(other)
                if session is None or peer is None or session.call_id != replaces.call_id \
                        or _user(session.peer) != _user(requester) \
                        or {replaces.to_tag, replaces.from_tag} != _tags(session):
                    continue
                # the caller's leg: its client is the UAC (local tag = From);
                # the callee's leg: its client is the UAS (local tag = To)
                invite_from, answer_to = _tags_of(peer)
                return Replaces(peer.call_id, invite_from, answer_to) if other == "caller" \
                    else Replaces(peer.call_id, answer_to, invite_from)
        return None

    def _max_size(self, answered: MsrpMedia) -> int | None:
        sizes = [s for s in (answered.max_size, self.config.max_size) if s is not None]
        return min(sizes) if sizes else None

    async def relay(self, leg_a: ServerSession, leg_b: ServerSession) -> None:
        """Copy both ways until either side ends (then BYE the other)."""
        room = Room(recorder=self.recorder, queue_limit=self.config.queue_limit,
                    max_size=self.config.max_size, overflow=Overflow.WAIT)
        self.rooms.add(room)
        try:
            room.add(leg_a, "caller")
            room.add(leg_b, "callee")
            await room.wait()
        finally:
            self.rooms.discard(room)
        log.info("B2BUA session %s / %s ended: %s", leg_a.call_id, leg_b.call_id,
                 room.end_reason)
