"""SIP messages over bytes: :func:`parse_message`, :class:`SipRequest`, :class:`SipResponse`.

The head is split once; header values are stored raw (unfolded, RFC 3261 §7.3.1) and
parsed into typed values only when read (cached in :class:`Headers`, dropped on mutation).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from simpleim.errors import LocalProtocolError, RemoteProtocolError, SipParseError
from simpleim.sip._abnf import CANONICAL_BY_KEY, FOLD_RE, TOKEN_RE, WIRE_NAMES, split_top
from simpleim.sip.headers import (
    Address,
    ContactPattern,
    CSeq,
    Headers,
    MediaType,
    SessionExpires,
    Via,
    parse_address_list,
    parse_int_header,
    parse_privacy,
    parse_token_list,
    parse_via_list,
)
from simpleim.sip.uri import Uri, parse_uri

__all__ = [
    "SipLimits",
    "Headers",
    "SipMessage",
    "SipRequest",
    "SipResponse",
    "parse_message",
    "REASON_PHRASES",
]


@dataclass(frozen=True, slots=True)
class SipLimits:
    """Hard size limits; exceeding one raises :class:`SipParseError` 513 Message Too Large.

    ``max_message_size`` defaults to a UDP datagram (64 KiB, RFC 3261 §18.1.1 / §21.5.14).
    """

    max_message_size: int = 65536
    max_headers: int = 256
    max_header_line: int = 8192
    max_body: int = 65536


DEFAULT_LIMITS = SipLimits()

REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    428: "Use Identity Header", 429: "Provide Referrer Identity", 433: "Anonymity Disallowed",
    436: "Bad Identity-Info", 437: "Unsupported Certificate", 438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support", 470: "Consent Needed",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    494: "Security Agreement Required", 500: "Server Internal Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


# ------------------------------------------------------------------------------------------------
# messages
# ------------------------------------------------------------------------------------------------


def _missing(name: str) -> SipParseError:
    # RFC 3261 §8.1.1: To, From, CSeq, Call-ID, Max-Forwards and Via are mandatory
    return SipParseError(f"missing {name}", where=name)


class SipMessage:
    """Common part of requests and responses: headers, body and typed accessors."""

    __slots__ = ("headers", "body")

    def __init__(self, headers: Headers | Iterable[tuple[str, object]] | None, body: bytes) -> None:
        if headers is None:
            headers = Headers()
        elif not isinstance(headers, Headers):
            headers = Headers(headers)
        self.headers: Headers = headers
        self.body: bytes = bytes(body)

    # -- typed access (lazy, cached in Headers) ------------------------------------------------
    def _one(self, key: str, name: str) -> str:
        h = self.headers
        firsts = h._firsts
        value = (firsts if firsts is not None else h._build_firsts()).get(key)
        if value is None:
            raise _missing(name)
        return value.strip(" \t")

    def _vias(self) -> list[Via]:
        cache = self.headers._cache
        cached = cache.get("via")
        if cached is not None:
            return cached  # type: ignore[return-value]
        lines = self.headers._lines("via")
        if len(lines) == 1 and "," not in lines[0]:
            return [self.top_via]  # one value: the (cached) top Via, no list kept
        vias: list[Via] = []
        for line in lines:
            vias.extend(parse_via_list(line))
        cache["via"] = vias
        return vias

    @property
    def via(self) -> list[Via]:
        """Every Via value, top first (a new list: mutate headers, not this)."""
        return list(self._vias())

    @property
    def top_via(self) -> Via:
        cache = self.headers._cache
        top = cache.get("top-via")
        if top is None:
            line = self._one("via", "Via")
            top = cache["top-via"] = (
                Via.parse(line) if "," not in line else parse_via_list(line)[0])
        return top  # type: ignore[return-value]

    @property
    def from_addr(self) -> Address:
        cache = self.headers._cache
        addr = cache.get("from")
        if addr is None:
            addr = cache["from"] = Address.parse(self._one("from", "From"), "From")
        return addr  # type: ignore[return-value]

    @property
    def to_addr(self) -> Address:
        cache = self.headers._cache
        addr = cache.get("to")
        if addr is None:
            addr = cache["to"] = Address.parse(self._one("to", "To"), "To")
        return addr  # type: ignore[return-value]

    @property
    def call_id(self) -> str:
        value = self._one("call-id", "Call-ID")
        # RFC 3261 §25.1: callid = word [ "@" word ]
        if " " in value or "\t" in value or not value:
            raise SipParseError("bad Call-ID", where="Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        cache = self.headers._cache
        cseq = cache.get("cseq")
        if cseq is None:
            cseq = cache["cseq"] = CSeq.parse(self._one("cseq", "CSeq"))
        return cseq  # type: ignore[return-value]

    @property
    def contacts(self) -> list[Address]:
        """Contact addresses; the ``*`` wildcard (§10.2.2) is reported by :attr:`contact_star`."""
        return list(self.headers._typed("contact", self._parse_contacts))

    def _parse_contacts(self) -> list[Address]:
        out: list[Address] = []
        for line in self.headers._lines("contact"):
            if line.strip(" \t") == "*":
                continue
            out.extend(parse_address_list(line, "Contact"))
        return out

    @property
    def contact_star(self) -> bool:
        """True for ``Contact: *`` (REGISTER remove-all, RFC 3261 §10.2.2)."""
        return any(v.strip(" \t") == "*" for v in self.headers._lines("contact"))

    @property
    def max_forwards(self) -> int | None:
        def build() -> int | None:
            v = self.headers._lines("max-forwards")
            # RFC 3261 §20.22: an integer in the range 0-255
            return parse_int_header(v[0], "Max-Forwards", 255) if v else None

        return self.headers._typed("max-forwards", build)

    @property
    def media_type(self) -> MediaType | None:
        def build() -> MediaType | None:
            v = self.headers._lines("content-type")
            return MediaType.parse(v[0]) if v else None

        return self.headers._typed("content-type", build)

    @property
    def content_type(self) -> str | None:
        """The bare media type, lowercased (``application/sdp``); see :attr:`media_type`."""
        mt = self.media_type
        return mt.mime if mt is not None else None

    @property
    def content_length(self) -> int | None:
        v = self.headers._lines("content-length")
        return parse_int_header(v[0], "Content-Length", 2**31) if v else None

    def _addresses(self, key: str, name: str) -> list[Address]:
        def build() -> list[Address]:
            out: list[Address] = []
            for line in self.headers._lines(key):
                out.extend(parse_address_list(line, name))
            return out

        return list(self.headers._typed(key, build))

    @property
    def route(self) -> list[Address]:
        return self._addresses("route", "Route")

    @property
    def record_route(self) -> list[Address]:
        return self._addresses("record-route", "Record-Route")

    @property
    def path(self) -> list[Address]:
        """RFC 3327 Path."""
        return self._addresses("path", "Path")

    @property
    def service_route(self) -> list[Address]:
        """RFC 3608 Service-Route."""
        return self._addresses("service-route", "Service-Route")

    @property
    def p_asserted_identity(self) -> list[Address]:
        """RFC 3325 §9.1 P-Asserted-Identity."""
        return self._addresses("p-asserted-identity", "P-Asserted-Identity")

    @property
    def p_preferred_identity(self) -> list[Address]:
        """RFC 3325 §9.2 P-Preferred-Identity."""
        return self._addresses("p-preferred-identity", "P-Preferred-Identity")

    @property
    def referred_by(self) -> Address | None:
        """RFC 3892 Referred-By."""
        v = self.headers._lines("referred-by")
        return self.headers._typed("referred-by",
                                   lambda: Address.parse(v[0], "Referred-By") if v else None)

    def _tokens(self, key: str, name: str) -> list[str]:
        return list(self.headers._typed(
            key, lambda: parse_token_list(self.headers._split(key, self.headers._lines(key)),
                                          name)))

    @property
    def supported(self) -> list[str]:
        return self._tokens("supported", "Supported")

    @property
    def require(self) -> list[str]:
        return self._tokens("require", "Require")

    @property
    def proxy_require(self) -> list[str]:
        return self._tokens("proxy-require", "Proxy-Require")

    @property
    def allow(self) -> list[str]:
        return self._tokens("allow", "Allow")

    @property
    def request_disposition(self) -> list[str]:
        """RFC 3841 §9.1 Request-Disposition directives."""
        return self._tokens("request-disposition", "Request-Disposition")

    @property
    def privacy(self) -> list[str]:
        """RFC 3323 Privacy values (``id``, ``header``, ``none`` ...)."""
        return parse_privacy(self.headers._lines("privacy"))

    @property
    def p_preferred_service(self) -> list[str]:
        """3GPP TS 24.229 P-Preferred-Service (RFC 6050) URNs."""
        return self.headers.get_all("P-Preferred-Service")

    @property
    def accept_contact(self) -> list[ContactPattern]:
        """RFC 3841 §9.2 Accept-Contact."""
        return [ContactPattern.parse(v, "Accept-Contact")
                for v in self.headers.get_all("Accept-Contact")]

    @property
    def reject_contact(self) -> list[ContactPattern]:
        """RFC 3841 §9.3 Reject-Contact."""
        return [ContactPattern.parse(v, "Reject-Contact")
                for v in self.headers.get_all("Reject-Contact")]

    @property
    def session_expires(self) -> SessionExpires | None:
        """RFC 4028 §4 Session-Expires."""
        v = self.headers._lines("session-expires")
        return SessionExpires.parse(v[0]) if v else None

    @property
    def min_se(self) -> int | None:
        """RFC 4028 §5 Min-SE (parameters ignored)."""
        v = self.headers._lines("min-se")
        return parse_int_header(v[0].split(";")[0], "Min-SE", 2**32 - 1) if v else None

    @property
    def expires(self) -> int | None:
        v = self.headers._lines("expires")
        return parse_int_header(v[0], "Expires", 2**32 - 1) if v else None

    @property
    def conversation_id(self) -> str | None:
        """OMA CPM Conversation-ID."""
        return self.headers.get("Conversation-ID")

    @property
    def contribution_id(self) -> str | None:
        """OMA CPM Contribution-ID."""
        return self.headers.get("Contribution-ID")

    @property
    def in_reply_to_contribution_id(self) -> str | None:
        """OMA CPM InReplyTo-Contribution-ID."""
        return self.headers.get("InReplyTo-Contribution-ID")

    # -- serialization --------------------------------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialize; Content-Length always states ``len(body)`` (RFC 3261 §20.14)."""
        body = self.body
        h = self.headers
        out = [self.start_line()]
        append = out.append
        written = False
        canonical_of = CANONICAL_BY_KEY.get
        names = h._names
        for key, value in h._items:
            if key == "content-length":
                if written:
                    continue
                value = f" {len(body)}"
                written = True
            # values are stored as they were after the ":" (LWS kept: exact round trip)
            append(f"{canonical_of(key) or names.get(key, key)}:{value}")
        if not written:
            out.append(f"Content-Length: {len(body)}")
        out.append("\r\n")
        return "\r\n".join(out).encode("utf-8", "surrogateescape") + body

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def __str__(self) -> str:
        return self.to_bytes().decode("utf-8", "replace")


