"""Conversation history as data (OMA SIMPLE IM §13.2.3, §13.3.2, §13.3.3), sans-I/O.

* :func:`message_item`: a SIP MESSAGE stored whole (§13.2.3 step 4), hop-by-hop routing
  headers dropped, with its searchable text (the CPIM / plain text content).
* :func:`send_item`: one MSRP SEND of a session with its headers, the receive time and its
  content (step 6); :func:`sipfrag_item`: the relevant INVITE / 200 / BYE headers of a
  session (steps 5-6) as a ``message/sipfrag`` (RFC 3420).
* :func:`delivery`: what one MSRP SEND of a retrieval carries for a stored item (§13.3.3):
  a MESSAGE as ``multipart/mixed`` with one ``message/sip`` part (the timestamp received by
  the server in ``Date``, Call-ID unaltered); a SEND as ``message/msrp`` rebuilt with its
  original headers (Message-ID unaltered); session headers as ``message/sipfrag``.
* :func:`history_document`: the history metadata document (§13.3.2; the Appendix J
  ``history-list`` form, one ``<history>`` per stored history).
* :func:`reference_ids`: the history references a request names (Request-URI list body,
  Refer-To, or the multiple-refer resource-lists).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime

from simpleim.content.cpim import parse_cpim
from simpleim.content.resource_lists import parse_resource_lists
from simpleim.content.xml import XmlNode
from simpleim.errors import ProtocolError, SimpleImError
from simpleim.sip.headers import Address
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.sip.multipart import MultipartPart, build_multipart, parse_multipart
from simpleim.sip.uri import SipUri, parse_uri
from simpleim.store.history import HistoryItem, HistoryRecord, ItemKind

__all__ = [
    "HISTORY_NS",
    "SESSION_HEADERS",
    "delivery",
    "history_document",
    "is_notification",
    "message_item",
    "new_id",
    "reference_ids",
    "searchable_text",
    "send_item",
    "sipfrag_item",
]

HISTORY_NS = "urn:oma:xml:history-list"
#: §13.2.3 step 5: the relevant headers of the INVITE / 200 / BYE of a recorded session.
SESSION_HEADERS = ("From", "To", "P-Asserted-Identity", "Subject", "Date", "Call-ID",
                   "Contact", "Conversation-ID", "Contribution-ID", "Reason")
#: what a stored MESSAGE keeps of its delivery: not the routing of the attempt
_HOP_BY_HOP = frozenset({"via", "route", "record-route", "max-forwards", "authorization",
                         "proxy-authorization", "proxy-require", "content-length"})
_TEXT_TYPES = ("text/plain", "text/html")


def new_id() -> str:
    """A history reference's unique part (§13.2.3 step 7): 128 random bits."""
    return secrets.token_hex(16)


def http_date(ts: float) -> str:
    """RFC 3261 §20.17 Date."""
    return format_datetime(datetime.fromtimestamp(ts, UTC), usegmt=True)


def searchable_text(content_type: str, body: bytes) -> str:
    """The plain text of a message (CPIM unwrapped), "" for anything else."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype == "message/cpim":
        try:
            cpim = parse_cpim(body)
        except SimpleImError:
            return ""
        ctype = (cpim.content_type or "text/plain").split(";", 1)[0].strip().lower()
        body = cpim.body
    if ctype not in _TEXT_TYPES:
        return ""
    return body.decode("utf-8", "replace")[:4000]


def is_notification(content_type: str, body: bytes) -> bool:
    """An IMDN or an is-composing indication: state, not conversation (not recorded)."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    if ctype in ("application/im-iscomposing+xml", "message/imdn+xml"):
        return True
    if ctype == "message/cpim":
        try:
            inner = (parse_cpim(body).content_type or "").lower()
        except SimpleImError:
            return False
        return inner.startswith(("message/imdn+xml", "application/im-iscomposing+xml"))
    return False


def message_item(req: SipRequest, *, history: str, owner: str, seq: int, direction: str,
                 now: float) -> HistoryItem:
    """§13.2.3 step 4: the complete MESSAGE (header fields and body)."""
    copy = req.copy()
    for name in _HOP_BY_HOP:
        copy.headers.remove(name)
    ctype = req.content_type or "text/plain"
    return HistoryItem(new_id(), history, owner, seq, ItemKind.MESSAGE, direction, now,
                       req.call_id, "", "message/sip", searchable_text(ctype, req.body), (),
                       copy.to_bytes())


def sipfrag_item(msg: SipRequest | SipResponse, *, history: str, owner: str, seq: int,
                 now: float) -> HistoryItem:
    """§13.2.3 steps 5-6: the start line and relevant headers of an INVITE, its 200 or the
    BYE (RFC 3420 sipfrag)."""
    if isinstance(msg, SipRequest):
        start = f"{msg.method} {msg.uri} SIP/2.0"
    else:
        start = f"SIP/2.0 {msg.status} {msg.reason}"
    lines = [start]
    kept: list[tuple[str, str]] = []
    for name in SESSION_HEADERS:
        for value in msg.headers.get_all(name):
            lines.append(f"{name}: {value}")
            kept.append((name, value))
    if not any(n == "Date" for n, _ in kept):
        lines.append(f"Date: {http_date(now)}")
    body = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    return HistoryItem(new_id(), history, owner, seq, ItemKind.SIPFRAG, "", now,
                       msg.call_id, "", "message/sipfrag", "", tuple(kept), body)


