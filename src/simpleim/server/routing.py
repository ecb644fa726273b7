"""Which initial request reaches which role: OMA SIMPLE IM Appendix C as data.

Appendix C gives the SIP/IP core's *initial filter criteria*: for an initial (out-of-dialog)
request, first the originating criteria (indexed on the asserted identity of the sender,
C.2) and then the terminating criteria (indexed on the Request-URI, C.3) decide whether the
request visits the IM server's Participating Function.  :data:`INITIAL_FILTER_CRITERIA`
is that table, one :class:`FilterCriterion` per CASE, in the order of the appendix; the
first row that matches wins, no row means "the core routes it" (:attr:`Role.CORE`).

Some rows are additions, each marked with where the spec asks for them:

* PUBLISH goes to the service-settings role (``Event: poc-settings``; others get 489):
  §5.2.4 and §6.1.1.5 have the IM server receive the settings publication.
* A terminating MESSAGE *without* ``+g.oma.sip-im`` goes to the Participating Function too
  (C.3's NOTE lets the operator route plain MESSAGEs to the IM server), so that a message
  from a plain SIP client to an offline user is deferred (PT-01 step 5) instead of lost.
* Terminating OPTIONS and SUBSCRIBE (with or without the tag) go to the Participating
  Function, which applies invisibility (Appendix E.1 ``vis-status``): to others the user
  then looks unregistered.

The functions with a provisioned URI (Appendix F.2) are addressed by Request-URI instead:
:func:`service_role` maps ``sip:Deferred@DOMAIN``, ``sip:Delete@DOMAIN``,
``sip:History@DOMAIN`` (the Conversation History Function, §13.2) and the pager
exploder of the Controlling Function ``sip:Exploder@DOMAIN`` (§8.3.1, Appendix I
EXPLODER-URI; the user part follows the F.2 convention), the conference factory
``sip:Conference-Factory@DOMAIN`` (§7.2.1.2) and the conferences ``sip:conf~<id>@DOMAIN``
(§7.2.1.5, §7.2.1.12).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CONFERENCE_URI_PREFIX",
    "GROUP_METHODS",
    "IM_FEATURE_TAG",
    "INITIAL_FILTER_CRITERIA",
    "FilterCriterion",
    "Role",
    "SERVICE_URIS",
    "Side",
    "select_role",
    "service_role",
]

#: OMA SIMPLE IM §5.2.1: the IM feature tag (RFC 3840 §9, in Accept-Contact per RFC 3841).
IM_FEATURE_TAG = "+g.oma.sip-im"


class Side(StrEnum):
    ORIGINATING = "originating"  # C.2, indexed on the asserted identity of the sender
    TERMINATING = "terminating"  # C.3, indexed on the Request-URI


class Role(StrEnum):
    CORE = "core"  # no criterion matched: the SIP/IP core routes the request itself
    PARTICIPATING = "participating"  # §6.1
    SETTINGS = "settings"  # §5.2.4 / §6.1.1.5
    DEFERRED = "deferred"  # §12.2.1: retrieval at sip:Deferred@DOMAIN
    DELETE = "delete"  # §12.1.3 / §12.2.2.7: the delete bin sip:Delete@DOMAIN
    SYSTEM = "system"  # §5.4 (addition): sip:System@DOMAIN sends System Messages, takes answers
    EXPLODER = "exploder"  # §8.3.1: the Controlling Function's pager exploder (App. I)
    HISTORY = "history"  # §13.2: the Conversation History Function sip:History@DOMAIN
    CONFERENCE = "conference"  # §7.2: the focus (conference factory and conference URIs)


@dataclass(frozen=True, slots=True)
class FilterCriterion:
    """One CASE: ``method`` AND (``feature_tag`` in Accept-Contact, when given) AND
    (``event`` in the Event header, when given) -> ``role``."""

    side: Side
    method: str
    feature_tag: str | None
    role: Role
    cite: str
    event: str | None = None

    def matches(self, side: Side, method: str, tags: frozenset[str],
                event: str | None) -> bool:
        if side is not self.side or method != self.method:
            return False
        if self.feature_tag is not None and self.feature_tag not in tags:
            return False
        return self.event is None or self.event == event


_O, _T = Side.ORIGINATING, Side.TERMINATING
_PF = Role.PARTICIPATING

INITIAL_FILTER_CRITERIA: tuple[FilterCriterion, ...] = (
    FilterCriterion(_O, "INVITE", IM_FEATURE_TAG, _PF, "App. C.2"),
    FilterCriterion(_O, "MESSAGE", IM_FEATURE_TAG, _PF, "App. C.2"),
    FilterCriterion(_O, "SUBSCRIBE", IM_FEATURE_TAG, _PF, "App. C.2"),
    FilterCriterion(_O, "REFER", IM_FEATURE_TAG, _PF, "App. C.2"),
    # §5.2.4 / §6.1.1.5 (addition): PUBLISH reaches the settings role, which answers 489
    # Bad Event for anything but poc-settings (no presence server here).
    FilterCriterion(_O, "PUBLISH", None, Role.SETTINGS, "§5.2.4, §6.1.1.5 (addition)"),
    FilterCriterion(_T, "INVITE", IM_FEATURE_TAG, _PF, "App. C.3"),
    FilterCriterion(_T, "MESSAGE", IM_FEATURE_TAG, _PF, "App. C.3"),
    FilterCriterion(_T, "MESSAGE", None, _PF,
                    "App. C.3 NOTE (operator routes plain MESSAGE to the IM server)"),
    FilterCriterion(_T, "SUBSCRIBE", IM_FEATURE_TAG, _PF, "App. C.3"),
    FilterCriterion(_T, "REFER", IM_FEATURE_TAG, _PF, "App. C.3"),
    # App. E.1 vis-settings (addition): capability and presence queries of an invisible
    # user find them unregistered, so they visit the PF too.
    FilterCriterion(_T, "OPTIONS", None, _PF, "App. E.1 vis-settings (addition)"),
    FilterCriterion(_T, "SUBSCRIBE", None, _PF, "App. E.1 vis-settings (addition)"),
)

#: Appendix F.2: "Name of OMA IM Function" user parts (compared case-insensitively).
SERVICE_URIS: dict[str, Role] = {"deferred": Role.DEFERRED, "delete": Role.DELETE,
                                 # §5.4 (addition): the IM server identity of System
                                 # Messages, where their answers go
                                 "system": Role.SYSTEM,
                                 # App. I EXPLODER-URI, named after the F.2 convention
                                 "exploder": Role.EXPLODER,
                                 # F.2: the Conversation History Function (§13.2)
                                 "history": Role.HISTORY,
                                 # §7.2.1.2 Conference-factory-URI (RFC 4579 §5.1)
                                 "conference-factory": Role.CONFERENCE}
#: §7.2.1.5: the user part of the IM Session Identities the focus allocates
#: (``sip:conf~<id>@DOMAIN``; server/controlling/conference.py CONFERENCE_PREFIX)
CONFERENCE_URI_PREFIX = "conf~"
#: §7.2.1.3 / §7.2.1.4 / §7.2.1.12 / §8.3.1.1: the initial requests that may address a
#: pre-defined group's URI (looked up in the group directory when no user is registered at
#: the URI)
GROUP_METHODS = frozenset({"INVITE", "SUBSCRIBE", "MESSAGE"})


def accept_contact_tags(values: Iterable[str]) -> frozenset[str]:
    """The feature-tag names of Accept-Contact values (RFC 3841 §9.2), lower-case."""
    tags: set[str] = set()
    for value in values:
        for part in value.split(";")[1:]:
            name = part.split("=", 1)[0].strip().lower()
            if name.startswith("+") or name in ("automata", "methods", "audio", "text"):
                tags.add(name)
    return frozenset(tags)


def select_role(side: Side, method: str, accept_contact: Iterable[str] = (),
                event: str | None = None,
                table: tuple[FilterCriterion, ...] = INITIAL_FILTER_CRITERIA) -> Role:
    """The role an initial request visits on ``side`` (first matching criterion)."""
    tags = accept_contact_tags(accept_contact)
    ev = event.split(";", 1)[0].strip().lower() if event else None
    for criterion in table:
        if criterion.matches(side, method, tags, ev):
            return criterion.role
    return Role.CORE


def service_role(user: str | None) -> Role | None:
    """The function a Request-URI user part names (``Deferred``, ``Delete``, a conference),
    or None."""
    if not user:
        return None
    low = user.lower()
    if low.startswith(CONFERENCE_URI_PREFIX):
        return Role.CONFERENCE
    return SERVICE_URIS.get(low)