class SipRequest(SipMessage):
    """A SIP request: ``method``, Request-URI ``uri``, headers and body."""

    # _uri_text: the Request-URI as received (used while _uri is None); _uri_str: the
    # serialization of _uri once computed (Uri values are immutable; reset by the setter).
    __slots__ = ("method", "_uri", "_uri_text", "_uri_str")

    def __init__(
        self,
        method: str,
        uri: Uri | str,
        headers: Headers | Iterable[tuple[str, object]] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        if not TOKEN_RE.fullmatch(method):
            raise LocalProtocolError(f"bad method {method!r}")
        self.method = method
        self._uri_text = ""
        self._uri_str: str | None = None
        self._uri: Uri | None = parse_uri(uri, "Request-URI") if isinstance(uri, str) else uri

    @property
    def uri(self) -> Uri:
        """The Request-URI, parsed on first read (400 at ``Request-URI`` if malformed)."""
        uri = self._uri
        if uri is None:
            uri = self._uri = parse_uri(self._uri_text, "Request-URI")
        return uri

    @uri.setter
    def uri(self, value: Uri | str) -> None:
        self._uri = parse_uri(value, "Request-URI") if isinstance(value, str) else value
        self._uri_str = None

    def set_uri(self, uri: Uri, text: str) -> None:
        """Replace the Request-URI by ``uri`` whose serialization ``text`` (``str(uri)``) is
        already known (a proxy target used for many requests, RFC 3261 §16.6 step 2)."""
        self._uri = uri
        self._uri_str = text

    def start_line(self) -> str:
        uri = self._uri
        if uri is None:
            return f"{self.method} {self._uri_text} SIP/2.0"
        text = self._uri_str
        if text is None:
            text = self._uri_str = str(uri)
        return f"{self.method} {text} SIP/2.0"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipRequest):
            return NotImplemented
        if self.method != other.method or self.body != other.body:
            return False
        try:
            same_uri = self.uri == other.uri
        except SipParseError:
            same_uri = self.start_line() == other.start_line()
        return same_uri and self.headers == other.headers

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<SipRequest {self.method} {self.uri}>"

    def copy(self) -> SipRequest:
        """A copy whose headers can be changed without touching this one (proxy forking)."""
        uri = self.uri  # parsed first (400 at Request-URI), as a new request would
        req: SipRequest = _object_new(SipRequest)
        req.headers = self.headers.copy()
        req.body = self.body
        req.method = self.method
        req._uri = uri
        req._uri_text = self._uri_text
        req._uri_str = self._uri_str
        return req

    # -- RFC 3261 §8.2.6 ---------------------------------------------------------------------
    def create_response(
        self,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        copy_record_route: bool = False,
    ) -> SipResponse:
        """Build a response (RFC 3261 §8.2.6.2): Via (all, in order), From, To, Call-ID and
        CSeq are copied; ``to_tag`` is added to To when it has none (§8.2.6.2: MUST for
        non-100 responses of a UAS); 100 Trying copies Timestamp (§8.2.6.1).
        ``copy_record_route`` copies Record-Route for dialog-creating responses (§12.1.1).
        """
        if not 100 <= status <= 699:
            raise LocalProtocolError(f"bad status {status}")
        h = self.headers
        out = Headers()
        for key, raw in h._items:
            name = h._name(key)
            value = raw.strip(" \t")
            if key == "via" and "," in value:
                # One Via per line (a comma-joined list of hundreds is one huge line, over
                # the line limits of the hops it goes back through).
                for via in parse_via_list(value):
                    out.add(name, str(via))
            elif key in ("via", "from", "call-id", "cseq"):
                out.add(name, value)
            elif key == "to":
                if to_tag is not None and status != 100:
                    addr = Address.parse(value, "To")
                    if addr.tag is None:
                        value = f"{value};tag={to_tag}"
                out.add(name, value)
            elif (key == "timestamp" and status == 100) or (
                key == "record-route" and copy_record_route
            ):
                out.add(name, value)
        return SipResponse(status, reason, out)

    # -- proxy helpers (RFC 3261 §16.6) ---------------------------------------------------------
    def prepend_via(self, via: Via | str) -> None:
        """§16.6 step 8: insert our Via above the existing ones."""
        self.headers.prepend("Via", via)

    def decrement_max_forwards(self, default: int = 70) -> int:
        """§16.6 step 3: decrement Max-Forwards (adding ``default`` - 1 if absent).

        Raises 483 Too Many Hops (§16.3 step 3) when it is already 0.
        """
        mf = self.max_forwards
        if mf is None:
            mf = default
        if mf <= 0:
            raise RemoteProtocolError("Max-Forwards is 0", status=483, where="Max-Forwards")
        self.headers.set("Max-Forwards", str(mf - 1))
        return mf - 1

    def add_record_route(self, addr: Address | str) -> None:
        """§16.6 step 4: insert a Record-Route value above the existing ones."""
        self.headers.prepend("Record-Route", addr)

    def pop_route(self) -> Address | None:
        """Remove and return the topmost Route value (§16.4 / §16.12 loose routing)."""
        h = self.headers
        pos = h._positions("route")
        if not pos:
            return None
        first = pos[0]
        parts = split_top(h._items[first][1].strip(" \t"), ",", "Route")
        top = Address.parse(parts[0], "Route")
        rest = ",".join(parts[1:]).strip(" \t")
        h._replace_line(first, rest or None)
        return top


