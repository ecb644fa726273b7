"""The Controlling Function as conference focus, running (OMA SIMPLE IM §7.2, RFC 4579).

:class:`ConferenceFocus` drives the pure core (:mod:`.conference`) with I/O:

* an INVITE to ``sip:Conference-Factory@DOMAIN`` with a recipient list (RFC 5366) creates an
  ad-hoc conference: its IM Session Identity ``sip:conf~<id>@DOMAIN`` is stored (before any
  200), each listed user is invited through the server's user agent (From / P-Asserted-
  Identity / Referred-By = the inviter, Contact = the conference with ``isfocus``, §7.2.2.1),
  and the inviter gets its 200 (Contact with ``isfocus``, §7.2.1.1) when the first invitee
  answered - or the lowest failure when all refused (§7.2.1.2);
* every participant's MSRP session ends here, in one :class:`~simpleim.server.media.Room`
  whose policy is the MSRP switch (:func:`.conference.switch_targets`, §7.2.3);
* SUBSCRIBE ``Event: conference`` to the conference URI goes to the
  :class:`~simpleim.server.notifier.Notifier` with the RFC 4575 renderer: full state first,
  partial state per change (joined, left, booted, failed);
* REFER in a participant's dialog adds (``Refer-To`` without method or ``method=INVITE``,
  §7.2.1.7) or removes (``method=BYE``, §7.2.1.8) a participant, with the implicit
  ``refer`` subscription's NOTIFYs (``message/sipfrag``, RFC 3515 §2.4.4);
* BYE from a participant (§7.2.1.10), then the release policy (§7.2.2.8): the conference
  ends when its initiator leaves or too few remain - everyone is BYEd (§7.2.2.5) and the
  subscriptions end with ``noresource`` (§7.2.2.11);
* an INVITE to the conference URI rejoins a running conference (§7.2.1.5) for users it
  invited; a released or lost one is 403 + ``123 Session does not exist``;
* an INVITE to a pre-defined group's URI (read from the
  :class:`~simpleim.server.xdm.api.GroupDirectory`) starts the group's session per its
  policy or joins the running one (§7.2.1.3 / §7.2.1.4, decisions in :mod:`.predefined`);
* a file transfer INVITE to the conference URI goes to the participants that take files
  (CPM CR "File Transfer in Group Chat", :mod:`.groupft`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from simpleim.content.conference_info import CONFERENCE_INFO_CONTENT_TYPE
from simpleim.content.resource_lists import Entry
from simpleim.errors import ContentError, StorageError
from simpleim.sdp import MsrpMedia
from simpleim.server.media import (
    Leg,
    MediaPolicy,
    MediaSessions,
    OfferParams,
    Overflow,
    Recorder,
    Room,
    ServerSession,
    SessionRefused,
    msrp_offer,
)
from simpleim.server.notifier import Notifier
from simpleim.server.roles import (
    W_FUNCTION_NOT_ALLOWED,
    W_SERVICE_NOT_AUTHORISED,
    Reply,
    im_warning,
)
from simpleim.server.xdm.api import GroupDefinition, GroupDirectory
from simpleim.sip.replaces import Replaces
from simpleim.sip.subscription import Subscription
from simpleim.sip.uri import SipUri
from simpleim.store.conferences import ConferenceRecord, ConferenceRepository
from simpleim.transport.sip import IncomingRequest

from .chatswitch import ConferenceSwitch, is_im_node
from .conference import (
    CONFERENCE_FACTORY_USER,
    CONFERENCE_PREFIX,
    Conference,
    ConferenceLimits,
    ConferenceStatus,
    ParticipantInput,
    ParticipantStatus,
    conference_document,
    is_conference_user,
    parse_adhoc_invite,
)
from .exploder import SessionTarget
from .extend import DialogMap, replaces_headers, split_recipients
from .groupft import GroupFileTransfer, ft_support, ft_targets, is_file_transfer
from .large import GroupLargeMessages, LargeTarget, group_large_target, is_large_message
from .predefined import (
    group_conference,
    join_refusal,
    joined_display,
    rejoin_refusal,
    start_refusal,
)
from .privacy import anonymity_refusal, chat_alias, presented, wants_anonymity
from .refer import Referrals
from .running import Running, sip_aor

__all__ = ["ConferenceFocus", "W_SESSION_DOES_NOT_EXIST"]

log = logging.getLogger("simpleim.server.controlling")

#: §7.2.1.5 step 1
W_SESSION_DOES_NOT_EXIST = "123 Session does not exist"
#: the IM feature tag and the focus tag of the Contact (§7.2.1.1 step 5, RFC 4579 §3), and
#: the file transfer IARI the focus relays (CPM CR "File Transfer in Group Chat" Change 1
#: step 3; no thumbnail or store-and-forward IARI: it relays neither)
FOCUS_TAGS = (';+g.oma.sip-im;isfocus;'
              '+g.3gpp.iari-ref="urn%3Aurn-7%3A3gpp-application.ims.iari.rcse.ft"')


def _now_text(clock: float) -> str:
    return datetime.fromtimestamp(clock, UTC).replace(microsecond=0).isoformat() \
        .replace("+00:00", "Z")


@runtime_checkable
class ConferenceRecorder(Protocol):
    """The Conversation History Function's recorder as the focus starts it for an inviter
    who listed ``sip:History@DOMAIN`` (§13.1.1 step 1b)."""

    def want(self, room: Room, owner: str, filename: str | None = None) -> None:
        """Record ``room`` for ``owner`` from the moment the owner is in it."""


class ConferenceFocus:
    """``sip:Conference-Factory@DOMAIN`` and the conferences it creates."""

    PACKAGE = "conference"

    def __init__(self, repo: ConferenceRepository, media: MediaSessions, notifier: Notifier,
                 limits: ConferenceLimits, clock: Callable[[], float],
                 queue_limit: int = 64, groups: GroupDirectory | None = None,
                 recorder: Recorder | None = None,
                 large: GroupLargeMessages | None = None,
                 dialogs: DialogMap | None = None) -> None:
        self._repo = repo
        self._media = media
        self._notifier = notifier
        self._limits = limits
        self._clock = clock
        self._queue_limit = queue_limit
        #: the Conversation History Function's recorder (§13.3.1): it sees the rooms'
        #: messages without being a leg - no participant, not in the NOTIFYs (CH-08)
        self._recorder = recorder
        #: the PF's B2BUA: the dialogs a §7.1.1.6 Replaces names (extend.py)
        self._dialogs = dialogs
        self._running: dict[str, Running] = {}
        #: a pre-defined group's URI -> the conference URI of its running session
        self._by_group: dict[str, str] = {}
        self._groups = groups
        self._files = GroupFileTransfer(media, limits.host, queue_limit=queue_limit)
        #: large message mode to a URI list or a pre-defined group (§9.3)
        self.large = large or GroupLargeMessages(media, limits.host, max_size=16 * 1024 * 1024)
        self._tasks: set[asyncio.Task[None]] = set()
        self.factory_uri = f"sip:{CONFERENCE_FACTORY_USER}@{limits.host}"
        self._refers = Referrals(limits, event=self._event, invite=self._invite_referred,
                                 check_release=self._check_release, group=self._group)

    # ------------------------------------------------------------------ lifecycle
    async def load(self) -> int:
        """After a restart every leg is gone: a stored ad-hoc conference is released (a
        rejoin is then answered 403 + 123); a pre-defined group's session is kept with
        everybody disconnected, so that its IM Session Identity (§7.1.1.9 / §7.2.1.5) and
        the group URI (§7.2.1.4) take the participants back; how many were stored."""
        records = await self._repo.active()
        now = _now_text(self._clock())
        for rec in records:
            try:
                conf = Conference.from_json(rec.uri, rec.state)
            except ContentError as exc:
                log.error("%s", exc.detail)
                continue
            group = conf.group
            if group is None or group in self._by_group:
                await self._put(conf.released())
                continue
            conf = conf.after_restart(now)
            # the Contact comes from the listener of the first request (_join)
            running = Running(conf, Room(queue_limit=self._queue_limit,
                                         overflow=Overflow.DROP, min_legs=0,
                                         recorder=self._recorder, hold_acks=True), "")
            running.room.policy = ConferenceSwitch(running, self._limits)
            running.accepting = False
            self._running[conf.uri] = running
            self._by_group[group] = conf.uri
            await self._put(conf)
            self._limit_length(running)
        return len(records)

    async def close(self) -> None:
        for running in list(self._running.values()):
            for task in running.pending.values():
                task.cancel()
            running.room.end("server shutting down")
        self._files.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def conferences(self) -> list[Conference]:
        return [r.conf for r in self._running.values()]

    def conference_room(self, user: str) -> Room | None:
        """The room of the running conference whose URI has the user part ``user``."""
        running = self._running.get(self._uri_of(user))
        return running.room if running is not None else None

    def conference_of(self, room: Room) -> str | None:
        """The URI of the running conference whose room is ``room``."""
        return next((uri for uri, r in self._running.items() if r.room is room), None)

    def running_room(self, uri: str) -> tuple[str, Room, dict[str, Leg]] | None:
        """A running conference by its address or its group's, whatever host it names:
        (its URI, its room, participant URI -> leg); for :class:`.notices.RoomNotices`."""
        user = uri.strip().strip("<>").split(";", 1)[0].removeprefix("sip:").rpartition("@")[0]
        running = self._running.get(self._uri_of(user)) if user else None
        group = self._by_group.get(f"sip:{user}@{self._limits.host}")
        if running is None and group is not None:
            running = self._running.get(group)
        return None if running is None else (running.conf.uri, running.room, running.legs)

    # ------------------------------------------------------------------ requests
    @staticmethod
    def serves(user: str | None) -> bool:
        """The Request-URI user parts of the focus: the factory and the conferences."""
        return bool(user) and (user.lower() == CONFERENCE_FACTORY_USER.lower()  # type: ignore[union-attr]
                               or is_conference_user(user))

    async def handle(self, inc: IncomingRequest, requester: str) -> Reply | None:
        """An initial request to the factory or a conference URI from the served user
        ``requester`` (user@domain); a Reply to send, or None when answered here."""
        req = inc.request
        uri = req.uri
        user = uri.user_unescaped if isinstance(uri, SipUri) else None
        if user is not None and user.lower() == CONFERENCE_FACTORY_USER.lower():
            if req.method != "INVITE":
                return Reply(405, headers=(("Allow", "INVITE"),))
            if is_large_message(req):
                await self.large_adhoc(inc, requester)          # §9.1.1.2 step 3b
                return None
            await self._create(inc, requester)
            return None
        key = self._uri_of(user or "")
        running = self._running.get(key)
        if running is None:
            record = await self._repo.get(key)
            if record is None:
                return Reply(404)                                   # §11.2
            if req.method == "INVITE":
                return self._refuse(403, W_SESSION_DOES_NOT_EXIST)  # §7.2.1.5 step 1
            return Reply(404)
        if req.method == "INVITE" and is_file_transfer(req):
            await self._file_transfer(inc, running, requester)
            return None
        if req.method == "INVITE":
            await self._rejoin(inc, running, requester)
            return None
        if req.method == "SUBSCRIBE":
            return self._subscribe(inc, running, requester)
        return Reply(405, headers=(("Allow", "INVITE, SUBSCRIBE, MESSAGE"),))

    def session_target(self, user: str, requester: str) -> SessionTarget | Reply:
        """§8.3.1.1 steps 3 and 5 for a MESSAGE to the IM Session Identity ``sip:USER@..``:
        403 + 123 when no such session is on-going, 403 + 127 for a requester who is not
        in it; else its other connected participants (§8.3.2.1 step 7c)."""
        running = self._running.get(self._uri_of(user))
        if running is None:
            return self._refuse(403, W_SESSION_DOES_NOT_EXIST)
        me = running.conf.participant(sip_aor(requester))
        if me is None or me.status is not ParticipantStatus.CONNECTED:
            return self._refuse(403, W_SERVICE_NOT_AUTHORISED)
        return SessionTarget(running.conf.uri, tuple(
            Entry(p.uri) for p in running.conf.connected if p is not me), me.shown is not None)

    def _uri_of(self, user: str) -> str:
        return f"sip:{user.lower()}@{self._limits.host}"

    def _refuse(self, status: int, text: str) -> Reply:
        return Reply(status, headers=(("Warning", im_warning(self._limits.host, text)),))

    def _contact(self, inc: IncomingRequest, conf_uri: str) -> str:
        """The conference URI on the listener the request came in on (routable by the
        client), with the focus tags (§7.2.1.1 step 5, §7.2.2.1 step 6)."""
        local = inc.local
        user = conf_uri.split(":", 1)[1].split("@", 1)[0]
        host = f"[{local.host}]" if ":" in local.host else local.host
        transport = "" if local.transport == "udp" else f";transport={local.transport}"
        return f"<sip:{user}@{host}:{local.port}{transport}>{FOCUS_TAGS}"

    # ------------------------------------------------------------------ large messages (§9.3)
    async def large_adhoc(self, inc: IncomingRequest, requester: str) -> None:
        """§9.3.1.1 step 1: a large message to a URI list (§7.2.1.2 checks), one session per
        listed user (§9.3.2.1)."""
        parsed = parse_adhoc_invite(inc.request, self._limits)
        if isinstance(parsed, Reply):
            self._media.reject(inc, parsed.status, parsed.reason, headers=parsed.headers)
            return
        await self.large.run(inc, LargeTarget(sip_aor(requester),
                                              tuple(e.uri for e in parsed.recipients),
                                              parsed.anonymous))

    async def _large_group(self, inc: IncomingRequest, group: GroupDefinition,
                           requester: str) -> None:
        """§9.3.1.1 step 2: a large message to a pre-defined group (§7.2.1.3 checks), one
        session per member but the sender (§9.3.2.1 step 3)."""
        target = group_large_target(group, inc.request, sip_aor(requester), self._limits.host)
        if isinstance(target, Reply):
            self._media.reject(inc, target.status, target.reason, headers=target.headers)
            return
        await self.large.run(inc, target)

    # ------------------------------------------------------------------ ad-hoc creation
    async def _create(self, inc: IncomingRequest, requester: str) -> None:
        req = inc.request
        parsed = parse_adhoc_invite(req, self._limits)
        if isinstance(parsed, Reply):
            self._media.reject(inc, parsed.status, headers=parsed.headers)
            return
        remote = msrp_offer(req)
        if remote is None:
            self._media.reject(inc, 488, "no MSRP stream in the offer")   # §7.2.1.2 step 7
            return
        now = self._clock()
        creator = sip_aor(requester)
        conf_uri = self._uri_of(f"{CONFERENCE_PREFIX}{secrets.token_hex(8)}")
        conf = Conference(conf_uri, creator, created=now,
                          subject=req.headers.get("Subject"))
        alias = chat_alias(conf, creator, req.from_addr.display_name, parsed.anonymous)
        conf, _ = conf.step(creator, ParticipantInput.JOINED, when=_now_text(now),
                            display=alias.display, shown=alias.shown)   # §7.2.3.2
        recipients, replaces = split_recipients(parsed.recipients, self._dialogs, requester)
        for entry in recipients:
            conf, _ = conf.step(entry.uri, ParticipantInput.INVITED, when=_now_text(now),
                                display=entry.display_name, by=creator)
        # §13.1.1 step 1b: History@DOMAIN in the list - the CHF records for the inviter
        await self._start(inc, conf, recipients, remote,
                          record_for=requester if parsed.record else None, replaces=replaces,
                          record_name=parsed.record_name)

    async def _start(self, inc: IncomingRequest, conf: Conference,
                     recipients: Sequence[Entry], remote: MsrpMedia,
                     record_for: str | None = None,
                     group: GroupDefinition | None = None,
                     replaces: dict[str, Replaces] | None = None,
                     record_name: str | None = None) -> None:
        """A new conference: stored, its invitations sent (§7.2.2.2), and the initiator
        answered when the first invitee answered (§7.2.1.2 / §7.2.1.3), at once when the
        session invites nobody (a chat room)."""
        req = inc.request
        creator = conf.creator
        conf_uri = conf.uri
        inc.reply(100)
        running = Running(conf, Room(queue_limit=self._queue_limit, overflow=Overflow.DROP,
                                     min_legs=0, recorder=self._recorder, hold_acks=True),
                          self._contact(inc, conf_uri), group=group)
        running.room.policy = ConferenceSwitch(running, self._limits)
        running.replaces.update(replaces or {})            # §7.1.1.6
        self._running[conf_uri] = running
        if record_for is not None and isinstance(self._recorder, ConferenceRecorder):
            self._recorder.want(running.room, record_for, record_name)  # before any 200
        if conf.group is not None:
            self._by_group[conf.group] = conf_uri
        try:
            await self._put(conf)                                # before any 200
        except StorageError as exc:
            log.error("conference store failure: %s", exc)
            self._forget(running)
            self._media.reject(inc, 500)
            return
        self._limit_length(running)
        if not recipients:
            await self._accept_leg(inc, running, creator, remote, headers=(
                ("P-Asserted-Identity", f"<{conf.group or self.factory_uri}>"),))
            running.accepting = False
            self._check_release(running)
            return
        first: asyncio.Future[ServerSession | None] = asyncio.get_running_loop().create_future()
        invites = [self._invite(running, e, creator, remote, req.headers, first)
                   for e in recipients]
        tasks = [self._spawn(t) for t in invites]
        for entry, task in zip(recipients, tasks, strict=True):
            running.pending[entry.uri] = task
        statuses: list[int] = []

        def done(status: int) -> None:
            statuses.append(status)
            if len(statuses) == len(tasks) and not first.done():
                first.set_result(None)

        running.report = done
        cancelled: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_cancel(_inc: IncomingRequest) -> None:
            if not cancelled.done():
                cancelled.set_result(None)
            inc.reply(487)

        inc.on_cancel = on_cancel
        waits: list[asyncio.Future[Any]] = [first, cancelled]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        running.report = None
        if not first.done() or inc.cancelled:
            await self._release(running, "cancelled by the initiator")   # §7.2.2.4
            return
        if first.result() is None:
            # §7.2.1.2: every invitee refused -> the lowest final status to the inviter
            status = min(statuses) if statuses else 480
            self._media.reject(inc, status if 300 <= status < 700 else 480)
            await self._release(running, "nobody answered")
            return
        await self._accept_leg(inc, running, creator, remote, headers=(
            ("P-Asserted-Identity", f"<{conf.group or self.factory_uri}>"),))  # §7.2.1.1 4a
        running.accepting = False
        self._check_release(running)

    async def _invite(self, running: Running, entry: Entry, inviter: str, remote: MsrpMedia,
                      original: Any, first: asyncio.Future[ServerSession | None] | None,
                      referred_by: str | None = None) -> None:
        """§7.2.2.1 / §7.2.2.2: invite one user; on 200 put its leg in the room."""
        conf = running.conf
        # §7.2.3.2: an anonymous inviter / referrer is shown by its alias identity only
        inviter, inviter_name = presented(conf, inviter)
        referrer, _ = presented(conf, referred_by) if referred_by else (inviter, None)
        headers = [("Accept-Contact", "*;+g.oma.sip-im"),
                   ("P-Asserted-Identity", f"<{inviter}>"),
                   ("Referred-By", f"<{referrer}>"),
                   ("Supported", "timer"),
                   *replaces_headers(running.replaces.pop(entry.uri, None))]   # §7.1.1.6
        for name in ("Conversation-ID", "Contribution-ID", "Privacy"):
            value = original.get(name) if original is not None else None
            if value:
                headers.append((name, value))
        if conf.subject:
            headers.append(("Subject", conf.subject))      # the request's or the group's
        contact = running.contact
        status = 200
        try:
            session = await self._media.invite(
                entry.uri, inviter, offer=OfferParams.mirror(remote), headers=headers,
                contact=contact, display_name=inviter_name)
        except SessionRefused as exc:
            status = exc.status or 480
            session = None
        except asyncio.CancelledError:
            status = 487
            session = None
        finally:
            running.pending.pop(entry.uri, None)
        report = running.report
        if session is None:
            log.info("conference %s: %s refused (%d)", conf.uri, entry.uri, status)
            await self._event(running, entry.uri, ParticipantInput.REFUSED)
            if report is not None:
                report(status)
            self._check_release(running)
            self._spawn(self._refers.outcome(running, entry.uri, status))
            return
        if running.conf.status is ConferenceStatus.RELEASED:
            await session.bye("the conference has ended")
            return
        self._join_leg(running, entry.uri, session, session.response.headers.get_all("Contact"),
                       session.response.headers.get_all("User-Agent")
                       + session.response.headers.get_all("Server"))
        await self._event(running, entry.uri, ParticipantInput.ANSWERED)
        if first is not None and not first.done():
            first.set_result(session)
        self._spawn(self._refers.outcome(running, entry.uri, 200))

    async def _accept_leg(self, inc: IncomingRequest, running: Running, who: str,
                          remote: MsrpMedia, headers: Sequence[tuple[str, str]] = ()) -> bool:
        """Answer an INVITE of a participant (creator or rejoin) with our MSRP path."""
        policy = MediaPolicy(accept_types=remote.accept_types or ("message/cpim",),
                             accept_wrapped_types=remote.accept_wrapped_types or ("*",),
                             max_size=remote.max_size)
        try:
            session = await self._media.accept(inc, policy, headers=headers,
                                               contact=running.contact)
        except SessionRefused as exc:
            log.info("conference %s: %s not joined: %s", running.conf.uri, who, exc)
            await self._event(running, who, ParticipantInput.LEFT)
            return False
        self._join_leg(running, who, session, inc.request.headers.get_all("Contact"),
                       inc.request.headers.get_all("User-Agent"))
        return True

    def _join_leg(self, running: Running, who: str, session: ServerSession,
                  contacts: Sequence[str], agents: Sequence[str]) -> None:
        running.ft[who] = ft_support(contacts)                # CR Change 1
        running.im_nodes[who] = is_im_node(agents)            # §7.2.3.4 b)
        old = running.legs.get(who)
        if old is not None:
            running.room.remove(old, "replaced by a new session", bye=True)
        leg = running.room.add(session, who)
        running.legs[who] = leg
        session.handle_requests(lambda inc: self._in_dialog(running, who, inc))
        self._spawn(self._watch(running, who, leg))

    async def _watch(self, running: Running, who: str, leg: Leg) -> None:
        """The participant's session ended: BYE from it (§7.2.1.10) or lost."""
        await leg.session.closed.wait()
        if running.legs.get(who) is not leg:
            return
        running.legs.pop(who, None)
        if running.conf.status is ConferenceStatus.RELEASED:
            return
        event = ParticipantInput.LEFT if leg.session.ended_by_peer or leg.left is None \
            else ParticipantInput.REMOVED
        await self._event(running, who, event)
        self._check_release(running)

    # ------------------------------------------------------------------ state changes
    async def _event(self, running: Running, who: str, event: ParticipantInput,
                     by: str | None = None, display: str | None = None,
                     shown: str | None = None) -> None:
        """One participant change: stored, then the partial NOTIFY (§7.2.2.10)."""
        async with running.lock:
            conf, changed = running.conf.step(who, event, when=_now_text(self._clock()),
                                              by=by, display=display, shown=shown)
            if changed is None:
                return
            running.conf = conf
            try:
                await self._put(conf)
            except StorageError as exc:
                log.error("conference store failure: %s", exc)
            self._notifier.changed(conf.uri, self.PACKAGE, (changed.uri,))

    def _check_release(self, running: Running) -> None:
        if running.conf.status is ConferenceStatus.RELEASED or running.accepting:
            return
        reason = running.conf.release_reason(self._limits)
        if reason is not None:
            self._spawn(self._release(running, reason))

    async def _release(self, running: Running, reason: str) -> None:
        """§7.2.2.5: BYE everyone, end the subscriptions (§7.2.2.11), store it."""
        if running.conf.status is ConferenceStatus.RELEASED:
            return
        log.info("conference %s released: %s", running.conf.uri, reason)
        running.conf = running.conf.released()
        for task in list(running.pending.values()):
            task.cancel()
        running.room.end(reason)
        self._notifier.gone(running.conf.uri, self.PACKAGE)
        self._forget(running)
        try:
            await self._put(running.conf)
        except StorageError as exc:
            log.error("conference store failure: %s", exc)

    def _limit_length(self, running: Running) -> None:
        """§7.2.2.8 1e: a session with a max length is released when it has lasted it."""
        length = running.conf.max_length
        if length is not None:
            self._spawn(self._expire(running, running.conf.created + length))

    async def _expire(self, running: Running, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self._clock()))
        await self._release(running, "the session lasted its max length (§7.2.2.8 1e)")

    def _forget(self, running: Running) -> None:
        conf = running.conf
        if self._running.get(conf.uri) is running:
            del self._running[conf.uri]
        if conf.group is not None and self._by_group.get(conf.group) == conf.uri:
            del self._by_group[conf.group]

    async def _put(self, conf: Conference) -> None:
        await self._repo.put(ConferenceRecord(conf.uri, conf.creator, conf.status.value,
                                              self._clock(), conf.to_json()))

    # ------------------------------------------------------------------ rejoin (§7.2.1.5)
    async def _rejoin(self, inc: IncomingRequest, running: Running, requester: str) -> None:
        who = sip_aor(requester)
        conf = running.conf
        known = conf.participant(who)
        group: GroupDefinition | None = None
        if conf.group is not None:
            # §7.2.1.5 steps 2-3: a group's session takes its members back, others per
            # <join-handling>, within <max-participant-count>
            group = await self._group(conf.group)
            running.group = group or running.group
            refusal = rejoin_refusal(group, conf, who, self._limits)
            if refusal is not None:
                self._media.reject(inc, refusal.status, headers=refusal.headers)
                return
        elif known is None:
            # §7.2.2.9: only users invited to the ad-hoc conference may join
            self._media.reject(inc, 403, headers=(
                ("Warning", im_warning(self._limits.host, W_FUNCTION_NOT_ALLOWED)),))
            return
        await self._join(inc, running, known.uri if known is not None else who, group)

    async def _join(self, inc: IncomingRequest, running: Running, who: str,
                    group: GroupDefinition | None) -> None:
        """Accept a joining participant's INVITE (§7.2.1.4 steps 7-12, §7.2.1.5 7-13)."""
        remote = msrp_offer(inc.request)
        if remote is None:
            self._media.reject(inc, 488, "no MSRP stream in the offer")
            return
        anonymous = wants_anonymity(inc.request)
        refusal = anonymity_refusal(group if running.conf.group else None, who,
                                    self._limits) if anonymous else None
        if refusal is not None:
            self._media.reject(inc, refusal.status, headers=refusal.headers)   # §7.2.3.2 1
            return
        if not running.contact:
            running.contact = self._contact(inc, running.conf.uri)   # kept over a restart
        given = inc.request.from_addr.display_name
        alias = chat_alias(running.conf, who, given if anonymous
                           else joined_display(group, who, given), anonymous)
        if await self._accept_leg(inc, running, who, remote):
            await self._event(running, who, ParticipantInput.JOINED, display=alias.display,
                              shown=alias.shown)

    async def _file_transfer(self, inc: IncomingRequest, running: Running,
                             requester: str) -> None:
        """CR "File Transfer in Group Chat" Change 3: a participant's file goes to the
        participants that take file transfer, each in a session of its own."""
        who = running.conf.participant(sip_aor(requester))
        if who is None or who.status is not ParticipantStatus.CONNECTED:
            self._media.reject(inc, 403, headers=(
                ("Warning", im_warning(self._limits.host, W_FUNCTION_NOT_ALLOWED)),))
            return
        targets = ft_targets([p.uri for p in running.conf.connected], running.ft, who.uri)
        await self._files.run(inc, who.uri, targets)

    # ------------------------------------------------------------------ pre-defined groups
    async def _group(self, uri: str) -> GroupDefinition | None:
        return None if self._groups is None else await self._groups.group(uri)

    async def handle_group(self, inc: IncomingRequest, group: GroupDefinition,
                           requester: str) -> Reply | None:
        """An initial request to a pre-defined group's URI (§7.2.1.3 / §7.2.1.4): INVITE
        starts the group's session or joins the running one, SUBSCRIBE watches it."""
        req = inc.request
        who = sip_aor(requester)
        conf_uri = self._by_group.get(group.uri)
        running = self._running.get(conf_uri) if conf_uri is not None else None
        if req.method == "SUBSCRIBE":
            if running is None or not group.supports_im:
                return Reply(404)
            return self._subscribe(inc, running, requester)
        if req.method != "INVITE":
            return Reply(405, headers=(("Allow", "INVITE, SUBSCRIBE, MESSAGE"),))
        if is_large_message(req):
            await self._large_group(inc, group, requester)      # §9.1.1.2 step 4
            return None
        if running is not None:
            running.group = group
            refusal = join_refusal(group, req, running.conf, who, self._limits)
            if refusal is not None:
                self._media.reject(inc, refusal.status, refusal.reason,
                                   headers=refusal.headers)
                return None
            await self._join(inc, running, who, group)
            return None
        anonymous = wants_anonymity(req)
        refusal = start_refusal(group, req, who, self._limits) or (
            anonymity_refusal(group, who, self._limits) if anonymous else None)
        if refusal is not None:
            self._media.reject(inc, refusal.status, refusal.reason, headers=refusal.headers)
            return None
        remote = msrp_offer(req)
        if remote is None:
            self._media.reject(inc, 488, "no MSRP stream in the offer")  # §7.2.1.3 step 7
            return None
        now = self._clock()
        start = group_conference(
            group, self._uri_of(f"{CONFERENCE_PREFIX}{secrets.token_hex(8)}"), who, now=now,
            when=_now_text(now), display=req.from_addr.display_name,
            subject=req.headers.get("Subject"), limits=self._limits)
        conf = start.conference
        if anonymous:                                   # §7.2.1.3 step 6, §7.2.3.2
            alias = chat_alias(conf, who, req.from_addr.display_name, True)
            conf, _ = conf.step(who, ParticipantInput.JOINED, when=_now_text(now),
                                display=alias.display, shown=alias.shown)
        await self._start(inc, conf, [Entry(m.uri, m.display_name) for m in start.invitees],
                          remote, group=group)
        return None

    # ------------------------------------------------------------------ SUBSCRIBE
    def _subscribe(self, inc: IncomingRequest, running: Running, requester: str) -> Reply | None:
        """§7.2.1.12: participants may subscribe to the conference state."""
        who = sip_aor(requester)
        if running.conf.participant(who) is None:
            return self._refuse(403, W_FUNCTION_NOT_ALLOWED)        # step 4

        def render(sub: Subscription, keys: tuple[str, ...] | None) -> tuple[str, bytes]:
            # partial state: the participants changed since this subscriber's last NOTIFY
            changed = None if keys is None else tuple(
                p for p in running.conf.participants if p.uri in keys)
            return CONFERENCE_INFO_CONTENT_TYPE, conference_document(
                running.conf, sub.version, sub.subscriber, changed=changed)

        self._notifier.subscribe(inc, packages=(self.PACKAGE,), resource=running.conf.uri,
                                 subscriber=who, contact=running.contact, render=render)
        return None

    # ------------------------------------------------------------------ REFER (§7.2.1.7-8)
    def _in_dialog(self, running: Running, who: str, inc: IncomingRequest) -> bool:
        if inc.request.method != "REFER":
            return False
        self._spawn(self._refers.handle(running, who, inc))
        return True

    def _invite_referred(self, running: Running, entry: Entry, referrer: str,
                         remote: MsrpMedia) -> None:
        running.pending[entry.uri] = self._spawn(self._invite(
            running, entry, running.conf.creator, remote, None, None, referred_by=referrer))
