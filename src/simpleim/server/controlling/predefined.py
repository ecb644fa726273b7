"""Pre-defined groups and chat rooms at the focus, sans-I/O (OMA SIMPLE IM §7.2.1.3,
§7.2.1.4, §7.2.1.5, §7.2.2.3, §7.2.2.7–§7.2.2.9; checklist §31).

The Controlling Function reads a group as a
:class:`~simpleim.server.xdm.api.GroupDefinition` (the Shared Group XDMS through
:class:`~simpleim.server.xdm.api.GroupDirectory`); the decisions here are pure:

=======================  ============================================  =====================
request                  check                                         refusal
=======================  ============================================  =====================
INVITE, no session       ``<supported-services>`` has IM               404 (§7.2.1.3 step 1)
INVITE, no session       Contact without ``isfocus``                   495 + 105 (step 2)
INVITE, no session       ``<allow-initiate-conference>``               403 + 127 (step 3)
INVITE, session running  Contact without ``isfocus``                   403 + 105 (§7.2.1.4 1)
INVITE, session running  ``<join-handling>`` allow                     403 + 127 (step 2)
INVITE, session running  fewer than ``<max-participant-count>`` in     486 + 102 (step 3)
rejoin (IM Session Id)   a participant, or ``<join-handling>`` allow   403 + 122 (§7.2.1.5)
REFER (add)              ``<allow-invite-users-dynamically>``          403 + 122 (§7.2.2.7)
=======================  ============================================  =====================

A session started from a group (:func:`group_conference`) carries the group's policy: its
max participants, the members to invite when ``<invite-members>`` is true (§7.2.2.3), the
subject, and the release policy of ``<session-active-policy>`` (§7.2.2.8: the group's values
take precedence; without them auto-release is off - the group session outlives its
initiator - and a group that invites nobody, a chat room, ends only when empty).
"""

from __future__ import annotations

from dataclasses import dataclass

from simpleim.server.roles import (
    W_FUNCTION_NOT_ALLOWED,
    W_SERVICE_NOT_AUTHORISED,
    Reply,
    im_warning,
)
from simpleim.server.xdm.api import GroupDefinition, GroupMember
from simpleim.sip.message import SipRequest

from .conference import (
    W_TOO_MANY_PARTICIPANTS,
    Conference,
    ConferenceLimits,
    ParticipantInput,
    same_user,
)

__all__ = [
    "GroupStart",
    "W_ISFOCUS_ASSIGNED",
    "add_refusal",
    "group_conference",
    "has_isfocus",
    "join_refusal",
    "joined_display",
    "rejoin_refusal",
    "start_refusal",
]

#: §7.2.1.3 step 2 / §7.2.1.4 step 1
W_ISFOCUS_ASSIGNED = "105 isfocus already assigned"


def has_isfocus(req: SipRequest) -> bool:
    """The Contact carries the ``isfocus`` feature parameter (RFC 4579 §3)."""
    return any("isfocus" in [p.split("=", 1)[0].strip().lower()
                             for p in str(v).split(";")[1:]]
               for v in req.headers.get_all("Contact"))


def _refuse(status: int, host: str, text: str, reason: str | None = None) -> Reply:
    return Reply(status, reason, (("Warning", im_warning(host, text)),))


def start_refusal(group: GroupDefinition, req: SipRequest, who: str,
                  limits: ConferenceLimits) -> Reply | None:
    """§7.2.1.3 steps 1-3 for the INVITE that would start the group's session."""
    if not group.supports_im:
        return Reply(404)                                           # §11.2
    if has_isfocus(req):
        return _refuse(495, limits.host, W_ISFOCUS_ASSIGNED, "URI-List Handling Refused")
    if not group.permissions(who).allow_initiate_conference:
        return _refuse(403, limits.host, W_SERVICE_NOT_AUTHORISED)  # §7.2.2.3
    return None