def send_item(content_type: str, body: bytes, headers: Sequence[tuple[str, str]], *,
              message_id: str, call_id: str, history: str, owner: str, seq: int,
              direction: str, now: float) -> HistoryItem:
    """§13.2.3 step 6: one MSRP SEND with its headers, receive time and whole content."""
    kept = tuple((n, v) for n, v in headers if n.lower() != "byte-range")
    return HistoryItem(new_id(), history, owner, seq, ItemKind.SEND, direction, now,
                       call_id, message_id, content_type or "application/octet-stream",
                       searchable_text(content_type, body), kept, body)


def _msrp_send(item: HistoryItem) -> bytes:
    """The SEND rebuilt as it was received (RFC 4975 §7.1, one chunk, original headers)."""
    tid = secrets.token_hex(8)
    names = {n.lower() for n, _ in item.headers}
    lines = [f"MSRP {tid} SEND"]
    order = ("to-path", "from-path", "message-id")
    for key in order:
        lines += [f"{n}: {v}" for n, v in item.headers if n.lower() == key]
    if "message-id" not in names and item.message_id:
        lines.append(f"Message-ID: {item.message_id}")
    size = len(item.content)
    lines.append(f"Byte-Range: 1-{size}/{size}")
    lines += [f"{n}: {v}" for n, v in item.headers
              if n.lower() not in (*order, "content-type")]
    lines.append(f"Content-Type: {item.content_type}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + item.content \
        + f"\r\n-------{tid}$\r\n".encode("ascii")


def _dated(stored: bytes, received_at: float) -> bytes:
    """The stored MESSAGE with the time the server received it in ``Date`` (§13.3.3.1:
    "the timestamp received by the IM Server in SIP headers") when it had none."""
    head, sep, body = stored.partition(b"\r\n\r\n")
    if any(line.lower().startswith(b"date:") for line in head.split(b"\r\n")[1:]):
        return stored
    return head + f"\r\nDate: {http_date(received_at)}".encode("ascii") + sep + body


def delivery(item: HistoryItem, *, pager: bool = False) -> tuple[bytes, str]:
    """§13.3.3: the (body, Content-Type) of the MSRP SEND that delivers ``item``: a pager or
    large message (``pager``, §13.3.3.1) as multipart/mixed with a message/sip or
    message/msrp part, a session's SEND (§13.3.3.2) as message/msrp."""
    if item.kind is ItemKind.MESSAGE:
        part = MultipartPart.create("message/sip", _dated(item.content, item.received_at))
        return build_multipart([part])
    if item.kind is ItemKind.SEND:
        if pager:
            return build_multipart([MultipartPart.create("message/msrp", _msrp_send(item))])
        return _msrp_send(item), "message/msrp"
    return item.content, "message/sipfrag"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def history_document(records: Iterable[HistoryRecord], host: str) -> bytes:
    """§13.3.2: the history metadata document, one ``<history>`` per stored history with
    its history reference (the ``history-list`` form of Appendix J, ``<session>`` for a
    recorded session)."""
    items = []
    for r in records:
        when = "session" if r.kind.value == "session" else "pager"
        detail = [XmlNode("time-stamp", text=_iso(r.started_at)),
                  XmlNode("from" if when == "pager" else "peer", text=r.peer)]
        if r.ended_at is not None and when == "session":
            detail.append(XmlNode("end-time", text=_iso(r.ended_at)))
        items.append(XmlNode("history", (
            ("date", _iso(r.started_at)[:10]),
            ("history-reference", f"{r.id}@{host}"),
        ), (
            XmlNode("size", text=str(r.size)),
            XmlNode("subject", text=r.subject),
            XmlNode("filename", text=r.filename),
            XmlNode(when, children=tuple(detail)),
        )))
    return XmlNode("history-list", (("xmlns", HISTORY_NS),), tuple(items)).to_bytes()


def _id_of(uri_text: str) -> str | None:
    try:
        uri = parse_uri(uri_text.strip().strip("<>"))
    except ProtocolError:
        text = uri_text.strip().strip("<>")
        return text.split("@", 1)[0] or None if "@" in text else None
    if isinstance(uri, SipUri) and uri.user:
        return uri.user_unescaped
    return None


def _listed(req: SipRequest) -> list[str] | None:
    """The URIs of the resource-lists body (alone or a multipart/mixed part)."""
    ctype = (req.content_type or "").lower()
    bodies: list[bytes] = []
    if ctype == "application/resource-lists+xml":
        bodies = [req.body]
    elif ctype == "multipart/mixed" and req.media_type is not None \
            and req.media_type.boundary:
        try:
            bodies = [p.body for p in parse_multipart(req.body, req.media_type.boundary)
                      if (p.content_type or "").lower() == "application/resource-lists+xml"]
        except SimpleImError:
            return None
    if not bodies:
        return None
    uris: list[str] = []
    for body in bodies:
        try:
            uris += [e.uri for e in parse_resource_lists(body).entries()]
        except SimpleImError:
            return None
    return uris


def reference_ids(req: SipRequest) -> list[str] | None:
    """The unique parts of the history references ``req`` names: the URI list of a
    retrieval INVITE (§13.1.3 step 4), the Refer-To of a deletion REFER, or the
    resource-lists the Refer-To points at (§13.1.6, multiple-refer).  None: none given."""
    value = req.headers.get("Refer-To") if req.method == "REFER" else None
    if value is not None:
        try:
            target = Address.parse(value, "Refer-To").uri
        except ProtocolError:
            return None
        if isinstance(target, SipUri):
            found = _id_of(str(target))
            return [found] if found else None
    listed = _listed(req)
    if listed is None:
        return None
    out = [i for i in (_id_of(u) for u in listed) if i]
    return out or None
