"""The Conversation History Function (OMA SIMPLE IM §13.2, §13.3; CH-00..CH-12).

* :meth:`HistoryFunction.record_message`: a pager MESSAGE that the Participating Function
  passes (CH-00 method 1, by the ``hist-activation`` pager-large-mode setting of the sender
  and / or the recipient) is stored whole for each of them (§13.2.3 step 4) before the
  request goes on (write before acknowledge); a user whose quota is used up gets nothing
  stored and a System Message saying so (step 1a).
* :class:`~simpleim.server.history.recorder.SessionRecorder` (the media rooms' recorder
  hook): sessions through the PF's B2BUA by the session-mode setting, or started / stopped
  by a REFER to ``sip:History@DOMAIN`` (CH-03 / CH-07).
* :meth:`~HistoryFunction.retrieve`: INVITE to ``sip:History@DOMAIN`` (CH-01) - checks
  (PAI, ``a=recvonly`` else 488, a URI list), 200 with ``a=sendonly``, one MSRP SEND per
  stored item in arrival order (CH-10 / CH-11), BYE at the end.
* :meth:`~HistoryFunction.delete`: REFER to ``sip:Delete@DOMAIN`` naming history references
  or ``sip:History@DOMAIN`` for all (CH-06); :meth:`~HistoryFunction.names_history` lets the
  core tell these from deferred-message deletions.
* :meth:`~HistoryFunction.metadata`: the history metadata document (CH-09).

What it needs from others is declared here as Protocols (settings, System Messages, the
server's media); it never imports another role.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from simpleim.errors import ProtocolError, SimpleImError
from simpleim.sdp.msrp import Direction
from simpleim.server.history.content import (
    delivery,
    history_document,
    is_notification,
    message_item,
    new_id,
    reference_ids,
)
from simpleim.server.media.api import MediaError, MediaPolicy, MediaSessions, SessionRefused
from simpleim.server.roles import (
    ALLOW_METHODS,
    W_SERVICE_NOT_AUTHORISED,
    Reply,
    im_warning,
)
from simpleim.sip.message import SipRequest
from simpleim.sip.uri import SipUri
from simpleim.store.history import (
    HistoryItem,
    HistoryKind,
    HistoryQuery,
    HistoryRecord,
    HistoryRepository,
)
from simpleim.transport.msrp_sdp import sdp_of
from simpleim.transport.sip import IncomingRequest

__all__ = ["HISTORY_USER", "HistoryConfig", "HistoryFunction", "HistorySettings",
           "HistorySettingsLookup", "Owner", "StorageFullNotice", "aor_of"]

log = logging.getLogger("simpleim.server.history")

#: Appendix F.2: the Conversation History Function's user part.
HISTORY_USER = "History"
#: what a retrieval session sends (§13.3.3): the answer's accept-types
DELIVERY_TYPES = ("multipart/mixed", "message/msrp", "message/sipfrag", "message/sip")
#: items read from the store at a time while a history is delivered
RETRIEVAL_PAGE = 500
STORAGE_FULL_TEXT = ("Your conversation history storage is full: new messages and "
                     "sessions are not recorded until you delete stored history.")


class HistorySettings(Protocol):
    """Appendix E.1 ``hist-activation``: session-mode and pager-large-mode."""

    @property
    def history_session(self) -> bool: ...

    @property
    def history_pager(self) -> bool: ...


class HistorySettingsLookup(Protocol):
    def settings_of(self, aor: str, now: float) -> HistorySettings: ...


class StorageFullNotice(Protocol):
    """§13.2.3 step 1a ii: tell a user that history storage is full (a System Message)."""

    async def storage_full(self, aor: str, text: str) -> None: ...


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    """``host``: the domain of history references (``id@host``); ``quota``: bytes stored per
    user (§13.2.3 "enough resources"; 0: no limit)."""

    host: str
    quota: int = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Owner:
    """One served user a message is recorded for, and which way it went for them."""

    aor: str
    direction: str   # "out": the owner sent it; "in": the owner received it
    peer: str


def _recvonly(req: SipRequest) -> bool:
    """A session-level a=recvonly with an MSRP stream, or one on the m=message line."""
    try:
        sdp = sdp_of(req)
    except ProtocolError:
        return False
    if sdp is None:
        return False
    if sdp.has("recvonly"):
        return any(m.media == "message" for m in sdp.media)
    return any(m.media == "message" and m.has("recvonly") for m in sdp.media)


def aor_of(uri: object) -> str | None:
    if isinstance(uri, SipUri) and uri.user:
        return f"{uri.user_unescaped}@{uri.bare_host}".lower()
    return None


class HistoryFunction:
    def __init__(self, repository: HistoryRepository, settings: HistorySettingsLookup,
                 config: HistoryConfig, *, media: MediaSessions | None = None,
                 notice: StorageFullNotice | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.repo = repository
        self._settings = settings
        self.config = config
        self._media = media
        self._notice = notice
        self._clock = clock
        self._last_seq = 0
        self._warned: set[str] = set()

    def clock(self) -> float:
        return self._clock()

    def settings(self, aor: str, now: float) -> HistorySettings:
        return self._settings.settings_of(aor, now)

    def next_seq(self) -> int:
        """Arrival order across the process (monotonic, unique)."""
        seq = max(time.time_ns(), self._last_seq + 1)
        self._last_seq = seq
        return seq

    def reference(self, history_id: str) -> str:
        return f"{history_id}@{self.config.host}"

    # ------------------------------------------------------------------ quota (step 1)

    async def has_room(self, owner: str, size: int) -> bool:
        """§13.2.3 steps 1a / 2a / 3a: enough resources for ``size`` more bytes?  When not,
        the owner is told once (a System Message) until they delete something."""
        quota = self.config.quota
        if quota <= 0 or await self.repo.usage(owner) + size <= quota:
            self._warned.discard(owner)
            return True
        if owner not in self._warned and self._notice is not None:
            self._warned.add(owner)
            try:
                await self._notice.storage_full(owner, STORAGE_FULL_TEXT)
            except SimpleImError as exc:
                log.warning("storage-full notice to %s not queued: %s", owner, exc)
        return False

    # ------------------------------------------------------------------ pager (CH-04)

    def pager_owners(self, req: SipRequest, sender: str | None, recipient: str,
                     now: float) -> list[Owner]:
        """CH-00 method 1 for a pager MESSAGE: the sender (PF-O) and the recipient (PF-T)
        whose ``hist-activation`` pager-large-mode is active.  IMDNs and is-composing
        indications are not recorded (state, not conversation)."""
        if req.method != "MESSAGE" or is_notification(req.content_type or "", req.body):
            return []
        owners: list[Owner] = []
        if sender is not None and sender != recipient \
                and self._settings.settings_of(sender, now).history_pager:
            owners.append(Owner(sender, "out", recipient))
        if self._settings.settings_of(recipient, now).history_pager:
            owners.append(Owner(recipient, "in", sender or str(req.from_addr.uri)))
        return owners

    def records_session(self, req: SipRequest, sender: str | None, recipient: str,
                        now: float) -> bool:
        """CH-00 method 1 for a session INVITE: does the sender or the recipient record it
        by their ``hist-activation`` setting (session-mode; pager-large-mode for a large
        message session, §9.1.1.2)?  The PF then keeps the session's media in its path."""
        if req.method != "INVITE":
            return False
        large = any("+g.oma.sip-im.large-message" in v.lower()
                    for v in req.headers.get_all("Accept-Contact"))
        for aor in (sender, recipient):
            if aor is None:
                continue
            settings = self._settings.settings_of(aor, now)
            if settings.history_pager if large else settings.history_session:
                return True
        return False

    async def record_message(self, req: SipRequest, owners: Sequence[Owner]) -> list[str]:
        """§13.2.3 steps 1 and 4-8: store ``req`` whole for each owner with room; the
        history references assigned.  StorageError propagates (nothing acknowledged)."""
        now = self._clock()
        refs: list[str] = []
        for owner in owners:
            hid = new_id()
            item = message_item(req, history=hid, owner=owner.aor, seq=self.next_seq(),
                                direction=owner.direction, now=now)
            if not await self.has_room(owner.aor, item.size):
                log.info("history of %s is full: MESSAGE %s not recorded", owner.aor,
                         req.call_id)
                continue
            record = HistoryRecord(hid, owner.aor, HistoryKind.PAGER, owner.peer,
                                   (req.headers.get("Subject") or "")[:200],
                                   f"pager-{hid[:8]}", req.call_id, now,
                                   direction=owner.direction)
            await self.repo.create(record, [item])
            refs.append(self.reference(hid))
        return refs

    # ------------------------------------------------------------------ retrieval (CH-01)

    def _refuse(self, incoming: IncomingRequest, status: int, text: str) -> None:
        if self._media is not None:
            self._media.reject(incoming, status, text, headers=(("Allow", ALLOW_METHODS),))
        else:
            incoming.reply(status, headers=[("Warning", im_warning(self.config.host, text))])

    async def retrieve(self, incoming: IncomingRequest, requester: str) -> None:
        """INVITE to sip:History@DOMAIN: §13.2.1 checks, 200 ``a=sendonly``, the items of
        each listed reference in arrival order (§13.3.3), then BYE."""
        # §13.2.1 step 1a: ``requester`` is the authenticated originator the core asserted
        # (P-Asserted-Identity); without one the dispatcher already answered 403 + 127.
        req = incoming.request
        wanted = reference_ids(req)
        if wanted is None:
            # step 4: the INVITE must carry a URI list of history references
            self._refuse(incoming, 400, "a URI list of history references is required")
            return
        records: list[HistoryRecord] = []
        for hid in wanted:
            record = await self.repo.get(hid)
            if record is None or record.owner != requester:
                self._refuse(incoming, 404, f"no stored history {hid}@{self.config.host}")
                return
            records.append(record)
        if self._media is None:
            self._refuse(incoming, 488, "server media is off")
            return
        if not _recvonly(req):
            # §13.2.1 step 3: the offer must be a=recvonly -> 488
            self._refuse(incoming, 488, "the SDP offer must be a=recvonly (OMA SIMPLE IM "
                                        "13.1.3); the answer is a=sendonly")
            return
        # step 3: a=recvonly offer, else 488 (the media UA refuses any other direction);
        # step 5a: the answer is a=sendonly.
        policy = MediaPolicy(accept_types=DELIVERY_TYPES, direction=Direction.SENDONLY)
        try:
            # Contact: the server UA's address of this dialog (where the client's ACK and
            # BYE must go; the History@ URI is not routable as a remote target)
            session = await self._media.accept(
                incoming, policy, headers=(("Allow", ALLOW_METHODS),))
        except SessionRefused as exc:
            log.info("history retrieval by %s refused: %s", requester, exc)
            return
        sent = 0
        try:
            for record in records:
                after: int | None = None
                while True:
                    # a page at a time: a large history is never held in memory whole
                    page = await self.repo.items(record.id, after=after, limit=RETRIEVAL_PAGE)
                    for item in page:
                        body, ctype = delivery(item, pager=record.kind is not
                                               HistoryKind.SESSION)
                        await session.send(body, ctype)
                        sent += 1
                    if len(page) < RETRIEVAL_PAGE:
                        break
                    after = page[-1].seq
        except MediaError as exc:
            log.info("history delivery to %s stopped after %d items: %s", requester, sent,
                     exc)
        finally:
            # §13.3.3.1 step 2 / §13.3.3.2: BYE after the last item.
            await session.bye("history delivered")
        log.info("delivered %d history items of %d histories to %s", sent, len(records),
                 requester)

    # ------------------------------------------------------------------ deletion (CH-06)

    async def names_history(self, req: SipRequest, requester: str) -> bool:
        """Whether a REFER to sip:Delete@DOMAIN is about history (Refer-To
        sip:History@DOMAIN, or a reference of a stored history) rather than deferred
        messages (§13.2.5.1: the delete bin is shared)."""
        ids = reference_ids(req)
        if not ids:
            return False
        if any(i.lower() == HISTORY_USER.lower() for i in ids):
            return True
        for hid in ids:
            if await self.repo.get(hid) is not None:
                return True
        return False

    async def delete(self, req: SipRequest, requester: str) -> Reply:
        """§13.2.5.2: delete the named histories (or all with Refer-To sip:History@DOMAIN),
        then 200; someone else's history -> 403 + Warning 127, unknown -> 404."""
        host = self.config.host
        ids = reference_ids(req)
        if not ids:
            return Reply(400, "Bad Refer-To")
        if any(i.lower() == HISTORY_USER.lower() for i in ids):
            count = await self.repo.remove_all(requester)
            log.info("deleted all %d histories of %s", count, requester)
            self._warned.discard(requester)
            return Reply(200)
        for hid in ids:
            record = await self.repo.get(hid)
            if record is None:
                return Reply(404, headers=(("Warning", im_warning(
                    host, f"no stored history {hid}@{host}")),))
            if record.owner != requester:
                return Reply(403, headers=(("Warning", im_warning(
                    host, W_SERVICE_NOT_AUTHORISED)),))
        await self.repo.remove(requester, ids)
        self._warned.discard(requester)
        return Reply(200)

    # ------------------------------------------------------------------ metadata, search

    async def metadata(self, owner: str) -> bytes:
        """CH-09: the history metadata document of ``owner``."""
        return history_document(await self.repo.of(owner), self.config.host)

    async def search(self, query: HistoryQuery) -> list[tuple[HistoryRecord, HistoryItem]]:
        """Beyond the spec: items by peer, time range and text, one page."""
        return await self.repo.search(query)