class SipResponse(SipMessage):
    """A SIP response: ``status``, ``reason`` phrase, headers and body."""

    __slots__ = ("status", "reason")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, object]] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        if not 100 <= status <= 699:
            raise LocalProtocolError(f"bad status {status}")
        self.status = status
        self.reason = REASON_PHRASES.get(status, "") if reason is None else reason

    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SipResponse):
            return NotImplemented
        return (self.status == other.status and self.reason == other.reason
                and self.headers == other.headers and self.body == other.body)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<SipResponse {self.status} {self.reason}>"

    def copy(self) -> SipResponse:
        return SipResponse(self.status, self.reason, self.headers.copy(), self.body)

    @property
    def status_class(self) -> int:
        return self.status // 100


# ------------------------------------------------------------------------------------------------
# parsing
# ------------------------------------------------------------------------------------------------

_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)


def _err(reason: str, where: str, status: int = 400) -> SipParseError:
    return SipParseError(reason, status=status, where=where)


def parse_message(data: bytes, limits: SipLimits = DEFAULT_LIMITS) -> SipRequest | SipResponse:
    """Parse one SIP message (datagram semantics, RFC 3261 §18.3).

    Content-Length delimits the body and trailing octets are ignored (RFC 4475 §3.1.1.8);
    without Content-Length the body is the rest of the data; a Content-Length larger than
    the data is 400.  Header values are checked only when read, or by
    :func:`validate_message`.
    """
    size = len(data)
    if size > limits.max_message_size:
        raise _err(f"message of {size} bytes exceeds {limits.max_message_size}", "message", 513)
    start = 0
    # RFC 3261 §7.5: CRLFs before the start-line are ignored
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise _err("no empty line after the header section", "message")
    head = data[start:end].decode("utf-8", "surrogateescape")
    lines = head.split("\r\n")
    nlines = len(lines) - 1
    # a lone CR or LF inside the header section is not SIP (RFC 3261 §7: lines end in CRLF)
    if head.count("\n") != nlines or head.count("\r") != nlines:
        raise _err("bare CR or LF in header section", "message")
    if nlines > limits.max_headers:
        raise _err(f"more than {limits.max_headers} headers", "headers", 513)
    if len(head) > limits.max_header_line and max(map(len, lines)) > limits.max_header_line:
        raise _err("header line too long", "headers", 513)
    split = _split_headers(lines)
    if split is None:
        # RFC 3261 §7.3.1: folded lines are joined with a single SP
        lines = FOLD_RE.sub(" ", head).split("\r\n")
        if max(map(len, lines)) > limits.max_header_line:
            raise _err("header line too long", "headers", 513)
        split = _split_headers(lines)
        if split is None:
            raise _err("continuation line without a header", "headers")
    items, names, cl_value = split

    body_start = end + 4
    if cl_value is None:
        body = data[body_start:]  # RFC 3261 §18.3: datagram without Content-Length
    else:
        if not cl_value.isdigit() or not cl_value.isascii() or len(cl_value) > 10:
            # RFC 4475 §3.1.2.3: never use a negative or malformed value as a length
            raise _err(f"bad Content-Length {cl_value[:20]!r}", "Content-Length")
        length = int(cl_value)
        if body_start + length > size:
            # RFC 3261 §18.3: datagram shorter than Content-Length -> 400
            raise _err("Content-Length larger than the message", "Content-Length")
        body = data[body_start : body_start + length]
    if len(body) > limits.max_body:
        raise _err(f"body of {len(body)} bytes exceeds {limits.max_body}", "body", 513)

    headers: Headers = _object_new(Headers)
    headers._items = items
    headers._names = names
    headers._cache = {}
    headers._firsts = None
    first = lines[0]
    if first.startswith("SIP/"):
        return _parse_status_line(first, headers, body)
    return _parse_request_line(first, headers, body)


