"""The user's access policy (OMA SIMPLE IM §6.1.2.1 step 2, Appendix S): who may not send
the user pager / large messages, invite to sessions or send files.

The documents are ``ruleset`` documents of RFC 4745 (common policy) with the OMA
extensions Appendix S uses, stored per user under the application usage
``org.openmobilealliance.access-rules`` (the OMA Shared Policy XDMS) and written by the
user over XCAP.  A ``<rule>`` applies to a request when every condition it has holds
(RFC 4745 §10.1):

* ``<identity>``: ``<one id="...">`` (the sender), ``<many domain="...">`` (with
  ``<except id="..."/>`` / ``<except domain="..."/>``), or ``<many/>`` (anyone); absent:
  any sender;
* ``<external-list>`` (OMA common policy extension): ``<entry anc="XCAP URI"/>`` naming a
  ``<list name="...">`` of the user's own ``resource-lists`` document (the OMA
  blocked-contacts list, e.g. ``.../resource-lists/users/sip:bob@example.com/index/~~/
  resource-lists/list%5b@name=%22oma_blockedcontacts%22%5d``); the sender is in one of
  them.  An anchor elsewhere is never resolved (the condition is then false);
* ``<anonymous-request/>``: the sender asked for anonymity;
* ``<service-list>``: a ``<service featuretag="...">`` of the IM service (Appendix S
  writes ``+g.oma-im-sip``, §6.1.2.1 ``+g.oma-sip-im``; ``+g.oma.sip-im`` is the tag on
  the wire: each counts) - or ``<all-services/>``;
* ``<media-list>``: ``<pager-mode-message/>`` (pager and large messages, §6.1.2.1 e),
  ``<message-session/>`` (IM sessions, d), ``<file-transfer/>``.

A request is rejected when a rule that applies has ``<allow-reject-invite>true</...>``
(RFC 4745 §10.2: of boolean permissions the largest wins).  The OMA extension elements
are recognised by local name in any namespace (the specification's own examples spell
their namespace in more than one way); the common-policy ones must be in
``urn:ietf:params:xml:ns:common-policy``.  Other conditions (``<validity>``,
``<sphere>``, ``<other-identity>``) make a rule never apply: a rule that cannot be
evaluated here must not block anyone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from lxml import etree

from simpleim.errors import XcapError
from simpleim.server.xdm.api import PolicyMedia, normalize_uri
from simpleim.server.xdm.groups import RL_NS
from simpleim.server.xdm.xmldoc import local_name, parse_document, text_of

__all__ = [
    "AUID_ACCESS_RULES",
    "COMMON_POLICY_NS",
    "AccessRule",
    "AccessRules",
    "check_access_rules",
    "parse_access_rules",
    "resource_lists_members",
]

AUID_ACCESS_RULES = "org.openmobilealliance.access-rules"
COMMON_POLICY_NS = "urn:ietf:params:xml:ns:common-policy"
#: the IM service's feature tag as the documents may spell it (see the module docstring)
IM_FEATURETAGS = frozenset({"+g.oma.sip-im", "+g.oma-sip-im", "+g.oma-im-sip"})
_KNOWN_CONDITIONS = frozenset({"identity", "external-list", "anonymous-request",
                               "service-list", "media-list"})
_LIST_NAME = re.compile(r"""list\[@name=["']([^"']+)["']\]""")


@dataclass(frozen=True, slots=True)
class AccessRule:
    """One ``<rule>`` as far as this server evaluates it."""

    id: str
    reject: bool                                   # <allow-reject-invite>
    evaluable: bool = True                         # False: a condition we do not know
    any_identity: bool = True                      # no <identity> condition
    ids: frozenset[str] = frozenset()              # <one id>
    #: <many domain> ("" for <many/>: anyone) with its <except id> / <except domain>
    domains: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = ()
    lists: tuple[str, ...] = ()                    # <external-list> list names (own doc)
    has_lists: bool = False
    anonymous_only: bool = False                   # <anonymous-request/>
    im_service: bool = True                        # <service-list> names IM (or absent)
    media: frozenset[PolicyMedia] | None = None    # None: no <media-list>

    def applies(self, sender: str, media: PolicyMedia, anonymous: bool,
                lists: Mapping[str, frozenset[str]]) -> bool:
        if not self.evaluable or not self.im_service:
            return False
        if self.media is not None and media not in self.media:
            return False
        if self.anonymous_only and not anonymous:
            return False
        if self.has_lists and not any(sender in lists.get(name, frozenset())
                                      for name in self.lists):
            return False
        if self.any_identity:
            return True
        if sender in self.ids:
            return True
        host = sender.rpartition("@")[2]
        return any((not domain or host == domain) and sender not in except_ids
                   and host not in except_domains
                   for domain, except_ids, except_domains in self.domains)


@dataclass(frozen=True, slots=True)
class AccessRules:
    """A user's rules (every access-rules document of theirs) and the members of the lists
    of their own resource-lists document that the rules name."""

    rules: tuple[AccessRule, ...] = ()
    lists: Mapping[str, frozenset[str]] | None = None

    @property
    def list_names(self) -> frozenset[str]:
        return frozenset(name for rule in self.rules for name in rule.lists)

    def rejects(self, sender: str, media: PolicyMedia, *, anonymous: bool = False) -> bool:
        """§6.1.2.1 step 2: is a request of ``media`` from ``sender`` (an IM address)
        rejected?"""
        who = normalize_uri(sender)
        lists = self.lists or {}
        return any(rule.reject and rule.applies(who, media, anonymous, lists)
                   for rule in self.rules)


def _cp(name: str) -> str:
    return f"{{{COMMON_POLICY_NS}}}{name}"


def _schema(reason: str) -> XcapError:
    return XcapError(reason, condition="schema-validation-error")


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [c for c in parent if isinstance(c.tag, str)]


def _boolean(text: str, what: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise _schema(f"<{what}> must be true or false, not {text.strip()!r}")


def check_access_rules(root: etree._Element) -> list[str]:
    """The XCAP check of an access-rules document (RFC 4745 §13 structure, rule ids unique
    per RFC 4745 §7: 409 uniqueness-failure); it claims no server-wide URI."""
    _parse_root(root)
    return []


def _parse_root(root: etree._Element) -> tuple[AccessRule, ...]:
    if root.tag != _cp("ruleset"):
        raise _schema(f"the document element must be <ruleset> in {COMMON_POLICY_NS}")
    rules: list[AccessRule] = []
    seen: set[str] = set()
    for el in _elements(root):
        if el.tag != _cp("rule"):
            raise _schema(f"unexpected <{local_name(el)}> in <ruleset>")
        rid = el.get("id")
        if not rid:
            raise _schema("<rule> needs the id attribute")
        if rid in seen:
            raise XcapError(f"rule id {rid!r} is already used", condition="uniqueness-failure",
                            field="ruleset/rule/@id", alt_values=(f"{rid}-2",))
        seen.add(rid)
        rules.append(_rule(el, rid))
    return tuple(rules)


@dataclass(slots=True)
class _Conditions:
    """What the ``<conditions>`` of one rule say (see :class:`AccessRule`)."""

    evaluable: bool = True
    any_identity: bool = True
    ids: frozenset[str] = frozenset()
    domains: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = ()
    lists: tuple[str, ...] = ()
    has_lists: bool = False
    anonymous_only: bool = False
    im_service: bool = True
    media: frozenset[PolicyMedia] | None = None


def _rule(el: etree._Element, rid: str) -> AccessRule:
    reject = False
    c = _Conditions()
    for child in _elements(el):
        if child.tag == _cp("conditions"):
            _conditions(child, c)
        elif child.tag == _cp("actions"):
            for action in _elements(child):
                if local_name(action) == "allow-reject-invite":
                    reject = _boolean(text_of(action), "allow-reject-invite")
        elif child.tag != _cp("transformations"):
            raise _schema(f"unexpected <{local_name(child)}> in <rule>")
    return AccessRule(rid, reject, c.evaluable, c.any_identity, c.ids, c.domains, c.lists,
                      c.has_lists, c.anonymous_only, c.im_service, c.media)


def _conditions(el: etree._Element, c: _Conditions) -> None:
    for cond in _elements(el):
        name = local_name(cond)
        if cond.tag == _cp("identity"):
            _identity(cond, c)
        elif name == "external-list":
            anchors = [e.get("anc") or "" for e in _elements(cond)
                       if local_name(e) == "entry"]
            if not anchors:
                raise _schema("<external-list> needs an <entry anc=...>")
            c.has_lists = True
            c.lists = tuple(n for n in (_list_name(a) for a in anchors) if n)
        elif name == "anonymous-request":
            c.anonymous_only = True
        elif name == "service-list":
            c.im_service = any(
                local_name(s) == "all-services"
                or (local_name(s) == "service"
                    and (s.get("featuretag") or "").strip().lower() in IM_FEATURETAGS)
                for s in _elements(cond))
        elif name == "media-list":
            kinds = {m.value: m for m in PolicyMedia}
            c.media = frozenset(kinds[local_name(m)] for m in _elements(cond)
                                if local_name(m) in kinds)
        elif name not in _KNOWN_CONDITIONS:
            c.evaluable = False


def _identity(el: etree._Element, c: _Conditions) -> None:
    ids: set[str] = set()
    domains: list[tuple[str, frozenset[str], frozenset[str]]] = []
    for item in _elements(el):
        if item.tag == _cp("one"):
            uid = item.get("id")
            if not uid:
                raise _schema("<one> needs the id attribute")
            ids.add(normalize_uri(uid))
        elif item.tag == _cp("many"):
            excepts = [e for e in _elements(item) if local_name(e) == "except"]
            ex_ids = frozenset(normalize_uri(e.get("id") or "") for e in excepts
                               if e.get("id"))
            ex_domains = frozenset((e.get("domain") or "").lower() for e in excepts
                                   if e.get("domain"))
            # <many/> without a domain: anyone (RFC 4745 §7.1.1.2), less its exceptions
            domains.append(((item.get("domain") or "").lower(), ex_ids, ex_domains))
        else:
            raise _schema(f"unexpected <{local_name(item)}> in <identity>")
    c.any_identity = False
    c.ids = frozenset(ids)
    c.domains = tuple(domains)


def _list_name(anchor: str) -> str | None:
    """The list name of an anchor into the user's resource-lists document (percent-encoded
    or not); None for any other anchor."""
    text = unquote(anchor)
    if "/resource-lists/users/" not in text:
        return None
    match = _LIST_NAME.search(text)
    return match.group(1) if match else None


def parse_access_rules(content: bytes) -> tuple[AccessRule, ...]:
    """The rules of one stored access-rules document; :class:`XcapError` when it is not
    one (never another exception)."""
    return _parse_root(parse_document(content))


def resource_lists_members(content: bytes, names: frozenset[str]) -> dict[str, frozenset[str]]:
    """The ``<entry uri>`` members (normalised) of the top-level lists ``names`` of a
    resource-lists document; :class:`XcapError` when it is not one."""
    root = parse_document(content)
    out: dict[str, frozenset[str]] = {}
    for el in _elements(root):
        if el.tag != f"{{{RL_NS}}}list" or el.get("name") not in names:
            continue
        out[el.get("name") or ""] = frozenset(
            normalize_uri(e.get("uri") or "") for e in el.iter(f"{{{RL_NS}}}entry")
            if e.get("uri"))
    return out
