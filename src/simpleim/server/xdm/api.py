"""The XDM role's narrow API: what other roles may depend on, and what they provide to it.

Provided by ``server/xdm`` (implementations in :mod:`~simpleim.server.xdm.documents` and
:mod:`~simpleim.server.xdm.directory`):

* :class:`XdmDocuments` — stored XDM documents with entity tags (get / put / delete),
  checked by their application usage (schema, uniqueness) before they are written.
* :class:`GroupDirectory` — the pre-defined groups of the Shared Group XDMS (OMA SIMPLE IM
  §7.1.1.4, §7.2.2.3, §7.2.2.7–§7.2.2.9, Appendix Q; checklist §31), parsed into
  :class:`GroupDefinition`.  The Controlling Function (``server/controlling``) reads groups
  only through this Protocol: ``await directory.group("sip:friends@example.com")``.  Groups
  are written over XCAP (``simpleim group create`` or any XCAP client), never by the focus.

Provided to ``server/xdm`` by other roles (wired in
:func:`simpleim.server.services.build_roles`):

* :class:`DeferredMetadata` — the Deferred Messaging Function's stored messages of a user
  as :class:`HistoryEntry` items (§12.1.2, Appendix J), served read-only as the
  ``history-list`` document of ``org.openmobilealliance.deferred-list``.
* :class:`HistoryMetadata` — the Conversation History Function's recorded items (§13.1.4,
  §13.3.2), served read-only as ``org.openmobilealliance.conv-history`` (``server/history``
  provides it; :class:`NoHistory` is the empty one, for a server without that role).

Nothing here does I/O; the types are frozen dataclasses.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "GLOBAL_OWNER",
    "AccessPolicyLookup",
    "PolicyMedia",
    "DeferredMetadata",
    "DocumentRef",
    "GroupActions",
    "GroupDefinition",
    "GroupDirectory",
    "GroupMember",
    "GroupRule",
    "GroupUsage",
    "HistoryEntry",
    "HistoryMetadata",
    "HistoryMode",
    "NoHistory",
    "SessionActivePolicy",
    "XdmDocument",
    "XdmDocuments",
    "normalize_uri",
]

class PolicyMedia(enum.Enum):
    """The IM media of an access policy's ``<media-list>`` (OMA SIMPLE IM Appendix S)."""

    PAGER = "pager-mode-message"          # pager and large message mode (§6.1.2.1 e)
    SESSION = "message-session"           # IM sessions, 1-1 and conference (§6.1.2.1 d)
    FILE_TRANSFER = "file-transfer"
    #: a MESSAGE carrying an extended group advertisement (§6.1.2.6, Appendix S
    #: ``<group-advertisement>`` media element)
    GROUP_ADVERTISEMENT = "group-advertisement"


class AccessPolicyLookup(Protocol):
    """The served user's access policy as the terminating Participating Function applies
    it (§6.1.2.1 step 2): is a request of ``media`` from ``sender`` (the authenticated
    originator's IM address) to ``recipient`` rejected?  Answered from memory."""

    def rejects(self, recipient: str, sender: str, media: PolicyMedia, *,
                anonymous: bool = False) -> bool: ...


#: The owner of the ``global`` tree of an application usage (RFC 4825 §6.2).
GLOBAL_OWNER = ""


def normalize_uri(uri: str) -> str:
    """A URI as identities are compared here: angle brackets, URI parameters and headers
    dropped, scheme and host lower-cased (RFC 3261 §19.1.4 compares the user part
    case-sensitively, so it is kept).  ``alice@example.com`` is read as a SIP URI."""
    text = uri.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    scheme, sep, rest = text.partition(":")
    if not sep or "@" in scheme:
        scheme, rest = "sip", text
    scheme = scheme.lower()
    if scheme not in ("sip", "sips", "tel", "im", "pres"):
        return text
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    user, at, host = rest.rpartition("@")
    if not at:
        return f"{scheme}:{rest.lower() if scheme != 'tel' else rest}"
    return f"{scheme}:{user}@{host.lower()}"


@dataclass(frozen=True, slots=True)
class DocumentRef:
    """Where a document lives: application usage, tree owner (an XUI such as
    ``sip:alice@example.com``, or :data:`GLOBAL_OWNER`), name inside the tree."""

    auid: str
    owner: str
    name: str


