"""The OMA group usage (Shared Group XDMS, ``org.openmobilealliance.groups``) and the Group
Usage List with ``<imusage>`` (Appendix Q.1.1): schema checks and the typed model.

A group document (namespace ``urn:oma:xml:poc:list-service``)::

    <group xmlns="urn:oma:xml:poc:list-service"
           xmlns:rl="urn:ietf:params:xml:ns:resource-lists"
           xmlns:cp="urn:ietf:params:xml:ns:common-policy">
      <list-service uri="sip:friends@example.com">
        <display-name>Friends</display-name>
        <subject>weekend</subject>
        <list>
          <entry uri="sip:alice@example.com"><rl:display-name>Alice</rl:display-name></entry>
        </list>
        <invite-members>true</invite-members>
        <max-participant-count>10</max-participant-count>
        <cp:ruleset>
          <cp:rule id="members">
            <cp:conditions><is-list-member/></cp:conditions>
            <cp:actions>
              <allow-initiate-conference>true</allow-initiate-conference>
              <join-handling>allow</join-handling>
            </cp:actions>
          </cp:rule>
        </cp:ruleset>
        <supported-services><service enabler="urn:oma:xml:im"/></supported-services>
      </list-service>
    </group>

The OMA XDM group schema is not in the seed specifications (checklist §31): the elements the
Controlling Function uses are read by local name inside ``<list-service>`` (producers put
them in the list-service, XDM extension or resource-lists namespaces), their values are
checked (booleans, counts), and everything else is kept as written.  ``join-handling``
takes ``allow``/``true`` or ``block``/``false``.

The Group Usage List (``org.openmobilealliance.group-usage-list``) is a resource-lists
document whose entries carry ``<uriusages><imusage>chat|predefined</imusage></uriusages>``.
"""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from simpleim.errors import XcapError
from simpleim.server.xdm.api import (
    GroupActions,
    GroupDefinition,
    GroupMember,
    GroupRule,
    GroupUsage,
    SessionActivePolicy,
    normalize_uri,
)
from simpleim.server.xdm.xmldoc import local_name, parse_document, text_of

__all__ = [
    "CP_NS",
    "LIST_SERVICE_NS",
    "RL_NS",
    "check_group_document",
    "check_imusage",
    "group_usage_map",
    "parse_groups",
]

LIST_SERVICE_NS = "urn:oma:xml:poc:list-service"
RL_NS = "urn:ietf:params:xml:ns:resource-lists"
CP_NS = "urn:ietf:params:xml:ns:common-policy"

_BOOLEAN_ELEMENTS = {
    "invite-members", "automatic-group-advertisement", "allow-conference-state",
    "allow-invite-users-dynamically", "allow-initiate-conference", "allow-anonymity",
    "allow-private-message", "is-key-participant", "auto-release",
}
_COUNT_ELEMENTS = {"max-participant-count", "age-limit", "max-session-length",
                   "number-of-remaining-participants"}
_TRUE = {"true", "1"}
_FALSE = {"false", "0"}
_JOIN = {"allow": True, "true": True, "1": True, "block": False, "false": False, "0": False}
_IMUSAGE = {"chat": GroupUsage.CHAT, "predefined": GroupUsage.PREDEFINED}


def _schema(reason: str) -> XcapError:
    return XcapError(reason, condition="schema-validation-error")


def _bool(el: etree._Element) -> bool:
    value = text_of(el).lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _schema(f"<{local_name(el)}> must be true or false, not {value!r}")


def _count(el: etree._Element) -> int:
    value = text_of(el)
    if not value.isdigit() or len(value) > 9:
        raise _schema(f"<{local_name(el)}> must be a non-negative integer, not {value!r}")
    return int(value)


def _children(el: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in el if local_name(c) == name]


def _child(el: etree._Element, name: str) -> etree._Element | None:
    found = _children(el, name)
    return found[0] if found else None


def _check_values(service: etree._Element) -> None:
    for el in service.iter():
        name = local_name(el)
        if name in _BOOLEAN_ELEMENTS:
            _bool(el)
        elif name in _COUNT_ELEMENTS:
            _count(el)
        elif name == "join-handling" and text_of(el).lower() not in _JOIN:
            raise _schema(f"<join-handling> must be allow or block, not {text_of(el)!r}")
        elif name == "max-participant-count" and _count(el) < 1:
            raise _schema("<max-participant-count> must be at least 1")


def check_group_document(root: etree._Element) -> list[str]:
    """Schema check of a group document; the group URIs it defines (normalized), which the
    caller makes unique server-wide.  409 ``schema-validation-error`` /
    ``uniqueness-failure`` (two list-services with one URI in the document)."""
    if root.tag != f"{{{LIST_SERVICE_NS}}}group":
        raise _schema(f"the document element must be <group> in {LIST_SERVICE_NS}")
    uris: list[str] = []
    for service in root:
        if not isinstance(service.tag, str):
            continue
        if service.tag != f"{{{LIST_SERVICE_NS}}}list-service":
            if etree.QName(service.tag).namespace == LIST_SERVICE_NS:
                raise _schema(f"unexpected <{local_name(service)}> in <group>")
            continue
        uri = service.get("uri")
        if not uri or ":" not in uri:
            raise _schema("<list-service> needs a uri attribute holding a URI")
        key = normalize_uri(uri)
        if key in uris:
            raise XcapError(f"two list-services with the URI {uri}",
                            condition="uniqueness-failure", field="group/list-service/@uri")
        uris.append(key)
        _check_values(service)
        lists = _children(service, "list")
        if len(lists) > 1:
            raise _schema("one <list> per <list-service>")
        seen: set[str] = set()
        for entry in (_children(lists[0], "entry") if lists else []):
            member = entry.get("uri")
            if not member:
                raise _schema("<entry> needs a uri attribute")
            key = normalize_uri(member)
            if key in seen:
                raise XcapError(f"{member} is listed twice", condition="uniqueness-failure",
                                field="group/list-service/list/entry/@uri")
            seen.add(key)
        for ruleset in _children(service, "ruleset"):
            ids = [r.get("id") for r in _children(ruleset, "rule")]
            if any(not i for i in ids):
                raise _schema("<rule> needs an id attribute (RFC 4745 §7)")
            if len(set(ids)) != len(ids):
                raise XcapError("rule ids must be unique", condition="uniqueness-failure",
                                field="ruleset/rule/@id")
    return uris


