"""Digest header values (RFC 3261 §20.7/§20.27/§20.28/§20.44, §25.1; RFC 7235 §2.1, §4;
RFC 2617 §3.2; RFC 7616 §3.3-§3.5), sans-I/O.

:func:`parse_challenges` / :func:`parse_challenge` read a ``WWW-Authenticate`` /
``Proxy-Authenticate`` value, :func:`parse_credentials` an ``Authorization`` /
``Proxy-Authorization`` value, :func:`parse_auth_params` a bare list such as
``Authentication-Info``.  Unknown schemes parse as opaque auth-params or token68
(RFC 4475 §3.1.2.x ``NoOneKnowsThisScheme``).  Malformed input raises
:class:`~simpleim.errors.SipParseError` (400) and nothing else; ``str()`` serializes.
The digest arithmetic, the UAC and the server live in :mod:`simpleim.sip.auth`, which
re-exports everything here.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import unquote

from simpleim.errors import LocalProtocolError, SipParseError

__all__ = [
    "ALGORITHMS",
    "HASH_NAMES",
    "AuthParam",
    "Challenge",
    "Credentials",
    "make_challenge",
    "make_credentials",
    "make_params",
    "normalize_algorithm",
    "parse_auth_params",
    "parse_challenge",
    "parse_challenges",
    "parse_credentials",
    "select_challenge",
]


def _available(hash_name: str) -> bool:
    try:
        hashlib.new(hash_name, usedforsecurity=False)
    except ValueError:
        return False
    return True


# RFC 7616 §3.2 / §6.1 (IANA "HTTP Digest Hash Algorithms"): the base algorithms we
# implement and their hashlib names (SHA-512-256 only where OpenSSL provides it).
HASH_NAMES: Mapping[str, str] = MappingProxyType({
    alg: hname for alg, hname in (("MD5", "md5"), ("SHA-256", "sha256"),
                                  ("SHA-512-256", "sha512_256"))
    if _available(hname)
})
_RANK: Mapping[str, int] = MappingProxyType({"MD5": 1, "SHA-256": 2, "SHA-512-256": 3})
#: Supported algorithm names (with ``-sess`` variants) -> strength rank used to pick the
#: strongest challenge (higher is stronger).
ALGORITHMS: Mapping[str, int] = MappingProxyType({
    name: _RANK[base] for base in HASH_NAMES for name in (base, base + "-sess")
})
_CANONICAL: Mapping[str, str] = MappingProxyType({name.upper(): name for name in ALGORITHMS})

_TCHAR = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
_TOKEN68 = frozenset(string.ascii_letters + string.digits + "-._~+/")
_MAX_PARAMS = 64

# Which directives are sent as quoted-string (RFC 3261 §25.1 digest-cln / dig-resp,
# RFC 7616 §3.3 / §3.4); all others are sent as tokens.
_QUOTED_CHALLENGE = frozenset({"realm", "domain", "nonce", "opaque", "qop"})
_QUOTED_CREDENTIALS = frozenset({"username", "realm", "nonce", "uri", "response", "cnonce",
                                 "opaque"})


def normalize_algorithm(name: str) -> str:
    """Canonical spelling of an algorithm name (compared case-insensitively); unknown
    names come back unchanged."""
    return _CANONICAL.get(name.upper(), name)


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True, slots=True)
class AuthParam:
    """One ``name=value`` auth-param; ``name`` is lower-cased, ``value`` unescaped."""

    name: str
    value: str
    quoted: bool = False

    def __str__(self) -> str:
        if self.quoted or not self.value or not all(c in _TCHAR for c in self.value):
            return f"{self.name}={_quote(self.value)}"
        return f"{self.name}={self.value}"


def _quote(value: str) -> str:
    # RFC 3261 §25.1 quoted-pair: escape the two characters qdtext cannot hold.
    if any(c in "\r\n" for c in value):
        raise LocalProtocolError("CR/LF cannot appear in a quoted-string", where="auth-param")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Scanner:
    __slots__ = ("pos", "text", "where")

    def __init__(self, text: str, where: str) -> None:
        self.text = text
        self.pos = 0
        self.where = where

    def error(self, reason: str) -> SipParseError:
        return SipParseError(f"{reason} at offset {self.pos}", where=self.where)

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> bool:
        """Skip LWS (SP/HTAB and RFC 3261 §25.1 line folding); True if any was skipped."""
        start = self.pos
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c in " \t":
                self.pos += 1
            elif text.startswith(("\r\n ", "\r\n\t"), self.pos):
                self.pos += 3
            else:
                break
        return self.pos > start

    def token(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TCHAR:
            self.pos += 1
        return self.text[start: self.pos]

    def quoted(self) -> str:
        # RFC 3261 §25.1: quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE
        if self.peek() != '"':
            raise self.error("expected a quoted-string")
        self.pos += 1
        out: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise self.error("unterminated quoted-string")
            c = text[self.pos]
            if c == '"':
                self.pos += 1
                return "".join(out)
            if c == "\\":
                if self.pos + 1 >= len(text) or text[self.pos + 1] in "\r\n":
                    raise self.error("bad quoted-pair")
                out.append(text[self.pos + 1])
                self.pos += 2
                continue
            if c == "\r" and self.skip_ws():
                out.append(" ")
                continue
            if (ord(c) < 0x20 and c != "\t") or c == "\x7f":
                raise self.error("control character in quoted-string")
            out.append(c)
            self.pos += 1

    def param(self) -> AuthParam:
        # auth-param = auth-param-name EQUAL ( token / quoted-string )  (RFC 3261 §25.1)
        name = self.token()
        if not name:
            raise self.error("expected an auth-param name")
        self.skip_ws()
        if self.peek() != "=":
            raise self.error("expected '='")
        self.pos += 1
        self.skip_ws()
        if self.peek() == '"':
            return AuthParam(name.lower(), self.quoted(), True)
        value = self.token()
        if not value:
            raise self.error("expected a token or quoted-string value")
        return AuthParam(name.lower(), value, False)

    def token68(self) -> str | None:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _TOKEN68:
            self.pos += 1
        if self.pos == start:
            return None
        while self.peek() == "=":
            self.pos += 1
        end = self.pos
        self.skip_ws()
        if not self.at_end() and self.peek() != ",":
            self.pos = start
            return None
        return self.text[start:end]


_Item = tuple[str, tuple[AuthParam, ...], str | None]


def _parse_list(text: str, where: str) -> list[_Item]:
    """Parse ``1#challenge`` (RFC 7235 §4.1 / RFC 3261 §25.1) into (scheme, params, token68)."""
    if not isinstance(text, str):
        raise SipParseError("auth header value must be text", where=where)
    s = _Scanner(text, where)
    items: list[_Item] = []
    s.skip_ws()
    while s.peek() == ",":
        s.pos += 1
        s.skip_ws()
    if s.at_end():
        raise s.error("empty auth header value")
    while not s.at_end():
        scheme = s.token()
        if not scheme:
            raise s.error("expected an auth-scheme")
        params: list[AuthParam] = []
        token68: str | None = None
        had_ws = s.skip_ws()
        more = False  # another challenge follows
        if not s.at_end() and s.peek() != ",":
            if not had_ws:
                raise s.error("expected whitespace after the auth-scheme")
            start = s.pos
            try:
                params.append(s.param())
            except SipParseError:
                s.pos = start
                token68 = s.token68()
                if token68 is None:
                    raise
        while True:
            s.skip_ws()
            if s.at_end():
                break
            if s.peek() != ",":
                raise s.error("expected ','")
            while s.peek() == ",":
                s.pos += 1
                s.skip_ws()
            if s.at_end():
                break
            mark = s.pos
            name = s.token()
            if not name:
                raise s.error("expected an auth-param or auth-scheme")
            s.skip_ws()
            is_param = s.peek() == "="
            s.pos = mark
            if not is_param:
                more = True
                break
            if token68 is not None:
                raise s.error("auth-param after token68")
            params.append(s.param())
            if len(params) > _MAX_PARAMS:
                raise s.error("too many auth-params")
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            # RFC 7235 §2.1: each parameter name MUST only occur once per challenge.
            raise SipParseError(f"duplicate auth-param in {scheme} value", where=where)
        items.append((scheme, tuple(params), token68))
        if not more:
            break
    return items


