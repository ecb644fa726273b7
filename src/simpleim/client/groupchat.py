"""Group chat in session mode (OMA SIMPLE IM §7.1.1.3, §7.1.1.11-14; RFC 4579 conference
participant; RFC 5366 recipient-list INVITE; RFC 4575 conference event package).

``await account.groups.start(["bob", "carol"])`` sends one INVITE to the conference factory
(``sip:Conference-Factory@DOMAIN``) with ``Require: recipient-list-invite`` and a
multipart/mixed body of the SDP offer and the recipient list; the focus answers with its
conference URI (Contact with ``isfocus``).  An INVITE whose Contact carries ``isfocus`` is a
group invitation and becomes a :class:`GroupChat` too.  Each group chat subscribes to the
conference state (SUBSCRIBE ``Event: conference`` to the conference URI) and reports every
participant change as a :class:`~simpleim.client.events.ParticipantEvent`; messages are CPIM
with ``To`` the conference URI, and received ones are reported with their sender (the CPIM
From, which the focus checked, §7.2.3.3) as
:class:`~simpleim.client.events.GroupMessageEvent`.  ``add`` / ``remove`` send REFER in the
session's dialog (§7.1.1.7, §7.1.1.14) and wait for the outcome the ``refer`` NOTIFYs carry
(``message/sipfrag``, RFC 3515); ``leave`` unsubscribes and sends BYE (§7.1.1.12).

Chat alias and anonymity (§7.1.1.15): ``join(uri, alias="zed", anonymous=True)`` puts the
alias as display name of the INVITE's From and asks for anonymity with ``Privacy: id`` (the
From keeps the account's address: the server authenticates it and its Participating
Function replaces it by the anonymous URI, §5.1); messages are then sent with the identity
the conference event package gives as ``yourown`` (§7.1.3.2.1 step 4).  ``send_private``
sends a private message (CPIM To = one participant, §7.1.3.2.1 step 3); received ones are
reported with ``private`` set, and every group message with the sender's ``alias``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

from simpleim.content.conference_info import (
    CONFERENCE_INFO_CONTENT_TYPE,
    YOUROWN,
    ConferenceInfo,
    apply_notification,
    parse_conference_info,
)
from simpleim.content.resource_lists import (
    RECIPIENT_LIST_INVITE,
    RESOURCE_LISTS_CONTENT_TYPE,
    Entry,
    ResourceList,
    ResourceLists,
    build_recipient_list,
    recipient_list_headers,
)
from simpleim.errors import ContentError, ProtocolError, SimpleImError, SipParseError
from simpleim.sdp import SessionDescription, chat_stream
from simpleim.sip.dialog import Dialog
from simpleim.sip.multipart import MultipartPart
from simpleim.sip.replaces import Replaces
from simpleim.transport.msrp import MsrpTransferError
from simpleim.transport.sip import IncomingRequest

from .chats import CHAT_ACCEPT_CONTACT
from .context import ClientContext, MessageSink
from .events import GroupMessageEvent, ParticipantEvent
from .features import ICSI_CPM_SESSION
from .filetransfer import FileTransfers, Progress, TransferResult
from .invites import CHAT_CAPS, InviteFacts, InviteRouter, accept, decide, establish, reject, ring
from .pager import Decoded, build_im, build_request, new_message_id, new_tag, normalize_uri
from .session import ChatSession, SessionFailed, wanted_notifications

__all__ = ["FACTORY_USER", "GroupChat", "GroupChats", "is_group_invite"]

log = logging.getLogger("simpleim.client")

#: OMA §7.2.1.2 / Appendix F.2: the conference-factory URI's user part
FACTORY_USER = "Conference-Factory"
#: how long ``add`` / ``remove`` wait for the REFER's final NOTIFY
REFER_WAIT = 60.0


def is_group_invite(facts: InviteFacts) -> bool:
    """§7.1.2: an INVITE from a conference focus (``isfocus`` in Contact, RFC 4579 §3)."""
    return facts.focus


def _bare(uri: str) -> str:
    """The conference URI of a Contact value: the URI without its parameters' focus tags."""
    text = uri.strip()
    if text.startswith("<"):
        text = text[1:].split(">", 1)[0]
    return text


