"""The IM service settings document (OMA SIMPLE IM Appendix E, RFC 4354), sans-I/O: used by the
server's settings role and by the client that publishes it (§5.2.4).

:func:`parse_settings` turns an ``application/poc-settings+xml`` body into
:class:`ServiceSettings`; :func:`build_settings` writes one.  E.1 rules:

* root ``<poc-settings xmlns="urn:oma:params:xml:ns:poc:poc-settings">`` with ``<entity>``
  children; the IM extension elements are in ``urn:oma:xml:im:service-settings``;
* defaults: offline-delivery ``false``, vis-status ``true``, hist-activation ``false``,
  the two barrings (RFC 4354) ``false``;
* an element with a ``service-id`` other than ``IM`` belongs to another enabler: ignored;
* unknown elements and attributes are ignored; a malformed document, a wrong root or an
  ``active`` value that is not a boolean is a :class:`ContentError` (400).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from xml.etree.ElementTree import Element

from simpleim.content.xml import XmlLimits, XmlNode, child, children, parse_xml, qname
from simpleim.errors import ContentError

__all__ = [
    "CONTENT_TYPE",
    "EVENT",
    "IM_NS",
    "POC_NS",
    "ServiceSettings",
    "build_settings",
    "parse_settings",
    "settings_from_json",
    "settings_to_json",
]

CONTENT_TYPE = "application/poc-settings+xml"
EVENT = "poc-settings"
POC_NS = "urn:oma:params:xml:ns:poc:poc-settings"
IM_NS = "urn:oma:xml:im:service-settings"
_LIMITS = XmlLimits(max_size=16 * 1024, max_depth=8, max_elements=200)
_TRUE = {"true": True, "1": True, "false": False, "0": False}


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """The six IM settings of §5.2.4 step 8 (a)-(f) with their E.1 defaults."""

    incoming_session_barring: bool = False  # (a) isb-settings
    incoming_pager_barring: bool = False  # (b) ipab-settings / incoming-personal-alert-barring
    visible: bool = True  # (c) vis-settings / vis-status (active=false: invisible)
    offline_delivery: bool = False  # (d) deferred-settings / offline-delivery
    history_session: bool = False  # (e) hist-activation + session-mode
    history_pager: bool = False  # (f) hist-activation + pager-large-mode


def _active(elem: Element, default: bool) -> bool:
    value = elem.get("active")
    if value is None:
        return default
    parsed = _TRUE.get(value.strip().lower())
    if parsed is None:
        raise ContentError(f"active={value!r} is not a boolean (XML Schema)", status=400,
                           where=CONTENT_TYPE)
    return parsed


def _ours(elem: Element) -> bool:
    sid = elem.get("service-id")
    return sid is None or sid.strip() == "IM"


def parse_settings(body: bytes) -> ServiceSettings:
    """Parse a poc-settings document (ContentError 400 on a malformed one)."""
    root = parse_xml(body, _LIMITS, what=CONTENT_TYPE)
    if root.tag != qname(POC_NS, "poc-settings"):
        raise ContentError(f"root element is {root.tag}, not poc-settings in {POC_NS}",
                           status=400, where=CONTENT_TYPE)
    values = asdict(ServiceSettings())
    for entity in children(root, POC_NS, "entity"):
        for wrapper, ns, leaf, key in (
            ("isb-settings", POC_NS, "incoming-session-barring", "incoming_session_barring"),
            ("ipab-settings", POC_NS, "incoming-personal-alert-barring",
             "incoming_pager_barring"),
            ("deferred-settings", IM_NS, "offline-delivery", "offline_delivery"),
            ("vis-settings", IM_NS, "vis-status", "visible"),
        ):
            for group in children(entity, ns, wrapper):
                if not _ours(group):
                    continue
                item = child(group, ns, leaf)
                if item is not None:
                    values[key] = _active(item, values[key])
        for group in children(entity, IM_NS, "hist-settings"):
            if not _ours(group):
                continue
            for act in children(group, IM_NS, "hist-activation"):
                on = _active(act, False)
                if child(act, IM_NS, "session-mode") is not None:
                    values["history_session"] = on
                if child(act, IM_NS, "pager-large-mode") is not None:
                    values["history_pager"] = on
    return ServiceSettings(**values)


def _flag(on: bool) -> tuple[tuple[str, str], ...]:
    return (("active", "true" if on else "false"),)


def build_settings(settings: ServiceSettings, entity: str) -> bytes:
    """The Appendix E.2 document for ``settings`` (service-id omitted: IM settings only)."""
    s = settings
    nodes = (
        XmlNode("isb-settings", children=(
            XmlNode("incoming-session-barring", _flag(s.incoming_session_barring)),)),
        XmlNode("ipab-settings", children=(
            XmlNode("incoming-personal-alert-barring", _flag(s.incoming_pager_barring)),)),
        XmlNode("ss:deferred-settings", children=(
            XmlNode("ss:offline-delivery", _flag(s.offline_delivery)),)),
        XmlNode("ss:vis-settings", children=(XmlNode("ss:vis-status", _flag(s.visible)),)),
        XmlNode("ss:hist-settings", children=(
            XmlNode("ss:hist-activation", _flag(s.history_session),
                    (XmlNode("ss:session-mode"),)),
            XmlNode("ss:hist-activation", _flag(s.history_pager),
                    (XmlNode("ss:pager-large-mode"),)),
        )),
    )
    root = XmlNode("poc-settings", (("xmlns", POC_NS), ("xmlns:ss", IM_NS)),
                   (XmlNode("entity", (("id", entity),), nodes),))
    return root.to_bytes()


def settings_to_json(settings: ServiceSettings) -> str:
    return json.dumps(asdict(settings), sort_keys=True, separators=(",", ":"))


def settings_from_json(text: str) -> ServiceSettings:
    """Inverse of :func:`settings_to_json`; unknown keys ignored, ContentError if corrupt."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ContentError(f"stored settings are not JSON: {exc}", status=500) from exc
    if not isinstance(raw, dict):
        raise ContentError("stored settings are not an object", status=500)
    known = {f.name for f in fields(ServiceSettings)}
    return ServiceSettings(**{k: bool(v) for k, v in raw.items() if k in known})