class _AuthValue:
    """Shared accessors of challenges and credentials."""

    scheme: str
    params: tuple[AuthParam, ...]
    token68: str | None

    def get(self, name: str) -> str | None:
        """The value of auth-param ``name`` (case-insensitive), or None."""
        key = name.lower()
        for p in self.params:
            if p.name == key:
                return p.value
        return None

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"

    @property
    def realm(self) -> str | None:
        return self.get("realm")

    @property
    def nonce(self) -> str | None:
        return self.get("nonce")

    @property
    def opaque(self) -> str | None:
        return self.get("opaque")

    @property
    def algorithm(self) -> str:
        """The canonical algorithm name; absent means MD5 (RFC 2617 §3.2.1)."""
        return normalize_algorithm(self.get("algorithm") or "MD5")

    @property
    def userhash(self) -> bool:
        return (self.get("userhash") or "").lower() == "true"

    def __str__(self) -> str:
        if self.token68 is not None:
            return f"{self.scheme} {self.token68}"
        if not self.params:
            return self.scheme
        return f"{self.scheme} " + ", ".join(str(p) for p in self.params)


@dataclass(frozen=True, slots=True)
class Challenge(_AuthValue):
    """One challenge of a ``WWW-Authenticate`` / ``Proxy-Authenticate`` value."""

    scheme: str
    params: tuple[AuthParam, ...] = ()
    token68: str | None = None

    @classmethod
    def parse(cls, text: str) -> Challenge:
        return parse_challenge(text)

    @property
    def qop_options(self) -> tuple[str, ...]:
        """RFC 2617 §3.2.1 qop-options: a quoted comma list of qop values (lower-cased)."""
        raw = self.get("qop")
        if raw is None:
            return ()
        return tuple(q.strip().lower() for q in raw.split(",") if q.strip())

    @property
    def stale(self) -> bool:
        return (self.get("stale") or "").lower() == "true"

    @property
    def domain(self) -> tuple[str, ...]:
        return tuple((self.get("domain") or "").split())

    @property
    def supported(self) -> bool:
        """Digest with an algorithm and qop we can answer."""
        if not self.is_digest or self.algorithm not in ALGORITHMS:
            return False
        if self.realm is None or self.nonce is None:
            return False
        qops = self.qop_options
        if not qops:
            return not self.algorithm.endswith("-sess")
        return "auth" in qops or "auth-int" in qops


