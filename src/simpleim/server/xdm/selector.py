"""XCAP URIs and node selectors (RFC 4825 §6), and the element / attribute operations on a
document tree (§8.2.3, §8.2.4, §8.3) — pure functions over lxml trees, no I/O.

Grammar (§6.3)::

    node-selector     = element-selector ["/" terminal-selector]
    terminal-selector = attribute-selector / namespace-selector
    element-selector  = step *( "/" step)
    step              = by-name / by-pos / by-attr / by-pos-attr
    by-name = NameorAny; by-pos = NameorAny "[" position "]"
    by-attr = NameorAny "[" "@" att-name "=" AttValue "]"
    by-pos-attr = NameorAny "[" position "]" "[" "@" att-name "=" AttValue "]"
    attribute-selector = "@" att-name;  namespace-selector = "namespace::*"

Unprefixed element names are in the application usage's default document namespace
(§6.3); prefixes are bound by the ``xmlns(prefix=namespace)`` query (§6.4), unbound ones are
a 400.  Predicates apply in order, as in XPath: ``entry[2][@uri="x"]`` is the second
``entry`` if its ``uri`` is ``x``.  A step that would select more than one element selects
nothing (404), so an operation always targets exactly one node.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from lxml import etree

from simpleim.errors import XcapError

__all__ = [
    "NodeSelector",
    "Step",
    "XcapPath",
    "delete_attribute",
    "delete_element",
    "namespace_bindings",
    "parse_node_selector",
    "parse_xcap_path",
    "parse_xmlns_query",
    "put_attribute",
    "put_element",
    "select",
    "unquote_strict",
]

_NAME = r"[A-Za-z_][A-Za-z0-9_.\-]*"
_QNAME_RE = re.compile(rf"(?:({_NAME}):)?({_NAME})")
_XMLNS_RE = re.compile(rf"xmlns\(\s*({_NAME})\s*=\s*([^)\s]+)\s*\)")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _bad(reason: str) -> XcapError:
    return XcapError(reason, status=400)


def unquote_strict(text: str) -> str:
    """Percent-decoding that refuses malformed escapes and non-UTF-8 results (400)."""
    if _BAD_PERCENT.search(text):
        raise _bad(f"malformed percent-encoding in {text[:80]!r}")
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("percent-encoded bytes are not UTF-8") from None


@dataclass(frozen=True, slots=True)
class XcapPath:
    """The parts of an XCAP request URI's path below the XCAP root (§6)."""

    auid: str
    owner: str | None  # the XUI of users/<xui>, None for global
    document: str  # the document's name inside the tree ("a/b" for sub-directories)
    selector: str | None  # the decoded node selector after "~~", None for the document


def parse_xcap_path(rest: str) -> XcapPath:
    """``rest``: the raw (percent-encoded) path after ``<xcap-root>/``."""
    doc_part, sep, node_part = rest.partition("/~~/")
    if not sep and rest.endswith("/~~"):
        raise _bad("empty node selector")
    raw = doc_part.split("/")
    segments = [unquote_strict(s) for s in raw]
    if any(s in ("", ".", "..") or "/" in s or "\x00" in s for s in segments):
        raise _bad("empty, '.' or '..' path segments are not allowed")
    if len(segments) < 3:
        raise XcapError("no document in the request URI", status=404)
    auid = segments[0]
    if segments[1] == "global":
        owner, name = None, segments[2:]
    elif segments[1] == "users" and len(segments) >= 4:
        owner, name = segments[2], segments[3:]
    else:
        raise XcapError("the tree must be global or users/<xui>", status=404)
    selector = unquote_strict(node_part) if sep else None
    if selector is not None and not selector:
        raise _bad("empty node selector")
    return XcapPath(auid, owner, "/".join(name), selector)


def parse_xmlns_query(query: str) -> dict[str, str]:
    """§6.4: ``xmlns(p=urn:x)xmlns(q=urn:y)`` (percent-decoded) → prefix → namespace."""
    text = unquote_strict(query).strip()
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _XMLNS_RE.match(text, pos)
        if m is None:
            raise _bad(f"bad namespace binding query at {text[pos:pos + 40]!r}")
        out[m.group(1)] = m.group(2)
        pos = m.end()
    return out


@dataclass(frozen=True, slots=True)
class Step:
    tag: str | None  # Clark name, None for "*"
    position: int | None
    attr: tuple[str, str] | None  # (Clark attribute name, value)
    text: str  # as written (for ancestor URIs)

    def matches_name(self, el: etree._Element) -> bool:
        return isinstance(el.tag, str) and (self.tag is None or el.tag == self.tag)

    def matches(self, el: etree._Element) -> bool:
        """Name and attribute test (not the position)."""
        if not self.matches_name(el):
            return False
        return self.attr is None or el.get(self.attr[0]) == self.attr[1]


