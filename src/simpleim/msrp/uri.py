"""MSRP URIs (RFC 4975 §6, §9) and paths.

``msrp://host:port/session-id;tcp`` or ``msrps://...`` (TLS).  Comparison follows
RFC 4975 §6.1; an MSRP *path* is a list of URIs, leftmost = next hop.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from simpleim.errors import MsrpParseError

__all__ = ["MsrpUri", "parse_path", "format_path", "DEFAULT_PORT", "path_matches"]

# RFC 4975 §15.1 / RFC 4976 §5: IANA port 2855 for msrp and msrps (used when the port is absent,
# which RFC 4975 §6 only allows for relay URIs).
DEFAULT_PORT = 2855

# RFC 4975 §9: session-id = 1*( unreserved / "+" / "=" / "/" ); transport = "tcp" / 1*ALPHANUM.
_SESSION_ID = re.compile(r"[A-Za-z0-9\-._~+=/%]+")
_TRANSPORT = re.compile(r"[A-Za-z0-9]+")
_HOSTNAME = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=]+")
_USERINFO = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=:]*")


def _norm_host(host: str) -> str:
    """Canonical form for comparison: IP literals by value, names case-insensitive (§6.1)."""
    h = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(h))
    except ValueError:
        return host.lower()


@dataclass(frozen=True, slots=True)
class MsrpUri:
    """An MSRP URI.  ``host`` keeps brackets off IPv6 literals (``2001:db8::1``)."""

    scheme: str
    host: str
    port: int | None
    session_id: str | None
    transport: str = "tcp"
    userinfo: str | None = None
    params: tuple[tuple[str, str | None], ...] = field(default=())
    # comparison key of the host (§6.1), computed once
    _host_key: str = field(default="", init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_host_key", _norm_host(self.host))

    @classmethod
    def parse(cls, text: str) -> MsrpUri:
        """Parse ``msrp[s]://[userinfo@]host[:port][/session-id];transport[;params]`` (§9)."""
        t = text.strip()
        scheme, sep, rest = t.partition("://")
        scheme = scheme.lower()
        if not sep or scheme not in ("msrp", "msrps"):
            raise MsrpParseError(f"not an MSRP URI: {text!r}", where="uri")
        # transport + parameters follow the first ';' after the authority/path.
        main, semi, tail = rest.partition(";")
        if not semi:
            raise MsrpParseError(f"MSRP URI without transport: {text!r}", where="uri")
        authority, slash, session_id = main.partition("/")
        sid: str | None = None
        if slash:
            if not session_id or not _SESSION_ID.fullmatch(session_id):
                raise MsrpParseError(f"bad session-id in {text!r}", where="uri")
            sid = session_id
        userinfo: str | None = None
        if "@" in authority:
            userinfo, _, authority = authority.rpartition("@")
            if not _USERINFO.fullmatch(userinfo):
                raise MsrpParseError(f"bad userinfo in {text!r}", where="uri")
        host, port = _split_hostport(authority, text)
        parts = tail.split(";")
        transport = parts[0]
        if not _TRANSPORT.fullmatch(transport):
            raise MsrpParseError(f"bad transport in {text!r}", where="uri")
        params: list[tuple[str, str | None]] = []
        for p in parts[1:]:
            name, eq, value = p.partition("=")
            if not name or not _TRANSPORT.fullmatch(name.replace("-", "").replace("_", "")):
                raise MsrpParseError(f"bad URI parameter in {text!r}", where="uri")
            params.append((name, value if eq else None))
        return cls(scheme, host, port, sid, transport, userinfo, tuple(params))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        out = [self.scheme, "://"]
        if self.userinfo is not None:
            out += [self.userinfo, "@"]
        out.append(host)
        if self.port is not None:
            out.append(f":{self.port}")
        if self.session_id is not None:
            out += ["/", self.session_id]
        out += [";", self.transport]
        for name, value in self.params:
            out += [";", name] if value is None else [";", name, "=", value]
        return "".join(out)

    @property
    def secure(self) -> bool:
        """``msrps`` means TLS (RFC 4975 §6)."""
        return self.scheme == "msrps"

    @property
    def effective_port(self) -> int:
        return DEFAULT_PORT if self.port is None else self.port

    def matches(self, other: MsrpUri) -> bool:
        """RFC 4975 §6.1 comparison.

        Scheme and transport case-insensitively, host as an address when it is an IP literal
        (so ``[2001:0:0:1::2]`` equals ``[2001::1:0:0:2]`` written differently) or
        case-insensitively as a name, port numerically (absent = 2855), session-id
        case-sensitively.  userinfo and URI parameters are not compared (§6.1).
        """
        return (
            self.scheme == other.scheme
            and self.transport.lower() == other.transport.lower()
            and self._host_key == other._host_key
            and self.effective_port == other.effective_port
            and self.session_id == other.session_id
        )

    def with_session(self, session_id: str | None) -> MsrpUri:
        return MsrpUri(self.scheme, self.host, self.port, session_id, self.transport,
                       self.userinfo, self.params)


def _split_hostport(authority: str, text: str) -> tuple[str, int | None]:
    port: int | None = None
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise MsrpParseError(f"unterminated IPv6 reference in {text!r}", where="uri")
        host = authority[1:end]
        rest = authority[end + 1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise MsrpParseError(f"bad IPv6 address in {text!r}", where="uri") from exc
        if rest:
            if not rest.startswith(":"):
                raise MsrpParseError(f"junk after IPv6 reference in {text!r}", where="uri")
            port = _port(rest[1:], text)
    else:
        host, colon, p = authority.partition(":")
        if colon:
            port = _port(p, text)
        if not host or not _HOSTNAME.fullmatch(host):
            raise MsrpParseError(f"bad host in {text!r}", where="uri")
    return host, port


def _port(p: str, text: str) -> int:
    if not p.isdigit() or not p.isascii() or len(p) > 5 or not 0 < int(p) < 65536:
        raise MsrpParseError(f"bad port in {text!r}", where="uri")
    return int(p)


def parse_path(value: str) -> list[MsrpUri]:
    """To-Path / From-Path / Use-Path: one or more URIs separated by SP (RFC 4975 §9)."""
    items = value.split()
    if not items:
        raise MsrpParseError("empty path", where="path")
    return [MsrpUri.parse(u) for u in items]


def format_path(path: list[MsrpUri] | tuple[MsrpUri, ...]) -> str:
    return " ".join(str(u) for u in path)


def path_matches(a: list[MsrpUri] | tuple[MsrpUri, ...],
                 b: list[MsrpUri] | tuple[MsrpUri, ...]) -> bool:
    """Two paths are equal when they have the same length and each URI matches (§6.1)."""
    return len(a) == len(b) and all(x.matches(y) for x, y in zip(a, b, strict=True))
