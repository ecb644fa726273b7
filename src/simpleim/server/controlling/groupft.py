"""File transfer in group chat at the focus (OMA CPM 2.0 CR "File Transfer in Group Chat":
Change 1 - CPM 9.2.10, Change 3 - CPM 9.3.1, Change 6 - CPM 9.2.7).

* :func:`ft_support` reads a participant's FT capability from the Contact it joined with
  (Change 1, after the 200: the IARI tags ``rcse.ft`` / ``rcs.ftthumb`` / ``rcs.ftstandfw``
  mean capable, the chat tag ``rcse.im`` alone means not capable, neither: unknown);
* :func:`is_file_transfer` tells an FT INVITE to the IM Session Identity (the CPM FT ICSI in
  Accept-Contact, or an RFC 5547 ``file-selector`` in the offer);
* :func:`ft_targets` is Change 3 steps 1-3 with the Service Provider policy (a): only the
  capable participants are invited, those that said chat-only or nothing are not;
* :class:`GroupFileTransfer` runs one transfer: each target gets its own INVITE (from the
  sender, Referred-By the sender, the sender's Conversation-ID / Contribution-ID, no
  recipient-list-history - step 4), the sender's INVITE is answered once every invitation
  has its outcome (so nobody misses the first chunk), and one MSRP room copies the file
  from the sender to every recipient (chunk by chunk above 64 KiB).  The transfer is a
  dialog of its own: ending the group chat does not end it, nor the reverse (Change 6).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from simpleim.errors import SimpleImError
from simpleim.server.media import (
    MediaPolicy,
    MediaSessions,
    OfferParams,
    Overflow,
    Room,
    ServerSession,
    SessionRefused,
    msrp_offer,
)
from simpleim.server.roles import Reply, im_warning
from simpleim.sip.message import SipRequest
from simpleim.transport.sip import IncomingRequest

__all__ = [
    "FT_ICSI",
    "FtSupport",
    "GroupFileTransfer",
    "W_NO_FT_PARTICIPANT",
    "ft_support",
    "ft_targets",
    "is_file_transfer",
]

log = logging.getLogger("simpleim.server.controlling")

#: CR Change 4 a: the CPM file transfer ICSI (percent-decoded, lower case)
FT_ICSI = "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.filetransfer"
_FT_IARIS = ("3gpp-application.ims.iari.rcse.ft", "3gpp-application.ims.iari.rcs.ftthumb",
             "3gpp-application.ims.iari.rcs.ftstandfw")
_IM_IARI = "3gpp-application.ims.iari.rcse.im"
#: no participant can take the file (Change 3 steps 1-3)
W_NO_FT_PARTICIPANT = "no other participant takes file transfer"


class FtSupport(enum.StrEnum):
    CAPABLE = "capable"            # an FT IARI in the Contact
    CHAT_ONLY = "chat-only"        # the chat IARI alone (Change 2 step 9)
    UNKNOWN = "unknown"            # no indication (Change 3 step 3)


def _decoded(values: Sequence[str]) -> str:
    return " ".join(values).lower().replace("%3a", ":")


def ft_support(contacts: Sequence[str]) -> FtSupport:
    """Change 1, on the 200 (or the joining INVITE): what the participant's Contact says."""
    text = _decoded(contacts)
    if "+g.3gpp.iari-ref" not in text:
        return FtSupport.UNKNOWN
    tags = text.replace('"', " ").replace(",", " ").split()
    if any(t.endswith(iari) for t in tags for iari in _FT_IARIS):
        return FtSupport.CAPABLE
    if any(t.endswith(_IM_IARI) for t in tags):
        return FtSupport.CHAT_ONLY
    return FtSupport.UNKNOWN


def is_file_transfer(req: SipRequest) -> bool:
    """An FT INVITE (CR Change 3): the FT ICSI asked for, or a file offered (RFC 5547)."""
    if FT_ICSI in _decoded(req.headers.get_all("Accept-Contact")):
        return True
    try:
        media = msrp_offer(req)
    except SimpleImError:
        return False
    return media is not None and media.file is not None


