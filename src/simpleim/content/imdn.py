"""Instant Message Disposition Notification (IMDN, RFC 5438).

* :class:`Imdn` - the ``message/imdn+xml`` document (build + parse).
* :class:`DispositionRequest` - the CPIM ``imdn.Disposition-Notification`` header.
* Recipient rules of RFC 5438 §7.2 as pure functions: :func:`notification_to_send`
  decides whether (and with which status) to notify, :func:`build_notification`
  wraps an :class:`Imdn` in the CPIM envelope §7.2.1.1 prescribes.

Parsing is liberal where deployed peers differ from the schema: ``<datetime>`` may
be missing (seen in RCS traces, seed 002), and foreign-namespace children such as
liblinphone's ``<linphoneimdn:reason code="488">`` inside ``<status>`` are kept as
:class:`ImdnReason`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from simpleim.errors import ContentError

from .cpim import IMDN_NS, CpimAddress, CpimDateTime, CpimHeader, CpimMessage, build_cpim
from .xml import XmlLimits, XmlNode, child, child_text, local_name, namespace, parse_xml, qname

__all__ = [
    "ALLOWED_STATUS",
    "IMDN_CONTENT_TYPE",
    "IMDN_XML_NS",
    "DispositionRequest",
    "Imdn",
    "ImdnReason",
    "NotificationType",
    "Status",
    "build_notification",
    "imdn_route",
    "notification_to_send",
    "parse_imdn",
]

IMDN_XML_NS = "urn:ietf:params:xml:ns:imdn"
IMDN_CONTENT_TYPE = "message/imdn+xml"


class NotificationType(StrEnum):
    DELIVERY = "delivery-notification"
    DISPLAY = "display-notification"
    PROCESSING = "processing-notification"


class Status(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    FORBIDDEN = "forbidden"
    ERROR = "error"
    DISPLAYED = "displayed"
    PROCESSED = "processed"
    STORED = "stored"


#: The RFC 5438 XML schema: the statuses each notification type may carry.
ALLOWED_STATUS: Mapping[NotificationType, frozenset[Status]] = MappingProxyType({
    NotificationType.DELIVERY: frozenset({Status.DELIVERED, Status.FAILED, Status.FORBIDDEN,
                                          Status.ERROR}),
    NotificationType.DISPLAY: frozenset({Status.DISPLAYED, Status.FORBIDDEN, Status.ERROR}),
    NotificationType.PROCESSING: frozenset({Status.PROCESSED, Status.STORED, Status.FORBIDDEN,
                                            Status.ERROR}),
})


@dataclass(frozen=True)
class ImdnReason:
    """A vendor extension inside ``<status>`` (e.g. liblinphone's ``reason code="488"``)."""

    code: int | None
    text: str
    namespace: str | None = None


@dataclass(frozen=True)
class Imdn:
    """One IMDN document (RFC 5438 §7.2.1.1 - §7.2.1.3 and its XML schema)."""

    message_id: str
    kind: NotificationType
    status: Status
    datetime: str | None = None
    recipient_uri: str | None = None
    original_recipient_uri: str | None = None
    subject: str | None = None
    reason: ImdnReason | None = None

    def __post_init__(self) -> None:
        if self.status not in ALLOWED_STATUS[self.kind]:
            raise ContentError(f"status {self.status} not allowed in {self.kind}", status=400,
                               where="imdn/status")

    def to_xml(self) -> XmlNode:
        status_children = [XmlNode(self.status.value)]
        attrs: list[tuple[str, str]] = [("xmlns", IMDN_XML_NS)]
        if self.reason is not None and self.reason.namespace is not None:
            attrs.append(("xmlns:ext", self.reason.namespace))
            rattrs = (("code", str(self.reason.code)),) if self.reason.code is not None else ()
            status_children.append(XmlNode("ext:reason", rattrs, text=self.reason.text))
        kids: list[XmlNode] = [XmlNode("message-id", text=self.message_id)]
        if self.datetime is not None:
            kids.append(XmlNode("datetime", text=self.datetime))
        if self.recipient_uri is not None:
            kids.append(XmlNode("recipient-uri", text=self.recipient_uri))
        if self.original_recipient_uri is not None:
            kids.append(XmlNode("original-recipient-uri", text=self.original_recipient_uri))
        if self.subject is not None:
            kids.append(XmlNode("subject", text=self.subject))
        kids.append(XmlNode(self.kind.value, children=(XmlNode("status",
                                                               children=tuple(status_children)),)))
        return XmlNode("imdn", tuple(attrs), tuple(kids))

    def to_bytes(self) -> bytes:
        return self.to_xml().to_bytes()


def parse_imdn(data: bytes | str, limits: XmlLimits = XmlLimits()) -> Imdn:  # noqa: B008
    """Parse a ``message/imdn+xml`` body; ContentError 400 if it is not a valid IMDN."""
    root = parse_xml(data, limits, what="IMDN")
    ns = IMDN_XML_NS
    if root.tag != qname(ns, "imdn"):
        raise ContentError(f"root element is {root.tag}, not imdn", status=400, where="imdn")
    message_id = child_text(root, ns, "message-id")
    if not message_id:
        raise ContentError("IMDN without message-id", status=400, where="imdn/message-id")
    found: list[tuple[NotificationType, Status, ImdnReason | None]] = []
    for kind in NotificationType:
        node = child(root, ns, kind.value)
        if node is None:
            continue
        status_el = child(node, ns, "status")
        if status_el is None:
            raise ContentError(f"{kind} without status", status=400, where=f"imdn/{kind}")
        status: Status | None = None
        reason: ImdnReason | None = None
        for el in status_el:
            el_ns = namespace(el.tag)
            name = local_name(el.tag)
            if el_ns == ns:
                try:
                    status = Status(name)
                except ValueError:
                    raise ContentError(f"unknown IMDN status {name!r}", status=400,
                                       where=f"imdn/{kind}/status") from None
            elif name == "reason":
                code_s = el.get("code")
                code = int(code_s) if code_s is not None and code_s.isdigit() else None
                reason = ImdnReason(code, (el.text or "").strip(), el_ns)
        if status is None:
            raise ContentError("empty IMDN status", status=400, where=f"imdn/{kind}/status")
        if status not in ALLOWED_STATUS[kind]:
            raise ContentError(f"status {status} not allowed in {kind}", status=400,
                               where=f"imdn/{kind}/status")
        found.append((kind, status, reason))
    if len(found) != 1:
        # RFC 5438 XML schema: exactly one of the three notification elements.
        raise ContentError("an IMDN carries exactly one notification", status=400,
                           where="imdn")
    kind, status, reason = found[0]
    return Imdn(
        message_id=message_id,
        kind=kind,
        status=status,
        datetime=child_text(root, ns, "datetime"),
        recipient_uri=child_text(root, ns, "recipient-uri"),
        original_recipient_uri=child_text(root, ns, "original-recipient-uri"),
        subject=child_text(root, ns, "subject"),
        reason=reason,
    )


@dataclass(frozen=True)
class DispositionRequest:
    """The ``Disposition-Notification`` header (RFC 5438 §6.2)."""

    positive_delivery: bool = False
    negative_delivery: bool = False
    display: bool = False
    processing: bool = False

    @classmethod
    def parse(cls, values: str | tuple[str, ...]) -> DispositionRequest:
        """Parse a header value (or already split values); unknown tokens are ignored."""
        items = values.split(",") if isinstance(values, str) else values
        toks = {v.split(";", 1)[0].strip().lower() for v in items}
        return cls("positive-delivery" in toks, "negative-delivery" in toks,
                   "display" in toks, "processing" in toks)

    @classmethod
    def from_cpim(cls, message: CpimMessage) -> DispositionRequest:
        return cls.parse(message.disposition_notification)

    @property
    def any(self) -> bool:
        return self.positive_delivery or self.negative_delivery or self.display or \
            self.processing

    def __str__(self) -> str:
        names = [n for n, on in (("positive-delivery", self.positive_delivery),
                                 ("negative-delivery", self.negative_delivery),
                                 ("display", self.display),
                                 ("processing", self.processing)) if on]
        return ", ".join(names)


def _is_notification(message: CpimMessage) -> bool:
    ctype = (message.content_type or "").split(";", 1)[0].strip().lower()
    disp = (message.content_disposition or "").split(";", 1)[0].strip().lower()
    return ctype == IMDN_CONTENT_TYPE or disp == "notification"


def notification_to_send(message: CpimMessage, kind: NotificationType,
                         outcome: Status) -> Status | None:
    """Recipient rules (RFC 5438 §7.2): the status to report for ``outcome``, or None.

    * Never notify a notification: IMDNs are not themselves subject to IMDNs
      (RFC 5438 §7.1.1: an IMDN MUST NOT request one; a request on it is ignored).
    * No ``imdn.Message-ID`` or no ``DateTime`` -> no IMDN: the IMDN has to echo
      both (§7.2.1.1: message-id and datetime are copied from the IM).
    * Delivery (§7.2.1.1): ``delivered`` only when positive-delivery was
      requested; ``failed``/``error``/``forbidden`` only when negative-delivery was.
    * Display (§7.2.1.2) and processing (§7.2.1.3) only when requested.
    """
    if outcome not in ALLOWED_STATUS[kind]:
        raise ContentError(f"{outcome} is not a {kind} status", status=500, where="imdn")
    if _is_notification(message):
        return None
    if message.imdn_message_id is None or message.datetime is None:
        return None
    req = DispositionRequest.from_cpim(message)
    if kind is NotificationType.DELIVERY:
        if outcome is Status.DELIVERED:
            return outcome if req.positive_delivery else None
        return outcome if req.negative_delivery else None
    if kind is NotificationType.DISPLAY:
        return outcome if req.display else None
    return outcome if req.processing else None


def build_notification(
    message: CpimMessage,
    kind: NotificationType,
    status: Status,
    *,
    from_addr: CpimAddress,
    message_id: str,
    date_time: CpimDateTime,
    recipient_uri: str | None = None,
    reason: ImdnReason | None = None,
) -> CpimMessage:
    """The CPIM-wrapped IMDN answering ``message`` (RFC 5438 §7.2.1.1).

    * CPIM To = the original CPIM From (the IM sender).
    * ``<message-id>`` and ``<datetime>`` copy ``imdn.Message-ID`` and ``DateTime`` of the IM.
    * ``<original-recipient-uri>`` copies the IM's ``imdn.Original-To`` (added by a
      URI-list or redirecting intermediary, RFC 5438 §6).
    * every ``imdn.IMDN-Record-Route`` of the IM is copied, in order, into an
      ``imdn.IMDN-Route`` header of the IMDN (RFC 5438 §6); the caller sends the SIP
      request to the first of them (:func:`imdn_route`).
    * ``Content-Disposition: notification`` and a fresh ``imdn.Message-ID``; no
      Disposition-Notification (an IMDN never requests an IMDN, §7.1.1).
    """
    orig_id = message.imdn_message_id
    orig_dt = message.datetime
    sender = message.from_addr
    if orig_id is None or orig_dt is None or sender is None:
        raise ContentError("IM lacks imdn.Message-ID, DateTime or From", status=400,
                           where="message/cpim")
    original_to = message.get("Original-To", IMDN_NS)
    original_recipient = CpimAddress.parse(original_to).uri if original_to else None
    routes = [CpimHeader("imdn.IMDN-Route", h.value.strip())
              for h in message.get_all("IMDN-Record-Route", IMDN_NS)]
    doc = Imdn(message_id=orig_id, kind=kind, status=status, datetime=orig_dt.text,
               recipient_uri=recipient_uri, original_recipient_uri=original_recipient,
               reason=reason)
    return build_cpim(from_addr=from_addr, to=[sender], body=doc.to_bytes(),
                      content_type=IMDN_CONTENT_TYPE, date_time=date_time,
                      message_id=message_id, content_disposition="notification",
                      extra_headers=routes)


def imdn_route(notification: CpimMessage) -> list[str]:
    """The URIs of the ``imdn.IMDN-Route`` headers of an IMDN, in order (RFC 5438 §6)."""
    return [CpimAddress.parse(h.value).uri for h in notification.get_all("IMDN-Route", IMDN_NS)]