def _aor(uri: str) -> str:
    """``user@host`` of a URI or name-addr, lowercased."""
    return _bare(uri).split(";", 1)[0].split("?", 1)[0].removeprefix("sip:").lower()


def _conf_user(uri: str) -> str:
    """The user part of a conference address: the focus names itself by its domain, the
    Contact we keep as the conference URI may name the host it was reached on."""
    return _bare(uri).split(";", 1)[0].removeprefix("sip:").rpartition("@")[0].lower()


class GroupChat(ChatSession):
    """One group chat: the MSRP session with the focus and the conference subscription."""

    kind = "group"

    def __init__(self, ctx: ClientContext, sink: MessageSink, peer: str, *, is_uac: bool,
                 call_id: str) -> None:
        super().__init__(ctx, sink, peer, is_uac=is_uac, call_id=call_id)
        #: the conference URI (IM Session Identity) as the focus's Contact gives it
        self.conference = peer
        self.info: ConferenceInfo | None = None
        self.participants: dict[str, str] = {}      # entity -> endpoint status
        self.me: str | None = None                  # our entity (``yourown``)
        self._sub: Dialog | None = None
        self._sub_call_id = f"{new_tag()}{new_tag()}@{ctx.msrp.host}"
        self._refers: list[asyncio.Future[int]] = []
        self.subscribed = asyncio.Event()
        #: the account's file transfer feature (``send_file``)
        self.files: FileTransfers | None = None
        #: our chat alias (the display name we joined with, §7.1.1.15) and anonymity
        self.alias: str | None = None
        self.anonymous = False
        #: the addresses that mean everybody besides the conference URI (the group URI
        #: we joined, §7.1.3.3)
        self.groups: set[str] = set()
        #: the session id of the 1-1 chat this group chat took over (§7.1.1.6), if any
        self.replaced: str | None = None

    # ------------------------------------------------------------------ files
    async def send_file(self, path: str | Path, *, progress: Progress | None = None,
                        timeout: float = 60.0) -> TransferResult:
        """CPM CR "File Transfer in Group Chat" Change 4 (7.4.1.1 step 2): push one file
        to the group - the INVITE goes to the IM Session Identity with this session's
        Conversation-ID and Contribution-ID and no recipient list; no thumbnail (the focus
        relays none); the focus sends it to the participants that take files."""
        if self.files is None or self.dialog is None:
            raise SessionFailed(0, "the group chat is not established")
        (result,) = await self.files.send(
            self.conference.split(";", 1)[0], [path], thumbnail=False, progress=progress,
            timeout=timeout, conversation=(self.conversation_id, self.contribution_id),
            tc1=0.0)                # one file per group transfer (Change 4 NOTE): no Tc1 wait
        return result

    # ------------------------------------------------------------------ messages
    async def send(self, text: str, *, content_type: str = "text/plain") -> str:
        """An IM to everybody (CPIM To = the conference URI, §7.1.3.2.1); its Message-ID."""
        return await self._send(self.conference, text, content_type)

    async def send_private(self, to: str, text: str, *,
                           content_type: str = "text/plain") -> str:
        """A private message to the participant ``to`` (§7.1.3.2.1 step 3: CPIM To = its
        address as the conference state names it - an entity, a chat alias, or a user
        name); its Message-ID.  Raises :class:`~simpleim.client.session.SessionFailed`
        with the MSRP status when the focus refuses it (403: not allowed, §7.2.3.4), with
        status 0 when the focus did not say it is an OMA IM server (step 3a: its Server /
        User-Agent, Appendix F) - nothing is sent then."""
        if not any(v.strip().lower().startswith("im-serv/oma") for v in self.peer_agents):
            raise SessionFailed(0, "the group chat is not hosted by an OMA IM server "
                                   "(Appendix F): no private message")
        return await self._send(self.participant_uri(to), text, content_type)

    @property
    def identity(self) -> str:
        """§7.1.3.2.1 step 4: the ``yourown`` entity of the conference state (our
        anonymous identity when anonymous, §7.2.3.2), else our address."""
        return self.me or self.ctx.config.uri

    def participant_uri(self, who: str) -> str:
        """The entity of the participant ``who`` names: an entity of the conference state,
        the display-text (chat alias) of one, else ``who`` as a user address."""
        if who in self.participants:
            return who
        for user in self.info.users if self.info is not None else ():
            if user.display_text is not None and user.display_text.casefold() == who.casefold():
                return user.entity
        return normalize_uri(who, self.ctx.config.domain)

    def alias_of(self, entity: str) -> str | None:
        """The display-text (chat alias) the conference state gives ``entity``."""
        for user in self.info.users if self.info is not None else ():
            if user.entity == entity:
                return user.display_text
        return None

    async def _send(self, to: str, text: str, content_type: str) -> str:
        cfg = self.ctx.config
        mid = new_message_id()
        # §7.1.3.2.1 step 4: From = the ``yourown`` entity of the conference state (our
        # anonymous identity when anonymous), with our alias as display name
        cpim = build_im(sender=self.identity, recipient=to,
                        body=text.encode("utf-8"), content_type=content_type, message_id=mid,
                        imdn=cfg.imdn, date_time=self.ctx.now_cpim(), sender_name=self.alias)
        self.sink.sent(mid, to, wanted_notifications(cfg.imdn))
        self.composer, _ = self.composer.message_sent(self.ctx.now())
        try:
            await self.stream.send(cpim.to_bytes(), "message/cpim")
        except MsrpTransferError as exc:
            raise SessionFailed(exc.status, exc.comment or "MSRP send failed") from exc
        return mid

    async def deliver(self, decoded: Decoded) -> None:
        cpim = decoded.cpim
        sender = str(cpim.from_addr.uri) if cpim is not None and cpim.from_addr else \
            self.conference
        if decoded.kind in ("imdn", "composing"):
            # the IMDNs / typing of the others: reported with their sender
            self.sink.present(Decoded(decoded.kind, sender, decoded.content_type,
                                      decoded.payload, cpim, decoded.imdn,
                                      decoded.composing, imdns=decoded.imdns),
                              sender, "session", self.session_id)
            return
        mid = decoded.message_id
        if mid is not None:
            self.received[mid] = decoded
        system = alias = None
        private = False
        if cpim is not None and cpim.from_addr is not None:
            if _conf_user(sender) == _conf_user(self.conference):
                # §7.2.3.5: from the conference itself - a system message, typed by its name
                system = cpim.from_addr.display_name or "SysAdmin"
            else:
                alias = cpim.from_addr.display_name or self.alias_of(sender)
                # §7.1.3.3: a To naming us instead of the conference (or its group) is a
                # private message
                private = any(_conf_user(str(a.uri)) != _conf_user(self.conference)
                              and str(a.uri) not in self.groups
                              for a in cpim.to_addrs)
        self.ctx.emit(GroupMessageEvent(self.conference, sender, decoded.text, mid,
                                        session_id=self.session_id, system=system,
                                        alias=alias, private=private))
        self.acknowledge(decoded)

    # ------------------------------------------------------------------ conference state
    async def subscribe(self, expires: int = 3600) -> int:
        """§7.1.1.11: SUBSCRIBE ``Event: conference`` to the conference URI; the status."""
        ctx = self.ctx
        cfg = ctx.config
        ctx.notify_handlers[self._sub_call_id] = self.on_notify
        req = build_request("SUBSCRIBE", target=self.conference, from_uri=cfg.uri,
                            from_tag=new_tag(), call_id=self._sub_call_id,
                            contact=ctx.contact, accept_contact=None,
                            extra=(("Event", "conference"), ("Expires", str(expires)),
                                   ("Accept", CONFERENCE_INFO_CONTENT_TYPE),
                                   ("Allow-Events", "conference")))
        resp = await ctx.ua.request(req)
        if 200 <= resp.status < 300:
            with contextlib.suppress(ProtocolError):
                self._sub = Dialog.from_uac(req, resp)
        else:
            ctx.notify_handlers.pop(self._sub_call_id, None)
        return resp.status

    async def unsubscribe(self) -> None:
        """RFC 6665 §4.1.2.3: SUBSCRIBE with Expires 0 in the subscription's dialog."""
        sub, self._sub = self._sub, None
        if sub is None:
            return
        with contextlib.suppress(SimpleImError, OSError):
            await self.ctx.ua.in_dialog(sub, "SUBSCRIBE", headers=(
                ("Event", "conference"), ("Expires", "0")))

    def on_notify(self, inc: IncomingRequest) -> None:
        """A NOTIFY of the conference subscription or of a REFER (in the session)."""
        req = inc.request
        event = (req.headers.get("Event") or "").split(";", 1)[0].strip().lower()
        inc.reply(200)
        state = (req.headers.get("Subscription-State") or "").lower()
        if event == "refer":
            self._refer_progress(req.body, state.startswith("terminated"))
            return
        if event != "conference":
            return
        if state.startswith("terminated"):
            self._sub = None
            self.ctx.notify_handlers.pop(self._sub_call_id, None)
        if not req.body:
            return
        try:
            update = parse_conference_info(req.body)
            info = apply_notification(self.info, update)
        except ContentError as exc:
            log.info("conference NOTIFY not understood: %s", exc.detail)
            return
        self.info = info
        for user in info.users:
            if (YOUROWN, "true") in user.extra_attributes:
                self.me = user.entity
            endpoint = user.endpoints[0] if user.endpoints else None
            status = endpoint.status if endpoint is not None and endpoint.status else "connected"
            if self.participants.get(user.entity) != status:
                self.participants[user.entity] = status
                method = None if endpoint is None else endpoint.disconnection_method \
                    if status == "disconnected" else endpoint.joining_method
                self.ctx.emit(ParticipantEvent(self.conference, user.entity, status, method,
                                               session_id=self.session_id))
        self.subscribed.set()

    # ------------------------------------------------------------------ REFER
    async def add(self, user: str, *more: str) -> int:
        """§7.1.1.7: REFER the focus to invite ``user``; the final status of that INVITE
        (from the ``refer`` NOTIFY), or the REFER's own failure.  With ``more`` users
        (step 4): one REFER with ``Refer-To`` a ``cid:`` of its resource-lists body,
        ``Require: multiple-refer, norefersub`` and ``Refer-Sub: false`` (RFC 5368,
        RFC 4488) - the REFER's final status (202: the focus invites them)."""
        domain = self.ctx.config.domain
        if not more:
            return await self._refer(normalize_uri(user, domain), "")
        dialog = self.dialog
        if dialog is None:
            raise SessionFailed(0, "the group chat is not established")
        uris = [normalize_uri(u, domain) for u in (user, *more)]
        doc = ResourceLists((ResourceList(tuple(Entry(u) for u in dict.fromkeys(uris))),))
        cid = f"{new_tag()}@{self.ctx.msrp.host}"
        resp = await self.ctx.ua.in_dialog(dialog, "REFER", headers=(
            ("Refer-To", f"<cid:{cid}>"), ("Referred-By", f"<{self.ctx.config.uri}>"),
            ("Refer-Sub", "false"), ("Require", "multiple-refer, norefersub"),
            ("Content-ID", f"<{cid}>")), body=doc.to_bytes(),
            content_type=RESOURCE_LISTS_CONTENT_TYPE)
        return resp.status

    async def remove(self, user: str) -> int:
        """§7.1.1.14: REFER with ``method=BYE`` to remove ``user`` (the initiator only)."""
        return await self._refer(normalize_uri(user, self.ctx.config.domain), ";method=BYE")

    async def _refer(self, target: str, params: str) -> int:
        dialog = self.dialog
        if dialog is None:
            raise SessionFailed(0, "the group chat is not established")
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._refers.append(done)
        cfg = self.ctx.config
        resp = await self.ctx.ua.in_dialog(dialog, "REFER", headers=(
            ("Refer-To", f"<{target}{params}>"), ("Referred-By", f"<{cfg.uri}>")))
        if resp.status >= 300:
            self._refers.remove(done)
            return resp.status
        try:
            async with asyncio.timeout(REFER_WAIT):
                return await done
        except TimeoutError:
            return 408
        finally:
            if done in self._refers:
                self._refers.remove(done)

    def _refer_progress(self, body: bytes, final: bool) -> None:
        """RFC 3515 §2.4.5: the sipfrag status line of the referred request."""
        line = body.split(b"\r\n", 1)[0].decode("utf-8", "replace").split()
        status = int(line[1]) if len(line) > 1 and line[1].isdigit() else 0
        if (final or status >= 200) and self._refers:
            fut = self._refers.pop(0)
            if not fut.done():
                fut.set_result(status)

    async def leave(self) -> None:
        """§7.1.1.12: leave the group chat (unsubscribe, BYE)."""
        await self.unsubscribe()
        await self.end("left the group chat")

    def on_ended(self, reason: str) -> None:
        super().on_ended(reason)
        self.ctx.notify_handlers.pop(self._sub_call_id, None)


