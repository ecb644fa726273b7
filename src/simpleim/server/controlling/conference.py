"""The Controlling Function as conference focus, sans-I/O (OMA SIMPLE IM §7.2; RFC 4579 focus,
RFC 5366 INVITE URI lists, RFC 4575 conference state; §7.2.3 MSRP switch decisions).

Pure logic, no clock and no I/O:

* :func:`parse_adhoc_invite` checks an INVITE to the conference-factory URI (§7.2.1.2 steps
  1, 3, 8; RFC 5366 §4) and returns the recipients, or the :class:`Reply` refusing it;
* :class:`Conference` is one conference's state (stored as JSON, it outlives the process);
  :meth:`Conference.step` moves one participant per the table below and
  :meth:`Conference.release_reason` is the §7.2.2.8 release policy;
* :func:`conference_document` renders the RFC 4575 document (full, or partial with the users
  that changed) as one subscriber sees it (``yourown``, Appendix M);
* :func:`switch_targets` is the §7.2.3.3 / §7.2.3.4 decision for one MSRP message: the
  CPIM From must be the sender (else MSRP 403), a CPIM To naming the conference goes to all
  others, a To naming participants is a private message, an IMDN goes to whom it names.

Participant states (``(status, input) -> (status, action)``):

=============  ==========  ============  ==================================================
status         input       new status    action (cite)
=============  ==========  ============  ==================================================
(none)         INVITED     PENDING       INVITE sent (§7.2.2.2)
(none)         JOINED      CONNECTED     notify joined, dialed-in (§7.2.1.5 step 12)
PENDING        ANSWERED    CONNECTED     notify joined, dialed-out (§7.2.2.2 200 step 5)
PENDING        REFUSED     DISCONNECTED  notify failed (RFC 4575 §5.6.4 ``failed``)
CONNECTED      LEFT        DISCONNECTED  notify departed (§7.2.1.10)
CONNECTED      REMOVED     DISCONNECTED  notify booted (§7.2.1.8, §7.2.2.12)
DISCONNECTED   JOINED      CONNECTED     notify joined again (rejoin, §7.2.1.5)
DISCONNECTED   INVITED     PENDING       INVITE sent again (REFER, §7.2.1.7)
=============  ==========  ============  ==================================================
"""

from __future__ import annotations

import enum
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import unquote

from simpleim.content.conference_info import (
    YOUROWN,
    ElementState,
    Endpoint,
    ExecutionInfo,
    User,
    notification,
)
from simpleim.content.cpim import CpimAddress, CpimHeader, CpimMessage, parse_cpim
from simpleim.content.resource_lists import (
    RECIPIENT_LIST_DISPOSITION,
    RECIPIENT_LIST_INVITE,
    RESOURCE_LISTS_CONTENT_TYPE,
    Entry,
    parse_resource_lists,
)
from simpleim.content.xml import XmlLimits
from simpleim.errors import ContentError, SimpleImError
from simpleim.server.roles import W_ANONYMITY_NOT_ALLOWED, Reply, im_warning
from simpleim.server.routing import CONFERENCE_URI_PREFIX
from simpleim.sip.message import SipRequest
from simpleim.sip.multipart import parse_multipart
from simpleim.sip.uri import SipUri, parse_uri

__all__ = [
    "CONFERENCE_FACTORY_USER",
    "CONFERENCE_PREFIX",
    "Conference",
    "ConferenceLimits",
    "ConferenceStatus",
    "Participant",
    "ParticipantInput",
    "ParticipantStatus",
    "W_TOO_MANY_PARTICIPANTS",
    "conference_document",
    "is_conference_user",
    "parse_adhoc_invite",
    "SwitchDecision",
    "same_user",
    "switch_targets",
]

#: Appendix F.2 convention for the conference-factory URI (§7.2.1.2, RFC 4579 §5.1).
CONFERENCE_FACTORY_USER = "Conference-Factory"
#: the user part of an IM Session Identity this focus allocates: ``conf~<id>``
CONFERENCE_PREFIX = CONFERENCE_URI_PREFIX
#: §7.2.1.2 step 8
W_TOO_MANY_PARTICIPANTS = "102 too many participants"