_object_new = object.__new__
_METHODS = frozenset((
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE", "SUBSCRIBE", "NOTIFY",
    "PUBLISH", "REFER", "INFO", "UPDATE", "PRACK",
))


def _split_headers(
    lines: list[str],
) -> tuple[list[tuple[str, str]], dict[str, str], str | None] | None:
    """Header lines -> [(key, value)], spellings of unknown names, the Content-Length value.

    Returns ``None`` when a folded line is found (the caller unfolds and retries).
    """
    items: list[tuple[str, str]] = []
    names: dict[str, str] = {}
    append = items.append
    cl_value: str | None = None
    wire = WIRE_NAMES
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        key = wire.get(name)
        if key is None or not colon:
            if not colon:
                if line[:1] in (" ", "\t"):
                    return None  # a folded line (RFC 3261 §7.3.1)
                raise _err("header line without ':'", line[:40])
            key = wire.get(name.lower())
            if key is None:
                if line[:1] in (" ", "\t"):
                    return None
                # RFC 3261 §25.1: HCOLON = *( SP / HTAB ) ":" SWS
                name = name.rstrip(" \t")
                key = wire.get(name.lower())
                if key is None:
                    if not TOKEN_RE.fullmatch(name):
                        raise _err(f"bad header name {name[:40]!r}", name[:40] or "header")
                    key = name.lower()
                    if key not in names:
                        names[key] = name
        if key == "content-length":
            # RFC 3261 §20.14 / RFC 4475 §3.3.9: several Content-Length values cannot frame
            if cl_value is not None:
                raise _err("multiple Content-Length headers", "Content-Length")
            cl_value = value.strip(" \t")
        append((key, value))
    return items, names, cl_value


