"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966) plus opaque absolute URIs.

Values are kept exactly as written (escapes included) so a proxy re-emits them
byte for byte; :meth:`SipUri.matches` implements the RFC 3261 §19.1.4 comparison.
:class:`Params` (``;name=value`` lists of URIs and headers) and the RFC 3840 feature-tag
helpers live here too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from simpleim.errors import SipParseError
from simpleim.sip._abnf import (
    GEN_VALUE_RE,
    HEADER_PARAMS_FAST,
    HNV_RE,
    HOSTNAME_RE,
    IPV4_RE,
    PASSWORD_RE,
    SCHEME_RE,
    SIP_URI_FAST,
    TOKEN_RE,
    URI_PARAM_RE,
    URI_PARAMS_FAST,
    USER_RE,
    check_fast_host,
    pct_decode,
    pct_encode,
    quote,
    read_quoted,
    split_top,
    valid_ipv6,
)

__all__ = [
    "Params",
    "SipUri",
    "TelUri",
    "AbsoluteUri",
    "Uri",
    "parse_uri",
    "parse_host_port",
    "fast_sip_uri",
    "new_tel_uri",
    "params_fast",
    "SIP_URI_SETTERS",
    "feature_tags",
    "feature_tag_values",
    "encode_feature_tag",
    "with_feature_tag",
]

ParamItems = tuple[tuple[str, "str | None"], ...]


class Params:
    """Ordered ``;name[=value]`` parameters; names compare case-insensitively (RFC 3261 §7.3.1).

    Values are kept as written (a quoted value keeps its quotes); a flag has value ``None``.
    Immutable: the ``with_param``/``without`` methods return new objects.
    ``str(params)`` is ``";a=b;c"`` (empty string when there are none).
    """

    __slots__ = ("_parsed", "_raw")

    def __init__(self, items: Iterable[tuple[str, str | None]] = ()) -> None:
        self._parsed: ParamItems | None = tuple(items)
        self._raw = ""

    @property
    def _items(self) -> ParamItems:
        items = self._parsed
        if items is None:
            parts = [piece.partition("=") for piece in self._raw[1:].split(";")]
            items = self._parsed = tuple([(k, v if eq else None) for k, eq, v in parts])
        return items

    @classmethod
    def parse(cls, text: str, *, where: str = "params", uri: bool = False) -> Params:
        """Parse ``[;]name[=value]*(;name[=value])``.

        ``uri=True`` applies the uri-parameter charset (RFC 3261 §19.1.1 paramchar),
        otherwise generic-param (RFC 3261 §25.1: token [EQUAL gen-value]).
        Empty parameters (``;;``) are a syntax error (RFC 4475 §3.1.2.1).
        """
        if (URI_PARAMS_FAST if uri else HEADER_PARAMS_FAST).fullmatch(text):
            return params_fast(text)
        text = text.strip(" \t")
        if not text:
            return _EMPTY_PARAMS
        if text[0] == ";":
            text = text[1:]
        items: list[tuple[str, str | None]] = []
        pieces = text.split(";") if uri or '"' not in text else split_top(text, ";", where)
        for piece in pieces:
            name, eq, value = piece.partition("=")
            if not uri:
                name = name.strip(" \t")
            if uri:
                if not URI_PARAM_RE.fullmatch(name):
                    raise SipParseError(f"bad URI parameter {piece!r}", where=where)
                if eq and not URI_PARAM_RE.fullmatch(value):
                    raise SipParseError(f"bad URI parameter value {piece!r}", where=where)
                items.append((name, value if eq else None))
                continue
            if not TOKEN_RE.fullmatch(name):
                raise SipParseError(f"bad parameter {piece.strip()!r}", where=where)
            if not eq:
                items.append((name, None))
                continue
            value = value.strip(" \t")
            if value.startswith('"'):
                end = read_quoted(value, 0, where)[1]
                if end != len(value):
                    raise SipParseError(f"junk after quoted value in {name}", where=where)
            elif not GEN_VALUE_RE.fullmatch(value):
                raise SipParseError(f"bad value for parameter {name}", where=where)
            items.append((name, value))
        return cls(items)

    # -- mapping-like read access ------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of ``name`` (``None`` for a flag or when absent, unless ``default``)."""
        if self._parsed is None:
            # unsplit fast-path text: look for ";name=" or ";name" exactly (values hold no ";")
            raw = self._raw
            i = raw.find(";" + name)
            if i >= 0:
                j = i + 1 + len(name)
                if j == len(raw) or raw[j] == ";":
                    return None
                if raw[j] == "=":
                    end = raw.find(";", j)
                    return raw[j + 1 :] if end < 0 else raw[j + 1 : end]
            elif ";" + name.lower() not in raw.lower():
                return default  # no parameter of that name in any spelling
        items = self._items
        for k, v in items:
            if k == name:
                return v
        low = name.lower()
        for k, v in items:
            if k.lower() == low:
                return v
        return default

    def get_unquoted(self, name: str) -> str | None:
        """The value with surrounding quotes removed and quoted-pairs resolved."""
        value = self.get(name)
        if value is not None and value.startswith('"'):
            return read_quoted(value, 0, name)[0]
        return value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        low = name.lower()
        if self._parsed is None:
            # unsplit fast-path text: every parameter starts with ";" (values hold no ";")
            raw = self._raw.lower()
            needle = ";" + low
            i = raw.find(needle)
            while i >= 0:
                j = i + len(needle)
                if j == len(raw) or raw[j] in ";=":
                    return True
                i = raw.find(needle, j)
            return False
        return any(k.lower() == low for k, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._raw) or bool(self._items)

    def items(self) -> ParamItems:
        return self._items

    # -- functional updates ------------------------------------------------------------------
    def with_param(self, name: str, value: str | None = None) -> Params:
        """A copy with ``name`` set (replacing in place if present, else appended)."""
        low = name.lower()
        out: list[tuple[str, str | None]] = []
        done = False
        for k, v in self._items:
            if k.lower() == low:
                if not done:
                    out.append((name, value))
                    done = True
                continue
            out.append((k, v))
        if not done:
            out.append((name, value))
        return Params(out)

    def without(self, name: str) -> Params:
        low = name.lower()
        return Params((k, v) for k, v in self._items if k.lower() != low)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Params):
            return NotImplemented
        return self._items == other._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __str__(self) -> str:
        if self._parsed is None:
            return self._raw
        return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self._parsed)

    def __repr__(self) -> str:
        return f"Params({list(self._items)!r})"