def is_conference_user(user: str | None) -> bool:
    return bool(user) and user.lower().startswith(CONFERENCE_PREFIX)  # type: ignore[union-attr]


@functools.lru_cache(maxsize=4096)
def _key(uri: str) -> str:
    """A URI compared as an identity: scheme, user and host, lower-case, no parameters.

    Memoised (a pure function of the text): the MSRP switch compares every participant's
    URI with the sender's for each message, and parsing them each time was a third of the
    focus's CPU per copy."""
    text = uri.strip().strip("<>")
    try:
        parsed = parse_uri(text, "identity")
    except SimpleImError:
        return text.lower()
    if isinstance(parsed, SipUri):
        return f"sip:{(parsed.user_unescaped or '').lower()}@{parsed.bare_host.lower()}"
    return text.lower()


def same_user(a: str, b: str) -> bool:
    return _key(a) == _key(b)


def _names_conference(uri: str, conference: str) -> bool:
    """A CPIM To naming the conference: its user part (the focus's host may be written as
    the domain or as the server's address, as in the focus's Contact)."""
    return _key(uri).split("@", 1)[0] == _key(conference).split("@", 1)[0]


@dataclass(frozen=True, slots=True)
class ConferenceLimits:
    """Local policy of the focus (docs/server.md [controlling])."""

    host: str
    max_participants: int = 20        # MAX-ADHOC-GROUP-SIZE (Appendix I), creator included
    max_list_bytes: int = 32 * 1024
    allow_anonymity: bool = True
    remaining_participants: int = 1   # §7.2.2.8 number-of-remaining-participants (0 / 1)
    #: §7.2.3.4 a): private messages in an ad-hoc conference (the operator's policy; a
    #: pre-defined group's <allow-private-message> decides for its sessions)
    allow_private_messages: bool = True


@dataclass(frozen=True, slots=True)
class AdHocInvite:
    recipients: tuple[Entry, ...]
    anonymous: bool
    #: ``sip:History@DOMAIN`` was in the list (§13.1.1 step 1b): record for the inviter; the
    #: History function is no recipient and not counted (CH-08)
    record: bool = False
    #: its ``historyfilename`` URI parameter (E.5), the name of that history
    record_name: str | None = None


#: Appendix F.2: the Conversation History Function's user part
HISTORY_USER = "History"


def _history_name(uri: str) -> str | None:
    """The ``historyfilename`` parameter of a ``sip:History@DOMAIN`` entry (E.5)."""
    parsed = parse_uri(uri, "resource-lists/entry")
    value = parsed.params.get("historyfilename") if isinstance(parsed, SipUri) else None
    return unquote(value.strip('"'))[:200] or None if value else None


def _is_history(uri: str, host: str) -> bool:
    try:
        parsed = parse_uri(uri, "resource-lists/entry")
    except SimpleImError:
        return False
    return isinstance(parsed, SipUri) and (parsed.user or "").lower() == HISTORY_USER.lower() \
        and parsed.bare_host.lower() == host.lower()


def _refuse(status: int, reason: str | None, host: str, text: str) -> Reply:
    return Reply(status, reason, (("Warning", im_warning(host, text)),))


