"""Caller preferences (RFC 3841) applied to a target set of registered contacts.

Feature tags come from the Contact parameters stored at registration (RFC 3840 §9);
the request's Accept-Contact / Reject-Contact patterns select among them.  This is the
explicit-match subset of RFC 3841 §7.2: a pattern matches a contact when every feature
tag of the pattern is present in the contact with a matching value.
"""

from __future__ import annotations

from collections.abc import Sequence

from simpleim.server.location import Binding
from simpleim.sip.headers import ContactPattern, feature_tag_values, feature_tags
from simpleim.sip.uri import Params

__all__ = ["apply_caller_preferences", "pattern_matches"]

_DIRECTIVES = frozenset({"require", "explicit"})
_TRUE = frozenset({"true"})


def _norm(values: list[str]) -> set[str]:
    return {v.strip().lower() for v in values}


def pattern_matches(pattern_tags: dict[str, list[str]], contact: Params) -> bool:
    """Whether ``contact`` carries every tag of the pattern with a matching value."""
    for name, wanted in pattern_tags.items():
        have = feature_tag_values(contact, name)
        if have is None:
            return False
        have_set = _norm(have) or _TRUE  # RFC 3840 §9: a bare tag means TRUE
        want_set = _norm(wanted) or _TRUE
        negated = {w[1:] for w in want_set if w.startswith("!")}
        positive = want_set - {w for w in want_set if w.startswith("!")}
        if negated and have_set & negated:
            return False
        if positive and not have_set & positive:
            return False
    return True


def _tags(pattern: ContactPattern) -> dict[str, list[str]]:
    params = Params((k, v) for k, v in pattern.params.items() if k.lower() not in _DIRECTIVES)
    return {k.lower(): v for k, v in feature_tags(params).items()}


def apply_caller_preferences(
    bindings: Sequence[Binding],
    accept: Sequence[ContactPattern],
    reject: Sequence[ContactPattern],
) -> list[Binding]:
    """The contacts to fork to, best first.

    RFC 3841 §7.2.3: a contact matching a Reject-Contact pattern is removed.
    RFC 3841 §7.2.4: with ``require`` a contact that does not match an Accept-Contact
    pattern is discarded; without it, matching contacts are only preferred (ordered first).
    """
    if not accept and not reject:
        return list(bindings)
    contacts = [(b, Params(b.params)) for b in bindings]
    reject_tags = [_tags(p) for p in reject]
    contacts = [
        (b, params) for b, params in contacts
        if not any(tags and pattern_matches(tags, params) for tags in reject_tags)
    ]
    scored: list[tuple[int, int, Binding]] = []
    for index, (b, params) in enumerate(contacts):
        score = 0
        keep = True
        for pattern in accept:
            tags = _tags(pattern)
            if not tags:
                continue
            if pattern_matches(tags, params):
                score += 1
            elif pattern.require:
                keep = False
                break
        if keep:
            scored.append((-score, index, b))
    scored.sort(key=lambda item: (item[0], item[1]))
    return [b for _, _, b in scored]
