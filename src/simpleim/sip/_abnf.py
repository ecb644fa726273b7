"""Grammar fragments of RFC 3261 §25 (and RFC 3966 / RFC 5118) used by the SIP parser.

Every pattern names the ABNF rule it implements.  Patterns are written so they
cannot backtrack catastrophically: character classes with ``+`` and no nested
alternation of overlapping classes.
"""

from __future__ import annotations

import re
import sys

from simpleim.errors import SipParseError

__all__ = [
    "COMPACT_FORMS",
    "CANONICAL",
    "CANONICAL_BY_KEY",
    "LIST_HEADERS",
    "WIRE_NAMES",
    "canonical_name",
    "TOKEN_RE",
    "WORD_RE",
    "SCHEME_RE",
    "HOSTNAME_RE",
    "IPV4_RE",
    "URI_PARAM_RE",
    "USER_RE",
    "PASSWORD_RE",
    "HNV_RE",
    "GEN_VALUE_RE",
    "FOLD_RE",
    "HEADER_PARAMS_FAST",
    "URI_PARAMS_FAST",
    "SIP_URI_FAST",
    "ADDRESS_FAST",
    "ADDRESS_TEL_FAST",
    "NAME_ADDR_FAST",
    "check_fast_host",
    "VIA_FAST",
    "is_token",
    "unfold",
    "split_top",
    "read_quoted",
    "quote",
    "quote_if_needed",
    "pct_decode",
    "pct_encode",
    "valid_ipv6",
]

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# RFC 3261 §25.1: word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" /
#   "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}")
WORD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+")
# RFC 3986 §3.1 / RFC 3261 §25.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# RFC 3261 §25.1: hostname = *( domainlabel "." ) toplabel [ "." ] (liberal: "_" tolerated)
HOSTNAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_\-.]*)")
# RFC 3261 §25.1: IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
IPV4_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
# RFC 3261 §25.1: paramchar = param-unreserved / unreserved / escaped
URI_PARAM_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+")
# RFC 3261 §25.1: user = 1*( unreserved / escaped / user-unreserved )
USER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
# RFC 3261 §25.1: password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
PASSWORD_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*")
# RFC 3261 §25.1: hname / hvalue = *( hnv-unreserved / unreserved / escaped )
HNV_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*")
# RFC 3261 §25.1: gen-value = token / host / quoted-string (host incl. IPv6 refs; RFC 5118 §4.5
# also lets Via received carry a bare IPv6address, so ":" is accepted)
GEN_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+")
# Fast paths (common shapes, no escapes, no LWS); anything else takes the full parser.
# RFC 3261 §25.1: *( SEMI generic-param ), generic-param = token [ EQUAL gen-value ]
_HP = r"(?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]+)?)"
_UP = r"(?:;[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+)?)"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# host: (IPv4address, checked here) / hostname / "[" IPv6 chars "]" (checked by the caller)
_HOST_FAST = (
    r"((" + _OCTET + r"(?:\." + _OCTET + r"){3})(?![A-Za-z0-9\-.])"
    r"|[A-Za-z0-9][A-Za-z0-9\-.]*|\[[0-9A-Fa-f:.]+\])"
)
_SIP_REST = (
    r"(?:([A-Za-z0-9\-_.!~*'()&=+$,;?/]+)@)?" + _HOST_FAST +
    r"(?::([0-9]{1,5}))?"
    r"(" + _UP + r"*)"
)
HEADER_PARAMS_FAST = re.compile(_HP + "+")
# RFC 3261 §19.1.1: uri-parameters = *( ";" uri-parameter )
URI_PARAMS_FAST = re.compile(_UP + "+")
# RFC 3261 §19.1.1: [user "@"] host [":" port] uri-parameters (after "sip:"), no escapes
SIP_URI_FAST = re.compile(_SIP_REST)
# RFC 3261 §25.1 name-addr / addr-spec with a plain sip/sips URI:
# [ quoted display-name (no escapes) / tokens ] "<" sip-URI ">" *( ";" generic-param )
ADDRESS_FAST = re.compile(
    r"(?:\"([^\"\\\r\n]*)\"[ \t]*|([A-Za-z0-9\-.!%*_+`'~]+(?: [A-Za-z0-9\-.!%*_+`'~]+)*) ?)?"
    r"<(sips?):" + _SIP_REST + r">(" + _HP + r"*)"
)
# the same without display name (value starts with "<"): a smaller program for the matcher
NAME_ADDR_FAST = re.compile(r"<(sips?):" + _SIP_REST + r">(" + _HP + r"*)")
# RFC 3261 §25.1 name-addr with a tel URI (RFC 3966 §3), no escapes
ADDRESS_TEL_FAST = re.compile(
    r"(?:\"([^\"\\\r\n]*)\"[ \t]*|([A-Za-z0-9\-.!%*_+`'~]+(?: [A-Za-z0-9\-.!%*_+`'~]+)*) ?)?"
    r"<tel:([0-9A-Fa-f*#+\-.()pPwW]+)(" + _UP + r"*)>(" + _HP + r"*)"
)
# RFC 3261 §25.1 via-parm with SIP/2.0, a plain host, no LWS inside
VIA_FAST = re.compile(
    r"SIP/2\.0/([A-Za-z0-9\-.!%*_+`'~]+) " + _HOST_FAST +
    r"(?::([0-9]{1,5}))?"
    r"((?:;[A-Za-z0-9\-.!%*_+`'~]+(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]+)?)*)"
)
# RFC 3261 §7.3.1: a header may be folded onto several lines: CRLF followed by SP/HTAB
FOLD_RE = re.compile(r"[ \t]*\r\n[ \t]+")