def _actions(el: etree._Element | None) -> GroupActions:
    if el is None:
        return GroupActions()
    values: dict[str, bool] = {}
    for action in el:
        name = local_name(action)
        if name == "join-handling":
            values["join_handling"] = _JOIN.get(text_of(action).lower(), False)
        elif name in _BOOLEAN_ELEMENTS and name.replace("-", "_") in GroupActions.__slots__:
            values[name.replace("-", "_")] = _bool(action)
    return GroupActions(**values)


def _rule(el: etree._Element) -> GroupRule:
    identities: list[str] = []
    domains: list[str] = []
    excepts: list[str] = []
    list_members = other = False
    conditions = _child(el, "conditions")
    for cond in (conditions if conditions is not None else []):
        name = local_name(cond)
        if name == "is-list-member":
            list_members = text_of(cond).lower() not in _FALSE
        elif name == "other-identity":
            other = True
        elif name == "identity":
            for item in cond:
                if local_name(item) == "one" and item.get("id"):
                    identities.append(normalize_uri(item.get("id", "")))
                elif local_name(item) == "many":
                    domains.append((item.get("domain") or "*").lower())
                    excepts += [normalize_uri(e.get("id", "")) for e in item
                                if local_name(e) == "except" and e.get("id")]
    return GroupRule(el.get("id", ""), _actions(_child(el, "actions")), tuple(identities),
                     tuple(domains), tuple(excepts), list_members, other)


def _opt_bool(el: etree._Element | None) -> bool | None:
    return None if el is None else _bool(el)


def _opt_count(el: etree._Element | None) -> int | None:
    return None if el is None else _count(el)


def _definition(service: etree._Element, owner: str, document: str, etag: str,
                usage: GroupUsage) -> GroupDefinition:
    lst = _child(service, "list")
    members = tuple(
        GroupMember(e.get("uri", ""), text_of(_child(e, "display-name")) or None)
        for e in (_children(lst, "entry") if lst is not None else []))
    services = _child(service, "supported-services")
    rules = tuple(_rule(r) for rs in _children(service, "ruleset") for r in _children(rs, "rule"))
    sap = _child(service, "session-active-policy")
    policy = None if sap is None else SessionActivePolicy(
        _opt_bool(_child(sap, "auto-release")), _opt_count(_child(sap, "max-session-length")),
        _opt_count(_child(sap, "number-of-remaining-participants")))
    age = _child(service, "age-restrictions")
    return GroupDefinition(
        uri=normalize_uri(service.get("uri", "")), owner=owner, document=document, etag=etag,
        usage=usage, display_name=text_of(_child(service, "display-name")) or None,
        subject=text_of(_child(service, "subject")) or None, members=members,
        invite_members=bool(_opt_bool(_child(service, "invite-members"))),
        max_participants=_opt_count(_child(service, "max-participant-count")),
        services=tuple(s.get("enabler", "") for s in
                       (_children(services, "service") if services is not None else [])),
        rules=rules, session_active_policy=policy,
        age_limit=None if age is None else _opt_count(_child(age, "age-limit")),
        automatic_group_advertisement=bool(
            _opt_bool(_child(service, "automatic-group-advertisement"))),
    )


def parse_groups(content: bytes, owner: str, document: str, etag: str,
                 usages: Mapping[str, GroupUsage] | None = None) -> list[GroupDefinition]:
    """Every ``<list-service>`` of a stored group document as a :class:`GroupDefinition`;
    ``usages``: the owner's Group Usage List (normalized URI → imusage)."""
    root = parse_document(content)
    check_group_document(root)
    usages = usages or {}
    return [_definition(s, owner, document, etag,
                        usages.get(normalize_uri(s.get("uri", "")), GroupUsage.PREDEFINED))
            for s in root if s.tag == f"{{{LIST_SERVICE_NS}}}list-service"]


def check_imusage(root: etree._Element) -> None:
    """Appendix Q.1.1.2: every ``<imusage>`` is ``chat`` or ``predefined``."""
    for el in root.iter():
        if local_name(el) == "imusage" and text_of(el).lower() not in _IMUSAGE:
            raise _schema(f"<imusage> must be chat or predefined, not {text_of(el)!r}")


def group_usage_map(content: bytes) -> dict[str, GroupUsage]:
    """A Group Usage List document → normalized group URI → its ``<imusage>`` (entries
    without one: predefined, the default of Appendix Q.1.1.1)."""
    root = parse_document(content)
    out: dict[str, GroupUsage] = {}
    for entry in root.iter(f"{{{RL_NS}}}entry"):
        uri = entry.get("uri")
        if not uri:
            continue
        usage = GroupUsage.PREDEFINED
        for el in entry.iter():
            if local_name(el) == "imusage":
                usage = _IMUSAGE.get(text_of(el).lower(), GroupUsage.PREDEFINED)
        out[normalize_uri(uri)] = usage
    return out
