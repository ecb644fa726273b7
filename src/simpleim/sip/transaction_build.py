"""Messages the transaction layer builds itself: the ACK for a non-2xx final response
(RFC 3261 §17.1.1.3), CANCEL (§9.1), and where a server transaction sends responses (§18.2.2).
"""

from __future__ import annotations

from typing import Any

from simpleim.errors import LocalProtocolError
from simpleim.sip.message import Headers, SipRequest, SipResponse

__all__ = ["ack_for_non2xx", "cancel_request", "response_destination"]

# RFC 3261 §8.1.1.6: a UAC MUST insert Max-Forwards, SHOULD be 70.
_MAX_FORWARDS = "70"


def _copy_lines(src: Headers, dst: Headers, name: str) -> None:
    for line in src.get_lines(name):
        dst.add(name, line)


def _single_top_via(request: SipRequest) -> str:
    vias = request.headers.get_all("Via")
    if not vias:
        raise LocalProtocolError("request has no Via")
    return vias[0]


def ack_for_non2xx(invite: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK a client INVITE transaction sends for a 300-699 (RFC 3261 §17.1.1.3).

    Request-URI, Call-ID, From and CSeq number of the INVITE; To of the response (with its
    tag); one Via, the INVITE's top Via (same branch); the INVITE's Route header fields;
    CSeq method ACK.
    """
    if invite.method != "INVITE":
        raise LocalProtocolError("ACK is only built for an INVITE")
    if response.status < 300:
        raise LocalProtocolError("the ACK for a 2xx is built by the UA core (§13.2.2.4)")
    h = Headers()
    # §17.1.1.3: "MUST contain a single Via header field, and this MUST be equal to the top
    # Via header field of the original request".
    h.add("Via", _single_top_via(invite))
    h.add("Max-Forwards", _MAX_FORWARDS)
    # §17.1.1.3: Route header fields of the INVITE MUST be carried in the ACK.
    _copy_lines(invite.headers, h, "Route")
    h.add("From", invite.headers.get("From") or "")
    # §17.1.1.3: To equals the To of the response being acknowledged.
    h.add("To", response.headers.get("To") or "")
    h.add("Call-ID", invite.call_id)
    # §17.1.1.3: CSeq number of the original request, method ACK.
    h.add("CSeq", f"{invite.cseq.seq} ACK")
    return SipRequest("ACK", invite.uri, h)


def cancel_request(request: SipRequest) -> SipRequest:
    """Build the CANCEL for a pending client ``request`` (RFC 3261 §9.1).

    Request-URI, Call-ID, To, CSeq number and From are those of the request (tags
    included); one Via equal to the request's top Via (same branch, so the server can match
    the INVITE); the request's Route header fields; CSeq method CANCEL.
    """
    if request.method in ("ACK", "CANCEL"):
        raise LocalProtocolError(f"{request.method} cannot be cancelled (§9.1)")
    h = Headers()
    # §9.1: "MUST have only a single Via header field value matching the top Via value in
    # the request being cancelled".
    h.add("Via", _single_top_via(request))
    h.add("Max-Forwards", _MAX_FORWARDS)
    # §9.1: Route header fields of the request MUST be copied when present.
    _copy_lines(request.headers, h, "Route")
    # §9.1: Request-URI, Call-ID, To, the numeric part of CSeq, and From MUST be identical.
    h.add("From", request.headers.get("From") or "")
    h.add("To", request.headers.get("To") or "")
    h.add("Call-ID", request.call_id)
    h.add("CSeq", f"{request.cseq.seq} CANCEL")
    return SipRequest("CANCEL", request.uri, h)


def response_destination(request: SipRequest, source: Any, reliable: bool) -> Any:
    """Where a server transaction sends its responses (RFC 3261 §18.2.2, RFC 3581 §4).

    Reliable: back on the connection the request came from (``source``).  Unreliable:
    ``maddr`` if present; the source address and port when the client asked for ``rport``
    (RFC 3581); otherwise the source address (what ``received`` holds) and the sent-by port
    (default 5060).  ``source`` is a ``(host, port)`` pair for unreliable transports.
    """
    if reliable:
        return source
    via = request.top_via
    default_port = 5061 if via.transport in ("TLS", "SCTP-TLS") else 5060
    if via.maddr:
        # §18.2.2: "the response MUST be forwarded to the address listed there".
        return (via.maddr, via.port or default_port)
    if via.rport_requested:
        # RFC 3581 §4: send to the source IP address and port of the request.
        return source
    if isinstance(source, tuple) and len(source) >= 2:
        # §18.2.2: the "received" address (the source) and the sent-by port.
        return (source[0], via.port or default_port)
    return source
