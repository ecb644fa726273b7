"""Large message mode to a group at the Controlling Function (OMA SIMPLE IM §9.3, §9.4.4).

A large-message INVITE (``Accept-Contact`` with ``+g.oma.sip-im.large-message``, §9.1.1.2)
that names several recipients - a URI list (RFC 5366, ``Require: recipient-list-invite``)
to the conference factory (§9.1.1.2 step 3b) or to the exploder, or a pre-defined group's
URI (step 4) - is taken here (§9.3.1.1):

* the checks of §7.2.1.2 (list errors 400 / 413, too many 486 + Warning 102, anonymity
  403 + 119) or §7.2.1.3 (404 without IM, 495 + 105 for ``isfocus``, 403 + 127 without
  ``<allow-initiate-conference>``, 403 + 119 for ``Privacy: id`` without
  ``<allow-anonymity>``), then the size the offer announces (``a=file-selector`` size or
  ``a=max-size``) against the server's bound: 488 + Warning (§7.2.1.2 step 7);
* one INVITE per recipient (§9.3.2.1, §7.2.2.1): Request-URI and To the member, From the
  sender, P-Asserted-Identity the sender (ad-hoc) or the group (pre-defined), Referred-By
  the sender, the sender's Accept-Contact (the large-message tag), ``Supported: timer``,
  ``Privacy: id`` when asked (then From is anonymous and no identity is given), the
  group's Subject; the SDP offer mirrors the sender's (types, ``sendonly``, size);
* a member with no reachable contact (480 / 408 / 503) who is a served user gets the
  message through the Deferred Messaging Function (:class:`LargeKeeper`, DM-04): stored
  with the INVITE it would have got, delivered when they register;
* the sender gets its 200 (recvonly answer) once every invitation has its outcome and at
  least one member answered or is deferred, else the lowest failure status (§9.3.1.1);
  CANCEL cancels the pending invitations (§9.3.1.2);
* the one MSRP message is received whole (write before acknowledge for the deferred
  copies), then sent unchanged (type, body, Content-Disposition / Content-Description) in
  each member's session; when the sender's BYE came (§9.3.1.3: 200, then BYE to every
  member) - or it did not within ``message_timeout`` - every member session is BYEd;
* a message asking for the Final Delivery Report (§9.4.5 -> §5.7.3, :mod:`.finalreport`):
  the copies ask for MSRP reports, the outcomes are collected (``report_timeout``), one
  Appendix O report goes to the sender before its session ends.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from simpleim.content.final_report import FinalLeg
from simpleim.errors import SimpleImError
from simpleim.sdp import MsrpMedia
from simpleim.server.deferred.large import is_large_message
from simpleim.server.media import (
    MediaMessage,
    MediaPolicy,
    MediaSessions,
    OfferParams,
    ServerSession,
    SessionEnded,
    SessionRefused,
    msrp_offer,
)
from simpleim.server.roles import W_ANONYMITY_NOT_ALLOWED, Reply, im_warning
from simpleim.server.xdm.api import GroupDefinition
from simpleim.sip.message import Headers, SipRequest, SipResponse
from simpleim.sip.multipart import parse_multipart
from simpleim.transport.sip import IncomingRequest

from .conference import ConferenceLimits, same_user
from .finalreport import collect_legs, no_session_status, send_final_report, wants_final_report
from .predefined import start_refusal

__all__ = [
    "ANONYMOUS_URI",
    "DEFERRABLE_STATUSES",
    "GroupLargeMessages",
    "LargeKeeper",
    "LargeTarget",
    "group_large_target",
    "is_large_message",
    "member_headers",
    "offered_size",
    "size_refusal",
    "stored_copy",
]

log = logging.getLogger("simpleim.server.controlling")

#: RFC 3323 §4.1.1.3: the From of a request whose sender asked for anonymity
ANONYMOUS_URI = "sip:anonymous@anonymous.invalid"
#: the statuses of a member who cannot take the message now (no contact, no answer):
#: deferred, as the terminating PF does for a large message (DM-04)
DEFERRABLE_STATUSES = (408, 480, 503)
#: the MSRP headers of the sender's SEND that travel with each copy (§9.4.2 step 1-2)
_CONTENT_HEADERS = ("content-disposition", "content-description", "content-id")


class LargeKeeper(Protocol):
    """What the fan-out asks of the members' terminating Participating Function and of
    the Deferred Messaging Function."""

    def screen(self, invite: SipRequest, member: str) -> int | None:
        """PT-01 for ``member`` (a served user): its barring settings and access rules;
        the refusal status (403), or None to go on."""

    async def deferrable(self, uri: str) -> str | None:
        """The AOR (user@domain) of ``uri`` when it is a served user whose messages may be
        deferred, else None."""

    async def keep_large(self, invite: SipRequest, answer: SipResponse,
                         message: MediaMessage, recipient: str) -> None:
        """Store ``message`` for ``recipient`` (committed on return; StorageError
        propagates)."""


@dataclass(frozen=True, slots=True)
class LargeTarget:
    """Who gets one group large message."""

    sender: str                                   # the sender's SIP URI
    recipients: tuple[str, ...]                   # SIP URIs, the sender not among them
    anonymous: bool = False
    group: GroupDefinition | None = None          # None: an ad-hoc URI list


def group_large_target(group: GroupDefinition, req: SipRequest, who: str,
                       host: str) -> LargeTarget | Reply:
    """§9.3.1.1 step 2 -> §7.2.1.3 steps 1-3 (404, 495 + 105, 403 + 127) and the group's
    ``<allow-anonymity>`` for ``Privacy: id`` (403 + 119); else the members but the sender
    (§9.3.2.1 step 3)."""
    refusal = start_refusal(group, req, who, ConferenceLimits(host))
    if refusal is not None:
        return refusal
    anonymous = _anonymous(req)
    if anonymous and not group.permissions(who).allow_anonymity:
        return Reply(403, headers=(("Warning", im_warning(host, W_ANONYMITY_NOT_ALLOWED)),))
    members = tuple(m.uri for m in group.members if not same_user(m.uri, who))
    return LargeTarget(who, members, anonymous, group)


def offered_size(remote: MsrpMedia) -> int | None:
    """The message size the offer announces: ``a=file-selector`` size (the client's large
    message offer, CPM-03), else ``a=max-size``."""
    if remote.file is not None and remote.file.selector.size is not None:
        return remote.file.selector.size
    return remote.max_size


def size_refusal(remote: MsrpMedia, max_size: int, host: str) -> Reply | None:
    """§7.2.1.2 step 7: a message above what the server relays -> 488 with a Warning that
    says the bound."""
    size = offered_size(remote)
    if size is not None and size > max_size:
        return Reply(488, headers=(("Warning", im_warning(
            host, f"large message of {size} bytes above {max_size} bytes")),))
    return None


def member_headers(req: SipRequest, target: LargeTarget) -> list[tuple[str, str]]:
    """§9.3.2.1 step 1 / §7.2.2.1 steps 1, 4, 5, 8, 9, 11: the headers of each member's
    INVITE besides From / To / Call-ID / CSeq / Contact / SDP."""
    headers = [("Accept-Contact", v) for v in req.headers.get_all("Accept-Contact")]
    if not headers:
        headers.append(("Accept-Contact", "*;+g.oma.sip-im;+g.oma.sip-im.large-message"))
    if target.anonymous:
        headers.append(("Privacy", "id"))                        # step 9
    else:
        asserted = target.group.uri if target.group is not None else target.sender
        headers += [("P-Asserted-Identity", f"<{asserted}>"),    # step 4 a / b
                    ("Referred-By", f"<{target.sender}>")]       # step 5
    headers.append(("Supported", "timer"))                       # step 8
    subject = (target.group.subject if target.group is not None else None) \
        or req.headers.get("Subject")
    if subject:
        headers.append(("Subject", subject))                     # step 11
    for name in ("Conversation-ID", "Contribution-ID", "P-Preferred-Service"):
        value = req.headers.get(name)
        if value:
            headers.append((name, value))
    return headers


def stored_copy(member: str, from_identity: str, headers: Sequence[tuple[str, str]],
                call_id: str, offer: bytes) -> SipRequest:
    """The INVITE an offline member would have got, kept with its deferred message
    (§12.2.2.3 step 3): From the sender, To the member, the member headers, the offer."""
    h = Headers()
    h.add("From", f"<{from_identity}>;tag={call_id.split('@', 1)[0][:8]}")
    h.add("To", f"<{member}>")
    h.add("Call-ID", call_id)
    h.add("CSeq", "1 INVITE")
    for name, value in headers:
        h.add(name, value)
    h.add("Content-Type", "application/sdp")
    return SipRequest("INVITE", member, h, offer)


def _anonymous(req: SipRequest) -> bool:
    return "id" in [p.strip().lower() for v in req.headers.get_all("Privacy")
                    for p in v.split(";")]


class GroupLargeMessages:
    """Runs group large messages (§9.3): invitations, deferral, the copy, the release."""

    def __init__(self, media: MediaSessions, host: str, *, max_size: int,
                 keeper: LargeKeeper | None = None, invite_timeout: float = 30.0,
                 message_timeout: float = 120.0, report_timeout: float = 60.0) -> None:
        self._media = media
        self._host = host
        self._max_size = max_size
        self.keeper = keeper
        self._invite_timeout = invite_timeout
        self._message_timeout = message_timeout
        #: §5.7.3: how long the members' reports are waited for (from the message)
        self.report_timeout = report_timeout
        self.running = 0

    def reject(self, inc: IncomingRequest, reply: Reply) -> None:
        self._media.reject(inc, reply.status, reply.reason, headers=reply.headers)

    async def run(self, inc: IncomingRequest, target: LargeTarget) -> None:
        """Answer the sender's INVITE ``inc`` and deliver its message to ``target``."""
        req = inc.request
        remote = msrp_offer(req)
        if remote is None:
            self._media.reject(inc, 488, "no MSRP stream in the offer")
            return
        refusal = size_refusal(remote, self._max_size, self._host)
        if refusal is not None:
            self.reject(inc, refusal)
            return
        if not target.recipients:
            self.reject(inc, Reply(480, headers=(("Warning", im_warning(
                self._host, "no recipient besides the sender")),)))
            return
        inc.reply(100)
        self.running += 1
        try:
            await self._run(inc, target, remote)
        finally:
            self.running -= 1

    async def _run(self, inc: IncomingRequest, target: LargeTarget, remote: MsrpMedia) -> None:
        req = inc.request
        offer = OfferParams.mirror(remote)
        if offer.file is not None and offer.file.icon is not None:
            offer = replace(offer, file=replace(offer.file, icon=None))
        headers = member_headers(req, target)
        from_identity = ANONYMOUS_URI if target.anonymous else target.sender
        sdp = req.body if req.content_type == "application/sdp" else _sdp_part(req) or b""
        statuses: list[int] = []
        refused: list[tuple[str, int]] = []           # members without a session, SIP status
        members: list[str] = []
        for member in target.recipients:
            # PT-01 for each member: barring (ipab) and access rules -> not invited
            status = None if self.keeper is None else self.keeper.screen(stored_copy(
                member, from_identity, headers, f"{secrets.token_hex(10)}@{self._host}",
                sdp), member)
            if status is not None:
                log.info("group large message: %s refused by its settings (%d)", member,
                         status)
                statuses.append(status)
                refused.append((member, status))
            else:
                members.append(member)
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._media.invite(
            r, from_identity, offer=offer, headers=headers, timeout=self._invite_timeout))
            for r in members]

        def on_cancel(_inc: IncomingRequest) -> None:
            # §9.3.1.2: the pending invitations are cancelled (the tasks CANCEL them)
            for task in tasks:
                task.cancel()
            inc.reply(487)

        inc.on_cancel = on_cancel
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        legs: list[tuple[str, ServerSession]] = []
        deferred: list[str] = []
        for member, outcome in zip(members, outcomes, strict=True):
            if isinstance(outcome, SessionRefused):
                status = outcome.status or 480
                aor = None
                if status in DEFERRABLE_STATUSES and self.keeper is not None:
                    aor = await self.keeper.deferrable(member)
                if aor is not None:
                    deferred.append(aor)
                else:
                    statuses.append(status)
                refused.append((member, status))
                log.info("group large message: %s refused (%d)%s", member, status,
                         ", deferred" if aor is not None else "")
            elif isinstance(outcome, asyncio.CancelledError):
                statuses.append(487)
                refused.append((member, 487))
            elif isinstance(outcome, BaseException):
                statuses.append(500)
                refused.append((member, 500))
                log.info("group large message: %s failed: %s", member, outcome)
            else:
                legs.append((member, outcome))
        if inc.cancelled:
            await _bye_all([s for _, s in legs], "cancelled by the sender")
            return
        if not legs and not deferred:
            status = min(statuses) if statuses else 480       # §9.3.1.1: lowest failure
            self._media.reject(inc, status if 300 <= status < 700 else 480)
            return
        policy = MediaPolicy(accept_types=remote.accept_types or ("*",),
                             accept_wrapped_types=remote.accept_wrapped_types or ("*",),
                             max_size=self._max_size, accept_files=True,
                             max_file_size=self._max_size, hold_acks=True)
        try:
            source = await self._media.accept(inc, policy)
        except SessionRefused as exc:
            await _bye_all([s for _, s in legs], f"sender leg failed: {exc.reason}")
            return
        try:
            await self._relay(source, target, headers, from_identity, legs, deferred,
                              refused)
        finally:
            await _bye_all([source, *(s for _, s in legs)], "large message delivered")

    async def _relay(self, source: ServerSession, target: LargeTarget,
                     headers: Sequence[tuple[str, str]], from_identity: str,
                     legs: Sequence[tuple[str, ServerSession]], deferred: Sequence[str],
                     refused: Sequence[tuple[str, int]] = ()) -> None:
        message: MediaMessage | None = None
        try:
            async with asyncio.timeout(self._message_timeout):
                async for event in source.events():
                    if isinstance(event, SessionEnded):
                        break
                    message = event
                    break
        except TimeoutError:
            log.info("group large message from %s: no message within %.0fs", target.sender,
                     self._message_timeout)
        if message is None:
            return
        kept = await self._keep(source, message, headers, from_identity, deferred)
        final = wants_final_report(message)
        # write before acknowledge: the deferred copies are stored (RFC 4975 §7.2: 403
        # when the message reaches nobody); with a final report, that report is the
        # success REPORT the sender asked for (§5.7.3 step 1), not one now
        ack = 200 if legs or kept else 403
        source.acknowledge(message, ack, report=not final)
        extra = [(n, v) for n, v in message.headers if n.lower() in _CONTENT_HEADERS]
        if final:
            # §9.4.5 -> §5.7.3: copies asking for reports, one report to the sender
            deadline = asyncio.get_running_loop().time() + self.report_timeout
            got = await collect_legs(legs, message, extra, deadline)
            got += [FinalLeg(m, no_session_status(st)) for m, st in refused]
            send_final_report(source, message, got, ack)
        else:
            await self._copy(message, extra, legs)
        # §9.3.1.3: the members' sessions end after the sender's BYE (or the timeout)
        try:
            async with asyncio.timeout(self._message_timeout):
                await source.closed.wait()
        except TimeoutError:
            log.info("group large message from %s: no BYE within %.0fs", target.sender,
                     self._message_timeout)

    async def _copy(self, message: MediaMessage, extra: Sequence[tuple[str, str]],
                    legs: Sequence[tuple[str, ServerSession]]) -> None:
        results = await asyncio.gather(*(
            session.send(message.body, message.content_type, headers=extra)
            for _, session in legs), return_exceptions=True)
        for (member, _), result in zip(legs, results, strict=True):
            if isinstance(result, BaseException):
                log.info("group large message to %s failed: %s", member, result)

    async def _keep(self, source: ServerSession, message: MediaMessage,
                    headers: Sequence[tuple[str, str]], from_identity: str,
                    deferred: Sequence[str]) -> int:
        keeper = self.keeper
        if keeper is None or not deferred:
            return 0
        req = source.request
        # the sender's body may be multipart (the URI list): the SDP alone is kept
        offer = req.body if req.content_type == "application/sdp" else _sdp_part(req) or b""
        kept = 0
        for aor in deferred:
            member = f"sip:{aor}"
            invite = stored_copy(member, from_identity, headers,
                                 f"{secrets.token_hex(10)}@{self._host}", offer)
            try:
                await keeper.keep_large(invite, source.response, message, aor)
                kept += 1
            except SimpleImError as exc:
                log.error("group large message for %s not stored: %s", aor, exc)
        return kept


def _sdp_part(req: SipRequest) -> bytes | None:
    mt = req.media_type
    if mt is None or not mt.boundary:
        return None
    try:
        parts = parse_multipart(req.body, mt.boundary)
    except SimpleImError:
        return None
    return next((p.body for p in parts if p.content_type == "application/sdp"), None)


async def _bye_all(sessions: Sequence[ServerSession], reason: str) -> None:
    await asyncio.gather(*(s.bye(reason) for s in sessions), return_exceptions=True)