def parse_adhoc_invite(req: SipRequest, limits: ConferenceLimits) -> AdHocInvite | Reply:
    """§7.2.1.2 / RFC 5366 §4: the recipients of an ad-hoc group INVITE, or its refusal."""
    host = limits.host
    require = [t.lower() for t in req.require]
    mt = req.media_type
    if RECIPIENT_LIST_INVITE not in require:
        return _refuse(400, "Missing Require", host,
                       f"Require: {RECIPIENT_LIST_INVITE} expected (RFC 5366 §4)")
    if mt is None or mt.mime != "multipart/mixed" or not mt.boundary:
        return _refuse(400, "Bad Request", host,
                       "multipart/mixed with SDP and a recipient list expected (RFC 5366 §4)")
    try:
        parts = parse_multipart(req.body, mt.boundary)
    except ContentError as exc:
        return _refuse(400, "Bad Request", host, f"bad multipart body: {exc.detail}")
    lists = [p for p in parts if p.content_type == RESOURCE_LISTS_CONTENT_TYPE and
             (p.headers.get("Content-Disposition") or "").split(";", 1)[0].strip().lower()
             == RECIPIENT_LIST_DISPOSITION]
    sdps = [p for p in parts if p.content_type == "application/sdp"]
    if len(lists) != 1 or len(sdps) != 1:
        return _refuse(400, "Bad Request", host,
                       "exactly one recipient-list part and one SDP part expected")
    if len(lists[0].body) > limits.max_list_bytes:
        return _refuse(413, None, host, f"recipient list above {limits.max_list_bytes} bytes")
    try:
        doc = parse_resource_lists(lists[0].body, XmlLimits(max_size=limits.max_list_bytes))
    except ContentError as exc:
        if exc.status == 413:
            return _refuse(413, None, host, f"recipient list too large: {exc.detail}")
        return _refuse(400, "Bad Request", host, f"bad recipient list: {exc.detail}")
    inviter = str(req.from_addr.uri)
    listed = [e for e in doc.recipients() if not same_user(e.uri, inviter)]
    recipients = tuple(e for e in listed if not _is_history(e.uri, host))
    if not recipients:
        return _refuse(400, "Bad Request", host, "empty recipient list")
    if len(recipients) + 1 > limits.max_participants:
        return _refuse(486, None, host, W_TOO_MANY_PARTICIPANTS)   # §7.2.1.2 step 8
    for entry in recipients:
        try:
            uri = parse_uri(entry.uri, "resource-lists/entry")
        except SimpleImError as exc:
            return _refuse(400, "Bad Request", host, f"bad recipient URI: {exc}")
        if not isinstance(uri, SipUri) or not uri.user:
            return _refuse(400, "Bad Request", host, f"not a SIP user URI: {entry.uri[:80]}")
    anonymous = "id" in [p.strip().lower() for v in req.headers.get_all("Privacy")
                         for p in v.split(";")]
    if anonymous and not limits.allow_anonymity:
        return _refuse(403, None, host, W_ANONYMITY_NOT_ALLOWED)  # §7.2.1.2 step 3
    names = [_history_name(e.uri) for e in listed if _is_history(e.uri, host)]
    return AdHocInvite(recipients, anonymous, record=bool(names),
                       record_name=next((n for n in names if n), None))


# ---------------------------------------------------------------- conference state


class ParticipantStatus(enum.StrEnum):
    PENDING = "pending"              # RFC 4575 §5.6.4 status values
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


class ParticipantInput(enum.StrEnum):
    INVITED = "invited"
    ANSWERED = "answered"
    REFUSED = "refused"
    JOINED = "joined"
    LEFT = "left"
    REMOVED = "removed"


_P, _In = ParticipantStatus, ParticipantInput
#: (status, input) -> (new status, disconnection-method or joining-method), see the module
#: table.  ``None`` as status: not in the conference yet.
TRANSITIONS: dict[tuple[ParticipantStatus | None, ParticipantInput],
                  tuple[ParticipantStatus, str | None]] = {
    (None, _In.INVITED): (_P.PENDING, "dialed-out"),             # §7.2.2.2
    (None, _In.JOINED): (_P.CONNECTED, "dialed-in"),             # §7.2.1.5 (creator, join)
    (_P.PENDING, _In.ANSWERED): (_P.CONNECTED, "dialed-out"),    # §7.2.2.2 (200)
    (_P.PENDING, _In.REFUSED): (_P.DISCONNECTED, "failed"),      # RFC 4575 §5.6.4
    (_P.PENDING, _In.REMOVED): (_P.DISCONNECTED, "booted"),      # §7.2.2.4 (CANCEL)
    (_P.CONNECTED, _In.LEFT): (_P.DISCONNECTED, "departed"),     # §7.2.1.10
    (_P.CONNECTED, _In.REMOVED): (_P.DISCONNECTED, "booted"),    # §7.2.1.8, §7.2.2.12
    (_P.DISCONNECTED, _In.JOINED): (_P.CONNECTED, "dialed-in"),  # §7.2.1.5 (rejoin)
    (_P.DISCONNECTED, _In.INVITED): (_P.PENDING, "dialed-out"),  # §7.2.1.7 (re-added)
    (_P.CONNECTED, _In.JOINED): (_P.CONNECTED, "dialed-in"),     # a second device / rejoin
}


