"""Chat aliases and anonymity in an IM conference, sans-I/O (OMA SIMPLE IM §7.2.3.2,
§7.1.1.15, §7.2.1.2 step 3, §7.2.1.3-5 step 6; checklist CF-51).

A user who joins with ``Privacy: id`` is anonymous when the conference lets them: a
pre-defined group's ``<allow-anonymity>`` for that user (checklist §31), the operator's
``allow_anonymity`` for an ad-hoc conference; else 403 + ``119 Anonymity not allowed``
(:func:`anonymity_refusal`).  The focus's mapping table is the conference state itself: an
anonymous participant gets (:func:`chat_alias`)

* a chat alias - the display name of its From (§5.5), ``Anonymous`` without one - made
  unique among the participants' display names (``bob``, ``bob-2``..., §7.2.3.2 step 2);
* an anonymous identity of its own, ``sip:anonymous-N@anonymous.invalid`` (unique in the
  conference, kept when it rejoins anonymously), which the others see instead of its URI:
  in the conference event package (``entity``, with ``yourown`` for the user itself), as
  CPIM From of the copies of its messages, as inviter of the users it invites.
"""

from __future__ import annotations

from dataclasses import dataclass

from simpleim.server.roles import W_ANONYMITY_NOT_ALLOWED, Reply, im_warning
from simpleim.server.xdm.api import GroupDefinition
from simpleim.sip.message import SipRequest

from .conference import Conference, ConferenceLimits, same_user

__all__ = [
    "ANONYMOUS_HOST",
    "ChatAlias",
    "anonymity_refusal",
    "chat_alias",
    "presented",
    "wants_anonymity",
]

#: RFC 3323 §4.1.1.3: the host of anonymous URIs
ANONYMOUS_HOST = "anonymous.invalid"
#: the alias of an anonymous participant who gave no display name
DEFAULT_ALIAS = "Anonymous"


def wants_anonymity(req: SipRequest) -> bool:
    """RFC 3325 / §7.1.1.15 step 1: ``Privacy: id`` asks for anonymity."""
    return "id" in [p.strip().lower() for v in req.headers.get_all("Privacy")
                    for p in v.split(";")]


def anonymity_refusal(group: GroupDefinition | None, who: str,
                      limits: ConferenceLimits) -> Reply | None:
    """§7.2.3.2 step 1 / §7.2.1.2 step 3: None when ``who`` may be anonymous here, else
    403 + Warning 119 (a group's ``<allow-anonymity>``, the operator's policy ad hoc)."""
    allowed = group.permissions(who).allow_anonymity if group is not None \
        else limits.allow_anonymity
    if allowed:
        return None
    return Reply(403, None, (("Warning", im_warning(limits.host, W_ANONYMITY_NOT_ALLOWED)),))


@dataclass(frozen=True, slots=True)
class ChatAlias:
    """How a joining participant is shown: its display name and, anonymous, the identity
    the others see (None: its own URI)."""

    display: str | None
    shown: str | None = None


def _taken(conf: Conference, who: str) -> tuple[set[str], set[str]]:
    others = [p for p in conf.participants if not same_user(p.uri, who)]
    return ({p.display.casefold() for p in others if p.display},
            {p.shown.lower() for p in others if p.shown})


def chat_alias(conf: Conference, who: str, given: str | None, anonymous: bool) -> ChatAlias:
    """§7.2.3.2 step 2: the mapping-table entry of ``who`` joining ``conf`` with the display
    name ``given``; an anonymous one gets a unique alias and anonymous identity (kept from an
    earlier anonymous join of the same user)."""
    if not anonymous:
        return ChatAlias(given)
    names, identities = _taken(conf, who)
    base = (given or "").strip() or DEFAULT_ALIAS
    alias, n = base, 2
    while alias.casefold() in names:
        alias, n = f"{base}-{n}", n + 1
    me = conf.participant(who)
    if me is not None and me.shown is not None:
        return ChatAlias(alias, me.shown)
    k = len(identities) + 1
    while f"sip:anonymous-{k}@{ANONYMOUS_HOST}" in identities:
        k += 1
    return ChatAlias(alias, f"sip:anonymous-{k}@{ANONYMOUS_HOST}")


def presented(conf: Conference, uri: str) -> tuple[str, str | None]:
    """The identity and display name under which the participant ``uri`` acts towards
    others (the focus's INVITEs on its behalf): its anonymous identity and alias when it
    is anonymous, else its URI (no display name)."""
    p = conf.participant(uri)
    if p is None or p.shown is None:
        return uri, None
    return p.shown, p.display
