"""Hardened XML for message bodies (IMDN, is-composing, conference-info, resource-lists).

Parsing goes through :mod:`defusedxml`: DTDs, entity declarations and external
references are refused outright, so billion-laughs and XXE documents raise
:class:`ContentError` instead of being expanded.  Size, depth and element-count
limits bound the work done on hostile input.

Serialization is a tiny writer (no :func:`xml.etree.ElementTree.register_namespace`,
which would be global mutable state): callers pass the namespace declarations.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from simpleim.errors import ContentError

__all__ = [
    "Element",
    "XmlLimits",
    "XmlNode",
    "children",
    "child",
    "child_text",
    "escape_attr",
    "escape_text",
    "local_name",
    "namespace",
    "parse_xml",
    "qname",
    "text_node",
]


@dataclass(frozen=True)
class XmlLimits:
    max_size: int = 256 * 1024
    max_depth: int = 32
    max_elements: int = 10000


def parse_xml(data: bytes | str, limits: XmlLimits = XmlLimits(), *,  # noqa: B008
              what: str = "XML body") -> Element:
    """Parse ``data`` safely; ContentError 400 (malformed/forbidden) or 413 (too big)."""
    size = len(data)
    if size > limits.max_size:
        raise ContentError(f"{what} too large ({size} > {limits.max_size})", status=413,
                           where=what)
    try:
        root: Element = fromstring(data, forbid_dtd=True, forbid_entities=True,
                                   forbid_external=True)
    except DefusedXmlException as exc:
        raise ContentError(f"{what}: forbidden XML construct ({type(exc).__name__})",
                           status=400, where=what) from None
    except ParseError as exc:
        raise ContentError(f"{what}: malformed XML ({exc})", status=400, where=what) from None
    except (ValueError, UnicodeError, LookupError) as exc:
        # LookupError: an XML declaration naming an encoding Python does not know
        # (``encoding="x-foo"``) - a malformed body like any other, not a crash.
        raise ContentError(f"{what}: undecodable XML ({exc})", status=400, where=what) from None
    # Iterative walk: bounded depth and element count.
    count = 0
    stack: list[tuple[Element, int]] = [(root, 1)]
    while stack:
        elem, depth = stack.pop()
        count += 1
        if depth > limits.max_depth or count > limits.max_elements:
            raise ContentError(f"{what}: XML too deep or too many elements", status=413,
                               where=what)
        stack.extend((c, depth + 1) for c in elem)
    return root


def qname(ns: str, local: str) -> str:
    """ElementTree's ``{namespace}local`` form."""
    return f"{{{ns}}}{local}"


def namespace(tag: str) -> str | None:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else None


def local_name(tag: str) -> str:
    return tag.split("}", 1)[1] if tag.startswith("{") else tag


def children(elem: Element, ns: str, local: str) -> Iterator[Element]:
    tag = qname(ns, local)
    return (c for c in elem if c.tag == tag)


def child(elem: Element, ns: str, local: str) -> Element | None:
    return next(children(elem, ns, local), None)


def child_text(elem: Element, ns: str, local: str) -> str | None:
    c = child(elem, ns, local)
    if c is None:
        return None
    return (c.text or "").strip()


def escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attr(text: str) -> str:
    return (escape_text(text).replace('"', "&quot;").replace("\n", "&#10;")
            .replace("\r", "&#13;").replace("\t", "&#9;"))


@dataclass(frozen=True)
class XmlNode:
    """A minimal element tree for writing XML; ``tag`` may be ``prefix:local``."""

    tag: str
    attrs: tuple[tuple[str, str], ...] = ()
    children: tuple[XmlNode, ...] = ()
    text: str | None = None

    def render(self, indent: str = "", level: int = 0) -> str:
        pad = indent * level if indent else ""
        nl = "\n" if indent else ""
        attrs = "".join(f' {k}="{escape_attr(v)}"' for k, v in self.attrs)
        if not self.children and self.text is None:
            return f"{pad}<{self.tag}{attrs}/>{nl}"
        if not self.children:
            return f"{pad}<{self.tag}{attrs}>{escape_text(self.text or '')}</{self.tag}>{nl}"
        inner = "".join(c.render(indent, level + 1) for c in self.children)
        return f"{pad}<{self.tag}{attrs}>{nl}{inner}{pad}</{self.tag}>{nl}"

    def to_bytes(self, *, indent: str = "  ") -> bytes:
        return ('<?xml version="1.0" encoding="UTF-8"?>\n' + self.render(indent)).encode("utf-8")


def text_node(tag: str, text: str | None) -> Iterable[XmlNode]:
    """Zero or one node: convenient for optional elements."""
    return () if text is None else (XmlNode(tag, text=text),)