@dataclass(frozen=True, slots=True)
class XdmDocument:
    """A stored document; ``etag`` is the entity tag without quotes."""

    ref: DocumentRef
    etag: str
    content: bytes
    updated: float


class XdmDocuments(Protocol):
    """Stored XDM documents.  Errors are :class:`~simpleim.errors.XcapError` with the HTTP
    status: 412 when a precondition fails, 409 (with the RFC 4825 §11 condition) when the
    application usage refuses the document, 413 above the size bound."""

    async def get(self, ref: DocumentRef) -> XdmDocument | None: ...

    async def put(self, ref: DocumentRef, content: bytes, *, if_match: str | None = None,
                  if_none_match: str | None = None) -> tuple[XdmDocument, bool]:
        """Store ``content`` (checked first); (the stored document, whether it was created).
        ``if_match`` / ``if_none_match``: the raw HTTP header values (``*`` or tags)."""
        ...

    async def delete(self, ref: DocumentRef, *, if_match: str | None = None) -> bool:
        """Delete; False if there was no such document."""
        ...


class GroupUsage(enum.Enum):
    """Appendix Q.1.1: ``<imusage>`` of the group URI in the owner's Group Usage List."""

    PREDEFINED = "predefined"  # the default
    CHAT = "chat"  # a chat room (§7.1.1.10)


@dataclass(frozen=True, slots=True)
class GroupMember:
    """An ``<entry>`` of the group's ``<list>`` with its ``<display-name>`` (used for the
    participant's display name, §5.3 / checklist §2 item 2)."""

    uri: str
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class GroupActions:
    """The actions of the group's common-policy rules (RFC 4745 §7 / OMA XDM group usage;
    checklist §31).  Absent action: false (RFC 4745 §10.2: the most restrictive value)."""

    allow_conference_state: bool = False
    allow_invite_users_dynamically: bool = False
    join_handling: bool = False  # True: may join (``allow``/``true``), False: ``block``
    allow_initiate_conference: bool = False
    allow_anonymity: bool = False
    allow_private_message: bool = False
    is_key_participant: bool = False

    def combine(self, other: GroupActions) -> GroupActions:
        """RFC 4745 §10.2: several rules match → for boolean actions the permissive value
        (logical OR) wins."""
        return GroupActions(*(a or b for a, b in zip(_astuple(self), _astuple(other),
                                                     strict=True)))


def _astuple(a: GroupActions) -> tuple[bool, ...]:
    return (a.allow_conference_state, a.allow_invite_users_dynamically, a.join_handling,
            a.allow_initiate_conference, a.allow_anonymity, a.allow_private_message,
            a.is_key_participant)


@dataclass(frozen=True, slots=True)
class GroupRule:
    """One ``<cp:rule>``.  Conditions (RFC 4745 §5, OMA ``<is-list-member>``): the rule
    applies to everyone when it has no condition; else to a URI that is listed in
    ``identities`` (``<cp:one id>``), or is in a ``<cp:many domain>`` of ``domains`` (``"*"``:
    ``<cp:many/>`` without a domain) and not in its ``excepts``, or — ``list_members`` — is a
    member of the group."""

    id: str
    actions: GroupActions
    identities: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    excepts: tuple[str, ...] = ()
    list_members: bool = False
    other_identity: bool = False  # OMA <other-identity/>: nobody else matched a rule

    @property
    def unconditional(self) -> bool:
        return not (self.identities or self.domains or self.list_members
                    or self.other_identity)

    def matches(self, uri: str, *, member: bool) -> bool:
        """Whether the identity conditions hold for ``uri`` (normalized)."""
        if self.unconditional:
            return True
        if self.list_members and member:
            return True
        if uri in self.identities:
            return True
        if self.domains and uri not in self.excepts:
            host = uri.rpartition("@")[2]
            return any(d == "*" or d == host for d in self.domains)
        return False


@dataclass(frozen=True, slots=True)
class SessionActivePolicy:
    """``<session-active-policy>`` of a group (§7.2.2.8, CF-42); None: operator default."""

    auto_release: bool | None = None
    max_session_length: int | None = None  # seconds
    remaining_participants: int | None = None  # release at or below this many


