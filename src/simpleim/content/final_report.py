"""The OMA Final Delivery Report (OMA SIMPLE IM §5.7, Appendix O): the CPIM request and the
``<final>`` XML document.

Request (§5.7.1 items 1-2, §5.7.2 steps 1-2): the sender's message/cpim carries
``NS: FR <urn:oma:xml:poc:final-report>`` and ``FR.Final-Report: yes`` (any prefix bound to
the namespace counts; :func:`final_report_requested` resolves it through the NS headers).

Document (Appendix O.1)::

    <final xmlns="urn:oma:xml:poc:final-report" Message-ID="..." last="true">
      <leg uri="sip:bob@example.com" status="200"/>
      <leg uri="sip:dave@example.com" status="9999" max-size="1000"/>
    </final>

A ``<leg>`` without ``status`` is ignored (O.1); ``status`` 9999 means the recipient's
negotiated ``a=max-size`` is below the message size, given in ``max-size``.

Content type: the specification spells it three ways - §5.7.1 item 3 / §5.7.2
``application/vnd.oma.poc.final-report(+xml)``, §5.7.3 steps b
``application/vnd.oma.final-report+xml``, O.1 ``application/vnd.oma.final+xml``.  We send
the §5.7.3 one (:data:`FINAL_REPORT_CONTENT_TYPE`, the procedure that sends it) and take all
of them (:data:`FINAL_REPORT_TYPES`).

:func:`parse_final_report` is pure: any bytes give a :class:`FinalReport` or a
:class:`~simpleim.errors.ContentError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from simpleim.errors import ContentError

from .cpim import CpimHeader, CpimMessage
from .xml import XmlLimits, XmlNode, children, parse_xml, qname

__all__ = [
    "FINAL_REPORT_CONTENT_TYPE",
    "FINAL_REPORT_NS",
    "FINAL_REPORT_PREFIX",
    "FINAL_REPORT_TYPES",
    "STATUS_TOO_LARGE",
    "FinalLeg",
    "FinalReport",
    "build_final_report",
    "final_report_headers",
    "final_report_requested",
    "is_final_report_type",
    "parse_final_report",
]

#: §5.7.1 item 1 / Appendix O.1
FINAL_REPORT_NS = "urn:oma:xml:poc:final-report"
#: §5.7.2 NOTE 1: the recommended prefix
FINAL_REPORT_PREFIX = "FR"
#: §5.7.3 step b: what the Controlling Function sends
FINAL_REPORT_CONTENT_TYPE = "application/vnd.oma.final-report+xml"
#: every spelling of the specification (§5.7.1 item 3, §5.7.2, §5.7.3, O.1), all taken
FINAL_REPORT_TYPES = (
    FINAL_REPORT_CONTENT_TYPE,
    "application/vnd.oma.poc.final-report+xml",
    "application/vnd.oma.poc.final-report",
    "application/vnd.oma.final+xml",
)
#: Appendix O.1: the recipient's a=max-size is below the message size
STATUS_TOO_LARGE = 9999

_LIMITS = XmlLimits(max_size=256 * 1024, max_depth=8, max_elements=5000)


@dataclass(frozen=True, slots=True)
class FinalLeg:
    """One recipient's delivery status (Appendix O.1 ``<leg>``)."""

    uri: str
    status: int
    max_size: int | None = None


@dataclass(frozen=True, slots=True)
class FinalReport:
    """One Final Delivery Report document (Appendix O.1 ``<final>``)."""

    message_id: str | None
    legs: tuple[FinalLeg, ...]
    last: bool = False

    def to_bytes(self) -> bytes:
        return build_final_report(self)


def is_final_report_type(content_type: str | None) -> bool:
    """Whether ``content_type`` (parameters allowed) is one of :data:`FINAL_REPORT_TYPES`."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() in FINAL_REPORT_TYPES


def final_report_headers(prefix: str = FINAL_REPORT_PREFIX) -> tuple[CpimHeader, ...]:
    """§5.7.2 steps 1-2: the NS header binding ``prefix`` and ``<prefix>.Final-Report: yes``."""
    return (CpimHeader("NS", f"{prefix} <{FINAL_REPORT_NS}>"),
            CpimHeader(f"{prefix}.Final-Report", "yes"))


def final_report_requested(cpim: CpimMessage) -> bool:
    """§5.7.3 / §9.4.5: the message's ``Final-Report`` header (in the final-report
    namespace, whatever its prefix) says ``yes``.  A bad NS header: ContentError."""
    value = cpim.get("Final-Report", FINAL_REPORT_NS)
    return value is not None and value.strip().lower() == "yes"


def _int(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ContentError(f"final report: bad {what} {value[:20]!r}", status=400,
                           where=what)
    return int(text)


def parse_final_report(data: bytes | str) -> FinalReport:
    """Appendix O.1; ContentError (400 / 413) on anything else."""
    root = parse_xml(data, _LIMITS, what="final report")
    if root.tag != qname(FINAL_REPORT_NS, "final"):
        raise ContentError(f"final report: root is {root.tag[:80]!r}, not <final>",
                           status=400, where="final")
    last_text = (root.get("last") or "").strip().lower()
    if last_text not in ("", "true", "false", "1", "0"):
        raise ContentError(f"final report: bad last {last_text[:20]!r}", status=400,
                           where="last")
    legs: list[FinalLeg] = []
    for leg in children(root, FINAL_REPORT_NS, "leg"):
        uri = (leg.get("uri") or "").strip()
        if not uri:
            raise ContentError("final report: <leg> without uri", status=400, where="leg")
        status = _int(leg.get("status"), "status")
        if status is None:
            continue                                  # O.1: a leg without status is ignored
        legs.append(FinalLeg(uri, status, _int(leg.get("max-size"), "max-size")))
    mid = root.get("Message-ID")
    return FinalReport(mid.strip() if mid is not None else None, tuple(legs),
                       last_text in ("true", "1"))


def build_final_report(report: FinalReport) -> bytes:
    """The Appendix O.1 document (UTF-8, default namespace)."""
    attrs: list[tuple[str, str]] = [("xmlns", FINAL_REPORT_NS)]
    if report.message_id is not None:
        attrs.append(("Message-ID", report.message_id))
    if report.last:
        attrs.append(("last", "true"))
    legs = []
    for leg in report.legs:
        la = [("uri", leg.uri), ("status", str(leg.status))]
        if leg.max_size is not None:
            la.append(("max-size", str(leg.max_size)))
        legs.append(XmlNode("leg", tuple(la)))
    return XmlNode("final", tuple(attrs), tuple(legs)).to_bytes()