_HEX = "0123456789abcdefABCDEF"


def is_token(text: str) -> bool:
    """True when ``text`` is an RFC 3261 §25.1 token."""
    return TOKEN_RE.fullmatch(text) is not None


def unfold(text: str) -> str:
    """RFC 3261 §7.3.1: replace each CRLF + LWS fold by a single SP."""
    if "\r\n" not in text:
        return text
    return FOLD_RE.sub(" ", text)


def split_top(text: str, sep: str, where: str) -> list[str]:
    """Split ``text`` on ``sep`` outside quoted strings and ``<...>`` (RFC 3261 §7.3.1).

    Unterminated quotes or angle brackets raise 400 naming ``where``.
    """
    if '"' not in text and "<" not in text:
        return text.split(sep)
    parts: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i = read_quoted(text, i, where)[1]
            continue
        if ch == "<":
            j = text.find(">", i + 1)
            if j < 0:
                raise SipParseError("unterminated <", where=where)
            i = j + 1
            continue
        if ch == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def read_quoted(text: str, start: int, where: str) -> tuple[str, int]:
    """Read the quoted-string starting at ``text[start] == '"'`` (RFC 3261 §25.1).

    Returns the unescaped content and the index just past the closing quote.
    quoted-pair = "\\" (%x00-09 / %x0B-0C / %x0E-7F).
    """
    end = text.find('"', start + 1)
    if end < 0:
        raise SipParseError("unterminated quoted string", where=where)
    chunk = text[start + 1 : end]
    if "\\" not in chunk:
        return chunk, end + 1
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n or text[i + 1] in "\r\n":
                raise SipParseError("bad quoted-pair", where=where)
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise SipParseError("unterminated quoted string", where=where)


_NEEDS_PAIR = re.compile(r'["\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')


def quote(text: str) -> str:
    """Serialize ``text`` as a quoted-string (RFC 3261 §25.1).

    ``"``, ``\\`` and control characters become quoted-pairs; CR and LF cannot be
    carried at all (quoted-pair excludes them) and are left for the header check to refuse.
    """
    if _NEEDS_PAIR.search(text):
        text = _NEEDS_PAIR.sub(lambda m: "\\" + m.group(0), text)
    return '"' + text + '"'