_EMPTY_PARAMS = Params()


def params_fast(text: str) -> Params:
    """Wrap ``;a=b;c`` already validated by a fast-path regex (split on first use)."""
    p: Params = _params_new(Params)
    p._parsed = None
    p._raw = text
    return p


_params_new = object.__new__


def _check_host(host: str, where: str) -> None:
    """RFC 3261 §25.1 host = hostname / IPv4address / IPv6reference (RFC 5118 §4.10)."""
    if host.startswith("["):
        if not host.endswith("]") or not valid_ipv6(host[1:-1]):
            raise SipParseError(f"bad IPv6 reference {host!r}", where=where)
        return
    if IPV4_RE.fullmatch(host):
        if any(int(p) > 255 for p in host.split(".")):
            raise SipParseError(f"bad IPv4 address {host!r}", where=where)
        return
    if not HOSTNAME_RE.fullmatch(host):
        raise SipParseError(f"bad host {host!r}", where=where)


def parse_host_port(text: str, where: str) -> tuple[str, int | None]:
    """Parse ``host [":" port]`` (RFC 3261 §25.1 hostport), IPv6 references in brackets.

    RFC 5118 §4.3: in ``[2001:db8::10:5070]`` the 5070 belongs to the address; only a
    port after ``]`` is a port.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError("unterminated IPv6 reference", where=where)
        host = text[: end + 1]
        rest = text[end + 1 :]
        if rest and rest[0] != ":":
            raise SipParseError(f"junk after IPv6 reference {text!r}", where=where)
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_s = text.partition(":")
        port_text = port_text_s if colon else None
    _check_host(host, where)
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not port_text.isascii() or len(port_text) > 5:
        raise SipParseError(f"bad port {port_text!r}", where=where)
    port = int(port_text)
    if port > 65535:
        raise SipParseError(f"port out of range {port}", where=where)
    return host, port


@dataclass(frozen=True, slots=True)
class SipUri:
    """``sip:`` / ``sips:`` URI (RFC 3261 §19.1.1). Fields keep their escapes as written.

    ``host`` keeps IPv6 brackets (``[2001:db8::1]``); :attr:`bare_host` drops them.
    ``headers`` is the ``?name=value&...`` part as (name, value) pairs.
    """

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: Params = field(default=_EMPTY_PARAMS)
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str, where: str = "URI") -> SipUri:
        uri = parse_uri(text, where)
        if not isinstance(uri, SipUri):
            raise SipParseError(f"not a SIP URI: {text!r}", where=where)
        return uri

    @property
    def bare_host(self) -> str:
        return self.host[1:-1] if self.host.startswith("[") else self.host

    @property
    def secure(self) -> bool:
        return self.scheme == "sips"

    @property
    def user_unescaped(self) -> str | None:
        """The user part with %HH decoded (RFC 3261 §19.1.2; NULs survive, RFC 4475 §3.1.1.4)."""
        return None if self.user is None else pct_decode(self.user)

    @property
    def transport(self) -> str | None:
        t = self.params.get("transport")
        return t.lower() if t else None

    @property
    def lr(self) -> bool:
        """RFC 3261 §19.1.1 loose-routing flag."""
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    def aor(self) -> str:
        """``scheme:user@host`` lowercased host, no port/params: a registration key (§10.3)."""
        user = self.user_unescaped
        base = f"{self.scheme}:{user}@" if user is not None else f"{self.scheme}:"
        return base + self.host.lower()

    def with_params(self, params: Params) -> SipUri:
        return SipUri(self.scheme, self.user, self.password, self.host, self.port, params,
                      self.headers)

    def replace(self, **changes: object) -> SipUri:
        """A copy with fields replaced (``dataclasses.replace`` wrapper)."""
        from dataclasses import replace

        return replace(self, **changes)  # type: ignore[arg-type]

    def matches(self, other: SipUri) -> bool:
        """RFC 3261 §19.1.4 URI comparison (escapes decoded, host/params case-insensitive)."""
        if self.scheme != other.scheme or self.host.lower() != other.host.lower():
            return False
        if self.user_unescaped != other.user_unescaped or self.port != other.port:
            return False
        if (None if self.password is None else pct_decode(self.password)) != (
            None if other.password is None else pct_decode(other.password)
        ):
            return False
        a = {k.lower(): v for k, v in self.params.items()}
        b = {k.lower(): v for k, v in other.params.items()}
        # §19.1.4: user, ttl, method, maddr, transport must match when present in either
        for name in ("user", "ttl", "method", "maddr", "transport"):
            if (name in a or name in b) and _low(a.get(name)) != _low(b.get(name)):
                return False
        # any other parameter appearing in both must match
        for name in a.keys() & b.keys():
            if _low(pct_decode(a[name] or "")) != _low(pct_decode(b[name] or "")):
                return False
        ha = {k.lower(): pct_decode(v) for k, v in self.headers}
        hb = {k.lower(): pct_decode(v) for k, v in other.headers}
        return ha == hb

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts += (":", self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts += (":", str(self.port))
        if self.params:
            parts.append(str(self.params))
        if self.headers:
            parts.append("?" + "&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(parts)


# Hot-path constructor: every field was validated by the caller; slot descriptors skip the
# per-field object.__setattr__ of a frozen dataclass __init__ (about half the cost).
SIP_URI_SETTERS = tuple(
    SipUri.__dict__[n].__set__
    for n in ("scheme", "user", "password", "host", "port", "params", "headers")
)
_SU_SCHEME, _SU_USER, _SU_PW, _SU_HOST, _SU_PORT, _SU_PARAMS, _SU_HEADERS = SIP_URI_SETTERS
_object_new = object.__new__


def _new_sip_uri(scheme: str, user: str | None, host: str, port: int | None,
                 params: Params) -> SipUri:
    uri: SipUri = _object_new(SipUri)
    _SU_SCHEME(uri, scheme)
    _SU_USER(uri, user)
    _SU_PW(uri, None)
    _SU_HOST(uri, host)
    _SU_PORT(uri, port)
    _SU_PARAMS(uri, params)
    _SU_HEADERS(uri, ())
    return uri


def _low(v: str | None) -> str | None:
    return None if v is None else v.lower()


@dataclass(frozen=True, slots=True)
class TelUri:
    """``tel:`` URI (RFC 3966 §3): ``number`` as written plus parameters."""

    number: str
    params: Params = field(default=_EMPTY_PARAMS)

    @property
    def scheme(self) -> str:
        return "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def normalized(self) -> str:
        """The number without RFC 3966 visual separators ``-.()``."""
        return "".join(c for c in self.number if c not in "-.()")

    @property
    def phone_context(self) -> str | None:
        return self.params.get("phone-context")

    def __str__(self) -> str:
        return f"tel:{self.number}{self.params}"


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any other URI scheme, kept opaque (RFC 3261 §25.1 absoluteURI; RFC 4475 §3.3.2).

    Deciding 416 Unsupported URI Scheme is the application's job, not the parser's.
    """

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"