@dataclass(frozen=True, slots=True)
class Credentials(_AuthValue):
    """An ``Authorization`` / ``Proxy-Authorization`` value."""

    scheme: str
    params: tuple[AuthParam, ...] = ()
    token68: str | None = None

    @classmethod
    def parse(cls, text: str) -> Credentials:
        return parse_credentials(text)

    @property
    def username(self) -> str | None:
        """``username``, or the decoded RFC 7616 §3.4.4 ``username*`` (RFC 5987 ext-value)."""
        plain = self.get("username")
        if plain is not None:
            return plain
        ext = self.get("username*")
        if ext is None:
            return None
        charset, sep, rest = ext.partition("'")
        _lang, sep2, encoded = rest.partition("'")
        if not sep or not sep2 or charset.lower() != "utf-8":
            return None
        return unquote(encoded, encoding="utf-8", errors="replace")

    @property
    def uri(self) -> str | None:
        return self.get("uri")

    @property
    def response(self) -> str | None:
        return self.get("response")

    @property
    def cnonce(self) -> str | None:
        return self.get("cnonce")

    @property
    def qop(self) -> str | None:
        q = self.get("qop")
        return q.lower() if q is not None else None

    @property
    def nc(self) -> str | None:
        """The nonce-count exactly as sent (it enters the digest verbatim)."""
        return self.get("nc")

    @property
    def nc_value(self) -> int | None:
        """The nonce-count as an integer; None if absent or not 8 hex digits."""
        nc = self.get("nc")
        if nc is None or len(nc) != 8 or any(c not in string.hexdigits for c in nc):
            return None
        return int(nc, 16)


