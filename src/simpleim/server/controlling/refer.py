"""REFER in a participant's dialog with the focus (OMA SIMPLE IM §7.2.1.7-8, RFC 3515).

``Refer-To`` without method or with ``method=INVITE`` adds a participant (§7.2.1.7),
``method=BYE`` removes one (§7.2.1.8); the implicit ``refer`` subscription gets its
``message/sipfrag`` NOTIFYs (RFC 3515 §2.4.4). :class:`Referrals` keeps no state of its own:
the conference is the focus's :class:`~.running.Running`, and what the focus does for it
(the state change and its NOTIFY, the invitation, the release check, the group's
definition) comes in as callables, so this module does not import the focus.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from simpleim.content.filetransfer import cid_matches
from simpleim.content.resource_lists import (
    RESOURCE_LISTS_CONTENT_TYPE,
    Entry,
    parse_resource_lists,
)
from simpleim.errors import ContentError, SimpleImError
from simpleim.sdp import MsrpMedia
from simpleim.server.roles import SERVER_PRODUCT, W_FUNCTION_NOT_ALLOWED, Reply, im_warning
from simpleim.server.xdm.api import GroupDefinition
from simpleim.sip.message import SipRequest
from simpleim.sip.multipart import parse_multipart
from simpleim.sip.uri import SipUri, parse_uri
from simpleim.transport.sip import IncomingRequest

from .conference import (
    W_TOO_MANY_PARTICIPANTS,
    ConferenceLimits,
    ParticipantInput,
    ParticipantStatus,
    same_user,
)
from .predefined import add_refusal
from .running import Running

__all__ = ["REFER_EXPIRES", "Referrals", "refer_target", "referred_list"]

log = logging.getLogger("simpleim.server.controlling")

#: RFC 3515 §2.4.5 / RFC 6665: how long the implicit refer subscription may last
REFER_EXPIRES = 60
_REASONS = {200: "OK", 202: "Accepted", 403: "Forbidden", 404: "Not Found",
            408: "Request Timeout", 480: "Temporarily Unavailable", 486: "Busy Here",
            487: "Request Terminated", 488: "Not Acceptable Here", 500: "Server Internal Error",
            603: "Decline"}

#: (conference, participant, change, by) -> stored and notified
EventHook = Callable[[Running, str, ParticipantInput, str | None], Awaitable[None]]
#: (conference, invitee, referrer, the referrer's media) -> the invitation started
InviteHook = Callable[[Running, Entry, str, MsrpMedia], None]


def referred_list(req: SipRequest) -> list[str] | None:
    """RFC 5368 §4: the users of the ``application/resource-lists+xml`` body a ``cid:``
    Refer-To points at (the REFER's body, or its multipart part with that Content-ID) as
    ``sip:user@host``; None when there is no such list or it names no SIP user."""
    refer_to = (req.headers.get("Refer-To") or "").strip().lstrip("<").split(">", 1)[0]
    body: bytes | None = None
    mt = req.media_type
    if mt is not None and mt.mime == RESOURCE_LISTS_CONTENT_TYPE:
        body = req.body
    elif mt is not None and mt.mime == "multipart/mixed" and mt.boundary:
        try:
            parts = parse_multipart(req.body, mt.boundary)
        except ContentError:
            return None
        body = next((p.body for p in parts if p.content_type == RESOURCE_LISTS_CONTENT_TYPE
                     and cid_matches(refer_to, p.headers.get("Content-ID") or "")), None)
    if body is None:
        return None
    try:
        doc = parse_resource_lists(body)
    except ContentError:
        return None
    out: list[str] = []
    for entry in doc.entries():
        found = refer_target(f"<{entry.uri}>")
        if found is not None and found[1] == "INVITE" and found[0] not in out:
            out.append(found[0])
    return out or None


def refer_target(refer_to: str | None) -> tuple[str, str] | None:
    """(``sip:user@host``, method) of a ``Refer-To`` naming a SIP user, else None."""
    if not refer_to:
        return None
    try:
        addr_uri = parse_uri(refer_to.strip().split(">", 1)[0].lstrip("<"), "Refer-To")
    except SimpleImError:
        return None
    if not isinstance(addr_uri, SipUri) or not addr_uri.user:
        return None
    method = (addr_uri.params.get("method") or
              next((v for k, v in addr_uri.headers if k.lower() == "method"), None)
              or "INVITE").upper()
    return f"sip:{addr_uri.user}@{addr_uri.host}", method


class Referrals:
    """The focus's REFER handling (§7.2.1.7 add, §7.2.1.8 remove)."""

    def __init__(self, limits: ConferenceLimits, *, event: EventHook,
                 invite: InviteHook, check_release: Callable[[Running], None],
                 group: Callable[[str], Awaitable[GroupDefinition | None]]) -> None:
        self._limits = limits
        self._event = event
        self._invite = invite
        self._check_release = check_release
        self._group = group

    def _warn(self, inc: IncomingRequest, status: int, text: str) -> None:
        inc.reply(status, headers=[("Server", SERVER_PRODUCT),
                                   ("Warning", im_warning(self._limits.host, text))])

    async def handle(self, running: Running, who: str, inc: IncomingRequest) -> None:
        """A REFER from the participant ``who`` in its dialog with the conference."""
        req = inc.request
        refer_to = req.headers.get("Refer-To") or ""
        subscribe = (req.headers.get("Refer-Sub") or "true").strip().lower() != "false"
        if refer_to.strip().lstrip("<").lower().startswith("cid:"):
            # §7.2.1.7 step 3b: several users in one REFER (RFC 5368 multiple-refer)
            listed = referred_list(req)
            if listed is None:
                self._warn(inc, 400, "a resource-lists body the cid: Refer-To names expected")
                return
            await self._add(running, who, inc, listed, subscribe)
            return
        found = refer_target(refer_to)
        if found is None or found[1] not in ("INVITE", "BYE"):
            self._warn(inc, 400, "Refer-To with a SIP user URI expected")
            return
        target, method = found
        if method == "BYE":
            await self._remove(running, who, inc, target, subscribe)
        else:
            await self._add(running, who, inc, [target], subscribe)

    async def _remove(self, running: Running, who: str, inc: IncomingRequest, target: str,
                      subscribe: bool) -> None:
        conf = running.conf
        victim = conf.participant(target)
        if not same_user(who, conf.creator) or victim is None \
                or victim.status is ParticipantStatus.DISCONNECTED:
            # §7.2.1.8 step 1 / 2b: only the initiator removes, and only participants
            self._warn(inc, 403, W_FUNCTION_NOT_ALLOWED)
            return
        inc.reply(202, headers=[("Server", SERVER_PRODUCT),
                                *([] if subscribe else [("Refer-Sub", "false")])])
        if subscribe:
            await self.sipfrag(running, who, 100, active=True)
        leg = running.legs.pop(victim.uri, None)
        task = running.pending.get(victim.uri)
        if task is not None:
            task.cancel()
        if leg is not None:
            running.room.remove(leg, "removed by the initiator", bye=True)
        await self._event(running, victim.uri, ParticipantInput.REMOVED, who)
        if subscribe:
            await self.sipfrag(running, who, 200, active=False)
        self._check_release(running)

    async def _add(self, running: Running, who: str, inc: IncomingRequest,
                   listed: list[str], subscribe: bool) -> None:
        """§7.2.1.7: invite the users not in the conference whom the adding policy allows
        (§7.2.2.7); the REFER is refused when none is left."""
        conf = running.conf
        targets: list[str] = []
        refusal: Reply | None = None
        group = await self._group(conf.group) if conf.group is not None else None
        for target in listed:
            existing = conf.participant(target)
            if existing is not None and existing.status is not ParticipantStatus.DISCONNECTED:
                continue
            refused = None if conf.group is None \
                else add_refusal(group, who, target, self._limits)
            if refused is None:
                targets.append(target)
            else:
                refusal = refusal or refused
        if not targets:
            if refusal is None:
                self._warn(inc, 403, "already a participant")
            else:                                                     # §7.2.2.7
                inc.reply(refusal.status,
                          headers=[("Server", SERVER_PRODUCT), *refusal.headers])
            return
        if len(conf.invited_or_in) + len(targets) > (conf.max_participants
                                                     or self._limits.max_participants):
            self._warn(inc, 486, W_TOO_MANY_PARTICIPANTS)              # §7.2.1.7 step 4
            return
        inc.reply(202, headers=[("Server", SERVER_PRODUCT),          # §7.2.1.7 step 5
                                *([] if subscribe else [("Refer-Sub", "false")])])
        remote = running.legs[who].session.remote_media if who in running.legs else None
        if remote is None:
            return
        for target in targets:
            await self._event(running, target, ParticipantInput.INVITED, who)
            if subscribe:
                running.referrers[target] = who
        if subscribe:
            await self.sipfrag(running, who, 100, active=True)
        for target in targets:                                        # §7.2.1.7 step 9
            self._invite(running, Entry(target), who, remote)

    async def outcome(self, running: Running, target: str, status: int) -> None:
        """The final status of a referred invitation to its referrer (RFC 3515 §2.4.4); the
        subscription of a multiple-refer ends with the last one (§7.2.1.7 step 10)."""
        referrer = running.referrers.pop(target, None)
        if referrer is not None:
            await self.sipfrag(running, referrer, status,
                               active=referrer in running.referrers.values())

    async def sipfrag(self, running: Running, to: str, status: int, *, active: bool) -> None:
        """RFC 3515 §2.4.4: the progress of the referred request as ``message/sipfrag``."""
        leg = running.legs.get(to)
        if leg is None:
            return
        state = f"active;expires={REFER_EXPIRES}" if active else "terminated;reason=noresource"
        body = f"SIP/2.0 {status} {_REASONS.get(status, 'Unknown')}\r\n".encode()
        try:
            await leg.session.send_request("NOTIFY", headers=(
                ("Event", "refer"), ("Subscription-State", state),
                ("User-Agent", SERVER_PRODUCT)), body=body,
                content_type="message/sipfrag;version=2.0")
        except (SimpleImError, OSError) as exc:
            log.info("refer NOTIFY to %s not sent: %s", to, exc)
