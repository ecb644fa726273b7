"""What one deferred-delivery MSRP SEND carries (OMA SIMPLE IM §12.2.2.5, Appendix D.2;
C-DM-05), sans-I/O: the stored messages as SIP requests the pager code can present.

* a ``message/sip`` (RFC 3261) or ``message/sipfrag`` (RFC 3420) part holding a MESSAGE:
  that MESSAGE;
* a large message (D.2 example 2): the ``message/sip`` INVITE of the sender's session (its
  relevant headers: From, To, Call-ID, Date, P-Asserted-Identity, Subject...), optionally
  its 200 OK, and the ``message/msrp`` SEND with the content: presented as a MESSAGE with
  the INVITE's headers and the SEND's content and Content-Type.
"""

from __future__ import annotations

from simpleim.errors import ProtocolError, SimpleImError
from simpleim.msrp import MsrpRequest, parse_stream
from simpleim.sip.header_values import MediaType
from simpleim.sip.message import Headers, SipRequest, parse_message
from simpleim.sip.multipart import parse_multipart

__all__ = ["delivered_requests"]

_SIP_TYPES = ("message/sip", "message/sipfrag")


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _as_message(invite: SipRequest | None, send: MsrpRequest) -> SipRequest | None:
    """The content of a stored large message as a MESSAGE from its sender."""
    if send.body is None or invite is None:
        return None
    headers = Headers()
    for name, value in invite.headers:
        if name.lower() not in ("content-type", "content-length", "contact"):
            headers.add(name, value)
    if "date" not in headers and send.headers.get("Date"):
        headers.add("Date", send.headers.get("Date") or "")
    headers.add("Content-Type", send.content_type or "application/octet-stream")
    return SipRequest("MESSAGE", invite.uri, headers, send.body)


def delivered_requests(content_type: str, body: bytes) -> list[SipRequest]:
    """The messages of one delivery SEND, in order.  A part that is no SIP request (the 200
    OK of a large message's session) is skipped; a body of another type raises
    ProtocolError (415)."""
    mt = MediaType.parse(content_type)
    if mt.mime in _SIP_TYPES or mt.mime == "message/msrp":
        parts = [(mt.mime, body)]
    elif mt.mime == "multipart/mixed" and mt.boundary:
        parts = [(_mime(p.content_type), p.body) for p in parse_multipart(body, mt.boundary)]
    else:
        raise ProtocolError(f"unexpected deferred delivery type {content_type}", status=415)
    requests: list[SipRequest] = []
    invite: SipRequest | None = None
    for mime, raw in parts:
        if mime in _SIP_TYPES:
            msg = parse_message(raw)
            if not isinstance(msg, SipRequest):
                continue
            if msg.method == "INVITE":
                invite = msg      # the session of a large message: its SEND follows
            elif msg.method == "MESSAGE":
                requests.append(msg)
        elif mime == "message/msrp":
            try:
                sends = parse_stream(raw)
            except SimpleImError as exc:
                raise ProtocolError(f"bad message/msrp part: {exc}", status=400) from exc
            for send in sends:
                if isinstance(send, MsrpRequest) and send.method == "SEND":
                    made = _as_message(invite, send)
                    if made is not None:
                        requests.append(made)
    return requests