def parse_auth_params(text: str, where: str = "Authentication-Info") -> tuple[AuthParam, ...]:
    """A bare ``#auth-param`` list without scheme (RFC 3261 §20.6 ``ainfo``,
    RFC 7616 §3.5 ``Authentication-Info``)."""
    if not isinstance(text, str):
        raise SipParseError("auth header value must be text", where=where)
    s = _Scanner(text, where)
    params: list[AuthParam] = []
    while True:
        s.skip_ws()
        params.append(s.param())
        s.skip_ws()
        if s.at_end():
            break
        if s.peek() != "," or len(params) >= _MAX_PARAMS:
            raise s.error("expected ','")
        s.pos += 1
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise SipParseError("duplicate auth-param", where=where)
    return tuple(params)


def parse_challenges(text: str) -> list[Challenge]:
    """Every challenge of one ``WWW-Authenticate``/``Proxy-Authenticate`` value."""
    return [Challenge(s, p, t) for s, p, t in _parse_list(text, "WWW-Authenticate")]


def parse_challenge(text: str) -> Challenge:
    """Exactly one challenge (RFC 3261 §20.44: one challenge per header field value)."""
    items = parse_challenges(text)
    if len(items) != 1:
        raise SipParseError("expected a single challenge", where="WWW-Authenticate")
    return items[0]


def parse_credentials(text: str) -> Credentials:
    """One ``Authorization``/``Proxy-Authorization`` value (RFC 3261 §20.7: one credentials)."""
    items = _parse_list(text, "Authorization")
    if len(items) != 1:
        raise SipParseError("expected a single credentials value", where="Authorization")
    scheme, params, token68 = items[0]
    return Credentials(scheme, params, token68)


def select_challenge(challenges: Iterable[Challenge | str]) -> Challenge | None:
    """The strongest supported Digest challenge; ties go to the first listed (RFC 7616 §3.7:
    the server lists its preferred challenge first).  String values are parsed."""
    best: Challenge | None = None
    for item in challenges:
        cands = parse_challenges(item) if isinstance(item, str) else [item]
        for ch in cands:
            if ch.supported and (best is None or ALGORITHMS[ch.algorithm]
                                 > ALGORITHMS[best.algorithm]):
                best = ch
    return best


# --------------------------------------------------------------------------- building


def make_params(values: Iterable[tuple[str, str | None]], quoted: frozenset[str]) -> tuple[
    AuthParam, ...
]:
    return tuple(AuthParam(n, v, n in quoted) for n, v in values if v is not None)


def make_challenge(
    *,
    realm: str,
    nonce: str,
    algorithm: str | None = "MD5",
    qop: Sequence[str] | None = ("auth",),
    opaque: str | None = None,
    stale: bool = False,
    domain: Sequence[str] = (),
    userhash: bool = False,
) -> Challenge:
    """Build a Digest challenge (RFC 7616 §3.3 directive order and quoting)."""
    return Challenge("Digest", make_params([
        ("realm", realm),
        ("domain", " ".join(domain) if domain else None),
        ("nonce", nonce),
        ("opaque", opaque),
        ("stale", "true" if stale else None),
        ("algorithm", algorithm),
        ("qop", ",".join(qop) if qop else None),
        ("userhash", "true" if userhash else None),
    ], _QUOTED_CHALLENGE))


def make_credentials(
    *,
    username: str,
    realm: str,
    nonce: str,
    uri: str,
    response: str,
    algorithm: str | None = None,
    cnonce: str | None = None,
    opaque: str | None = None,
    qop: str | None = None,
    nc: str | None = None,
    userhash: bool = False,
) -> Credentials:
    """Build Digest credentials (RFC 7616 §3.4; RFC 3261 §25.1 dig-resp quoting)."""
    return Credentials("Digest", make_params([
        ("username", username),
        ("realm", realm),
        ("nonce", nonce),
        ("uri", uri),
        ("response", response),
        ("algorithm", algorithm),
        ("cnonce", cnonce),
        ("opaque", opaque),
        ("qop", qop),
        ("nc", nc),
        ("userhash", "true" if userhash else None),
    ], _QUOTED_CREDENTIALS))