class ConferenceStatus(enum.StrEnum):
    ACTIVE = "active"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Participant:
    uri: str                          # the identity as listed / authenticated
    status: ParticipantStatus
    method: str | None = None         # joining-method or disconnection-method
    display: str | None = None
    when: str | None = None           # RFC 3339 time of the last change
    by: str | None = None             # who added / removed (REFER)
    #: joined anonymously (§7.2.3.2): the anonymous identity the others see instead of
    #: ``uri`` (``display`` is then the participant's unique chat alias)
    shown: str | None = None

    @property
    def identity(self) -> str:
        """The identity the other participants know: the anonymous one, else the URI."""
        return self.shown or self.uri

    def addressed_by(self, uri: str) -> bool:
        """``uri`` (a CPIM To) names this participant: its anonymous identity, or its URI
        when it is not anonymous (an anonymous participant is not found by its real URI)."""
        return same_user(self.identity, uri)

    def to_json(self) -> list[str | None]:
        return [self.uri, self.status.value, self.method, self.display, self.when, self.by,
                self.shown]

    @classmethod
    def from_json(cls, row: Sequence[str | None]) -> Participant:
        uri, status, method, display, when, by = row[:6]
        shown = row[6] if len(row) > 6 else None          # stored before aliases: none
        return cls(str(uri), ParticipantStatus(str(status)), method, display, when, by,
                   shown)