def quote_if_needed(text: str) -> str:
    """Leave a token alone, otherwise quote it."""
    return text if text and TOKEN_RE.fullmatch(text) else quote(text)


def pct_decode(text: str) -> str:
    """Decode %HH escapes (RFC 3261 §19.1.2, RFC 3986 §2.1) into characters.

    Octets are decoded as UTF-8 (invalid sequences kept as surrogate escapes) so
    ``%00`` yields NUL and never truncates (RFC 4475 §3.1.1.4).  A ``%`` not
    followed by two hex digits is kept literally.
    """
    if "%" not in text:
        return text
    raw = bytearray()
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "%" and i + 2 < n:
            h = text[i + 1 : i + 3]
            if len(h) == 2 and h[0] in _HEX and h[1] in _HEX:
                raw.append(int(h, 16))
                i += 3
                continue
        raw += ch.encode("utf-8", "surrogateescape")
        i += 1
    return raw.decode("utf-8", "surrogateescape")


def pct_encode(text: str, safe: str) -> str:
    """Escape every character not alphanumeric or in ``safe`` as %HH (UTF-8 octets)."""
    out: list[str] = []
    for ch in text:
        if ch.isascii() and (ch.isalnum() or ch in safe):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


_H16 = r"[0-9A-Fa-f]{1,4}"
_LS32 = r"(?:" + _H16 + ":" + _H16 + r"|[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})"
# RFC 3261 §25.1 IPv6address (= RFC 3986 §3.2.2, the corrected grammar of RFC 5118 §4.10)
IPV6_RE = re.compile(
    "|".join([
        "(?:" + _H16 + ":){6}" + _LS32,
        "::(?:" + _H16 + ":){5}" + _LS32,
        "(?:" + _H16 + ")?::(?:" + _H16 + ":){4}" + _LS32,
        "(?:(?:" + _H16 + ":){0,1}" + _H16 + ")?::(?:" + _H16 + ":){3}" + _LS32,
        "(?:(?:" + _H16 + ":){0,2}" + _H16 + ")?::(?:" + _H16 + ":){2}" + _LS32,
        "(?:(?:" + _H16 + ":){0,3}" + _H16 + ")?::" + _H16 + ":" + _LS32,
        "(?:(?:" + _H16 + ":){0,4}" + _H16 + ")?::" + _LS32,
        "(?:(?:" + _H16 + ":){0,5}" + _H16 + ")?::" + _H16,
        "(?:(?:" + _H16 + ":){0,6}" + _H16 + ")?::",
    ])
)


# the common shapes (no embedded IPv4): full 8 groups, or groups around one "::" (count
# checked below); a small program that the matcher runs far faster than IPV6_RE
_IPV6_SIMPLE_RE = re.compile(
    "(?:" + _H16 + "(?::" + _H16 + ")*)?::(?:" + _H16 + "(?::" + _H16 + ")*)?"
    "|" + _H16 + "(?::" + _H16 + "){7}"
)


def valid_ipv6(text: str) -> bool:
    """RFC 3261 §25.1 / RFC 5118 §4.10 IPv6address (with the corrected two-colon grammar)."""
    if "." in text:
        if IPV6_RE.fullmatch(text) is None:
            return False
        return all(int(x) <= 255 for x in text.rpartition(":")[2].split("."))
    if _IPV6_SIMPLE_RE.fullmatch(text) is None:
        return False
    # at most 7 groups besides a "::" (8 colons only when "::" is at an end)
    colons = text.count(":")
    return colons <= 7 or (colons == 8 and (text.startswith("::") or text.endswith("::")))


# -- header names -----------------------------------------------------------------------------