def _full(conf: Conference, who: str, limits: ConferenceLimits) -> bool:
    cap = conf.max_participants or limits.max_participants
    others = [p for p in conf.connected if not same_user(p.uri, who)]
    return len(others) >= cap


def join_refusal(group: GroupDefinition, req: SipRequest, conf: Conference, who: str,
                 limits: ConferenceLimits) -> Reply | None:
    """§7.2.1.4 steps 1-3: an INVITE to the group URI while its session runs."""
    if not group.supports_im:
        return Reply(404)
    if has_isfocus(req):
        return _refuse(403, limits.host, W_ISFOCUS_ASSIGNED)
    if not group.permissions(who).join_handling:
        return _refuse(403, limits.host, W_SERVICE_NOT_AUTHORISED)  # §7.2.2.9
    if _full(conf, who, limits):
        return _refuse(486, limits.host, W_TOO_MANY_PARTICIPANTS)
    return None


def rejoin_refusal(group: GroupDefinition | None, conf: Conference, who: str,
                   limits: ConferenceLimits) -> Reply | None:
    """§7.2.1.5 steps 2-3: an INVITE to the IM Session Identity of a group's session; a
    participant may come back, others per ``<join-handling>``."""
    known = conf.participant(who) is not None
    if not known and (group is None or not group.permissions(who).join_handling):
        return _refuse(403, limits.host, W_FUNCTION_NOT_ALLOWED)
    if _full(conf, who, limits):
        return _refuse(486, limits.host, W_TOO_MANY_PARTICIPANTS)
    return None


def add_refusal(group: GroupDefinition | None, who: str, target: str,
                limits: ConferenceLimits) -> Reply | None:
    """§7.2.2.7: a participant adds a user by REFER only when the group lets them
    (``<allow-invite-users-dynamically>``) and the user may take part (``<join-handling>``
    or a member)."""
    if group is None or not group.permissions(who).allow_invite_users_dynamically:
        return _refuse(403, limits.host, W_FUNCTION_NOT_ALLOWED)
    if not (group.is_member(target) or group.permissions(target).join_handling):
        return _refuse(403, limits.host, W_FUNCTION_NOT_ALLOWED)
    return None


@dataclass(frozen=True, slots=True)
class GroupStart:
    """The conference a group's first INVITE creates, and whom the focus invites."""

    conference: Conference
    invitees: tuple[GroupMember, ...]


def group_conference(group: GroupDefinition, conf_uri: str, creator: str, *, now: float,
                     when: str, display: str | None, subject: str | None,
                     limits: ConferenceLimits) -> GroupStart:
    """§7.2.1.3 step 8 / §7.2.2.3: the group's session with its initiator joined and the
    members (``<invite-members>`` true) pending, no more than the group allows."""
    cap = group.max_participants or limits.max_participants
    invitees: tuple[GroupMember, ...] = ()
    if group.invite_members:
        invitees = tuple(m for m in group.members if not same_user(m.uri, creator))[:cap - 1]
    sap = group.session_active_policy
    remaining = sap.remaining_participants if sap is not None else None
    if remaining is None and not invitees:
        remaining = 0          # a room: it lives while anyone is in it
    conf = Conference(conf_uri, creator, created=now, subject=group.subject or subject,
                      group=group.uri, max_participants=cap,
                      auto_release=bool(sap.auto_release) if sap is not None else False,
                      remaining=remaining,
                      max_length=sap.max_session_length if sap is not None else None)
    conf, _ = conf.step(creator, ParticipantInput.JOINED, when=when,
                        display=display or group.display_name_of(creator))
    for m in invitees:
        conf, _ = conf.step(m.uri, ParticipantInput.INVITED, when=when,
                            display=m.display_name, by=creator)
    return GroupStart(conf, invitees)


def joined_display(group: GroupDefinition | None, who: str, given: str | None) -> str | None:
    """§5.5: the display name of the request, else the one of the group's list."""
    return given or (group.display_name_of(who) if group is not None else None)