@dataclass(frozen=True, slots=True)
class Conference:
    """One ad-hoc conference: its IM Session Identity, creator and participants."""

    uri: str                          # the IM Session Identity (conference URI)
    creator: str
    participants: tuple[Participant, ...] = ()
    status: ConferenceStatus = ConferenceStatus.ACTIVE
    created: float = 0.0
    subject: str | None = None
    #: a pre-defined group's conference (§7.2.1.3): the group URI and its policy; None for
    #: an ad-hoc one
    group: str | None = None
    max_participants: int | None = None   # <max-participant-count> (§7.2.1.4 step 3)
    auto_release: bool = True             # §7.2.2.8 auto-release (ad-hoc: always)
    remaining: int | None = None          # §7.2.2.8 number-of-remaining-participants
    max_length: int | None = None         # §7.2.2.8 session max length (seconds), 1e

    def participant(self, uri: str) -> Participant | None:
        return next((p for p in self.participants if same_user(p.uri, uri)), None)

    @property
    def connected(self) -> tuple[Participant, ...]:
        return tuple(p for p in self.participants if p.status is ParticipantStatus.CONNECTED)

    @property
    def invited_or_in(self) -> tuple[Participant, ...]:
        return tuple(p for p in self.participants
                     if p.status is not ParticipantStatus.DISCONNECTED)

    def addressed(self, uri: str) -> Participant | None:
        """The participant a CPIM To names (:meth:`Participant.addressed_by`)."""
        return next((p for p in self.participants if p.addressed_by(uri)), None)

    def step(self, uri: str, event: ParticipantInput, *, when: str | None = None,
             display: str | None = None, by: str | None = None, shown: str | None = None
             ) -> tuple[Conference, Participant | None]:
        """Apply ``event`` to the participant ``uri`` (the module table); the changed
        participant, None when the input does not apply (the state is unchanged).  A
        JOINED participant is anonymous with ``shown`` (§7.2.3.2), visible without."""
        old = self.participant(uri)
        row = TRANSITIONS.get((old.status if old is not None else None, event))
        if row is None:
            return self, None
        status, method = row
        if event is not ParticipantInput.JOINED and old is not None:
            shown = old.shown
        new = Participant(old.uri if old is not None else uri, status, method,
                          display or (old.display if old is not None else None), when, by,
                          shown)
        if old is None:
            people = (*self.participants, new)
        else:
            people = tuple(new if p is old else p for p in self.participants)
        return replace(self, participants=people), new

    def release_reason(self, limits: ConferenceLimits) -> str | None:
        """§7.2.2.8: why the conference ends now, None while it goes on.  An ad-hoc
        conference ends when its initiator leaves (rule 1a), a pre-defined group's only when
        its policy says ``auto-release`` (rule 1b); either ends when no more than
        ``remaining_participants`` take part (rule 1d; the ones still being invited count;
        the group's value takes precedence over the operator's)."""
        if self.status is ConferenceStatus.RELEASED:
            return "released"
        creator = self.participant(self.creator)
        if self.auto_release and creator is not None \
                and creator.status is ParticipantStatus.DISCONNECTED:
            return "the initiator left (§7.2.2.8 1a/1b)"
        remaining = self.remaining if self.remaining is not None \
            else limits.remaining_participants
        if len(self.invited_or_in) <= remaining:
            return "too few participants left (§7.2.2.8 1d)"
        return None

    def released(self) -> Conference:
        return replace(self, status=ConferenceStatus.RELEASED)

    def after_restart(self, when: str) -> Conference:
        """Every session of the conference ended with the process: the connected left
        (``departed``), the ones being invited failed - the conference itself stays."""
        conf = self
        for p in self.participants:
            if p.status is ParticipantStatus.CONNECTED:
                conf, _ = conf.step(p.uri, ParticipantInput.LEFT, when=when)
            elif p.status is ParticipantStatus.PENDING:
                conf, _ = conf.step(p.uri, ParticipantInput.REFUSED, when=when)
        return conf

    def to_json(self) -> str:
        return json.dumps({"creator": self.creator, "status": self.status.value,
                           "created": self.created, "subject": self.subject,
                           "group": self.group, "max": self.max_participants,
                           "auto_release": self.auto_release, "remaining": self.remaining,
                           "max_length": self.max_length,
                           "participants": [p.to_json() for p in self.participants]})

    @classmethod
    def from_json(cls, uri: str, text: str) -> Conference:
        try:
            d = json.loads(text)
            return cls(uri, str(d["creator"]),
                       tuple(Participant.from_json(p) for p in d["participants"]),
                       ConferenceStatus(d["status"]), float(d["created"]), d.get("subject"),
                       d.get("group"), d.get("max"), bool(d.get("auto_release", True)),
                       d.get("remaining"), d.get("max_length"))
        except (ValueError, KeyError, TypeError) as exc:
            raise ContentError(f"bad stored conference {uri}: {exc}", status=500,
                               where="conferences") from None


def _user(conf: Conference, p: Participant, viewer: str | None, state: ElementState) -> User:
    """§7.2.2.10 step 2: one ``<user>`` with one ``<endpoint>`` and its status; an
    anonymous participant by its anonymous identity and chat alias only (§7.2.3.2: the
    ``entity`` is the modified From, ``yourown`` tells the participant it is itself)."""
    joined = p.status is not ParticipantStatus.DISCONNECTED
    by = p.by
    if by is not None:
        actor = conf.participant(by)
        by = actor.identity if actor is not None else by
    info = ExecutionInfo(when=p.when, by=by) if p.when or by else None
    endpoint = Endpoint(
        p.identity, state=state, display_text=p.display, status=p.status.value,
        joining_method=p.method if joined else None,
        joining_info=info if joined else None,
        disconnection_method=None if joined else p.method,
        disconnection_info=None if joined else info)
    extra = ((YOUROWN, "true"),) if viewer is not None and same_user(p.uri, viewer) else ()
    return User(p.identity, state=state, display_text=p.display, endpoints=(endpoint,),
                extra_attributes=extra)


