"""Safe parsing of XDM documents and XCAP fragments (RFC 4825 §6, §8.2.3) with lxml.

No DTD is loaded, no entity is resolved, nothing is fetched from the network, and a
document that declares a DOCTYPE is refused outright (entity expansion "XML bombs" and
external entities never reach the tree).  Errors are :class:`~simpleim.errors.XcapError`
409 with the RFC 4825 §11 condition (``not-well-formed``, ``not-utf-8``, ``not-xml-frag``).
"""

from __future__ import annotations

from lxml import etree

from simpleim.errors import XcapError

__all__ = ["local_name", "parse_document", "parse_fragment", "serialize", "text_of"]


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_pis=False)


def _check_utf8(content: bytes) -> None:
    try:
        content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise XcapError(f"not UTF-8: {exc}", condition="not-utf-8") from None


def parse_document(content: bytes) -> etree._Element:
    """The root element of a whole document; 409 ``not-well-formed`` / ``not-utf-8``."""
    _check_utf8(content)
    if b"<!DOCTYPE" in content or b"<!ENTITY" in content:
        raise XcapError("document type declarations are not accepted",
                        condition="not-well-formed")
    try:
        root = etree.fromstring(content, _parser())
    except etree.XMLSyntaxError as exc:
        raise XcapError(f"not well-formed: {exc}", condition="not-well-formed") from None
    if root is None:
        raise XcapError("no document element", condition="not-well-formed")
    return root


def parse_fragment(content: bytes, nsmap: dict[str | None, str]) -> etree._Element:
    """RFC 4825 §8.2.3: the body of an element PUT — exactly one element, whose prefixes may
    be those in scope at its parent (``nsmap``).  409 ``not-xml-frag`` otherwise."""
    _check_utf8(content)
    if b"<!DOCTYPE" in content or b"<!ENTITY" in content:
        raise XcapError("document type declarations are not accepted",
                        condition="not-xml-frag")
    body = content.strip()
    if body.startswith(b"<?xml"):
        end = body.find(b"?>")
        body = body[end + 2:].lstrip() if end >= 0 else body
    decls = b"".join(
        (b' xmlns="' if p is None else b" xmlns:" + p.encode() + b'="')
        + _attr(u) + b'"'
        for p, u in nsmap.items())
    wrapped = b"<xcap-fragment-wrapper" + decls + b">" + body + b"</xcap-fragment-wrapper>"
    try:
        wrapper = etree.fromstring(wrapped, _parser())
    except etree.XMLSyntaxError as exc:
        raise XcapError(f"not an XML element: {exc}", condition="not-xml-frag") from None
    children = list(wrapper)
    if len(children) != 1 or (wrapper.text or "").strip() or (children[0].tail or "").strip():
        raise XcapError("the body must be exactly one XML element", condition="not-xml-frag")
    element: etree._Element = children[0]
    if not isinstance(element.tag, str):
        raise XcapError("the body must be an XML element", condition="not-xml-frag")
    wrapper.remove(element)
    element.tail = None
    return element


def _attr(value: str) -> bytes:
    return (value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
            .encode("utf-8"))


def serialize(element: etree._Element, *, declaration: bool = False) -> bytes:
    """UTF-8 bytes of ``element`` (with the XML declaration for a whole document)."""
    if declaration:
        out = etree.tostring(element.getroottree(), xml_declaration=True, encoding="UTF-8")
    else:
        out = etree.tostring(element, encoding="UTF-8", xml_declaration=False, with_tail=False)
    return bytes(out)


def local_name(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]  # Clark notation: {namespace}local


def text_of(element: etree._Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""