@dataclass(frozen=True, slots=True)
class GroupDefinition:
    """A pre-defined group or chat room as its ``<list-service>`` defines it."""

    uri: str  # the group URI (normalized)
    owner: str  # XUI of the tree holding the document
    document: str  # the document's name in that tree
    etag: str
    usage: GroupUsage = GroupUsage.PREDEFINED
    display_name: str | None = None
    subject: str | None = None
    members: tuple[GroupMember, ...] = ()
    invite_members: bool = False  # §7.2.2.3: invite the <list> when the group is started
    max_participants: int | None = None  # <max-participant-count>
    services: tuple[str, ...] = ()  # <supported-services><service enabler>
    rules: tuple[GroupRule, ...] = ()
    session_active_policy: SessionActivePolicy | None = None
    age_limit: int | None = None  # <age-restrictions><age-limit>
    automatic_group_advertisement: bool = False
    _members: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_members",
                           frozenset(normalize_uri(m.uri) for m in self.members))

    def is_member(self, uri: str) -> bool:
        return normalize_uri(uri) in self._members

    def display_name_of(self, uri: str) -> str | None:
        key = normalize_uri(uri)
        for m in self.members:
            if normalize_uri(m.uri) == key:
                return m.display_name
        return None

    def permissions(self, uri: str) -> GroupActions:
        """What ``uri`` may do in this group: the actions of every rule whose conditions
        it meets, combined (RFC 4745 §10.2); ``<other-identity>`` rules apply only when no
        other rule matched.  No rule matches: everything false (blocked)."""
        key = normalize_uri(uri)
        member = key in self._members
        result: GroupActions | None = None
        for rule in self.rules:
            if not rule.other_identity and rule.matches(key, member=member):
                result = rule.actions if result is None else result.combine(rule.actions)
        if result is None:
            for rule in self.rules:
                if rule.other_identity:
                    result = rule.actions if result is None else result.combine(rule.actions)
        return result or GroupActions()

    @property
    def supports_im(self) -> bool:
        """§7.2.1.1 / CF-01: ``<supported-services>`` includes IM (no element: any)."""
        return not self.services or any(
            "im" in s.lower().replace(".", " ").replace(":", " ").split()
            or "oma-im" in s.lower() or "sip-im" in s.lower() for s in self.services)


class GroupDirectory(Protocol):
    """The pre-defined groups (Shared Group XDMS); what the Controlling Function reads."""

    async def group(self, uri: str) -> GroupDefinition | None:
        """The group whose ``<list-service uri>`` is ``uri`` (compared normalized), None if
        there is none or its document no longer parses."""
        ...

    async def groups_of(self, owner: str) -> list[GroupDefinition]:
        """The groups defined in ``owner``'s tree (an XUI or ``user@domain``)."""
        ...


class HistoryMode(enum.Enum):
    """Which child of ``<history>`` describes the item (Appendix J)."""

    PAGER = "pager"
    LARGE = "large-message"
    SESSION = "session"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One ``<history>`` of a ``urn:oma:xml:history-list`` document (Appendix J)."""

    reference: str  # history-reference: the Message-ID / history reference
    received: float  # wall-clock seconds (the date attribute and time-stamp)
    size: int
    sender: str
    recipient: str
    subject: str = ""
    expiry: float | None = None
    mode: HistoryMode = HistoryMode.PAGER


class DeferredMetadata(Protocol):
    """The Deferred Messaging Function's stored messages of a user (§12.2.2.3 / DM-10)."""

    async def deferred_entries(self, aor: str) -> Sequence[HistoryEntry]:
        """Stored messages of ``aor`` (``user@domain``), oldest first."""
        ...


class HistoryMetadata(Protocol):
    """The Conversation History Function's recorded items of a user (§13.3.2, CH-09).
    Implemented by ``server/history``; until then :class:`NoHistory`."""

    async def history_entries(self, aor: str) -> Sequence[HistoryEntry]:
        """Recorded items of ``aor`` (``user@domain``), oldest first."""
        ...


class NoHistory:
    """:class:`HistoryMetadata` of a server without a Conversation History Function."""

    async def history_entries(self, aor: str) -> Sequence[HistoryEntry]:
        return ()
