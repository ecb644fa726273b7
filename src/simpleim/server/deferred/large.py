"""Deferred large messages as data (OMA SIMPLE IM §12.2.2.1, §12.2.2.3 step 3, §12.2.2.5,
Appendix D.2 example 2; DM-04/05/07), sans-I/O.

A large message (an INVITE with ``+g.oma.sip-im.large-message``, its content in one MSRP
SEND, §9) to a user who cannot take it is accepted by the Deferred Messaging Function and
kept as one stored request, so that the queue, expiry, deletion and listings of pager
messages apply unchanged:

* :func:`stored_large`: the stored INVITE - the relevant headers of the sender's INVITE
  (From, To, Call-ID, CSeq, Contact (§12.2.2.1 step 1), P-Asserted-Identity unless the
  sender asked for anonymity, Subject, Date, Priority) with a ``multipart/mixed`` body: the
  SDP offer, the ``message/sip`` 200 OK we answered with (relevant headers and the SDP
  answer) and the ``message/msrp`` SEND (the complete message in one chunk, its MSRP
  Message-ID unaltered, ``Date`` = when its last byte arrived).
* :func:`with_bye`: the same stored INVITE once the session has ended, with the relevant
  headers of the SIP BYE (§12.2.2.3 step 3) as one more ``message/sip`` part.
* :func:`pushed_large`: DM-07 - the SEND body that delivers it: ``multipart/mixed`` with the
  INVITE (``message/sip``, Date and ``Deferred-Message-ID`` added), the 200 OK
  (``message/sip``) and the SEND (``message/msrp``), as in D.2.
* :func:`large_as_message`: the same content as a pager-style MESSAGE (original From, To,
  Call-ID, Date), for a plain SIP client (msilo path) and for the DM-09 failure report.
"""

from __future__ import annotations

import secrets

from simpleim.errors import ProtocolError, SimpleImError
from simpleim.msrp import ByteRange, MsrpRequest, make_request, parse_path, parse_stream
from simpleim.sip.header_values import MediaType
from simpleim.sip.message import Headers, SipRequest, SipResponse, parse_message
from simpleim.sip.multipart import MultipartPart, build_multipart, parse_multipart
from simpleim.sip.uri import parse_uri

__all__ = [
    "LARGE_MESSAGE_TAG",
    "StoredLarge",
    "is_large_message",
    "large_as_message",
    "parse_stored_large",
    "pushed_large",
    "stored_large",
    "with_bye",
]

#: §9.1.1.2: the large message mode feature tag (Accept-Contact of the INVITE)
LARGE_MESSAGE_TAG = "+g.oma.sip-im.large-message"
# §12.2.2.3 step 3 / §12.2.2.5: the headers of the session kept with the message
# (Referred-By: the sender of a pre-defined group's copy whose PAI is the group, §9.3.2.1)
_RELEVANT = ("from", "to", "call-id", "cseq", "contact", "p-asserted-identity", "subject",
             "date", "priority", "privacy", "referred-by")
# §12.2.2.3 step 3: what is kept of the BYE that ended the session (RFC 3326 Reason too)
_RELEVANT_BYE = ("from", "to", "call-id", "cseq", "p-asserted-identity", "date", "reason")


def is_large_message(req: SipRequest) -> bool:
    """An INVITE of large message mode (§9.1.1.2: the feature tag in Accept-Contact)."""
    return req.method == "INVITE" and any(
        LARGE_MESSAGE_TAG in v.lower() for v in req.headers.get_all("Accept-Contact"))


def _relevant(headers: Headers, anonymous: bool,
              names: tuple[str, ...] = _RELEVANT) -> Headers:
    out = Headers()
    for name, value in headers:
        low = name.lower()
        if low in names and not (anonymous and low in ("p-asserted-identity", "referred-by")):
            out.add(name, value)
    return out


def _send_of(content_type: str, body: bytes, msrp_headers: tuple[tuple[str, str], ...],
             message_id: str, date: str) -> bytes:
    """The complete MSRP message as one SEND (RFC 4975 §7.1: Byte-Range 1-N/N)."""
    head = {n.lower(): v for n, v in msrp_headers}
    to_path = parse_path(head.get("to-path", "msrp://invalid/x;tcp"))
    from_path = parse_path(head.get("from-path", "msrp://invalid/x;tcp"))
    size = len(body)
    extra = [("Message-ID", message_id or secrets.token_hex(8)),
             ("Byte-Range", str(ByteRange(1, size, size))), ("Date", date),
             ("Content-Type", content_type or "application/octet-stream")]
    while True:
        tid = secrets.token_hex(8)
        if b"-------" + tid.encode() not in body:
            break
    return make_request(tid, "SEND", to_path, from_path, extra, body).to_bytes()


def stored_large(invite: SipRequest, answer: SipResponse, content_type: str, body: bytes,
                 msrp_headers: tuple[tuple[str, str], ...], message_id: str,
                 received: str, *, anonymous: bool) -> bytes:
    """§12.2.2.3 step 3: what is kept of one large message (see the module docstring);
    ``received``: the RFC 1123 date its last byte arrived."""
    headers = _relevant(invite.headers, anonymous)
    answer_part = SipResponse(answer.status, answer.reason,
                              _relevant(answer.headers, anonymous), answer.body)
    if answer.body:
        answer_part.headers.add("Content-Type", answer.content_type or "application/sdp")
    parts = [
        MultipartPart.create(invite.content_type or "application/sdp", invite.body),
        MultipartPart.create("message/sip", answer_part.to_bytes()),
        MultipartPart.create("message/msrp", _send_of(content_type, body, msrp_headers,
                                                      message_id, received)),
    ]
    doc, ctype = build_multipart(parts)
    headers.add("Content-Type", ctype)
    return SipRequest("INVITE", invite.uri, headers, doc).to_bytes()


