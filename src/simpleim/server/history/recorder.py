"""Session recording of the Conversation History Function (§13.2.2, §13.2.3 steps 3, 5-6,
§13.2.6, §13.2.7; CH-03, CH-04, CH-07, CH-12).

:class:`SessionRecorder` is the :class:`~simpleim.server.media.room.Recorder` of the media
rooms: it sees every MSRP message that passes a :class:`~simpleim.server.media.room.Room`.
For each room it keeps one recording per *owner* - a served user whose ``hist-activation``
session-mode is active (CH-00 method 1: from the first message on), or who started it with
a REFER to ``sip:History@DOMAIN`` (method 2, :meth:`SessionRecorder.start`) - and stores
the INVITE / 200 headers (sipfrag) when the recording starts, each message with its MSRP
headers, receive time and content, and the BYE headers when the session or the recording
ends (REFER with ``method=BYE``, :meth:`~SessionRecorder.stop`; the room ends; the quota is
reached).

The rooms come from a :class:`RoomSource` (the PF's B2BUA: 1-1 sessions recorded in the
Participating Function's media path; a 1-1 session is named by the Call-ID of one of its
legs, see :func:`session_key`) and from :class:`ConferenceRooms` (the Controlling Function's
focus: a group chat is named by its conference URI, the IM Session Identity of §13.1.1
step 2c).  In a conference the CHF is no leg of the room: it is not a participant the focus
counts against the maximum or lists in the RFC 4575 NOTIFYs (CH-08), and what it records
for an owner is what the room copied to (or received from) that owner - a private message
between two others is not in a third's history.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote

from simpleim.errors import ProtocolError, SimpleImError
from simpleim.server.history.content import is_notification, new_id, send_item, sipfrag_item
from simpleim.server.history.function import HistoryFunction, aor_of
from simpleim.server.media.api import MediaMessage, ServerSession
from simpleim.server.media.room import Leg, Room
from simpleim.sip.headers import Address, Headers
from simpleim.sip.message import SipRequest
from simpleim.sip.uri import SipUri, parse_uri
from simpleim.store.history import HistoryKind, HistoryRecord

__all__ = ["ConferenceRooms", "RecordOutcome", "RoomSource", "SessionRecorder", "session_key"]

log = logging.getLogger("simpleim.server.history")

#: OMA SIMPLE IM §9.1.1.2: the feature tag of a Large Message Mode INVITE
LARGE_MESSAGE_TAG = "+g.oma.sip-im.large-message"
#: how long a closing room's sessions may take to finish their BYEs before the histories
#: are closed without them (seconds)
BYE_WAIT = 5.0


class RoomSource(Protocol):
    """Where the live media rooms of 1-1 sessions are (the PF B2BUA's ``rooms``)."""

    @property
    def rooms(self) -> set[Room]: ...


class ConferenceRooms(Protocol):
    """The conferences of the Controlling Function (its focus): the room of a conference by
    the user part of its URI, and a room's conference URI (None: not a conference)."""

    def conference_room(self, user: str) -> Room | None: ...

    def conference_of(self, room: Room) -> str | None: ...


@dataclass(slots=True)
class _Recording:
    history: str
    owner: str
    invite: SipRequest
    #: the sessions whose BYE ends this recording (a 1-1 session: both legs; a conference:
    #: the owner's own session with the focus)
    sessions: tuple[ServerSession, ...] = ()
    stopped: bool = False


@dataclass(slots=True)
class _RoomState:
    recordings: dict[str, _Recording] = field(default_factory=dict)
    #: parties whose settings were looked at already (method 1 decided once per party)
    checked: set[str] = field(default_factory=set)
    #: owners to record from the moment they are in the room (History@ in an ad-hoc list)
    wanted: dict[str, str | None] = field(default_factory=dict)     # owner -> filename
    watcher: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """What a REFER to History@ achieved: the SIP status for the NOTIFY sipfrag."""

    status: int
    reason: str
    history: str | None = None


def session_key(refer_to: str) -> tuple[str | None, str | None]:
    """(Call-ID, method) of a Refer-To naming an IM session: ``<sip:ID@HOST;method=BYE>``
    or with the Call-ID as an embedded header ``<sip:HOST?Call-ID=ID>`` (RFC 3261 §19.1.1);
    without either the URI's user part is taken as the Call-ID's (focus URI) form."""
    try:
        uri = Address.parse(refer_to, "Refer-To").uri
    except ProtocolError:
        return None, None
    if not isinstance(uri, SipUri):
        return None, None
    value = uri.params.get("method")
    method = value.upper() if value else None
    for name, value in uri.headers:
        if name.lower() == "call-id":
            return unquote(value), method
    text = str(uri).split(";", 1)[0].split("?", 1)[0]
    return text.removeprefix("sip:").removeprefix("sips:"), method


def is_large(invite: SipRequest) -> bool:
    """A Large Message Mode session (OMA SIMPLE IM §9.1.1.2: the large-message tag)."""
    return any(LARGE_MESSAGE_TAG in v.lower() for v in invite.headers.get_all("Accept-Contact"))


def _leg_aor(leg: Leg) -> str | None:
    try:
        return aor_of(parse_uri(leg.session.peer))
    except ProtocolError:
        return None


class SessionRecorder:
    """The rooms' recorder (``Recorder`` Protocol) and the REFER start / stop of §13.2.2."""

    def __init__(self, function: HistoryFunction, rooms: RoomSource | None = None) -> None:
        self._fn = function
        self._source = rooms
        self._conferences: ConferenceRooms | None = None
        self._rooms: dict[Room, _RoomState] = {}
        #: each leg's IM address, parsed once (every message asks for all of them)
        self._aors: weakref.WeakKeyDictionary[Leg, str | None] = weakref.WeakKeyDictionary()

    def attach(self, source: RoomSource) -> None:
        self._source = source

    def attach_conferences(self, focus: ConferenceRooms) -> None:
        self._conferences = focus

    def want(self, room: Room, owner: str, filename: str | None = None) -> None:
        """§13.1.1 step 1b: record ``room`` for ``owner`` from its first message on once
        the owner is a party (the focus calls it before the owner's 200), under
        ``filename`` (E.5, the History@ entry's ``historyfilename``) if given."""
        self._state(room).wanted[owner] = filename

    def _conference(self, room: Room) -> str | None:
        return self._conferences.conference_of(room) if self._conferences is not None \
            else None

    # ------------------------------------------------------------------ helpers
    def _state(self, room: Room) -> _RoomState:
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _RoomState()
            state.watcher = asyncio.get_running_loop().create_task(self._until_end(room))
        return state

    def _aor(self, leg: Leg) -> str | None:
        try:
            return self._aors[leg]
        except KeyError:
            aor = self._aors[leg] = _leg_aor(leg)
            return aor

    def parties(self, room: Room) -> list[str]:
        return [a for a in (self._aor(leg) for leg in room.legs) if a]

    async def _begin(self, room: Room, owner: str, filename: str | None) -> _Recording | None:
        """§13.2.3 step 5: a new session (or large message) history with the INVITE and
        200 headers."""
        legs = room.legs
        if not legs:
            return None
        conference = self._conference(room)
        first = legs[0].session
        sessions = tuple(leg.session for leg in legs)
        if conference is not None:
            # the owner's own session with the focus: its INVITE / 200 (§13.3.1.2 step 3)
            first = next((leg.session for leg in legs if self._aor(leg) == owner), first)
            sessions = (first,)
        kind = HistoryKind.LARGE if is_large(first.request) else HistoryKind.SESSION
        now = self._fn_clock()
        hid = new_id()
        peers = [conference.removeprefix("sip:")] if conference is not None else \
            [a for a in self.parties(room) if a != owner]
        items = [sipfrag_item(first.request, history=hid, owner=owner,
                              seq=self._fn.next_seq(), now=now),
                 sipfrag_item(first.response, history=hid, owner=owner,
                              seq=self._fn.next_seq(), now=now)]
        if not await self._fn.has_room(owner, sum(i.size for i in items)):
            return None
        subject = (first.request.headers.get("Subject") or "")[:200]
        record = HistoryRecord(hid, owner, kind, ", ".join(peers) or "", subject,
                               filename or f"{kind.value}-{hid[:8]}", first.call_id, now,
                               direction="" if kind is HistoryKind.SESSION else
                               ("out" if self._aor(legs[0]) == owner else "in"))
        await self._fn.repo.create(record, items)
        recording = _Recording(hid, owner, first.request, sessions)
        self._state(room).recordings[owner] = recording
        log.info("recording session %s for %s as %s", first.call_id, owner, hid)
        return recording

    def _fn_clock(self) -> float:
        return self._fn.clock()

    async def refer(self, req: SipRequest, requester: str) -> RecordOutcome:
        """A REFER to sip:History@DOMAIN (§13.2.2.2 / §13.2.6): Refer-To the IM Session
        Identity with ``method=INVITE`` (or none) to start, ``method=BYE`` to stop;
        ``historyfilename`` from the Request-URI.  404: no such session; 403: the
        requester is not in it."""
        refer_to = req.headers.get("Refer-To")
        call_id, method = session_key(refer_to) if refer_to else (None, None)
        if not call_id:
            return RecordOutcome(400, "Bad Refer-To")
        room = self.find(call_id)
        if room is None and self._conferences is not None:
            # a conference: Refer-To its URI (the focus's Contact, §13.1.1 step 2c)
            room = self._conferences.conference_room(call_id.split("@", 1)[0])
        if room is None:
            return RecordOutcome(404, "Not Found")
        if requester not in self.parties(room):
            return RecordOutcome(403, "Forbidden")
        if method == "BYE":
            return await self.stop(room, requester)
        if method not in (None, "INVITE"):
            return RecordOutcome(400, "Bad Refer-To method")
        filename = None
        uri = req.uri
        if isinstance(uri, SipUri):
            value = uri.params.get("historyfilename")
            filename = unquote(value.strip('"'))[:200] if value else None
        return await self.start(room, requester, filename)

    async def _end(self, room: Room, recording: _Recording, reason: str) -> None:
        """§13.2.3 step 6 (BYE headers) and §13.2.7: stop and close the history.  The BYE
        stored is the one that ended the session (the peer's first); when the recording
        ends on its own (REFER method=BYE, storage full) the CHF's own leaving, a BYE with
        the session's From / To / Call-ID and a Reason."""
        if recording.stopped:
            return
        recording.stopped = True
        now = self._fn_clock()
        ended = [s.bye_request for s in sorted(recording.sessions,
                                               key=lambda s: not s.ended_by_peer)
                 if s.closed.is_set() and s.bye_request is not None]
        bye = ended[0] if ended else self._own_bye(recording.invite, reason)
        try:
            await self._fn.repo.append(sipfrag_item(
                bye, history=recording.history, owner=recording.owner,
                seq=self._fn.next_seq(), now=now))
            await self._fn.repo.finish(recording.history, now)
        except SimpleImError as exc:
            log.error("history %s not closed: %s", recording.history, exc)

    @staticmethod
    def _own_bye(invite: SipRequest, reason: str) -> SipRequest:
        h = Headers()
        for name in ("From", "To", "Call-ID"):
            value = invite.headers.get(name)
            if value is not None:
                h.add(name, value)
        h.add("Reason", f'SIP;text="{reason[:100]}"')
        return SipRequest("BYE", invite.uri, h)

    async def _until_end(self, room: Room) -> None:
        await room.ended.wait()
        state = self._rooms.pop(room, None)
        if state is None:
            return
        # the sessions' BYEs (the room's own BYEs to the remaining legs are on their way)
        sessions = {s for r in state.recordings.values() for s in r.sessions}
        waits = [asyncio.ensure_future(s.closed.wait()) for s in sessions
                 if not s.closed.is_set()]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=BYE_WAIT)
            for task in pending:
                task.cancel()
        for recording in state.recordings.values():
            await self._end(room, recording, room.end_reason or "session ended")

    # ------------------------------------------------------------------ Recorder
    def recording(self, room: Room) -> bool:
        """A party of ``room`` records sessions by setting, or a recording runs in it."""
        state = self._rooms.get(room)
        if state is not None and (state.wanted or any(
                not r.stopped for r in state.recordings.values())):
            return True
        return bool(self._by_setting(room))

    def _by_setting(self, room: Room, skip: set[str] | None = None) -> list[str]:
        """CH-00 method 1: the parties whose hist-activation covers this room - the
        pager-large-mode setting for a large message session (§9, Accept-Contact
        +g.oma.sip-im.large-message), the session-mode setting otherwise."""
        legs = room.legs
        if not legs:
            return []
        large = is_large(legs[0].session.request)
        now = self._fn_clock()
        out = []
        for aor in self.parties(room):
            if skip is not None and aor in skip:
                continue
            settings = self._fn.settings(aor, now)
            if settings.history_pager if large else settings.history_session:
                out.append(aor)
        return out

    async def record(self, sender: Leg, message: MediaMessage, to: Sequence[Leg]) -> None:
        """Store ``message`` for every owner recording its room who sent it or is one of
        ``to`` (§13.2.3 steps 3, 6).  The write is shielded: a BYE that ends the room while
        it runs does not lose it."""
        await asyncio.shield(self._record(sender, message, to))

    async def _record(self, sender: Leg, message: MediaMessage, to: Sequence[Leg]) -> None:
        if is_notification(message.content_type, message.body):
            return  # IMDNs and is-composing: state, not conversation
        room = sender.room
        state = self._state(room)
        parties = self.parties(room)
        if any(p not in state.checked for p in parties):
            # method 1, once per party (a conference's parties come and go)
            for aor in self._by_setting(room, state.checked):
                if aor not in state.recordings:
                    await self._begin(room, aor, None)
            state.checked.update(parties)
        for aor in [a for a in state.wanted if a in parties]:
            filename = state.wanted.pop(aor)
            if aor not in state.recordings:
                await self._begin(room, aor, filename)
        author = self._aor(sender)
        audience = {author, *(self._aor(leg) for leg in to)}
        for recording in list(state.recordings.values()):
            if recording.stopped:
                continue
            if recording.owner not in parties:
                # §13.2.7 a): the owner's session with the conference ended
                await self._end(room, recording, "the owner left the session")
                continue
            if recording.owner not in audience:
                continue            # a private message between others
            item = send_item(message.content_type, message.body, message.headers,
                             message_id=message.message_id, call_id=sender.session.call_id,
                             history=recording.history, owner=recording.owner,
                             seq=self._fn.next_seq(),
                             direction="out" if author == recording.owner else "in",
                             now=self._fn_clock())
            if not await self._fn.has_room(recording.owner, item.size):
                # §13.2.3 step 3a: stop, keep what is stored (the System Message was sent)
                await self._end(room, recording, "history storage full")
                continue
            await self._fn.repo.append(item)

    # ------------------------------------------------------------------ REFER (CH-03/07)
    def find(self, call_id: str) -> Room | None:
        """The live room with a leg of that Call-ID."""
        rooms: Iterable[Room] = self._source.rooms if self._source is not None else ()
        for room in rooms:
            if any(leg.session.call_id == call_id for leg in room.legs):
                return room
        return None

    async def start(self, room: Room, requester: str, filename: str | None) -> RecordOutcome:
        """§13.2.2.2 step 2: join the session as a recorder for ``requester``."""
        if requester not in self.parties(room):
            return RecordOutcome(403, "Forbidden")
        state = self._state(room)
        current = state.recordings.get(requester)
        if current is not None and not current.stopped:
            return RecordOutcome(200, "OK", current.history)
        state.checked.add(requester)
        recording = await self._begin(room, requester, filename)
        if recording is None:
            return RecordOutcome(507, "Insufficient Storage")
        return RecordOutcome(200, "OK", recording.history)

    async def stop(self, room: Room, requester: str) -> RecordOutcome:
        """§13.2.6: leave the session (the recording of ``requester`` ends)."""
        state = self._rooms.get(room)
        recording = state.recordings.get(requester) if state is not None else None
        if recording is None or recording.stopped:
            return RecordOutcome(404, "Not Found")
        await self._end(room, recording, "recording stopped by the user")
        return RecordOutcome(200, "OK", recording.history)
