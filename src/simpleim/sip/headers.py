"""Typed SIP header values (RFC 3261 §20, §25; RFC 3581; RFC 3840/3841; RFC 4028; 3GPP IMS).

Each value type is an immutable dataclass with ``parse(text)`` and ``__str__``.  Errors
are :class:`~simpleim.errors.SipParseError` 400 naming the header.  Also here: the
:class:`Headers` container; the address-free values (CSeq, MediaType, ...) live in
:mod:`simpleim.sip.header_values` and the feature-tag helpers (defined next to ``Params`` in
``uri.py``); both are re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

from simpleim.errors import LocalProtocolError, SipParseError
from simpleim.sip._abnf import (
    ADDRESS_FAST,
    ADDRESS_TEL_FAST,
    CANONICAL_BY_KEY,
    COMPACT_FORMS,
    LIST_HEADERS,
    NAME_ADDR_FAST,
    TOKEN_RE,
    VIA_FAST,
    WIRE_NAMES,
    canonical_name,
    check_fast_host,
    quote,
    read_quoted,
    split_top,
)
from simpleim.sip.header_values import (
    ContactPattern,
    CSeq,
    MediaType,
    SessionExpires,
    parse_int_header,
    parse_privacy,
    parse_token_list,
)
from simpleim.sip.uri import (
    SIP_URI_SETTERS,
    Params,
    SipUri,
    Uri,
    encode_feature_tag,
    fast_sip_uri,
    feature_tag_values,
    feature_tags,
    new_tel_uri,
    params_fast,
    parse_host_port,
    parse_uri,
    with_feature_tag,
)

__all__ = [
    "Headers",
    "Params",
    "Address",
    "Via",
    "CSeq",
    "MediaType",
    "SessionExpires",
    "ContactPattern",
    "canonical_name",
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "parse_address_list",
    "parse_via_list",
    "parse_token_list",
    "parse_privacy",
    "feature_tags",
    "feature_tag_values",
    "encode_feature_tag",
    "with_feature_tag",
    "parse_int_header",
]

T = TypeVar("T")


def _key(name: str) -> str:
    """Lowercase long-form key of a header name (compact forms expanded, RFC 3261 §7.3.3)."""
    key = WIRE_NAMES.get(name)
    if key is None:
        low = name.lower()
        key = WIRE_NAMES.get(low)
        if key is None:
            return low
    return key


# Header names already checked against the token rule, by spelling -> key (known headers only,
# bounded): saves the regular expression on every add/set/prepend of a proxy.
_VALID_NAMES: dict[str, str] = {}


def _check_value(name: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise LocalProtocolError(f"CR/LF in value of {name}", where=name)


class Headers:
    """Ordered header multi-map with case-insensitive, compact-aware names.

    Known names are stored canonically (``v`` -> ``Via``); unknown names keep the spelling
    they were first seen with.  ``get``/``get_all`` split comma lists only for headers
    known to be lists (:data:`LIST_HEADERS`); other values are never split.  Typed values
    read through the message are cached here and dropped on any mutation.
    """

    __slots__ = ("_items", "_names", "_cache", "_firsts")

    def __init__(self, items: Iterable[tuple[str, object]] = ()) -> None:
        # (lowercase key, raw value as after the ":" on the wire; read accessors strip LWS)
        self._items: list[tuple[str, str]] = []
        self._names: dict[str, str] = {}  # key -> spelling, for names not in CANONICAL
        self._cache: dict[str, object] = {}
        self._firsts: dict[str, str] | None = None
        for name, value in items:
            self.add(name, value)

    @classmethod
    def _from_parsed(cls, items: list[tuple[str, str]], names: dict[str, str]) -> Headers:
        h = cls.__new__(cls)
        h._items = items
        h._names = names
        h._cache = {}
        h._firsts = None
        return h

    # -- internal (linear scans: cheaper than an index for SIP-sized header lists) ------------
    def _positions(self, key: str) -> list[int]:
        return [i for i, (k, _) in enumerate(self._items) if k == key]

    def _changed(self, key: str | None = None) -> None:
        """Drop what a mutation made stale: the typed value of ``key`` only (every typed value
        is read from the lines of its own header; ``top-via`` from ``via``), or everything
        when ``key`` is None."""
        self._firsts = None
        cache = self._cache
        if cache:
            if key is None:
                self._cache = {}
            else:
                cache.pop(key, None)
                if key == "via":
                    cache.pop("top-via", None)

    def _lines(self, key: str) -> list[str]:
        return [v.strip(" \t") for k, v in self._items if k == key]

    def _build_firsts(self) -> dict[str, str]:
        # built backwards so the first line of each name wins
        firsts = self._firsts = dict(reversed(self._items))
        return firsts

    def _first(self, key: str) -> str | None:
        firsts = self._firsts
        value = (firsts if firsts is not None else self._build_firsts()).get(key)
        return None if value is None else value.strip(" \t")

    def _name(self, key: str) -> str:
        name = CANONICAL_BY_KEY.get(key)
        return name if name is not None else self._names.get(key, key)

    def _typed(self, key: str, build: Callable[[], T]) -> T:
        cache = self._cache
        if key in cache:
            return cache[key]  # type: ignore[return-value]
        value = build()
        cache[key] = value
        return value

    def _split(self, key: str, lines: list[str]) -> list[str]:
        if key not in LIST_HEADERS:
            return lines
        out: list[str] = []
        for line in lines:
            if "," in line:
                out.extend(p.strip(" \t") for p in split_top(line, ",", self._name(key)))
            else:
                out.append(line)
        return out

    # -- public read API ----------------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (first list element for list headers)."""
        key = _key(name)
        value = self._first(key)
        if value is None:
            return default
        if "," in value and key in LIST_HEADERS:
            return self._split(key, [value])[0]
        return value

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in order; comma lists of list headers split."""
        key = _key(name)
        return self._split(key, self._lines(key))

    def get_lines(self, name: str) -> list[str]:
        """The raw value of each header line named ``name`` (never split)."""
        return self._lines(_key(name))

    def count(self, name: str) -> int:
        """Number of header lines named ``name``."""
        return len(self._positions(_key(name)))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = WIRE_NAMES.get(name)
        firsts = self._firsts
        if firsts is None:
            firsts = self._build_firsts()
        return (key if key is not None else _key(name)) in firsts

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """(name, value) per header line, in order."""
        return ((self._name(k), v.strip(" \t")) for k, v in self._items)

    def items(self) -> list[tuple[str, str]]:
        return list(self)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v.strip(" \t")) for k, v in self._items] == [
            (k, v.strip(" \t")) for k, v in other._items]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"

    # -- mutation -------------------------------------------------------------------------------
    def _entry(self, name: str, value: object) -> tuple[str, str]:
        text = value if type(value) is str else str(value)
        key = _VALID_NAMES.get(name)
        if key is None:
            if not TOKEN_RE.fullmatch(name):
                raise LocalProtocolError(f"bad header name {name!r}")
            key = _key(name)
            if key in CANONICAL_BY_KEY and len(_VALID_NAMES) < 512:
                _VALID_NAMES[name] = key  # a checked spelling of a known header
        if "\r" in text or "\n" in text:
            _check_value(name, text)
        if key not in CANONICAL_BY_KEY and key not in self._names:
            self._names[key] = name
        return (key, " " + text)

    def add(self, name: str, value: object) -> None:
        """Append a header line."""
        entry = self._entry(name, value)
        self._items.append(entry)
        self._changed(entry[0])

    def prepend(self, name: str, value: object) -> None:
        """Insert a value before the first line of ``name`` (or at the top if absent).

        This is where a proxy puts its Via and Record-Route (RFC 3261 §16.6 steps 4, 8).
        """
        entry = self._entry(name, value)
        key = entry[0]
        items = self._items
        for i, (k, _) in enumerate(items):
            if k == key:
                items.insert(i, entry)
                break
        else:
            items.insert(0, entry)
        self._changed(key)

    def set(self, name: str, value: object) -> None:
        """Replace every line of ``name`` by one (in the first one's place, else appended)."""
        entry = self._entry(name, value)
        key = entry[0]
        pos = self._positions(key)
        if not pos:
            self._items.append(entry)
        else:
            self._items[pos[0]] = entry
            for i in reversed(pos[1:]):
                del self._items[i]
        self._changed(key)

    def remove(self, name: str) -> int:
        """Remove every line of ``name``; returns how many were removed."""
        key = _key(name)
        pos = self._positions(key)
        if not pos:
            return 0
        for i in reversed(pos):
            del self._items[i]
        self._changed(key)
        return len(pos)

    def _replace_line(self, index: int, value: str | None) -> None:
        key = self._items[index][0]
        if value is None:
            del self._items[index]
        else:
            self._items[index] = (key, " " + value)
        self._changed(key)

    def copy(self) -> Headers:
        h = Headers._from_parsed(list(self._items), dict(self._names))
        h._cache = dict(self._cache)
        return h


# --------------------------------------------------------------------------------------------
# Address: name-addr / addr-spec with header parameters (RFC 3261 §20.10, §20.20, §20.39)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    """``[display-name] <uri>;params`` or ``uri;params`` (From, To, Contact, Route, PAI ...).

    ``display_name`` is unescaped (quoted-pairs resolved); ``None`` when absent.
    """

    uri: Uri
    display_name: str | None = None
    params: Params = field(default_factory=Params)

    @classmethod
    def parse(cls, text: str, where: str = "address") -> Address:
        if text[:1] == "<":
            fast = NAME_ADDR_FAST.fullmatch(text)
            if fast is not None:
                # hot path (From/To/Contact/Route of every message), inlined on purpose
                scheme, user, host, ipv4, port_text, uparams, hparams = fast.groups()
                if ipv4 is None and (host[0] == "[" or host[-1].isdigit()):
                    check_fast_host(host, None, where)
                port_n = None
                if port_text is not None:
                    port_n = int(port_text)
                    if port_n > 65535:
                        raise SipParseError(f"port out of range {port_n}", where=where)
                suri: SipUri = _object_new(SipUri)
                _SU_SCHEME(suri, scheme)
                _SU_USER(suri, user)
                _SU_PW(suri, None)
                _SU_HOST(suri, host)
                _SU_PORT(suri, port_n)
                _SU_PARAMS(suri, params_fast(uparams) if uparams else _EMPTY)
                _SU_HEADERS(suri, ())
                addr: Address = _object_new(Address)
                _AD_URI(addr, suri)
                _AD_DN(addr, None)
                _AD_PARAMS(addr, params_fast(hparams) if hparams else _EMPTY)
                return addr
        if "<tel:" in text:
            # tel URIs (RFC 3966) in name-addr, as IMS puts in From/P-Asserted-Identity
            fast = ADDRESS_TEL_FAST.fullmatch(text)
            if fast is not None:
                quoted, tokens, number, uparams, hparams = fast.groups()
                return _new_address(new_tel_uri(number, uparams),
                                    quoted if quoted is not None else tokens,
                                    params_fast(hparams) if hparams else _EMPTY)
        fast = ADDRESS_FAST.fullmatch(text)
        if fast is not None:
            quoted, tokens, scheme, user, host, ipv4, port, uparams, hparams = fast.groups()
            return _new_address(fast_sip_uri(scheme, user, host, ipv4, port, uparams, where),
                       quoted if quoted is not None else tokens,
                       params_fast(hparams) if hparams else _EMPTY)
        s = text.strip(" \t")
        if not s:
            raise SipParseError("empty address", where=where)
        display: str | None = None
        if s[0] == '"':
            display, pos = read_quoted(s, 0, where)
            rest = s[pos:].lstrip(" \t")
            if not rest.startswith("<"):
                raise SipParseError("quoted display name without <URI>", where=where)
            return cls._name_addr(display, rest, where)
        lt = s.find("<")
        if lt >= 0:
            dn = s[:lt].strip(" \t")
            if dn:
                # RFC 3261 §25.1: display-name = *(token LWS) / quoted-string
                # (no LWS before "<" accepted: RFC 4475 §3.1.1.6)
                words = dn.split()
                if not all(TOKEN_RE.fullmatch(w) for w in words):
                    raise SipParseError(f"bad display name {dn!r}", where=where)
                display = " ".join(words)
            return cls._name_addr(display, s[lt:], where)
        # addr-spec form: RFC 3261 §20.10: a URI containing "," "?" or ";" MUST be in <>;
        # ";" then starts the header parameters (RFC 4475 §3.3.12).
        uri_text, semi, ptext = s.partition(";")
        uri_text = uri_text.rstrip(" \t")
        if "?" in uri_text or "," in uri_text or " " in uri_text:
            raise SipParseError("URI with ? , or SP must be enclosed in <>", where=where)
        uri = parse_uri(uri_text, where)
        params = Params.parse(semi + ptext, where=where) if semi else _EMPTY
        return cls(uri, None, params)

    @classmethod
    def _name_addr(cls, display: str | None, s: str, where: str) -> Address:
        end = s.find(">")
        if end < 0:
            raise SipParseError("missing >", where=where)
        inner = s[1:end]
        # RFC 3261 §25.1: LAQUOT addr-spec RAQUOT, no LWS inside (RFC 4475 §3.1.2.14)
        if not inner or inner[0] in " \t" or inner[-1] in " \t":
            raise SipParseError("whitespace inside <>", where=where)
        uri = parse_uri(inner, where)
        rest = s[end + 1 :].strip(" \t")
        if not rest:
            return cls(uri, display, _EMPTY)
        if rest[0] != ";":
            raise SipParseError(f"junk after URI: {rest[:20]!r}", where=where)
        return cls(uri, display, Params.parse(rest, where=where))

    @property
    def tag(self) -> str | None:
        """RFC 3261 §19.3 tag parameter."""
        return self.params.get("tag")

    @property
    def expires(self) -> int | None:
        """Contact ``expires`` parameter (RFC 3261 §20.10); ``None`` if absent or not a number."""
        v = self.params.get("expires")
        return int(v) if v is not None and v.isascii() and v.isdigit() and len(v) <= 10 else None

    @property
    def q(self) -> float | None:
        """Contact ``q`` preference (RFC 3261 §20.10)."""
        v = self.params.get("q")
        try:
            return float(v) if v is not None else None
        except ValueError:
            return None

    def with_tag(self, tag: str) -> Address:
        return replace(self, params=self.params.with_param("tag", tag))

    def with_params(self, params: Params) -> Address:
        return replace(self, params=params)

    def __str__(self) -> str:
        # Always the name-addr form: safe for URIs with ; ? , (RFC 3261 §20.10)
        head = f"{quote(self.display_name)} " if self.display_name is not None else ""
        return f"{head}<{self.uri}>{self.params}"


_EMPTY = Params()
# Hot-path constructors (fields already validated): slot descriptors instead of the
# per-field object.__setattr__ of frozen dataclass __init__.
_object_new = object.__new__
_SU_SCHEME, _SU_USER, _SU_PW, _SU_HOST, _SU_PORT, _SU_PARAMS, _SU_HEADERS = SIP_URI_SETTERS
_AD_URI, _AD_DN, _AD_PARAMS = (Address.__dict__[n].__set__
                               for n in ("uri", "display_name", "params"))


def _new_address(uri: Uri, display_name: str | None, params: Params) -> Address:
    addr: Address = _object_new(Address)
    _AD_URI(addr, uri)
    _AD_DN(addr, display_name)
    _AD_PARAMS(addr, params)
    return addr


def parse_address_list(text: str, where: str) -> list[Address]:
    """Parse a comma list of addresses (Contact, Route, Record-Route, Path, PAI ...)."""
    out: list[Address] = []
    for item in split_top(text, ",", where):
        if not item.strip(" \t"):
            raise SipParseError("empty list element", where=where)
        out.append(Address.parse(item, where))
    return out


# --------------------------------------------------------------------------------------------
# Via (RFC 3261 §20.42, RFC 3581)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: ``SIP/2.0/<transport> host[:port];params``.

    ``transport`` is upper-cased; ``host`` keeps IPv6 brackets.
    """

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=Params)
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str, where: str = "Via") -> Via:
        fast = VIA_FAST.fullmatch(text)
        if fast is not None:
            transport, host, ipv4, port_text, ptext = fast.groups()
            if ipv4 is None and (host[0] == "[" or host[-1].isdigit()):
                check_fast_host(host, None, where)
            port = None
            if port_text is not None:
                port = int(port_text)
                if port > 65535:
                    raise SipParseError(f"port out of range {port}", where=where)
            via: Via = _object_new(Via)
            _VI_T(via, transport.upper())
            _VI_HOST(via, host)
            _VI_PORT(via, port)
            _VI_PARAMS(via, params_fast(ptext) if ptext else _EMPTY)
            _VI_PROTO(via, "SIP/2.0")
            return via
        # RFC 3261 §25.1: via-parm = sent-protocol LWS sent-by *( SEMI via-params )
        # sent-protocol = protocol-name SLASH protocol-version SLASH transport (SLASH = SWS "/" SWS)
        name, s1, rest = text.partition("/")
        version, s2, rest = rest.partition("/")
        if not s1 or not s2:
            raise SipParseError("bad sent-protocol", where=where)
        name = name.strip(" \t")
        version = version.strip(" \t")
        rest = rest.lstrip(" \t")
        sp = 0
        n = len(rest)
        while sp < n and rest[sp] not in " \t":
            sp += 1
        transport = rest[:sp]
        if not TOKEN_RE.fullmatch(name) or not TOKEN_RE.fullmatch(version):
            raise SipParseError("bad sent-protocol", where=where)
        if not TOKEN_RE.fullmatch(transport):
            raise SipParseError("bad transport", where=where)
        rest = rest[sp:].lstrip(" \t")
        sent_by, semi, ptext = rest.partition(";")
        sent_by = sent_by.rstrip(" \t")
        if not sent_by:
            raise SipParseError("missing sent-by", where=where)
        # sent-by = host [ COLON port ] (COLON = SWS ":" SWS)
        if " " in sent_by or "\t" in sent_by:
            sent_by = _COLON_LWS.sub(":", sent_by)
        host, port = parse_host_port(sent_by, where)
        params = Params.parse(semi + ptext, where=where) if semi else _EMPTY
        protocol = f"{name.upper()}/{version}"
        return cls(transport.upper(), host, port, params, protocol)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """RFC 3261 §18.2.1 received; brackets around IPv6 tolerated (RFC 5118 §4.5)."""
        r = self.params.get("received")
        if r is not None and r.startswith("[") and r.endswith("]"):
            return r[1:-1]
        return r

    @property
    def rport(self) -> int | None:
        """RFC 3581 §4 rport value, ``None`` when absent or empty (a request for it)."""
        v = self.params.get("rport")
        return int(v) if v is not None and v.isascii() and v.isdigit() and len(v) <= 5 else None

    @property
    def rport_requested(self) -> bool:
        """RFC 3581 §3: the client put an empty ``rport`` asking for the source port."""
        return "rport" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def ttl(self) -> int | None:
        v = self.params.get("ttl")
        return int(v) if v is not None and v.isascii() and v.isdigit() and len(v) <= 3 else None

    @property
    def bare_host(self) -> str:
        return self.host[1:-1] if self.host.startswith("[") else self.host

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def is_rfc3261_branch(self) -> bool:
        """RFC 3261 §8.1.1.7: the magic cookie ``z9hG4bK`` starts the branch."""
        b = self.branch
        return b is not None and b.startswith("z9hG4bK")

    def with_received(self, host: str, port: int | None = None) -> Via:
        """Server-side stamping (RFC 3261 §18.2.1, RFC 3581 §4).

        ``received`` is added when ``host`` differs from sent-by (or when rport is requested:
        RFC 3581 says it MUST then be added even if equal); ``rport`` is filled with ``port``
        only if the client asked for it.
        """
        params = self.params
        if self.rport_requested and port is not None:
            params = params.with_param("rport", str(port))
            params = params.with_param("received", host)
        elif host != self.bare_host:
            params = params.with_param("received", host)
        return replace(self, params=params)

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{self.params}"


_VI_T, _VI_HOST, _VI_PORT, _VI_PARAMS, _VI_PROTO = (
    Via.__dict__[n].__set__ for n in ("transport", "host", "port", "params", "protocol"))


def _new_via(transport: str, host: str, port: int | None, params: Params, proto: str) -> Via:
    via: Via = _object_new(Via)
    _VI_T(via, transport)
    _VI_HOST(via, host)
    _VI_PORT(via, port)
    _VI_PARAMS(via, params)
    _VI_PROTO(via, proto)
    return via


def parse_via_list(text: str, where: str = "Via") -> list[Via]:
    if "," not in text:
        return [Via.parse(text, where)]
    out: list[Via] = []
    for item in split_top(text, ",", where):
        if not item.strip(" \t"):
            raise SipParseError("empty Via value", where=where)
        out.append(Via.parse(item, where))
    return out


_COLON_LWS = re.compile(r"[ \t]*:[ \t]*")
