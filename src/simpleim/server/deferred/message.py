"""Deferred messages as data (OMA SIMPLE IM §12.2.2.3-§12.2.2.6, DM-05..DM-09), sans-I/O.

* :func:`stored_request`: what is kept of a deferred MESSAGE (the whole request; no
  P-Asserted-Identity when the sender asked for anonymity; hop-by-hop headers dropped).
* :func:`expiry_of`: the expiry from Expires, bounded by the configured maximum/default.
* :func:`redelivery`: the MESSAGE re-sent to a plain SIP client (what Kamailio's msilo
  does): original sender, Call-ID, CSeq and body, the receive time in ``Date`` (RFC 3261
  §20.17) and the message's URI in ``Deferred-Message-ID`` so a client can flag it.
* :func:`failure_report`: the negative-delivery IMDN (RFC 5438 §7.2.1.1) for a message
  deleted or expired undelivered, when its CPIM asked for one (DM-09).
* :func:`history_list`: the Appendix J ``history-list`` metadata of stored messages.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime

from simpleim.content.cpim import CpimAddress, CpimDateTime, parse_cpim
from simpleim.content.imdn import (
    NotificationType,
    Status,
    build_notification,
    notification_to_send,
)
from simpleim.content.xml import XmlNode
from simpleim.errors import ContentError, ProtocolError
from simpleim.sip.message import Headers, SipRequest
from simpleim.sip.multipart import MultipartPart, build_multipart
from simpleim.sip.uri import parse_uri
from simpleim.store.deferred import DeferredMessage

__all__ = [
    "DEFERRED_ID_HEADER",
    "expiry_of",
    "failure_report",
    "history_list",
    "http_date",
    "is_anonymous",
    "message_uri",
    "new_message_id",
    "pushed",
    "redelivery",
    "stored_request",
    "unwrapped",
]

#: The header naming the stored message's URI on a re-sent MESSAGE (DM-05 Message-ID).
DEFERRED_ID_HEADER = "Deferred-Message-ID"
# Hop-by-hop / routing headers that belong to the original delivery attempt, not the message.
_HOP_BY_HOP = ("via", "route", "record-route", "max-forwards", "proxy-authorization",
               "authorization", "proxy-require")
HISTORY_NS = "urn:oma:xml:history-list"


def new_message_id() -> str:
    """The unique string of a Message-ID ``sip:<string>@<host>`` (DM-05: the server makes
    it itself); 128 random bits."""
    return secrets.token_hex(16)


def message_uri(message_id: str, host: str) -> str:
    return f"sip:{message_id}@{host}"


def is_anonymous(req: SipRequest) -> bool:
    """RFC 3323 §4.2 / OMA §5.1: ``Privacy: id`` (or ``header``) asks for anonymity."""
    try:
        values = {v.lower() for v in req.privacy}
    except ProtocolError:
        return False
    return bool(values & {"id", "header", "user"})


def stored_request(req: SipRequest) -> bytes:
    """DM-05: the complete request (all header fields and the body) minus the
    hop-by-hop routing headers; without P-Asserted-Identity when anonymity was asked."""
    copy = req.copy()
    for name in _HOP_BY_HOP:
        copy.headers.remove(name)
    if is_anonymous(req):
        copy.headers.remove("P-Asserted-Identity")
    return copy.to_bytes()


def expiry_of(req: SipRequest, now: float, default: int, maximum: int) -> float:
    """DM-05 step 6: Expires when below the local maximum, else the default."""
    try:
        expires = req.expires
    except ProtocolError:
        expires = None
    if expires is None or expires > maximum:
        return now + default
    return now + expires


def http_date(ts: float) -> str:
    """RFC 3261 §20.17 Date (RFC 1123 form, always GMT)."""
    return format_datetime(datetime.fromtimestamp(ts, UTC), usegmt=True)


def redelivery(message: DeferredMessage, stored: SipRequest, host: str) -> SipRequest:
    """The MESSAGE that re-sends ``stored`` to its recipient (msilo-style delivery)."""
    headers = Headers()
    headers.add("Max-Forwards", "70")
    for name, value in stored.headers:
        if name.lower() in _HOP_BY_HOP or name.lower() == "content-length":
            continue
        headers.add(name, value)
    if "date" not in headers:
        # DM-07: the receive timestamp in the SIP headers (the D.2 example adds Date).
        headers.add("Date", http_date(message.received_at))
    headers.add(DEFERRED_ID_HEADER, f"<{message_uri(message.id, host)}>")
    return SipRequest("MESSAGE", parse_uri(f"sip:{message.recipient}"), headers, stored.body)


def pushed(message: DeferredMessage, stored: SipRequest, host: str) -> tuple[bytes, str]:
    """DM-07 (§12.2.2.5): the body and Content-Type of the MSRP SEND that delivers a stored
    MESSAGE over a push or retrieval session: ``multipart/mixed`` with one ``message/sip``
    part, the stored request as received (Call-ID and the rest unaltered) with the time
    the server received it in ``Date`` when it had none, and the stored message's URI in
    ``Deferred-Message-ID`` (so the client can present it once and delete it by URI)."""
    copy = stored.copy()
    if "date" not in copy.headers:
        copy.headers.add("Date", http_date(message.received_at))
    copy.headers.add(DEFERRED_ID_HEADER, f"<{message_uri(message.id, host)}>")
    return build_multipart([MultipartPart.create("message/sip", copy.to_bytes())])


def unwrapped(request: SipRequest) -> SipRequest | None:
    """The same MESSAGE with its CPIM unwrapped (RFC 3862: the inner content and type), for a
    plain SIP client that refused message/cpim with 415 (baresip takes text/plain only).
    The CPIM DateTime, when there is one, becomes the Date when the request has none."""
    if (request.content_type or "") != "message/cpim":
        return None
    try:
        cpim = parse_cpim(request.body)
    except ContentError:
        return None
    plain = request.copy()
    plain.body = cpim.body
    plain.headers.set("Content-Type", cpim.content_type or "text/plain")
    return plain


def failure_report(stored: SipRequest, *, server: str, now: datetime) -> bytes | None:
    """DM-09: the CPIM failure IMDN for ``stored`` when it asked for negative-delivery
    (RFC 5438 §7.2.1.1), else None.  ``server``: the IMDN's CPIM From (our URI)."""
    if (stored.content_type or "") != "message/cpim":
        return None
    try:
        cpim = parse_cpim(stored.body)
        if notification_to_send(cpim, NotificationType.DELIVERY, Status.FAILED) is None:
            return None
        note = build_notification(
            cpim, NotificationType.DELIVERY, Status.FAILED,
            from_addr=CpimAddress(server), message_id=new_message_id(),
            date_time=CpimDateTime.from_datetime(now.replace(microsecond=0)),
            recipient_uri=None)
    except ContentError:
        return None
    return note.to_bytes()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def history_list(messages: Sequence[DeferredMessage], host: str) -> bytes:
    """Appendix J: the deferred-message metadata document (``urn:oma:xml:history-list``)."""
    items = []
    for m in messages:
        items.append(XmlNode("history", (
            ("date", _iso(m.received_at)[:10]),
            ("history-reference", f"{m.id}@{host}"),
        ), (
            XmlNode("size", text=str(m.size)),
            XmlNode("expiry", text=_iso(m.expires_at)),
            XmlNode("subject", text=m.subject),
            XmlNode("pager", children=(
                XmlNode("time-stamp", text=_iso(m.received_at)),
                XmlNode("from", text=m.sender),
                XmlNode("to", text=m.recipient),
            )),
        )))
    return XmlNode("history-list", (("xmlns", HISTORY_NS),), tuple(items)).to_bytes()