def with_bye(stored: bytes, bye: SipRequest, *, anonymous: bool) -> bytes | None:
    """§12.2.2.3 step 3: ``stored`` (made by :func:`stored_large`) with the relevant headers
    of the ``bye`` that ended the session added as a ``message/sip`` part (no body); None
    when ``stored`` is not such a request or already has a BYE part."""
    try:
        request = parse_message(stored)
    except SimpleImError:
        return None
    if not isinstance(request, SipRequest):
        return None
    parts = _stored_parts(request)
    if parts is None:
        return None
    if any(p.content_type == "message/sip" and p.body.startswith(b"BYE ") for p in parts):
        return None
    bye_part = SipRequest("BYE", bye.uri, _relevant(bye.headers, anonymous, _RELEVANT_BYE))
    doc, ctype = build_multipart([*parts, MultipartPart.create("message/sip",
                                                               bye_part.to_bytes())])
    request.headers.remove("Content-Type")
    request.headers.add("Content-Type", ctype)
    return SipRequest("INVITE", request.uri, request.headers, doc).to_bytes()


class StoredLarge:
    """A stored large message taken apart: the INVITE (its SDP as body), the 200 OK part,
    the SEND and, once the session has ended, the BYE part (relevant headers only)."""

    __slots__ = ("answer", "bye", "invite", "send")

    def __init__(self, invite: SipRequest, answer: bytes | None, send: MsrpRequest,
                 bye: bytes | None = None) -> None:
        self.invite, self.answer, self.send, self.bye = invite, answer, send, bye


def _stored_parts(stored: SipRequest) -> list[MultipartPart] | None:
    """The body parts of an INVITE :func:`stored_large` made; None for anything else."""
    mt = stored.media_type
    if stored.method != "INVITE" or mt is None or mt.mime != "multipart/mixed" \
            or not mt.boundary:
        return None
    try:
        return parse_multipart(stored.body, mt.boundary)
    except (SimpleImError, ValueError):
        return None


def parse_stored_large(stored: SipRequest) -> StoredLarge | None:
    """The parts of a request :func:`stored_large` made; None for anything else."""
    parts = _stored_parts(stored)
    if parts is None:
        return None
    try:
        offer = next((p for p in parts if (p.content_type or "").startswith("application/")),
                     None)
        answer = next((p.body for p in parts if p.content_type == "message/sip"
                       and p.body.startswith(b"SIP/2.0")), None)
        bye = next((p.body for p in parts if p.content_type == "message/sip"
                    and p.body.startswith(b"BYE ")), None)
        raw = next((p.body for p in parts if p.content_type == "message/msrp"), None)
        if raw is None:
            return None
        (send,) = parse_stream(raw)
    except (SimpleImError, ValueError):
        return None
    if not isinstance(send, MsrpRequest):
        return None
    invite = stored.copy()
    invite.headers.remove("Content-Type")
    invite.body = b""
    if offer is not None:
        invite.body = offer.body
        invite.headers.add("Content-Type", offer.content_type or "application/sdp")
    return StoredLarge(invite, answer, send, bye)


def pushed_large(large: StoredLarge, extra: Headers) -> tuple[bytes, str]:
    """DM-07 / D.2 example 2: ``multipart/mixed`` with the INVITE (``message/sip``, plus
    ``extra``: Date when it had none, the Deferred-Message-ID), the 200 OK (``message/sip``)
    and the SEND (``message/msrp``: the MSRP Message-ID unaltered, §12.2.2.5)."""
    invite = large.invite.copy()
    for name, value in extra:
        if name.lower() != "date" or "date" not in invite.headers:
            invite.headers.add(name, value)
    parts = [MultipartPart.create("message/sip", invite.to_bytes())]
    if large.answer is not None:
        parts.append(MultipartPart.create("message/sip", large.answer))
    parts.append(MultipartPart.create("message/msrp", large.send.to_bytes()))
    return build_multipart(parts)


def large_as_message(large: StoredLarge, recipient: str) -> SipRequest | None:
    """The large message's content as a MESSAGE from its sender (original From, To,
    Call-ID, P-Asserted-Identity, Subject; Date = when it arrived unless the INVITE had
    one); None when the SEND has no content."""
    send = large.send
    if send.body is None:
        return None
    headers = Headers()
    headers.add("Max-Forwards", "70")
    for name, value in large.invite.headers:
        low = name.lower()
        if low in ("content-type", "content-length", "contact"):
            continue
        if low == "cseq":
            value = f"{value.split()[0]} MESSAGE" if value.split() else "1 MESSAGE"
        headers.add(name, value)
    if "date" not in headers and send.headers.get("Date"):
        headers.add("Date", send.headers.get("Date") or "")
    try:
        ctype = send.content_type or "application/octet-stream"
        MediaType.parse(ctype)
    except ProtocolError:
        return None
    headers.add("Content-Type", ctype)
    return SipRequest("MESSAGE", parse_uri(f"sip:{recipient}"), headers, send.body)