# RFC 3261 §7.3.3 compact forms, plus RFC 3265 (o, u), RFC 3515 (r), RFC 3892 (b),
# RFC 3841 (a, j, d), RFC 4028 (x), RFC 4474 (y, n).
COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
    "v": "Via", "o": "Event", "u": "Allow-Events", "r": "Refer-To", "b": "Referred-By",
    "a": "Accept-Contact", "j": "Reject-Contact", "d": "Request-Disposition",
    "x": "Session-Expires", "y": "Identity", "n": "Identity-Info",
}

_KNOWN = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "Content-ID", "Content-Transfer-Encoding", "Contribution-ID",
    "Conversation-ID", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "Identity",
    "Identity-Info", "In-Reply-To", "InReplyTo-Contribution-ID", "Max-Forwards", "MIME-Version",
    "Min-Expires", "Min-SE", "Organization", "P-Asserted-Identity", "P-Asserted-Service",
    "P-Preferred-Identity", "P-Preferred-Service", "P-Access-Network-Info",
    "P-Associated-URI", "P-Called-Party-ID", "P-Charging-Vector", "P-Visited-Network-ID",
    "Path", "Priority", "Privacy", "Proxy-Authenticate", "Proxy-Authorization",
    "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To", "Referred-By",
    "Reject-Contact", "Reply-To", "Request-Disposition", "Require", "Retry-After", "Route",
    "RSeq", "Security-Client", "Security-Server", "Security-Verify", "Server", "Service-Route",
    "Session-Expires", "SIP-ETag", "SIP-If-Match", "Subject", "Subscription-State",
    "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning",
    "WWW-Authenticate", "Target-Dialog", "Replaces", "Refer-Sub", "Feature-Caps",
)

# lowercase name (long or compact) -> canonical spelling
CANONICAL: dict[str, str] = {n.lower(): n for n in _KNOWN}
CANONICAL.update({k: v for k, v in COMPACT_FORMS.items()})

# Headers whose values are comma-separated lists (RFC 3261 §7.3.1); others are never split.
LIST_HEADERS = frozenset(
    n.lower()
    for n in (
        "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
        "Allow-Events", "Call-Info", "Contact", "Content-Encoding", "Content-Language",
        "Error-Info", "In-Reply-To", "P-Asserted-Identity", "P-Preferred-Identity",
        "P-Associated-URI", "P-Asserted-Service", "P-Preferred-Service", "Path", "Proxy-Require",
        "Record-Route", "Reject-Contact", "Request-Disposition", "Require", "Route",
        "Service-Route", "Supported", "Unsupported", "Via", "Warning", "Security-Client",
        "Security-Server", "Security-Verify", "Reason", "Feature-Caps",
    )
)


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name; compact forms expanded (RFC 3261 §7.3.3).

    Unknown names are returned as given (header names compare case-insensitively).
    """
    return CANONICAL.get(name.lower(), name)


# wire spelling (canonical, lowercase or compact) -> lowercase long-form key
WIRE_NAMES: dict[str, str] = {k: sys.intern(v.lower()) for k, v in CANONICAL.items()}
WIRE_NAMES.update({v: sys.intern(v.lower()) for v in CANONICAL.values()})
WIRE_NAMES.update({k.upper(): sys.intern(v.lower()) for k, v in COMPACT_FORMS.items()})
# lowercase key -> canonical spelling
CANONICAL_BY_KEY: dict[str, str] = {v.lower(): v for v in CANONICAL.values()}


def check_fast_host(host: str, ipv4: str | None, where: str) -> None:
    """Finish validating a host matched by a fast-path regex (``ipv4`` set: already valid)."""
    if ipv4 is None:
        if host[0] == "[":
            if not valid_ipv6(host[1:-1]):
                raise SipParseError(f"bad IPv6 reference {host!r}", where=where)
        elif host[-1].isdigit() and IPV4_RE.fullmatch(host):
            # RFC 3261 §25.1: a host ending in a numeric label must be a valid IPv4address
            raise SipParseError(f"bad IPv4 address {host!r}", where=where)