Uri = SipUri | TelUri | AbsoluteUri

# RFC 3966 §3: global-number-digits / local-number-digits (visual separators included)
_TEL_NUMBER_RE = re.compile(r"[0-9A-Fa-f*#+\-.()pPwW]+")
_OPAQUE_BAD = frozenset(' \t\r\n<>"')


def parse_uri(text: str, where: str = "URI") -> Uri:
    """Parse a URI: ``sip``/``sips`` -> :class:`SipUri`, ``tel`` -> :class:`TelUri`,
    anything else with a valid scheme -> :class:`AbsoluteUri`. Errors are 400 at ``where``."""
    if text.startswith("sip:"):
        return _parse_sip("sip", text[4:], text, where)
    scheme, colon, rest = text.partition(":")
    if not colon or not SCHEME_RE.fullmatch(scheme):
        raise SipParseError(f"bad URI {text!r}", where=where)
    low = scheme.lower()
    if low == "sip" or low == "sips":
        return _parse_sip(low, rest, text, where)
    if low == "tel":
        return _parse_tel(rest, text, where)
    if not rest or any(c in _OPAQUE_BAD for c in rest):
        raise SipParseError(f"bad URI {text!r}", where=where)
    return AbsoluteUri(scheme, rest)


def _parse_sip(scheme: str, rest: str, text: str, where: str) -> SipUri:
    fast = SIP_URI_FAST.fullmatch(rest)
    if fast is not None:
        user_f, host_f, ipv4_f, port_f, params_f = fast.groups()
        return fast_sip_uri(scheme, user_f, host_f, ipv4_f, port_f, params_f, where)
    # RFC 3261 §19.1.1: sip:user:password@host:port;uri-parameters?headers
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1 :]
        u, colon, pw = userinfo.partition(":")
        if not USER_RE.fullmatch(u):
            raise SipParseError(f"bad user part in {text!r}", where=where)
        if colon:
            if not PASSWORD_RE.fullmatch(pw):
                raise SipParseError(f"bad password in {text!r}", where=where)
            password = pw
        user = u
    headers: tuple[tuple[str, str], ...] = ()
    q = rest.find("?")
    if q >= 0:
        headers = _parse_uri_headers(rest[q + 1 :], text, where)
        rest = rest[:q]
    semi = rest.find(";")
    params = _EMPTY_PARAMS
    if semi >= 0:
        params = Params.parse(rest[semi:], where=where, uri=True)
        rest = rest[:semi]
    if not rest:
        raise SipParseError(f"missing host in {text!r}", where=where)
    host, port = parse_host_port(rest, where)
    return SipUri(scheme, user, password, host, port, params, headers)