def ft_targets(connected: Sequence[str], support: Mapping[str, FtSupport], sender: str
               ) -> tuple[str, ...]:
    """Change 3 steps 1-3, policy (a): the connected participants but the sender that said
    they take file transfer."""
    return tuple(p for p in connected
                 if p != sender and support.get(p, FtSupport.UNKNOWN) is FtSupport.CAPABLE)


class GroupFileTransfer:
    """One file pushed to a group chat's capable participants (CR Change 3)."""

    def __init__(self, media: MediaSessions, host: str, *, queue_limit: int = 64,
                 invite_timeout: float = 30.0) -> None:
        self._media = media
        self._host = host
        self._queue_limit = queue_limit
        self._invite_timeout = invite_timeout
        self.rooms: set[Room] = set()

    async def run(self, inc: IncomingRequest, sender: str, targets: Sequence[str]) -> None:
        """Invite ``targets`` for the file of ``inc`` (from the participant ``sender``),
        answer the sender, then copy the file until every recipient has it."""
        req = inc.request
        remote = msrp_offer(req)
        if remote is None or remote.file is None:
            self._media.reject(inc, 488, "no file offered (RFC 5547)")
            return
        if not targets:
            self._reply(inc, Reply(480, headers=(
                ("Warning", im_warning(self._host, W_NO_FT_PARTICIPANT)),)))
            return
        inc.reply(100)
        # no thumbnail part travels with the copies (the focus offers what it relays)
        offer = OfferParams.mirror(remote)
        if offer.file is not None and offer.file.icon is not None:
            offer = replace(offer, file=replace(offer.file, icon=None))
        headers = [("Accept-Contact", v) for v in req.headers.get_all("Accept-Contact")]
        headers += [("P-Asserted-Identity", f"<{sender}>"), ("Referred-By", f"<{sender}>")]
        for name in ("Conversation-ID", "Contribution-ID", "Subject"):
            value = req.headers.get(name)
            if value:
                headers.append((name, value))
        outcomes = await asyncio.gather(*(
            self._media.invite(t, sender, offer=offer, headers=headers,
                               timeout=self._invite_timeout) for t in targets),
            return_exceptions=True)
        legs: list[tuple[str, ServerSession]] = []
        statuses: list[int] = []
        for target, outcome in zip(targets, outcomes, strict=True):
            if isinstance(outcome, SessionRefused):
                statuses.append(outcome.status or 480)
                log.info("group file transfer: %s refused (%d)", target, outcome.status)
            elif isinstance(outcome, BaseException):
                statuses.append(500)
                log.info("group file transfer: %s failed: %s", target, outcome)
            else:
                legs.append((target, outcome))
        if inc.cancelled:
            for _, leg in legs:
                await leg.bye("cancelled by the sender")
            return
        if not legs:
            status = min(statuses) if statuses else 480
            self._media.reject(inc, status if 300 <= status < 700 else 480)
            return
        policy = MediaPolicy(accept_types=remote.accept_types or ("*",),
                             accept_wrapped_types=remote.accept_wrapped_types or ("*",),
                             accept_files=True, max_file_size=None)
        try:
            source = await self._media.accept(inc, policy)
        except SessionRefused as exc:
            for _, leg in legs:
                await leg.bye(f"sender leg failed: {exc.reason}")
            return
        # the default policy (every other leg) and chunk switching: the recipients'
        # answers are recvonly, so only the sender's file moves; WAIT: a slow recipient
        # slows the sender, no chunk is dropped; min_legs 1: the sender may end its
        # session (Tc1) before every recipient has the last chunk - each recipient's
        # queue still drains, the room ends when the last leg is gone
        room = Room(queue_limit=self._queue_limit, overflow=Overflow.WAIT, min_legs=1)
        self.rooms.add(room)
        try:
            room.add(source, sender)
            for target, leg in legs:
                room.add(leg, target)
            await room.wait()
        finally:
            self.rooms.discard(room)
        log.info("group file transfer from %s to %d ended: %s", sender, len(legs),
                 room.end_reason)

    def close(self) -> None:
        for room in list(self.rooms):
            room.end("server shutting down")

    def _reply(self, inc: IncomingRequest, reply: Reply) -> None:
        self._media.reject(inc, reply.status, reply.reason, headers=reply.headers)
