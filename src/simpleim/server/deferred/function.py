"""The Deferred Messaging Function (OMA SIMPLE IM §12.2, DM-01..DM-10).

* :meth:`DeferredMessagingFunction.defer`: store a MESSAGE the terminating Participating
  Function could not deliver (PT-01 step 5); it returns only once the message is
  committed, so the caller answers 202 Accepted afterwards (write before acknowledge).
* :meth:`~DeferredMessagingFunction.deliver_pending`: when the recipient registers (or
  publishes ``offline-delivery active="true"``), its stored MESSAGEs are re-sent as
  MESSAGE, one at a time in arrival order, each deleted only after a 2xx (msilo-style).
* :meth:`~DeferredMessagingFunction.retrieve`: INVITE to ``sip:Deferred@DOMAIN`` (DM-02/03):
  answered ``a=sendonly`` with ``automata`` in the Contact, the stored messages sent as
  MSRP SENDs (DM-07: ``multipart/mixed`` with a ``message/sip`` part), then BYE.
* :meth:`~DeferredMessagingFunction.defer_large`: DM-04 (§12.2.2.1): a large message
  session to a user who cannot take it is answered by the DMF (``a=recvonly``), the MSRP
  content received and stored with the session's relevant headers
  (:mod:`simpleim.server.deferred.large`), delivered later as a ``message/msrp`` part.
* :meth:`~DeferredMessagingFunction.push`: DM-06, the same delivery on a session the
  server opens (INVITE ``a=sendonly`` to an OMA client with ``offline-delivery`` on).
* :meth:`~DeferredMessagingFunction.delete`: REFER to ``sip:Delete@DOMAIN`` (DM-10).
* :meth:`~DeferredMessagingFunction.expire`: expiry with failure IMDNs (DM-08/DM-09).

What it needs from the core is the :class:`Courier` Protocol (send a request to a user's
registered contacts, or route a new request) and, for the MSRP sessions, the server's
:class:`~simpleim.server.media.api.MediaSessions`; it never imports another role.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from simpleim.content.resource_lists import parse_resource_lists
from simpleim.errors import ProtocolError, SimpleImError
from simpleim.sdp.msrp import Direction
from simpleim.server.deferred.large import (
    large_as_message,
    parse_stored_large,
    pushed_large,
    stored_large,
    with_bye,
)
from simpleim.server.deferred.message import (
    DEFERRED_ID_HEADER,
    expiry_of,
    failure_report,
    http_date,
    is_anonymous,
    message_uri,
    new_message_id,
    pushed,
    redelivery,
    stored_request,
    unwrapped,
)
from simpleim.server.media.api import (
    MediaError,
    MediaMessage,
    MediaPolicy,
    MediaSessions,
    OfferParams,
    ServerSession,
    SessionRefused,
)
from simpleim.server.roles import (
    W_NO_MESSAGES,
    W_SERVICE_NOT_AUTHORISED,
    Reply,
    im_warning,
    server_request_headers,
)
from simpleim.sip.headers import Address
from simpleim.sip.message import Headers, SipRequest, SipResponse, parse_message
from simpleim.sip.multipart import parse_multipart
from simpleim.sip.uri import SipUri, parse_uri
from simpleim.store.deferred import DeferredMessage, DeferredRepository
from simpleim.transport.msrp_sdp import sdp_of
from simpleim.transport.sip import IncomingRequest

__all__ = ["Courier", "DeferredConfig", "DeferredMessagingFunction", "PUSH_TYPES"]

log = logging.getLogger("simpleim.server.deferred")


class Courier(Protocol):
    """What the DMF asks of the SIP/IP core."""

    async def deliver(self, aor: str, request: SipRequest) -> int:
        """Send ``request`` to the registered contacts of ``aor`` (no deferral); the best
        final status (480 when none is registered)."""

    async def originate(self, request: SipRequest) -> int:
        """Route a new request from the server like any initial request; its status."""


@dataclass(frozen=True, slots=True)
class DeferredConfig:
    host: str  # the served domain: Message-ID URIs sip:<id>@host, Warning host
    default_expiry: int = 7 * 24 * 3600  # DM-05 step 6: default expiry (seconds)
    max_expiry: int = 30 * 24 * 3600  # DM-05 step 6: the local maximum of Expires
    max_large: int = 16 * 1024 * 1024  # DM-04: the largest large message stored (a=max-size)
    large_timeout: float = 120.0  # DM-04: how long the sender has to send its message


#: What a push / retrieval session carries (DM-07: multipart/mixed with message/sip)
PUSH_TYPES = ("multipart/mixed", "message/sip", "message/msrp")
#: RFC 3840 feature tags of our Contact: the DMF is an automaton (§12.2.1 step 4,
#: §12.2.2.2 e), and an IM entity (§12.2.2.2 d)
AUTOMATA = ";automata"
PUSH_CONTACT_PARAMS = ";+g.oma.sip-im;automata"


class DeferredMessagingFunction:
    def __init__(self, repository: DeferredRepository, courier: Courier,
                 config: DeferredConfig, clock: Callable[[], float] = time.time,
                 media: MediaSessions | None = None) -> None:
        self._repo = repository
        self._courier = courier
        self._media = media
        self._config = config
        self._clock = clock
        self._pending: set[str] = set()  # AORs with stored messages (loaded at start)
        self._locks: dict[str, asyncio.Lock] = {}
        self._last_seq = 0
        self._tasks: set[asyncio.Task[int]] = set()

    async def load(self) -> int:
        """Remember which users have stored messages (at start); how many users."""
        self._pending = set(await self._repo.recipients())
        return len(self._pending)

    async def stored(self, aor: str) -> list[DeferredMessage]:
        """The messages stored for ``aor``, oldest first."""
        return await self._repo.pending(aor)

    def has_pending(self, aor: str) -> bool:
        """Whether ``aor`` has stored messages: a new MESSAGE then queues behind them so
        that the user receives everything in order."""
        return aor in self._pending

    def _next_seq(self) -> int:
        seq = max(time.time_ns(), self._last_seq + 1)
        self._last_seq = seq
        return seq

    # ------------------------------------------------------------------ storing (DM-05)

    async def defer(self, req: SipRequest, recipient: str) -> str:
        """Store ``req`` for ``recipient`` (committed on return); its Message-ID URI.
        StorageError propagates: the caller must not acknowledge then."""
        now = self._clock()
        cfg = self._config
        sender = _sender_aor(req)
        mid = new_message_id()
        message = DeferredMessage(
            id=mid, recipient=recipient, sender=sender, seq=self._next_seq(),
            received_at=now, expires_at=expiry_of(req, now, cfg.default_expiry,
                                                  cfg.max_expiry),
            subject=(req.headers.get("Subject") or "")[:200], request=stored_request(req))
        await self._repo.add(message)
        self._pending.add(recipient)
        return message_uri(mid, cfg.host)

    async def defer_large(self, incoming: IncomingRequest, recipient: str) -> bool:
        """DM-04 (§12.2.2.1): answer a large message INVITE for ``recipient`` ourselves
        (200, ``a=recvonly``), receive its MSRP message and store it with the session's
        relevant headers (§12.2.2.3 step 3); the sender's BYE (or ours once stored, or
        after :attr:`DeferredConfig.large_timeout`) ends the session.  False when there
        is no server media (the caller answers 480); True once the INVITE was answered."""
        if self._media is None:
            return False
        cfg = self._config
        policy = MediaPolicy(accept_types=("*",), direction=Direction.RECVONLY,
                             max_size=cfg.max_large, accept_files=True,
                             max_file_size=cfg.max_large, hold_acks=True)
        try:
            session = await self._media.accept(incoming, policy)
        except SessionRefused as exc:
            log.info("large message for %s not taken: %s", recipient, exc)
            return True
        kept: list[DeferredMessage] = []
        try:
            async with asyncio.timeout(cfg.large_timeout):
                async for event in session.events():
                    if isinstance(event, MediaMessage):
                        try:
                            kept.append(await self._store_large(session, event, recipient))
                        except SimpleImError:
                            session.acknowledge(event, 403)     # not kept: refused (RFC 4975 §10)
                            raise
                        session.acknowledge(event)      # write before acknowledge: the 200
                    else:
                        break
        except TimeoutError:
            log.info("large message session for %s: nothing more within %.0fs",
                     recipient, cfg.large_timeout)
        except SimpleImError as exc:
            # StorageError: not stored; the session ends without it (the sender sees BYE)
            log.error("large message for %s not stored: %s", recipient, exc)
        finally:
            await session.bye("deferred large message stored" if kept else
                              "no large message")
        await self._keep_bye(session, kept)
        return True

    async def _keep_bye(self, session: ServerSession, kept: Sequence[DeferredMessage]) -> None:
        """§12.2.2.3 step 3: the relevant headers of the BYE that ended the session (the
        sender's, or ours) join each message stored from it - unless it is already gone."""
        bye = session.bye_request
        if bye is None or not kept:
            return
        anonymous = is_anonymous(session.request)
        for message in kept:
            raw = with_bye(message.request, bye, anonymous=anonymous)
            if raw is None:
                continue
            try:
                await self._repo.replace_request(message.id, raw)
            except SimpleImError as exc:
                # the message itself is stored; only its BYE headers are missing
                log.error("BYE headers of deferred message %s not stored: %s", message.id,
                          exc)

    async def _store_large(self, session: ServerSession, event: MediaMessage,
                           recipient: str) -> DeferredMessage:
        return await self.store_large(session.request, session.response, event, recipient)

    async def store_large(self, invite: SipRequest, answer: SipResponse, event: MediaMessage,
                          recipient: str) -> DeferredMessage:
        """Store one large message for ``recipient`` (committed on return): ``invite`` the
        session's INVITE as the recipient would have got it, ``answer`` the 200 it was
        answered with (§12.2.2.3 step 3).  The Controlling Function keeps a group's large
        message this way for its offline members (§9.3.2.1).  StorageError propagates."""
        now = self._clock()
        cfg = self._config
        sender = _sender_aor(invite)
        raw = stored_large(invite, answer, event.content_type, event.body,
                           event.headers, event.message_id, http_date(now),
                           anonymous=is_anonymous(invite))
        message = DeferredMessage(
            id=new_message_id(), recipient=recipient, sender=sender, seq=self._next_seq(),
            received_at=now, expires_at=now + cfg.default_expiry,  # DM-05 step 6, large
            subject=(invite.headers.get("Subject") or "")[:200], request=raw)
        await self._repo.add(message)
        self._pending.add(recipient)
        log.info("large message %s (%d bytes) from %s stored for %s", message.id,
                 event.size, sender, recipient)
        return message

    # ------------------------------------------------------------------ delivery

    def _lock(self, aor: str) -> asyncio.Lock:
        lock = self._locks.get(aor)
        if lock is None:
            lock = self._locks[aor] = asyncio.Lock()
        return lock

    async def deliver_pending(self, aor: str) -> int:
        """Re-send the stored MESSAGEs of ``aor`` in order; stop at the first one its
        contacts do not accept (kept for the next registration).  How many were delivered."""
        if aor not in self._pending:
            return 0
        delivered = 0
        async with self._lock(aor):
            while True:
                batch = await self._repo.pending(aor, limit=100)
                if not batch:
                    self._pending.discard(aor)
                    break
                for message in batch:
                    ok = await self._deliver_one(message)
                    if not ok:
                        return delivered
                    delivered += 1
        self._locks.pop(aor, None)
        return delivered

    async def _deliver_one(self, message: DeferredMessage) -> bool:
        try:
            stored = parse_message(message.request)
        except ProtocolError as exc:
            log.error("stored message %s is unreadable (%s): removed", message.id, exc.detail)
            await self._repo.remove(message.id)
            return True
        if not isinstance(stored, SipRequest):
            await self._repo.remove(message.id)
            return True
        large = parse_stored_large(stored)
        if large is not None:
            # DM-04 to a plain SIP client: the content as a MESSAGE (docs/server.md)
            as_message = large_as_message(large, message.recipient)
            if as_message is None:
                await self._repo.remove(message.id)
                return True
            stored = as_message
        request = redelivery(message, stored, self._config.host)
        status = await self._courier.deliver(message.recipient, request)
        if status == 415:
            # A plain SIP client that takes no message/cpim (RFC 3428 §11): the content alone.
            plain = unwrapped(request)
            if plain is not None:
                status = await self._courier.deliver(message.recipient, plain)
        if 200 <= status < 300:
            # Deleted only after the 2xx: a crash in between re-sends it once more rather
            # than losing it (the Deferred-Message-ID lets the client drop the duplicate).
            await self._repo.remove(message.id)
            return True
        log.info("deferred message %s to %s not accepted (%d): kept", message.id,
                 message.recipient, status)
        return False

    # ------------------------------------------------------------------ expiry (DM-08/09)

    async def expire(self) -> int:
        """Delete the messages whose expiry passed, sending the failure IMDNs asked for."""
        now = self._clock()
        removed = 0
        for message in await self._repo.expired(now):
            if await self._repo.remove(message.id):
                removed += 1
                await self._report_failure(message)
        if removed:
            self._pending = set(await self._repo.recipients())
        return removed

    async def _report_failure(self, message: DeferredMessage) -> None:
        try:
            stored = parse_message(message.request)
        except ProtocolError:
            return
        if not isinstance(stored, SipRequest):
            return
        large = parse_stored_large(stored)
        if large is not None:
            as_message = large_as_message(large, message.recipient)
            if as_message is None:
                return
            stored = as_message
        server = f"sip:Deferred@{self._config.host}"
        body = failure_report(stored, server=server, now=datetime.now(UTC))
        if body is None:
            return
        from_addr = stored.from_addr.uri
        h = server_request_headers("MESSAGE", server, str(from_addr), self._config.host)
        h.add("Content-Type", "message/cpim")
        req = SipRequest("MESSAGE", from_addr, h, body)
        try:
            status = await self._courier.originate(req)
        except SimpleImError as exc:
            log.warning("failure report for %s not sent: %s", message.id, exc)
            return
        log.info("failure report for %s to %s: %d", message.id, from_addr, status)

    # ------------------------------------------------------------------ retrieval (DM-02/03)

    async def retrieve(self, incoming: IncomingRequest, requester: str) -> Reply | None:
        """INVITE to sip:Deferred@DOMAIN (§12.2.1).  DM-02: the SDP must be recvonly (else
        488); DM-03: nothing stored -> 488 + Warning '125 No messages'.  Otherwise 200
        (``a=sendonly``, ``automata`` in the Contact, Server, Allow), the stored messages -
        all, or those of the resource-lists body - one MSRP SEND each in arrival order, each
        deleted once its SEND got its 200, then BYE (§12.2.2.5).  Returns the answer to
        send, or None when it answered itself.  Without server media the messages are
        re-sent by MESSAGE and the INVITE is answered 488 saying so."""
        req = incoming.request
        host = self._config.host
        if not _recvonly(req):
            return Reply(488, headers=(("Warning", im_warning(
                host, "the SDP offer must be a=recvonly (OMA SIMPLE IM 12.1.1)")),))
        wanted = _wanted_ids(req)
        if self._media is None:
            if not await self._repo.pending(requester, ids=wanted, limit=1):
                return Reply(488, headers=(("Warning", im_warning(host, W_NO_MESSAGES)),))
            task = asyncio.get_running_loop().create_task(self.deliver_pending(requester))
            self._tasks.add(task)  # keep a reference until it is done
            task.add_done_callback(self._tasks.discard)
            return Reply(488, headers=(("Warning", im_warning(
                host, "stored messages are delivered by MESSAGE")),))
        async with self._lock(requester):
            stored = await self._repo.pending(requester, ids=wanted)
            if not stored:
                return Reply(488, headers=(("Warning", im_warning(host, W_NO_MESSAGES)),))
            policy = MediaPolicy(accept_types=PUSH_TYPES, direction=Direction.SENDONLY)
            try:
                session = await self._media.accept(incoming, policy,
                                                   contact_params=AUTOMATA)
            except SessionRefused as exc:
                log.info("deferred retrieval by %s refused: %s", requester, exc)
                return None
            sent = await self._send_stored(session, stored)
            await self._forget_if_empty(requester)
        log.info("retrieval: %d of %d deferred messages delivered to %s", sent, len(stored),
                 requester)
        return None

    async def push(self, aor: str) -> int:
        """DM-06 (§12.2.2.2): INVITE the served user - Accept-Contact and Contact with
        +g.oma.sip-im, ``automata``, ``a=sendonly`` - and send the stored messages as in a
        retrieval (DM-07), BYE after the last.  How many were delivered (0 when the user's
        contacts refused the session: the messages stay)."""
        if self._media is None:
            return 0
        host = self._config.host
        async with self._lock(aor):
            stored = await self._repo.pending(aor)
            if not stored:
                await self._forget_if_empty(aor)
                return 0
            try:
                session = await self._media.invite(
                    f"sip:{aor}", f"sip:Deferred@{host}",
                    offer=OfferParams(accept_types=PUSH_TYPES, direction=Direction.SENDONLY),
                    headers=(("Accept-Contact", "*;+g.oma.sip-im"),),
                    contact_params=PUSH_CONTACT_PARAMS)
            except SessionRefused as exc:
                log.info("push of deferred messages to %s refused: %s", aor, exc)
                return 0
            sent = await self._send_stored(session, stored)
            await self._forget_if_empty(aor)
        log.info("push: %d of %d deferred messages delivered to %s", sent, len(stored), aor)
        return sent

    async def _send_stored(self, session: ServerSession,
                           messages: list[DeferredMessage]) -> int:
        """One SEND per message (DM-07), each deleted after its 200; BYE at the end."""
        sent = 0
        host = self._config.host
        try:
            for message in messages:
                try:
                    stored = parse_message(message.request)
                except ProtocolError as exc:
                    log.error("stored message %s is unreadable (%s): removed", message.id,
                              exc.detail)
                    await self._repo.remove(message.id)
                    continue
                if not isinstance(stored, SipRequest):
                    await self._repo.remove(message.id)
                    continue
                large = parse_stored_large(stored)
                if large is not None:
                    extra = Headers()
                    extra.add("Date", http_date(message.received_at))
                    extra.add(DEFERRED_ID_HEADER, f"<{message_uri(message.id, host)}>")
                    body, ctype = pushed_large(large, extra)
                else:
                    body, ctype = pushed(message, stored, host)
                await session.send(body, ctype)
                # deleted only after the 200: a crash in between sends it once more, and the
                # Deferred-Message-ID lets the client drop the duplicate
                await self._repo.remove(message.id)
                sent += 1
        except MediaError as exc:
            log.info("deferred delivery to %s stopped after %d: %s", session.peer, sent, exc)
        finally:
            await session.bye("deferred messages delivered")     # §12.2.2.5
        return sent

    async def _forget_if_empty(self, aor: str) -> None:
        if not await self._repo.pending(aor, limit=1):
            self._pending.discard(aor)

    # ------------------------------------------------------------------ deletion (DM-10)

    async def delete(self, req: SipRequest, requester: str) -> Reply:
        """REFER to sip:Delete@DOMAIN: Refer-To the message's URI, or sip:Deferred@DOMAIN
        for all, or a resource-lists body (multiple-refer).  Someone else's message -> 403."""
        host = self._config.host
        targets = _refer_targets(req)
        if targets is None:
            return Reply(400, "Bad Refer-To")
        if any(t.lower() == f"deferred@{host}".lower() for t in targets):
            removed = await self._repo.pending(requester)
            await self._repo.remove_all(requester)
            self._pending.discard(requester)
            for message in removed:
                await self._report_failure(message)
            return Reply(200)
        messages: list[DeferredMessage] = []
        for target in targets:
            mid, _, thost = target.partition("@")
            found = await self._repo.get(mid)
            if found is None or thost.lower() != host.lower():
                return Reply(404, headers=(("Warning", im_warning(
                    host, f"no stored message {target}")),))
            if found.recipient != requester:
                # Someone else's message: 403 + Warning 127 (§5.6).
                return Reply(403, headers=(("Warning", im_warning(
                    host, W_SERVICE_NOT_AUTHORISED)),))
            messages.append(found)
        for message in messages:
            if await self._repo.remove(message.id):
                await self._report_failure(message)
        if not await self._repo.pending(requester, limit=1):
            self._pending.discard(requester)
        return Reply(200)


def _sender_aor(req: SipRequest) -> str:
    """``user@host`` of the From (the sender, for failure reports and listings)."""
    uri = req.from_addr.uri
    return f"{uri.user}@{uri.host}" if isinstance(uri, SipUri) and uri.user else str(uri)


def _recvonly(req: SipRequest) -> bool:
    """DM-02: a session-level a=recvonly, or one on the m=message stream (the SDP alone or
    in a multipart/mixed body with the resource-lists of a selective retrieval)."""
    try:
        sdp = sdp_of(req)
    except SimpleImError:
        return False
    if sdp is None:
        return False
    if sdp.has("recvonly"):
        return any(m.media == "message" for m in sdp.media)
    return any(m.media == "message" and m.has("recvonly") for m in sdp.media)


def _wanted_ids(req: SipRequest) -> list[str] | None:
    """The Message-IDs of a resource-lists body part (selected retrieval), None for all."""
    lists = _resource_lists(req)
    if lists is None:
        return None
    return [uri.split(":", 1)[-1].split("@", 1)[0] for uri in lists]


def _resource_lists(req: SipRequest) -> list[str] | None:
    if req.content_type == "application/resource-lists+xml":
        parts = [req.body]
    elif req.content_type == "multipart/mixed" and req.media_type is not None \
            and req.media_type.boundary:
        try:
            parts = [p.body for p in parse_multipart(req.body, req.media_type.boundary)
                     if p.content_type == "application/resource-lists+xml"]
        except SimpleImError:
            return None
    else:
        return None
    uris: list[str] = []
    for body in parts:
        try:
            doc = parse_resource_lists(body)
        except SimpleImError:
            continue
        uris.extend(e.uri for e in doc.entries())
    return uris or None


def _refer_targets(req: SipRequest) -> list[str] | None:
    """``id@host`` of each message a REFER names (Refer-To, or the resource-lists body the
    Refer-To points at with multiple-refer, RFC 5368)."""
    value = req.headers.get("Refer-To")
    if value is None:
        return None
    try:
        target = Address.parse(value, "Refer-To").uri
    except ProtocolError:
        return None
    if not isinstance(target, SipUri):
        listed = _resource_lists(req)
        if listed is None:
            return None
        out = []
        for uri in listed:
            parsed = parse_uri(uri)
            if isinstance(parsed, SipUri) and parsed.user:
                out.append(f"{parsed.user}@{parsed.host}")
        return out or None
    if not target.user:
        return None
    return [f"{target.user}@{target.host}"]
