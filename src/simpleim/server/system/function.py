"""The IM server's System Messages (OMA SIMPLE IM §5.4, §15 Ts1, §6.1.1.1 step 2).

An operator queues a System Message for a user (``simpleim admin system-message``, written
to the store); the server sends the queued ones (:meth:`SystemMessageFunction.dispatch`,
from its periodic loop): one SIP MESSAGE per recipient (§5.4 step 1) with
``Accept-Contact: *;+g.oma.sip-im.system-message`` (step 2), the Request-URI the user's
registered address (step 4, the core puts the contacts in), the IM server's identity
``sip:System@DOMAIN`` as From and P-Asserted-Identity (step 5) and the release version as
``User-Agent: IM-serv/OMA1.0`` (step 6 says Server, which RFC 3261 §20.35 defines for
responses only).  A message that asks for an answer starts Ts1 when it is sent (step 7):
the user answers with a MESSAGE to ``sip:System@DOMAIN`` (:meth:`~.answer`); until then,
once Ts1 has run out, the user's requests are refused (:meth:`~.blocked`, §6.1.1.1 step 2:
403 with Error-Info).  A user who is not registered gets the message when next
registered (it stays queued).  Deadlines live in the store (a restart keeps them).

A queued message with a service type goes into a running IM conference instead (§7.2.3.5,
:class:`ConferenceNotices`: the Controlling Function sends it in each participant's MSRP
session); one for a conference that is not running is dropped with a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from simpleim.errors import ProtocolError
from simpleim.server.roles import SERVER_PRODUCT, Reply, server_request_headers
from simpleim.sip.message import SipRequest
from simpleim.sip.uri import parse_uri
from simpleim.store.system import SystemMessageRecord, SystemMessageRepository

__all__ = ["SYSTEM_MESSAGE_TAG", "SYSTEM_USER", "ConferenceNotices", "SystemConfig",
           "SystemMessageFunction", "SystemSender"]

log = logging.getLogger("simpleim.server.system")

#: §5.4 step 2: the feature tag that marks a System Message.
SYSTEM_MESSAGE_TAG = "+g.oma.sip-im.system-message"
#: The user part of the IM server identity that sends System Messages and takes answers.
SYSTEM_USER = "System"


class SystemSender(Protocol):
    """What the function asks of the SIP/IP core."""

    async def deliver(self, aor: str, request: SipRequest) -> int:
        """Send ``request`` to the registered contacts of ``aor``; the best final status
        (480 when none is registered)."""


class ConferenceNotices(Protocol):
    """What the function asks of the Controlling Function (§7.2.3.5)."""

    def announce(self, uri: str, body: bytes, content_type: str, service_type: str) -> int:
        """Send a system message into the running conference ``uri``; how many
        participants got it (-1: no such conference here)."""


@dataclass(frozen=True, slots=True)
class SystemConfig:
    domain: str


class SystemMessageFunction:
    def __init__(self, repository: SystemMessageRepository, sender: SystemSender,
                 config: SystemConfig, clock: Callable[[], float]) -> None:
        self._repo = repository
        self._sender = sender
        self._config = config
        self._clock = clock
        # aor -> the earliest Ts1 deadline of an unanswered System Message
        self._deadlines: dict[str, float] = {}
        self._conferences: ConferenceNotices | None = None

    def attach_conferences(self, conferences: ConferenceNotices) -> None:
        """The Controlling Function that sends the system messages into conferences."""
        self._conferences = conferences

    @property
    def identity(self) -> str:
        return f"sip:{SYSTEM_USER}@{self._config.domain}"

    async def load(self) -> int:
        """The deadlines of sent, unanswered System Messages (at start); how many users."""
        self._deadlines.clear()
        for record in await self._repo.awaiting_answer():
            if record.respond_by is not None:
                self._note(record.aor, record.respond_by)
        return len(self._deadlines)

    def _note(self, aor: str, respond_by: float) -> None:
        current = self._deadlines.get(aor)
        self._deadlines[aor] = respond_by if current is None else min(current, respond_by)

    def blocked(self, aor: str, now: float) -> bool:
        """§6.1.1.1 step 2: an answer to a System Message is due and Ts1 has run out."""
        deadline = self._deadlines.get(aor)
        return deadline is not None and deadline <= now

    def _request(self, record: SystemMessageRecord) -> SipRequest:
        h = server_request_headers("MESSAGE", self.identity, f"sip:{record.aor}",
                                   self._config.domain)
        h.add("Accept-Contact", f"*;{SYSTEM_MESSAGE_TAG}")  # §5.4 step 2
        h.add("P-Asserted-Identity", f"<{self.identity}>")  # step 5
        h.add("User-Agent", SERVER_PRODUCT)  # step 6 (Appendix F.1)
        h.add("Content-Type", record.content_type)
        uri = parse_uri(f"sip:{record.aor}", "Request-URI")  # step 4
        return SipRequest("MESSAGE", uri, h, record.body.encode("utf-8"))

    async def dispatch(self) -> int:
        """Send the queued System Messages to users who are registered; how many were
        taken (2xx).  StorageError propagates."""
        sent = 0
        for record in await self._repo.unsent():
            if record.service_type is not None:
                sent += await self._into_conference(record)
                continue
            try:
                status = await self._sender.deliver(record.aor, self._request(record))
            except ProtocolError as exc:
                log.info("system message %s to %s not sent: %s", record.id, record.aor,
                         exc.detail)
                continue
            if not 200 <= status < 300:
                continue  # not registered or refused: tried again later
            now = self._clock()
            respond_by = None if record.ts1 is None else now + record.ts1
            await self._repo.mark_sent(record.id, now, respond_by)
            if respond_by is not None:
                self._note(record.aor, respond_by)  # §5.4 step 7: Ts1 starts
            sent += 1
        return sent

    async def _into_conference(self, record: SystemMessageRecord) -> int:
        """§7.2.3.5: one queued system message into a running conference; marked sent
        once handed to its participants' sessions, or dropped when the conference is not
        running here (it will not come back: a conference URI is not reused)."""
        count = -1
        if self._conferences is not None:
            count = self._conferences.announce(record.aor, record.body.encode("utf-8"),
                                               record.content_type,
                                               record.service_type or "SysAdmin")
        if count < 0:
            log.warning("system message %s: no conference %s here: dropped", record.id,
                        record.aor)
        else:
            log.info("system message %s (%s) sent to %d participants of %s", record.id,
                     record.service_type, count, record.aor)
        await self._repo.mark_sent(record.id, self._clock(), None)
        return 1 if count > 0 else 0

    async def answer(self, req: SipRequest, requester: str | None) -> Reply:
        """A MESSAGE of a served user to ``sip:System@DOMAIN``: the answer to the System
        Messages waiting for one (Ts1 stops, §15)."""
        if requester is None:
            return Reply(403)
        if req.method != "MESSAGE":
            return Reply(405, headers=(("Allow", "MESSAGE"),))
        await self._repo.answer(requester, self._clock())  # durable before the 200
        self._deadlines.pop(requester, None)
        return Reply(200)