def _check_version(version: str, where: str) -> None:
    if version != "SIP/2.0":
        if not _VERSION_RE.fullmatch(version):
            raise _err(f"bad SIP version {version[:20]!r}", where)
        if version.upper() != "SIP/2.0":
            # RFC 3261 §8.2.2 / RFC 4475 §3.1.2.16: unknown version -> 505
            raise _err(f"unsupported version {version}", where, 505)


def _parse_request_line(line: str, headers: Headers, body: bytes) -> SipRequest:
    # RFC 3261 §25.1: Request-Line = Method SP Request-URI SP SIP-Version CRLF (single SPs;
    # RFC 4475 §3.1.2.8-10 extra or trailing SP and LWS in the URI are rejected)
    parts = line.split(" ")
    if len(parts) != 3:
        raise _err("malformed Request-Line", "request-line")
    method, uri_text, version = parts
    if method not in _METHODS and not TOKEN_RE.fullmatch(method):
        raise _err(f"bad method {method[:40]!r}", "request-line")
    if version != "SIP/2.0":
        _check_version(version, "request-line")
    # RFC 3261 §25.1 Request-URI: parsed (and refused with 400) on first read of .uri,
    # like header values; validate_message() forces it.
    if not uri_text or "<" in uri_text or ":" not in uri_text:
        raise _err(f"bad Request-URI {uri_text[:40]!r}", "Request-URI")
    req: SipRequest = _object_new(SipRequest)
    req.headers = headers
    req.body = body
    req.method = method
    req._uri = None
    req._uri_text = uri_text
    req._uri_str = None
    return req


def _parse_status_line(line: str, headers: Headers, body: bytes) -> SipResponse:
    # RFC 3261 §25.1: Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    _check_version(version, "status-line")
    if len(code) != 3 or not code.isdigit() or not code.isascii():
        raise _err(f"bad status code {code[:20]!r}", "status-line")
    status = int(code)
    if not 100 <= status <= 699:
        # RFC 4475 §3.1.2.19: status codes above 699 are refused
        raise _err(f"status code {status} out of range", "status-line")
    resp: SipResponse = _object_new(SipResponse)
    resp.headers = headers
    resp.body = body
    resp.status = status
    resp.reason = reason
    return resp
