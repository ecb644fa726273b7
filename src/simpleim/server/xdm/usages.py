"""The XCAP application usages this server knows (RFC 4825 §5): AUID, MIME type, default
document namespace, whether users write them, and their schema / uniqueness checks.

* ``xcap-caps`` (global tree): written by the server (RFC 4825 §12);
* ``resource-lists``: users (RFC 4826 §3);
* ``org.openmobilealliance.groups``: users (pre-defined groups, checklist §31);
* ``org.openmobilealliance.group-usage-list``: users (``<imusage>``, Appendix Q);
* ``org.openmobilealliance.deferred-list``: the server (§12.1.2, Appendix J);
* ``org.openmobilealliance.conv-history``: the server (§13.1.4);
* ``org.openmobilealliance.xcap-directory``: the server (the documents of a user);
* ``org.openmobilealliance.access-rules``: users (the access policy of the OMA Shared
  Policy XDMS, §6.1.2.1 step 2, Appendix S; :mod:`simpleim.server.xdm.access`).

The MIME types are in :data:`USAGES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lxml import etree

from simpleim.errors import XcapError
from simpleim.server.xdm.access import AUID_ACCESS_RULES, COMMON_POLICY_NS, check_access_rules
from simpleim.server.xdm.groups import (
    LIST_SERVICE_NS,
    RL_NS,
    check_group_document,
    check_imusage,
)
from simpleim.server.xdm.xmldoc import local_name

__all__ = [
    "AUID_ACCESS_RULES",
    "AUID_CONV_HISTORY",
    "AUID_DEFERRED",
    "AUID_DIRECTORY",
    "AUID_GROUPS",
    "AUID_GROUP_USAGE",
    "AUID_RESOURCE_LISTS",
    "AUID_XCAP_CAPS",
    "AppUsage",
    "HISTORY_LIST_NS",
    "USAGES",
    "XCAP_CAPS_NS",
    "XCAP_DIRECTORY_NS",
    "check_resource_lists",
]

AUID_XCAP_CAPS = "xcap-caps"
AUID_RESOURCE_LISTS = "resource-lists"
AUID_GROUPS = "org.openmobilealliance.groups"
AUID_GROUP_USAGE = "org.openmobilealliance.group-usage-list"
AUID_DEFERRED = "org.openmobilealliance.deferred-list"
AUID_CONV_HISTORY = "org.openmobilealliance.conv-history"
AUID_DIRECTORY = "org.openmobilealliance.xcap-directory"
XCAP_DIRECTORY_NS = "urn:oma:xml:xdm:xcap-directory"
XCAP_CAPS_NS = "urn:ietf:params:xml:ns:xcap-caps"
HISTORY_LIST_NS = "urn:oma:xml:history-list"

# A check: the document element -> the URIs the document claims server-wide; raises
# XcapError 409 (schema-validation-error, uniqueness-failure, constraint-failure).
Check = Callable[[etree._Element], list[str]]


@dataclass(frozen=True, slots=True)
class AppUsage:
    auid: str
    mime: str
    namespace: str  # the default document namespace (RFC 4825 §5.4)
    writable: bool  # False: produced by the server, GET only
    check: Check | None = None
    #: the document name served when the usage is produced by the server
    document: str = "index"


def _schema(reason: str) -> XcapError:
    return XcapError(reason, condition="schema-validation-error")


def _unique(kind: str, value: str, path: str, alt: str | None) -> XcapError:
    return XcapError(f"{kind} {value!r} is already used in this list",
                     condition="uniqueness-failure", field=path,
                     alt_values=(alt,) if alt else ())


_LIST_CHILDREN = {"display-name", "entry", "entry-ref", "external", "list"}
_KEYS = {"entry": "uri", "entry-ref": "ref", "external": "anchor", "list": "name"}


def _check_list(el: etree._Element, path: str) -> None:
    seen: dict[str, set[str]] = {k: set() for k in _KEYS}
    for child in el:
        if not isinstance(child.tag, str):
            continue
        ns = etree.QName(child.tag).namespace
        name = local_name(child)
        if ns != RL_NS:
            continue  # extension elements of other namespaces (RFC 4826 §3.2)
        if name not in _LIST_CHILDREN:
            raise _schema(f"unexpected <{name}> in <list>")
        attr = _KEYS.get(name)
        if attr is None:
            continue
        value = child.get(attr)
        if value is None:
            if name in ("entry", "entry-ref"):
                raise _schema(f"<{name}> needs the {attr} attribute")
            if name == "list":
                _check_list(child, f"{path}/list")
            continue
        if value in seen[name]:
            alt = None
            if name == "list":
                n = 2
                while f"{value}-{n}" in seen[name]:
                    n += 1
                alt = f"{value}-{n}"
            raise _unique(attr, value, f"{path}/{name}/@{attr}", alt)
        seen[name].add(value)
        if name == "list":
            _check_list(child, f"{path}/list")


def check_resource_lists(root: etree._Element) -> list[str]:
    """RFC 4826 §3.4.5: the schema's structure and the uniqueness of list ``name``, entry
    ``uri``, entry-ref ``ref`` and external ``anchor`` among siblings."""
    if root.tag != f"{{{RL_NS}}}resource-lists":
        raise _schema(f"the document element must be <resource-lists> in {RL_NS}")
    names: set[str] = set()
    for child in root:
        if not isinstance(child.tag, str) or etree.QName(child.tag).namespace != RL_NS:
            continue
        if local_name(child) != "list":
            raise _schema(f"unexpected <{local_name(child)}> in <resource-lists>")
        name = child.get("name")
        if name is not None:
            if name in names:
                raise _unique("name", name, "resource-lists/list/@name", f"{name}-2")
            names.add(name)
        _check_list(child, "resource-lists/list")
    return []


def _check_group_usage(root: etree._Element) -> list[str]:
    check_resource_lists(root)
    check_imusage(root)
    return []


USAGES: Mapping[str, AppUsage] = {
    u.auid: u for u in (
        AppUsage(AUID_XCAP_CAPS, "application/xcap-caps+xml", XCAP_CAPS_NS, False),
        AppUsage(AUID_RESOURCE_LISTS, "application/resource-lists+xml", RL_NS, True,
                 check_resource_lists),
        AppUsage(AUID_GROUPS, "application/vnd.oma.poc.groups+xml", LIST_SERVICE_NS, True,
                 check_group_document),
        AppUsage(AUID_GROUP_USAGE, "application/vnd.oma.group-usage-list+xml", RL_NS, True,
                 _check_group_usage),
        AppUsage(AUID_DEFERRED, "application/vnd.oma.im.deferred-list+xml", HISTORY_LIST_NS,
                 False, document="deferred-list"),
        AppUsage(AUID_CONV_HISTORY, "application/vnd.oma.im.history-list+xml",
                 HISTORY_LIST_NS, False, document="conv-history"),
        AppUsage(AUID_DIRECTORY, "application/vnd.oma.xcap-directory+xml", XCAP_DIRECTORY_NS,
                 False, document="directory.xml"),
        AppUsage(AUID_ACCESS_RULES, "application/auth-policy+xml", COMMON_POLICY_NS, True,
                 check_access_rules),
    )
}