def fast_sip_uri(scheme: str, user: str | None, host: str, ipv4: str | None,
                 port_text: str | None, ptext: str, where: str) -> SipUri:
    """Build a SipUri from the groups of :data:`SIP_URI_FAST` (already validated)."""
    if ipv4 is None:
        check_fast_host(host, None, where)
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise SipParseError(f"port out of range {port}", where=where)
    params = params_fast(ptext) if ptext else _EMPTY_PARAMS
    return _new_sip_uri(scheme, user, host, port, params)


def new_tel_uri(number: str, ptext: str) -> TelUri:
    """Build a TelUri from fast-path groups (already validated)."""
    return TelUri(number, params_fast(ptext) if ptext else _EMPTY_PARAMS)


def _parse_uri_headers(text: str, full: str, where: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for item in text.split("&"):
        name, eq, value = item.partition("=")
        if not name or not eq or not HNV_RE.fullmatch(name) or not HNV_RE.fullmatch(value):
            raise SipParseError(f"bad URI header in {full!r}", where=where)
        out.append((name, value))
    return tuple(out)


def _parse_tel(rest: str, text: str, where: str) -> TelUri:
    # RFC 3966 §3: telephone-subscriber = global-number / local-number, then ;par
    number, semi, ptext = rest.partition(";")
    ptext = semi + ptext
    if not _TEL_NUMBER_RE.fullmatch(number):
        raise SipParseError(f"bad tel URI {text!r}", where=where)
    params = Params.parse(ptext, where=where, uri=True) if semi else _EMPTY_PARAMS
    return TelUri(number, params)


# --------------------------------------------------------------------------------------------
# Feature tags (RFC 3840 §9, RFC 3841; 3GPP TS 24.229 icsi-ref / iari-ref encoding)
# --------------------------------------------------------------------------------------------


def _is_feature_name(name: str) -> bool:
    low = name.lower()
    return (
        low.startswith("+")
        or low in {"audio", "video", "application", "data", "control", "text", "automata",
                   "class", "duplex", "mobility", "description", "events", "priority", "methods",
                   "extensions", "schemes", "actor", "isfocus"}
    )


def feature_tag_values(params: Params, name: str) -> list[str] | None:
    """Decoded values of feature tag ``name`` (e.g. ``+g.3gpp.icsi-ref``) in ``params``.

    ``None`` if absent; ``[]`` for a boolean tag given without value.  The quoted
    tag-value-list is split on "," (RFC 3840 §9), ``<...>`` string values are
    unwrapped and percent escapes decoded (3GPP TS 24.229 §7.9.2 encodes URNs as
    ``urn%3Aurn-7%3A3gpp-service...``).
    """
    if name not in params:
        return None
    raw = params.get(name)
    if raw is None:
        return []
    text = read_quoted(raw, 0, name)[0] if raw.startswith('"') else raw
    out: list[str] = []
    for item in text.split(","):
        item = item.strip(" \t")
        if item.startswith("<") and item.endswith(">"):
            item = item[1:-1]
        out.append(pct_decode(item))
    return out


def feature_tags(params: Params) -> dict[str, list[str]]:
    """Every feature tag in ``params`` (``+``-prefixed or RFC 3840 base tags), decoded."""
    out: dict[str, list[str]] = {}
    for name in params:
        if _is_feature_name(name):
            values = feature_tag_values(params, name)
            out[name] = values if values is not None else []
    return out


def encode_feature_tag(values: list[str] | str | None, *, percent: bool = True) -> str | None:
    """Encode a feature tag value: ``None``/``[]`` -> boolean flag, else a quoted list.

    With ``percent=True`` each value is escaped the way RCS/IMS do for icsi-ref and
    iari-ref (``:`` -> ``%3A``); pass ``percent=False`` for plain tokens (e.g. methods).
    """
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    if not values:
        return None
    items = [pct_encode(v, "-._~!*'()+=/@") if percent else v for v in values]
    return quote(",".join(items))


def with_feature_tag(
    params: Params, name: str, values: list[str] | str | None = None, *, percent: bool = True
) -> Params:
    """``params`` with feature tag ``name`` set (see :func:`encode_feature_tag`)."""
    if not name.startswith("+") and not _is_feature_name(name):
        name = "+" + name
    return params.with_param(name, encode_feature_tag(values, percent=percent))