def conference_document(conf: Conference, version: int, viewer: str | None, *,
                        changed: Sequence[Participant] | None = None) -> bytes:
    """The RFC 4575 document of one NOTIFY as ``viewer`` sees it: the full state
    (``changed`` None: everybody but those long gone) or the partial state with the
    ``changed`` participants (§7.2.2.10: "partial output" for changes)."""
    if changed is None:
        users = tuple(_user(conf, p, viewer, ElementState.FULL) for p in conf.participants)
        full = True
    else:
        users = tuple(_user(conf, p, viewer, ElementState.PARTIAL) for p in changed)
        full = False
    doc = notification(conf.uri, version, users, full=full,
                       user_count=len(conf.connected),
                       active=conf.status is ConferenceStatus.ACTIVE)
    return doc.to_bytes()


# ---------------------------------------------------------------- MSRP switch (§7.2.3)


@dataclass(frozen=True, slots=True)
class SwitchDecision:
    """Where one received MSRP message goes: ``to`` the participants' URIs (empty: to
    nobody), or ``refuse`` with an MSRP status (403: CPIM From is not the sender, or a
    private message the policy does not allow).  ``private``: a private message
    (§7.2.3.4); ``body``: what the copies carry when it is not the received body (an
    anonymous sender's CPIM From replaced by its chat alias and anonymous identity)."""

    to: tuple[str, ...] = ()
    refuse: int | None = None
    reason: str = ""
    private: bool = False
    body: bytes | None = None


def _as_sender(cpim: CpimMessage, sender: Participant) -> bytes | None:
    """§7.2.3.2: the copies of an anonymous participant's message carry its alias and
    anonymous identity as CPIM From (the rest of the message as received); None when
    the From already is that."""
    if sender.shown is None:
        return None
    want = CpimAddress(sender.shown, sender.display)
    if cpim.from_addr == want:
        return None
    headers = tuple(CpimHeader("From", str(want)) if h.name.lower() == "from" else h
                    for h in cpim.headers)
    return replace(cpim, headers=headers).to_bytes()


def switch_targets(conf: Conference, sender: str, content_type: str, body: bytes,
                   *, private_allowed: bool = True) -> SwitchDecision:
    """§7.2.3.1 / §7.2.3.3 / §7.2.3.4 for one complete MSRP message from ``sender``."""
    others = tuple(p.uri for p in conf.connected if not same_user(p.uri, sender))
    if content_type.split(";", 1)[0].strip().lower() != "message/cpim":
        # is-composing and plain text carry no CPIM identity: to everybody else
        return SwitchDecision(others)
    try:
        cpim: CpimMessage = parse_cpim(body)
    except ContentError as exc:
        return SwitchDecision(refuse=400, reason=f"bad CPIM: {exc.detail}")
    frm = cpim.from_addr
    me = conf.participant(sender)
    if frm is None or not (same_user(str(frm.uri), sender) or (
            me is not None and me.shown is not None and same_user(str(frm.uri), me.shown))):
        # §7.2.3.1 / §7.2.3.3 step 1: From must be the sender's identity in the mapping
        # table (its own, or the anonymous one it was given, §7.1.3.2.1 step 4) -> 403
        return SwitchDecision(refuse=403, reason="CPIM From is not the sender")
    copy = _as_sender(cpim, me) if me is not None else None
    to = [str(a.uri) for a in cpim.to_addrs]
    disposition = (cpim.content_disposition or "").split(";", 1)[0].strip().lower()
    named = tuple(p.uri for p in conf.connected
                  if any(p.addressed_by(t) for t in to) and not same_user(p.uri, sender))
    if disposition == "notification":
        # an IMDN goes back to the sender of the message it reports on (RFC 5438 §7.1.1)
        return SwitchDecision(named, body=copy)
    if not to or any(_names_conference(t, conf.uri) for t in to) \
            or (conf.group is not None and any(same_user(t, conf.group) for t in to)):
        return SwitchDecision(others, body=copy)            # §7.2.3.3 step 2
    if not private_allowed:
        # §7.2.3.4 a): <allow-private-message> / the operator's policy -> MSRP 403
        return SwitchDecision(refuse=403, reason="private messages not allowed")
    return SwitchDecision(named, private=True, body=copy)   # §7.2.3.4 c)