class GroupChats:
    """The group chat feature of an account."""

    def __init__(self, ctx: ClientContext, sink: MessageSink,
                 files: FileTransfers | None = None) -> None:
        self.ctx = ctx
        self.sink = sink
        self.files = files

    def register(self, router: InviteRouter) -> None:
        router.add("group", is_group_invite, self.on_invite, priority=50)

    async def start(self, members: Sequence[str], *, subject: str | None = None,
                    timeout: float = 60.0, subscribe: bool = True, alias: str | None = None,
                    anonymous: bool = False) -> GroupChat:
        """§7.1.1.3: an ad-hoc group chat with ``members``; raises
        :class:`~simpleim.client.session.SessionFailed` with the SIP status (403 with
        ``119 Anonymity not allowed`` when ``anonymous`` is refused).  ``alias``: our chat
        alias (the From's display name); ``anonymous``: ``Privacy: id`` (§7.1.1.15)."""
        ctx = self.ctx
        domain = ctx.config.domain
        uris = [normalize_uri(m, domain) for m in members]
        if not uris:
            raise SessionFailed(0, "no members")
        factory = f"sip:{FACTORY_USER}@{domain}"
        session = self._new(factory, is_uac=True,
                            call_id=f"{new_tag()}{new_tag()}@{ctx.msrp.host}")
        listing = MultipartPart.create(
            "application/resource-lists+xml", build_recipient_list(uris).to_bytes(),
            tuple(h for h in recipient_list_headers() if h[0] != "Content-Type"))
        extra = [("P-Preferred-Service", ICSI_CPM_SESSION),
                 ("Require", RECIPIENT_LIST_INVITE)]           # RFC 5366 §4
        if subject:
            extra.append(("Subject", subject))
        extra.extend(self._as(session, alias, anonymous))
        await establish(ctx, session, factory, lambda i, local: chat_stream(local), 1,
                        accept_contact=CHAT_ACCEPT_CONTACT, timeout=timeout,
                        parts_after=[listing], extra_headers=extra, alias=alias,
                        own_name=not anonymous)
        return self._established(session, subscribe)

    @staticmethod
    def _as(session: GroupChat, alias: str | None,
            anonymous: bool) -> list[tuple[str, str]]:
        """§7.1.1.15: our alias, and ``Privacy: id`` when we want to be anonymous."""
        session.alias = alias
        session.anonymous = anonymous
        return [("Privacy", "id")] if anonymous else []

    async def extend(self, chat: ChatSession, members: Sequence[str], *,
                     subject: str | None = None, timeout: float = 60.0,
                     subscribe: bool = True) -> GroupChat:
        """§7.1.1.6: extend the established 1-1 ``chat`` to an ad-hoc group chat with
        ``members``: the recipient list names the peer with a ``Replaces`` URI header for
        the 1-1 dialog (Appendix L), so the focus's invitation takes the peer's side of it
        over; the peer's client then BYEs the 1-1 session (§7.1.1.6 NOTE).  Raises
        :class:`~simpleim.client.session.SessionFailed`."""
        dialog = chat.dialog
        if dialog is None or isinstance(chat, GroupChat):
            raise SessionFailed(0, "not an established 1-1 chat")
        domain = self.ctx.config.domain
        peer = normalize_uri(chat.peer, domain)
        replaces = Replaces.of_dialog(dialog.call_id, dialog.local_tag, dialog.remote_tag)
        others = [u for u in (normalize_uri(m, domain) for m in members) if u != peer]
        group = await self.start([replaces.in_uri(peer), *others], subject=subject,
                                 timeout=timeout, subscribe=subscribe)
        group.replaced = chat.session_id
        return group

    async def join(self, uri: str, *, subject: str | None = None, timeout: float = 60.0,
                   subscribe: bool = True, alias: str | None = None,
                   anonymous: bool = False) -> GroupChat:
        """§7.1.1.4 / §7.1.1.9 / §7.1.1.10: an INVITE to a pre-defined group's URI (starts
        its session or joins the running one), to an IM Session Identity (rejoin) or to a
        public chat room; raises :class:`~simpleim.client.session.SessionFailed`.
        ``alias`` / ``anonymous``: joining with a chat alias (§7.1.1.15), see
        :meth:`start`."""
        ctx = self.ctx
        target = normalize_uri(uri, ctx.config.domain)
        session = self._new(target, is_uac=True,
                            call_id=f"{new_tag()}{new_tag()}@{ctx.msrp.host}")
        session.groups.add(target)
        extra = [("P-Preferred-Service", ICSI_CPM_SESSION)]
        if subject:
            extra.append(("Subject", subject))
        extra.extend(self._as(session, alias, anonymous))
        await establish(ctx, session, target, lambda i, local: chat_stream(local), 1,
                        accept_contact=CHAT_ACCEPT_CONTACT, timeout=timeout,
                        extra_headers=extra, alias=alias, own_name=not anonymous)
        return self._established(session, subscribe)

    async def rename(self, chat: GroupChat, alias: str, *, timeout: float = 60.0) -> GroupChat:
        """A new chat alias in ``chat``: rejoin the conference by its IM Session Identity
        with it (§7.1.1.9, §7.1.1.15; same anonymity) - the focus replaces our session by
        the new one (BYE to the old) and shows the alias; the new session, once its
        conference state shows the alias (made unique: ``alias-2``...) or ``timeout``."""
        await chat.unsubscribe()
        new = await self.join(chat.conference.split(";", 1)[0], alias=alias,
                              anonymous=chat.anonymous, timeout=timeout)
        new.groups |= chat.groups

        def shown() -> bool:
            mine = (new.alias_of(new.me) if new.me else None) or ""
            return mine == alias or mine.startswith(f"{alias}-")

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not shown():           # each NOTIFY sets ``subscribed``
                    new.subscribed.clear()
                    await new.subscribed.wait()
        return new

    def _established(self, session: GroupChat, subscribe: bool) -> GroupChat:
        """§7.1.1.3 / §7.1.1.9: the focus's Contact is the conference URI (the remote
        target), the IM Session Identity to rejoin with; then media and the
        subscription to the conference state."""
        focus = str(session.dialog.remote_target) if session.dialog is not None else None
        if focus is not None:
            session.conference = session.peer = focus
        session.start_media()
        if subscribe and focus is not None:
            self.ctx.spawn(session.subscribe())
        return session

    def _new(self, peer: str, *, is_uac: bool, call_id: str) -> GroupChat:
        session = GroupChat(self.ctx, self.sink, peer, is_uac=is_uac, call_id=call_id)
        session.files = self.files
        return session

    def chat(self, session_id: str) -> GroupChat | None:
        s = self.ctx.sessions.get(session_id)
        return s if isinstance(s, GroupChat) else None

    async def on_invite(self, inc: IncomingRequest, offer: SessionDescription) -> None:
        """An invitation from a focus (§7.1.2.1 with ``isfocus``): as a chat, then the
        subscription to the conference state."""
        ctx = self.ctx
        contacts = inc.request.contacts
        conference = _bare(str(contacts[0].uri)) if contacts else str(inc.request.from_addr.uri)
        replacing = inc.request.headers.get("Replaces")
        if replacing is not None:
            await self._take_over(inc, offer, conference, replacing)
            return
        session = self._new(conference, is_uac=False, call_id=inc.request.call_id)
        invitation = ring(session, inc)
        session.emit_state("invited", invitation=invitation)
        ok = await decide(ctx, invitation, ctx.config.policy.sessions)
        if invitation.cancelled:
            return
        if not ok:
            reject(session, inc, invitation.decline_status)
            return
        await self._answer(session, inc, offer)

    async def _answer(self, session: GroupChat, inc: IncomingRequest,
                      offer: SessionDescription) -> bool:
        """200 with our answer, media up, the conference subscription; False if refused."""
        try:
            await accept(self.ctx, session, inc, offer, CHAT_CAPS)
        except ProtocolError as exc:
            reject(session, inc, exc.status if exc.status >= 400 else 488, exc.detail)
            return False
        session.start_media()
        self.ctx.spawn(session.subscribe())
        return True

    async def _take_over(self, inc: IncomingRequest, offer: SessionDescription,
                         conference: str, value: str) -> None:
        """§7.1.1.6 on the peer's side (RFC 3891 §3): the focus's invitation replaces our
        1-1 chat - answered without asking (we are in that chat with the inviter), then
        the 1-1 session is ended (BYE) and the group chat goes on in its place.  481 when
        no 1-1 chat of ours with the inviter (Referred-By) has that dialog."""
        ctx = self.ctx
        try:
            replaces = Replaces.parse(value)
        except SipParseError as exc:
            inc.reply(400, headers=[("Warning", f'399 simpleim "{exc}"')])
            return
        old = ctx.sessions.get(replaces.call_id)
        dialog = old.dialog if isinstance(old, ChatSession) else None
        # RFC 3891 §6: only the peer of that chat may have it replaced (the focus names the
        # inviter in Referred-By, §7.2.2.1)
        inviter = _aor(inc.request.headers.get("Referred-By") or "")
        if not isinstance(old, ChatSession) or isinstance(old, GroupChat) or dialog is None \
                or not replaces.matches(dialog.call_id, dialog.local_tag, dialog.remote_tag) \
                or inviter != _aor(old.peer):
            inc.reply(481, headers=[("Warning", '399 simpleim "no such 1-1 chat to replace"')])
            return
        session = self._new(conference, is_uac=False, call_id=inc.request.call_id)
        session.replaced = old.session_id
        if not await self._answer(session, inc, offer):
            return
        with contextlib.suppress(SimpleImError, OSError):
            await old.end(f"replaced by the group chat {conference}")
