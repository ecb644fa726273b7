"""The pager exploder of the Controlling Function as a running role (OMA SIMPLE IM §8.3).

:class:`PagerExploder` drives the pure core (:mod:`.exploder`) with I/O: the plan of an
exploded MESSAGE (the request, its recipients, the Ts2 deadline) is written to the store
*before* the 202 goes back; then one copy per recipient is handed to the recipient's
terminating Participating Function (:class:`Terminator`: barring, delivery, deferral -
a deferred copy counts as handed over).  Delivery IMDNs sent back to the exploder
(``imdn.IMDN-Record-Route``) are aggregated until all arrived or Timer Ts2 fires, then one
aggregated IMDN goes to the sender and the row is deleted.  :meth:`PagerExploder.load`
resumes every row after a restart (copies not yet handed over are sent again: at least once).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from simpleim.content.cpim import CpimDateTime, CpimMessage, parse_cpim
from simpleim.content.imdn import IMDN_CONTENT_TYPE, NotificationType, parse_imdn
from simpleim.errors import ContentError, ProtocolError, StorageError
from simpleim.server.roles import Reply
from simpleim.server.xdm.api import GroupDefinition, GroupDirectory
from simpleim.sip.headers import Headers
from simpleim.sip.message import SipRequest, parse_message
from simpleim.sip.uri import SipUri
from simpleim.store.aggregations import AggregationRecord, AggregationRepository

from .exploder import (
    EXPLODER_USER,
    Aggregation,
    ExploderLimits,
    ListMessage,
    SessionTarget,
    aggregated_report,
    build_copy,
    parse_group_message,
    parse_list_message,
    parse_session_message,
    plain_copy,
    recipients_of,
)

__all__ = ["PagerExploder", "Terminator"]

log = logging.getLogger("simpleim.server.controlling")


class Terminator(Protocol):
    """What the exploder asks of the SIP/IP core."""

    async def terminate(self, request: SipRequest) -> int:
        """Hand a request of the server to the terminating Participating Function of its
        Request-URI user (barring, delivery, deferral); the final status (202: deferred)."""

    async def originate(self, request: SipRequest) -> int:
        """Deliver a new request of the server to a served user (or defer it)."""


class PagerExploder:
    """MESSAGE to ``sip:Exploder@DOMAIN`` (URI-list pager messages and their IMDNs) and to
    a pre-defined group's URI."""

    def __init__(self, repo: AggregationRepository, courier: Terminator,
                 limits: ExploderLimits, clock: Callable[[], float],
                 groups: GroupDirectory | None = None) -> None:
        self._repo = repo
        self._groups = groups
        self._courier = courier
        self._limits = limits
        self._clock = clock
        self._pending: dict[str, Aggregation] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.uri = f"sip:{EXPLODER_USER}@{limits.host}"

    # ------------------------------------------------------------------ lifecycle

    async def load(self) -> int:
        """Resume the stored plans and aggregations (after a restart); how many."""
        records = await self._repo.load_all()
        for rec in records:
            try:
                agg = Aggregation.from_json(rec.id, rec.sender, rec.message_id,
                                            rec.deadline, rec.state)
            except ContentError as exc:
                log.error("%s", exc.detail)
                continue
            self._pending[agg.id] = agg
            if not agg.sent:
                self._spawn(self._resume(agg))
            else:
                self._spawn(self._ts2(agg.id, agg.deadline))
        return len(records)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ requests

    async def handle(self, req: SipRequest, requester: str) -> Reply:
        """A MESSAGE to the exploder from the served user ``requester`` (user@domain).
        StorageError propagates (nothing acknowledged)."""
        if _is_notification(req):
            await self._notification(req)
            return Reply(200)
        return await self._explode(req, requester, parse_list_message(req, self._limits))

    async def handle_group(self, req: SipRequest, group: GroupDefinition,
                           requester: str) -> Reply:
        """A MESSAGE to a pre-defined group's URI (§8.3.1.1 step 2, §8.3.2.1 step 4 / 7b):
        one copy per member, the group's identity asserted, the sender in Referred-By."""
        return await self._explode(req, requester, parse_group_message(
            req, group, f"sip:{requester}", self._limits))

    async def handle_session(self, req: SipRequest, target: SessionTarget,
                             requester: str) -> Reply:
        """A MESSAGE to the IM Session Identity of an on-going session (§8.3.2.1 steps 5 and
        7c, IMSpec-PMM-S-006): one copy per other participant, the session's identity
        asserted, the sender in Referred-By."""
        return await self._explode(req, requester, parse_session_message(
            req, target, self._limits))

    async def _explode(self, req: SipRequest, requester: str,
                       parsed: ListMessage | Reply) -> Reply:
        if isinstance(parsed, Reply):
            return parsed
        dr = parsed.disposition()
        cpim = parsed.cpim
        sender_uri = str(cpim.from_addr.uri) if cpim is not None and cpim.from_addr \
            else f"sip:{requester}"
        dt = cpim.datetime if cpim is not None else None
        agg = Aggregation(
            secrets.token_hex(8), requester, sender_uri,
            (cpim.imdn_message_id if cpim is not None else None) or "",
            dt.text if dt is not None else "", self._clock() + self._limits.ts2,
            recipients_of(parsed.recipients), dr.positive_delivery, dr.negative_delivery,
            request=req.to_bytes())
        await self._put(agg)  # write before the 202 (§8.3.1.1 step 12)
        self._pending[agg.id] = agg
        self._spawn(self._fan_out(agg, parsed, req))
        return Reply(202)

    async def _resume(self, agg: Aggregation) -> None:
        try:
            req = parse_message(agg.request)
        except ProtocolError as exc:
            log.error("stored exploder request %s unreadable: %s", agg.id, exc.detail)
            return
        if not isinstance(req, SipRequest):
            return
        parsed = await self._parse_again(req, agg.sender)
        if isinstance(parsed, Reply):
            await self._repo.delete(agg.id)
            return
        await self._fan_out(agg, parsed, req)

    async def _parse_again(self, req: SipRequest, sender: str) -> ListMessage | Reply:
        """A stored request after a restart: a URI list, or a group's message (the group
        read again: its members now)."""
        uri = req.uri
        user = uri.user_unescaped if isinstance(uri, SipUri) else None
        if user is None or user.lower() == EXPLODER_USER.lower() or self._groups is None:
            return parse_list_message(req, self._limits)
        group = await self._groups.group(f"sip:{user}@{self._limits.host}")
        if group is None:
            return Reply(404)
        return parse_group_message(req, group, f"sip:{sender}", self._limits)

    async def _fan_out(self, agg: Aggregation, parsed: ListMessage, req: SipRequest) -> None:
        """§8.3.1.1 step 10 / §8.3.2.1: one copy per recipient through its terminating PF."""
        from_value = req.headers.get("From") or f"<sip:{agg.sender}>"
        from_value = _without_tag(from_value)
        originator = f"sip:{agg.sender}"
        host = self._limits.host
        copies = [build_copy(parsed, e, from_value=from_value, originator=originator,
                             exploder=self.uri, call_id=f"{secrets.token_hex(8)}@{host}",
                             from_tag=secrets.token_hex(4)) for e in parsed.recipients]
        statuses = await asyncio.gather(*(self._send(c) for c in copies))
        async with self._lock:
            cur = self._pending.get(agg.id, agg)
            for entry, status in zip(parsed.recipients, statuses, strict=True):
                if status >= 300 and cur.waiting_for(entry.uri):
                    cur = cur.with_failure(entry.uri, status)  # §8.3.1.4
            cur = _sent(cur)
            self._pending[agg.id] = cur
            if not (cur.positive or cur.negative) or cur.complete:
                await self._finish(cur)
                return
            try:
                await self._put(cur)
            except StorageError as exc:
                log.error("exploder store failure: %s", exc)
        self._spawn(self._ts2(cur.id, cur.deadline))

    async def _send(self, copy: SipRequest) -> int:
        try:
            status = await self._courier.terminate(copy)
            plain = plain_copy(copy) if status == 415 else None
            if plain is not None:
                # a plain SIP client (baresip) takes the text without CPIM and IMDN
                status = await self._courier.terminate(plain)
            return status
        except (ProtocolError, StorageError) as exc:
            log.info("copy to %s not handed over: %s", copy.uri, exc)
            return 500

    async def _ts2(self, id_: str, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self._clock()))
        async with self._lock:
            agg = self._pending.get(id_)
            if agg is not None:
                await self._finish(agg)  # §8.3.1.3: report what was kept

    async def _notification(self, req: SipRequest) -> None:
        """§8.3.1.2: keep a member's delivery IMDN, or forward it when no Ts2 runs."""
        try:
            cpim = parse_cpim(req.body)
            doc = parse_imdn(cpim.body)
        except ContentError as exc:
            log.info("unreadable IMDN at the exploder: %s", exc.detail)
            return
        member = doc.original_recipient_uri or doc.recipient_uri or \
            (str(cpim.from_addr.uri) if cpim.from_addr else "")
        async with self._lock:
            for agg in self._pending.values():
                if agg.message_id == doc.message_id \
                        and doc.kind is NotificationType.DELIVERY and agg.waiting_for(member):
                    cur = agg.with_status(member, doc.status)
                    self._pending[cur.id] = cur
                    if cur.complete:
                        await self._finish(cur)  # §15.1: all notifications arrived
                    else:
                        await self._put(cur)
                    return
        await self._forward(cpim, req)  # §8.3.1.2 step 1

    async def _finish(self, agg: Aggregation) -> None:
        self._pending.pop(agg.id, None)
        now = CpimDateTime.from_datetime(datetime.fromtimestamp(self._clock(), UTC)
                                         .replace(microsecond=0))
        report = aggregated_report(agg.reported(), from_uri=self.uri,
                                   message_id=secrets.token_hex(8), now=now) \
            if agg.positive or agg.negative else None
        if report is not None:
            await self._deliver(agg.sender_uri, report)
        try:
            await self._repo.delete(agg.id)
        except StorageError as exc:
            log.error("exploder store failure: %s", exc)

    async def _forward(self, cpim: CpimMessage, req: SipRequest) -> None:
        to = cpim.to_addrs
        if not to:
            return
        await self._deliver(str(to[0].uri), cpim, from_value=req.headers.get("From"))

    async def _deliver(self, target: str, cpim: CpimMessage,
                       from_value: str | None = None) -> None:
        h = Headers()
        h.add("Max-Forwards", "70")
        h.add("From", f"{_without_tag(from_value) if from_value else f'<{self.uri}>'};"
                      f"tag={secrets.token_hex(4)}")
        h.add("To", f"<{target}>")
        h.add("Call-ID", f"{secrets.token_hex(8)}@{self._limits.host}")
        h.add("CSeq", "1 MESSAGE")
        h.add("Accept-Contact", "*;+g.oma.sip-im")
        h.add("Content-Type", "message/cpim")
        try:
            msg = SipRequest("MESSAGE", target, h, cpim.to_bytes())
            status = await self._courier.originate(msg)
        except (ProtocolError, StorageError) as exc:
            log.info("IMDN to %s not sent: %s", target, exc)
            return
        if status >= 300:
            log.info("IMDN to %s: %d", target, status)

    async def _put(self, agg: Aggregation) -> None:
        await self._repo.put(AggregationRecord(agg.id, agg.sender, agg.message_id,
                                               agg.deadline, agg.to_json()))


def _sent(agg: Aggregation) -> Aggregation:
    return replace(agg, sent=True, request=b"")


def _without_tag(value: str) -> str:
    head, sep, params = value.partition(">")
    if not sep:
        return value.split(";tag=", 1)[0]
    kept = [p for p in params.split(";") if p and not p.strip().lower().startswith("tag=")]
    return head + ">" + "".join(";" + p for p in kept)


def _is_notification(req: SipRequest) -> bool:
    if (req.content_type or "") != "message/cpim":
        return False
    try:
        cpim = parse_cpim(req.body)
    except ContentError:
        return False
    disposition = (cpim.content_disposition or "").split(";", 1)[0].strip().lower()
    ctype = (cpim.content_type or "").split(";", 1)[0].strip().lower()
    return disposition == "notification" or ctype == IMDN_CONTENT_TYPE

