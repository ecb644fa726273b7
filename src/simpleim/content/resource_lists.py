"""Resource lists (RFC 4826) and recipient lists (RFC 5364 copyControl; RFC 5365
MESSAGE and RFC 5366 INVITE URI-list services).

A recipient list travels as a body part with ``Content-Type:
application/resource-lists+xml`` and ``Content-Disposition: recipient-list``;
each ``<entry>`` may carry ``cp:copyControl="to|cc|bcc"`` and ``cp:anonymize``.
The URI-list server flattens the list (:meth:`ResourceLists.recipients`,
duplicates removed) and gives the recipients a copy without ``bcc`` entries and
with anonymized entries hidden (:meth:`ResourceLists.for_recipients`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from xml.etree.ElementTree import Element

from simpleim.errors import ContentError

from .xml import (
    XmlLimits,
    XmlNode,
    child_text,
    local_name,
    namespace,
    parse_xml,
    qname,
    text_node,
)

__all__ = [
    "ANONYMOUS_URI",
    "COPYCONTROL_NS",
    "RECIPIENT_LIST_DISPOSITION",
    "RECIPIENT_LIST_INVITE",
    "RECIPIENT_LIST_MESSAGE",
    "RESOURCE_LISTS_CONTENT_TYPE",
    "RESOURCE_LISTS_NS",
    "CopyControl",
    "Entry",
    "EntryRef",
    "External",
    "ResourceList",
    "ResourceLists",
    "build_recipient_list",
    "parse_resource_lists",
    "recipient_list_headers",
]

RESOURCE_LISTS_NS = "urn:ietf:params:xml:ns:resource-lists"
COPYCONTROL_NS = "urn:ietf:params:xml:ns:copycontrol"
RESOURCE_LISTS_CONTENT_TYPE = "application/resource-lists+xml"
RECIPIENT_LIST_DISPOSITION = "recipient-list"
#: Option tags of RFC 5365 (MESSAGE) and RFC 5366 (INVITE) URI-list services.
RECIPIENT_LIST_MESSAGE = "recipient-list-message"
RECIPIENT_LIST_INVITE = "recipient-list-invite"
ANONYMOUS_URI = "sip:anonymous@anonymous.invalid"
_NS = RESOURCE_LISTS_NS


class CopyControl(StrEnum):
    """RFC 5364 copyControl attribute values."""

    TO = "to"
    CC = "cc"
    BCC = "bcc"


@dataclass(frozen=True)
class Entry:
    uri: str
    display_name: str | None = None
    copy_control: CopyControl | None = None
    anonymize: bool = False
    count: int | None = None

    def to_xml(self) -> XmlNode:
        attrs: list[tuple[str, str]] = [("uri", self.uri)]
        if self.copy_control is not None:
            attrs.append(("cp:copyControl", self.copy_control.value))
        if self.anonymize:
            attrs.append(("cp:anonymize", "true"))
        if self.count is not None:
            attrs.append(("cp:count", str(self.count)))
        return XmlNode("entry", tuple(attrs), tuple(text_node("display-name",
                                                              self.display_name)))


@dataclass(frozen=True)
class EntryRef:
    ref: str
    display_name: str | None = None

    def to_xml(self) -> XmlNode:
        return XmlNode("entry-ref", (("ref", self.ref),),
                       tuple(text_node("display-name", self.display_name)))


@dataclass(frozen=True)
class External:
    anchor: str
    display_name: str | None = None

    def to_xml(self) -> XmlNode:
        return XmlNode("external", (("anchor", self.anchor),),
                       tuple(text_node("display-name", self.display_name)))


@dataclass(frozen=True)
class ResourceList:
    items: tuple[Entry | EntryRef | External | ResourceList, ...] = ()
    name: str | None = None
    display_name: str | None = None

    def entries(self) -> Iterator[Entry]:
        for item in self.items:
            if isinstance(item, Entry):
                yield item
            elif isinstance(item, ResourceList):
                yield from item.entries()

    def to_xml(self) -> XmlNode:
        attrs = (("name", self.name),) if self.name is not None else ()
        kids = [*text_node("display-name", self.display_name)]
        kids += [i.to_xml() for i in self.items]
        return XmlNode("list", attrs, tuple(kids))


@dataclass(frozen=True)
class ResourceLists:
    lists: tuple[ResourceList, ...] = ()

    def entries(self) -> Iterator[Entry]:
        for lst in self.lists:
            yield from lst.entries()

    def recipients(self) -> tuple[Entry, ...]:
        """Every entry, depth first, each URI once (a URI-list server sends one request
        per distinct recipient, RFC 5365 / RFC 5366)."""
        seen: set[str] = set()
        out = []
        for e in self.entries():
            key = e.uri.strip().lower()
            if key not in seen:
                seen.add(key)
                out.append(e)
        return tuple(out)

    def for_recipients(self) -> ResourceLists:
        """The list as shown to recipients (RFC 5364): no ``bcc`` entries, anonymized
        entries replaced by the anonymous URI."""
        def clean(lst: ResourceList) -> ResourceList:
            items: list[Entry | EntryRef | External | ResourceList] = []
            for item in lst.items:
                if isinstance(item, Entry):
                    if item.copy_control is CopyControl.BCC:
                        continue
                    if item.anonymize:
                        item = Entry(ANONYMOUS_URI, "Anonymous", item.copy_control)
                    items.append(item)
                elif isinstance(item, ResourceList):
                    items.append(clean(item))
                else:
                    items.append(item)
            return ResourceList(tuple(items), lst.name, lst.display_name)
        return ResourceLists(tuple(clean(lst) for lst in self.lists))

    def to_bytes(self) -> bytes:
        attrs = [("xmlns", _NS)]
        if any(e.copy_control is not None or e.anonymize or e.count is not None
               for e in self.entries()):
            attrs.append(("xmlns:cp", COPYCONTROL_NS))
        return XmlNode("resource-lists", tuple(attrs),
                       tuple(lst.to_xml() for lst in self.lists)).to_bytes()


def _display(elem: Element) -> str | None:
    return child_text(elem, _NS, "display-name")


def _parse_entry(elem: Element) -> Entry:
    uri = elem.get("uri")
    if not uri:
        raise ContentError("entry without uri", status=400, where="resource-lists/entry")
    cc_v = elem.get(qname(COPYCONTROL_NS, "copyControl"))
    copy_control: CopyControl | None = None
    if cc_v is not None:
        try:
            copy_control = CopyControl(cc_v.strip().lower())
        except ValueError:
            raise ContentError(f"bad copyControl {cc_v!r}", status=400,
                               where="resource-lists/entry") from None
    anon_v = elem.get(qname(COPYCONTROL_NS, "anonymize"), "false").strip().lower()
    if anon_v not in ("true", "false", "1", "0"):
        raise ContentError("bad anonymize", status=400, where="resource-lists/entry")
    count_v = elem.get(qname(COPYCONTROL_NS, "count"))
    if count_v is not None and (not count_v.isdigit() or not count_v.isascii()):
        raise ContentError("bad count", status=400, where="resource-lists/entry")
    return Entry(uri, _display(elem), copy_control, anon_v in ("true", "1"),
                 int(count_v) if count_v is not None else None)


def _parse_list(elem: Element, depth: int = 0) -> ResourceList:
    items: list[Entry | EntryRef | External | ResourceList] = []
    for c in elem:
        if namespace(c.tag) != _NS:
            continue  # RFC 4826 §3.2: lists are extensible; unknown elements are ignored
        name = local_name(c.tag)
        if name == "entry":
            items.append(_parse_entry(c))
        elif name == "entry-ref":
            ref = c.get("ref")
            if not ref:
                raise ContentError("entry-ref without ref", status=400, where="entry-ref")
            items.append(EntryRef(ref, _display(c)))
        elif name == "external":
            anchor = c.get("anchor")
            if not anchor:
                raise ContentError("external without anchor", status=400, where="external")
            items.append(External(anchor, _display(c)))
        elif name == "list":
            items.append(_parse_list(c, depth + 1))
    return ResourceList(tuple(items), elem.get("name"), _display(elem))


def parse_resource_lists(data: bytes | str,
                         limits: XmlLimits = XmlLimits()) -> ResourceLists:  # noqa: B008
    root = parse_xml(data, limits, what="resource-lists")
    if root.tag != qname(_NS, "resource-lists"):
        raise ContentError(f"root element is {root.tag}, not resource-lists", status=400,
                           where="resource-lists")
    return ResourceLists(tuple(_parse_list(c) for c in root if c.tag == qname(_NS, "list")))


def build_recipient_list(to: Sequence[str], cc: Sequence[str] = (),
                         bcc: Sequence[str] = ()) -> ResourceLists:
    """A one-list recipient list with copyControl on each entry (RFC 5364 / RFC 5365)."""
    entries = [Entry(u, copy_control=CopyControl.TO) for u in to]
    entries += [Entry(u, copy_control=CopyControl.CC) for u in cc]
    entries += [Entry(u, copy_control=CopyControl.BCC) for u in bcc]
    return ResourceLists((ResourceList(tuple(entries)),))


def recipient_list_headers() -> tuple[tuple[str, str], ...]:
    """MIME headers of the body part carrying a recipient list in a MESSAGE (RFC 5365) or an
    INVITE (RFC 5366): the list type plus ``Content-Disposition: recipient-list``; the request
    itself needs ``Require: recipient-list-message`` / ``recipient-list-invite``."""
    return (("Content-Type", RESOURCE_LISTS_CONTENT_TYPE),
            ("Content-Disposition", RECIPIENT_LIST_DISPOSITION))
