"""Validation of parsed SIP messages: the application-level checks :func:`parse_message`
leaves lazy (mandatory and single-valued headers, every known header value, CSeq method,
Request-URI headers), kept apart from the syntax.  Re-exported by :mod:`simpleim.sip`."""

from __future__ import annotations

import re

from simpleim.errors import SipParseError
from simpleim.sip._abnf import split_top
from simpleim.sip.headers import canonical_name as canonical
from simpleim.sip.message import SipMessage, SipRequest
from simpleim.sip.uri import SipUri

__all__ = ["validate_message", "validate_request"]


def _err(reason: str, where: str) -> SipParseError:
    return SipParseError(reason, status=400, where=where)


def _missing(name: str) -> SipParseError:
    # RFC 3261 §8.1.1: To, From, CSeq, Call-ID, Max-Forwards and Via are mandatory
    return SipParseError(f"missing {name}", where=name)


_SINGLE = ("to", "from", "call-id", "cseq", "max-forwards", "content-type", "content-length")
_DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)


def validate_message(msg: SipMessage) -> None:
    """Check what :func:`parse_message` leaves lazy; raise :class:`SipParseError` (400).

    * mandatory headers present (RFC 3261 §8.1.1: Via, To, From, Call-ID, CSeq; a missing
      Max-Forwards is tolerated for RFC 2543 peers, RFC 4475 §3.4.1),
    * single-valued headers appear once (RFC 3261 §7.3.1, RFC 4475 §3.3.8),
    * every known header value parses (Via, From, To, Contact, Route, CSeq, ...),
    * for requests: CSeq method equals the request method (RFC 3261 §8.1.1.5,
      RFC 4475 §3.1.2.17) and the Request-URI carries no ``?headers`` (§19.1.1 table 1).
    """
    h = msg.headers
    if isinstance(msg, SipRequest):
        _ = msg.uri  # the start line first: 400 at Request-URI
    for key, name in (("via", "Via"), ("to", "To"), ("from", "From"), ("call-id", "Call-ID"),
                      ("cseq", "CSeq")):
        if h._first(key) is None:
            raise _missing(name)
    for key in _SINGLE:
        lines = h._lines(key)
        if len(lines) > 1 or (lines and key in ("to", "from") and len(
                split_top(lines[0], ",", canonical(key))) > 1):
            raise _err(f"several {canonical(key)} values", canonical(key))
    _ = (msg.via, msg.from_addr, msg.to_addr, msg.call_id, msg.cseq, msg.contacts,
         msg.max_forwards, msg.media_type, msg.route, msg.record_route, msg.path,
         msg.p_asserted_identity, msg.referred_by, msg.supported, msg.require,
         msg.proxy_require, msg.session_expires, msg.accept_contact, msg.reject_contact)
    for date in h._lines("date"):
        # RFC 3261 §20.17: rfc1123-date, GMT only (RFC 4475 §3.1.2.12)
        if not _DATE_RE.fullmatch(date):
            raise _err("bad Date", "Date")
    if isinstance(msg, SipRequest):
        if msg.cseq.method != msg.method:
            raise _err(f"CSeq method {msg.cseq.method} differs from {msg.method}", "CSeq")
        if isinstance(msg.uri, SipUri) and msg.uri.headers:
            # RFC 3261 §19.1.1 table 1: headers are not allowed in a Request-URI
            # (RFC 4475 §3.1.2.11)
            raise _err("headers in Request-URI", "Request-URI")


def validate_request(msg: SipRequest) -> None:
    """:func:`validate_message` for a request (kept as the name the issue uses)."""
    validate_message(msg)