@dataclass(frozen=True, slots=True)
class NodeSelector:
    steps: tuple[Step, ...]
    attribute: str | None = None  # Clark name of a terminal attribute selector
    namespaces: bool = False  # terminal namespace selector


def _split(text: str) -> list[str]:
    """Split on "/" outside predicates (att-values may hold "/")."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    quote = ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'" and depth:
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "/" and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if quote or depth:
        raise _bad("unbalanced predicate in the node selector")
    parts.append("".join(cur))
    return parts


def _qname(text: str, bindings: Mapping[str, str], default_ns: str | None) -> str:
    m = _QNAME_RE.fullmatch(text)
    if m is None:
        raise _bad(f"bad name {text!r} in the node selector")
    prefix, local = m.group(1), m.group(2)
    if prefix is None:
        return f"{{{default_ns}}}{local}" if default_ns else local
    ns = bindings.get(prefix)
    if ns is None:
        raise _bad(f"prefix {prefix!r} is not bound by an xmlns() query")
    return f"{{{ns}}}{local}"


_PRED_RE = re.compile(r"\[(?:(\d+)|@([^=\]\s]+)\s*=\s*(\"[^\"]*\"|'[^']*'))\]")
_ENTITIES = {"&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'", "&amp;": "&"}


def _att_value(quoted: str) -> str:
    value = quoted[1:-1]
    if "<" in value:
        raise _bad("'<' in an attribute value")
    return re.sub(r"&(lt|gt|quot|apos|amp);", lambda m: _ENTITIES[m.group(0)], value)


def _step(text: str, bindings: Mapping[str, str], default_ns: str) -> Step:
    head = text.split("[", 1)[0]
    tag = None if head == "*" else _qname(head, bindings, default_ns)
    rest = text[len(head):]
    position: int | None = None
    attr: tuple[str, str] | None = None
    pos = 0
    for m in _PRED_RE.finditer(rest):
        if m.start() != pos:
            break
        pos = m.end()
        if m.group(1) is not None:
            if position is not None or attr is not None or int(m.group(1)) < 1:
                raise _bad(f"bad position predicate in {text!r}")
            position = int(m.group(1))
        else:
            if attr is not None:
                raise _bad(f"two attribute predicates in {text!r}")
            attr = (_qname(m.group(2), bindings, None), _att_value(m.group(3)))
    if pos != len(rest):
        raise _bad(f"bad step {text!r} in the node selector")
    return Step(tag, position, attr, text)


def parse_node_selector(text: str, bindings: Mapping[str, str],
                        default_ns: str) -> NodeSelector:
    parts = _split(text)
    if any(not p for p in parts):
        raise _bad("empty step in the node selector")
    last = parts[-1]
    attribute = None
    namespaces = False
    if last == "namespace::*":
        namespaces, parts = True, parts[:-1]
    elif last.startswith("@"):
        attribute, parts = _qname(last[1:], bindings, None), parts[:-1]
    if not parts:
        raise _bad("the node selector selects no element")
    return NodeSelector(tuple(_step(p, bindings, default_ns) for p in parts), attribute,
                        namespaces)


def _candidates(parent: etree._Element, step: Step) -> list[etree._Element]:
    named = [c for c in parent if step.matches_name(c)]
    if step.position is not None:
        named = named[step.position - 1:step.position]
    return [c for c in named if step.attr is None or c.get(step.attr[0]) == step.attr[1]]


def _first(root: etree._Element, step: Step) -> list[etree._Element]:
    ok = step.matches(root) and (step.position in (None, 1))
    return [root] if ok else []


def select(root: etree._Element, steps: tuple[Step, ...]) -> tuple[etree._Element | None, int]:
    """(the element the steps select or None, how many leading steps selected one)."""
    found = _first(root, steps[0])
    if len(found) != 1:
        return None, 0
    cur = found[0]
    for i, step in enumerate(steps[1:], start=1):
        found = _candidates(cur, step)
        if len(found) != 1:
            return None, i
        cur = found[0]
    return cur, len(steps)


def namespace_bindings(el: etree._Element) -> bytes:
    """§10 (application/xcap-ns+xml): an element named like the selected one carrying a
    declaration of every namespace binding in scope there."""
    qname = etree.QName(el.tag)
    prefix = next((p for p, u in el.nsmap.items() if u == qname.namespace and p), None)
    name = f"{prefix}:{qname.localname}" if prefix else qname.localname
    decls = []
    for p, uri in sorted(el.nsmap.items(), key=lambda kv: kv[0] or ""):
        value = uri.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
        decls.append(f' xmlns="{value}"' if p is None else f' xmlns:{p}="{value}"')
    return f"<{name}{''.join(decls)}/>".encode()


def put_element(root: etree._Element, sel: NodeSelector, new: etree._Element) -> bool:
    """§8.2.3: replace the selected element by ``new`` or insert it; True if inserted.
    409 ``no-parent`` (``ancestor`` = the count of steps that matched, as text) /
    ``cannot-insert`` when the result would not be selected by the same selector."""
    steps = sel.steps
    target, _depth = select(root, steps)
    if target is not None:
        parent = target.getparent()
        if parent is None:
            if not steps[0].matches(new):
                raise XcapError("the new element does not match the selector",
                                condition="cannot-insert")
            raise XcapError("replace the document element with a document PUT",
                            condition="cannot-insert")
        if not steps[-1].matches(new):
            raise XcapError("the new element does not match the selector",
                            condition="cannot-insert")
        parent.replace(target, new)
        new.tail = target.tail
        inserted = False
    else:
        if len(steps) == 1:
            raise XcapError("no document element selected", condition="cannot-insert")
        parent, depth = select(root, steps[:-1])
        if parent is None:
            raise XcapError("the parent element does not exist", condition="no-parent",
                            ancestor=str(depth))
        last = steps[-1]
        if not last.matches(new):
            raise XcapError("the new element does not match the selector",
                            condition="cannot-insert")
        siblings = [c for c in parent if last.matches_name(c)]
        if last.position is not None:
            if last.position - 1 > len(siblings):
                raise XcapError("no such position to insert at", condition="cannot-insert")
            if last.position - 1 == 0:
                index = 0 if not siblings else parent.index(siblings[0])
            else:
                index = parent.index(siblings[last.position - 2]) + 1
            parent.insert(index, new)
        else:
            parent.append(new)
        inserted = True
    again, _ = select(root, steps)
    if again is not new:
        raise XcapError("the selector would not select the new element",
                        condition="cannot-insert")
    return inserted


def delete_element(root: etree._Element, sel: NodeSelector) -> None:
    """§8.3: remove the selected element; 404 if none, 409 ``cannot-delete`` when the
    selector would then select another element (a position shifting)."""
    target, _ = select(root, sel.steps)
    if target is None:
        raise XcapError("no such element", status=404)
    parent = target.getparent()
    if parent is None:
        raise XcapError("delete the document element with a document DELETE",
                        condition="cannot-delete")
    prev = target.getprevious()
    if target.tail and prev is not None and not (prev.tail or "").strip():
        prev.tail = target.tail
    parent.remove(target)
    if select(root, sel.steps)[0] is not None:
        raise XcapError("another element would be selected after the delete",
                        condition="cannot-delete")


def _attr_value(body: bytes) -> str:
    """§8.2.4: the body is an attribute value (AttValue without its quotes)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise XcapError("not UTF-8", condition="not-utf-8") from None
    quote = '"' if '"' not in text else "'"
    if "<" in text or (quote == "'" and "'" in text):
        raise XcapError("not an attribute value", condition="not-xml-att-value")
    try:
        el = etree.fromstring(f"<a v={quote}{text}{quote}/>".encode(),
                              etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        raise XcapError("not an attribute value", condition="not-xml-att-value") from None
    return el.get("v", "")


def put_attribute(root: etree._Element, sel: NodeSelector, body: bytes) -> bool:
    """Set the selected attribute; True if it was created.  409 ``no-parent`` when the
    element does not exist."""
    target, depth = select(root, sel.steps)
    if target is None or sel.attribute is None:
        raise XcapError("the element does not exist", condition="no-parent",
                        ancestor=str(depth))
    value = _attr_value(body)
    last = sel.steps[-1]
    if last.attr is not None and last.attr[0] == sel.attribute and last.attr[1] != value:
        raise XcapError("the selector would no longer select the element",
                        condition="cannot-insert")
    created = target.get(sel.attribute) is None
    target.set(sel.attribute, value)
    return created


def delete_attribute(root: etree._Element, sel: NodeSelector) -> None:
    target, _ = select(root, sel.steps)
    if target is None or sel.attribute is None or target.get(sel.attribute) is None:
        raise XcapError("no such attribute", status=404)
    last = sel.steps[-1]
    if last.attr is not None and last.attr[0] == sel.attribute:
        raise XcapError("the selector would no longer select the element",
                        condition="cannot-delete")
    del target.attrib[sel.attribute]
