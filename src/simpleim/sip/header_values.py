"""Typed SIP header values without addresses: CSeq, integer headers, token lists, Privacy,
media types, Session-Expires, Accept-/Reject-Contact patterns (RFC 3261 §20, RFC 3323,
RFC 4028, RFC 3841).  Re-exported by :mod:`simpleim.sip.headers`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from simpleim.errors import SipParseError
from simpleim.sip._abnf import TOKEN_RE
from simpleim.sip.uri import Params

__all__ = [
    "CSeq",
    "MediaType",
    "SessionExpires",
    "ContactPattern",
    "parse_int_header",
    "parse_token_list",
    "parse_privacy",
]

_EMPTY = Params()
# Hot-path constructor (fields already validated): slot descriptors instead of the
# per-field object.__setattr__ of frozen dataclass __init__.
_object_new = object.__new__


# --------------------------------------------------------------------------------------------
# CSeq, integers, token lists
# --------------------------------------------------------------------------------------------

_MAX_CSEQ = 2**32 - 1
_CSEQ_FAST = re.compile(r"([0-9]{1,10}) ([A-Z]+)")


@dataclass(frozen=True, slots=True)
class CSeq:
    """RFC 3261 §20.16: sequence number and method."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str, where: str = "CSeq") -> CSeq:
        fast = _CSEQ_FAST.fullmatch(text)
        if fast is not None:
            seq = int(fast.group(1))
            if seq <= _MAX_CSEQ:
                return _new_cseq(seq, fast.group(2))
        parts = text.split()
        if len(parts) != 2:
            raise SipParseError("CSeq must be 'number method'", where=where)
        num, method = parts
        # RFC 3261 §8.1.1.5: the sequence number MUST be expressible as a 32-bit unsigned integer
        if not num.isdigit() or not num.isascii() or len(num.lstrip("0")) > 10:
            raise SipParseError("bad CSeq number", where=where)
        seq = int(num)
        if seq > _MAX_CSEQ:
            raise SipParseError("CSeq number out of 32-bit range", where=where)
        if not TOKEN_RE.fullmatch(method):
            raise SipParseError("bad CSeq method", where=where)
        return cls(seq, method)

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


_CS_SEQ, _CS_METHOD = (CSeq.__dict__[n].__set__ for n in ("seq", "method"))


def _new_cseq(seq: int, method: str) -> CSeq:
    cseq: CSeq = _object_new(CSeq)
    _CS_SEQ(cseq, seq)
    _CS_METHOD(cseq, method)
    return cseq


def parse_int_header(text: str, where: str, maximum: int) -> int:
    """A 1*DIGIT header (Max-Forwards, Expires, Min-SE...); leading zeros allowed."""
    t = text.strip(" \t")
    if not t.isdigit() or not t.isascii() or len(t.lstrip("0")) > len(str(maximum)):
        raise SipParseError(f"bad number {t[:20]!r}", where=where)
    v = int(t)
    if v > maximum:
        raise SipParseError(f"value {v} out of range", where=where)
    return v


def parse_token_list(values: list[str], where: str) -> list[str]:
    """Require/Supported/Proxy-Require/Allow/Request-Disposition: comma lists of tokens."""
    out: list[str] = []
    for v in values:
        t = v.strip(" \t")
        if not t:
            continue  # RFC 3261 §7.3.1 allows an empty Supported/Allow
        if not TOKEN_RE.fullmatch(t):
            raise SipParseError(f"bad token {t[:20]!r}", where=where)
        out.append(t)
    return out


def parse_privacy(values: list[str]) -> list[str]:
    """RFC 3323 §4.2: Privacy = priv-value *(";" priv-value)."""
    out: list[str] = []
    for v in values:
        for p in v.split(";"):
            p = p.strip(" \t")
            if p:
                if not TOKEN_RE.fullmatch(p):
                    raise SipParseError(f"bad priv-value {p!r}", where="Privacy")
                out.append(p)
    return out


# --------------------------------------------------------------------------------------------
# Content-Type, Session-Expires, Accept-Contact
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaType:
    """RFC 3261 §20.15 media-type: ``type/subtype;params`` (type/subtype lowercased)."""

    type: str
    subtype: str
    params: Params = field(default_factory=Params)

    @classmethod
    def parse(cls, text: str, where: str = "Content-Type") -> MediaType:
        main, semi, ptext = text.partition(";")
        t, slash, sub = main.partition("/")
        t = t.strip(" \t")
        sub = sub.strip(" \t")
        if not slash or not TOKEN_RE.fullmatch(t) or not TOKEN_RE.fullmatch(sub):
            raise SipParseError(f"bad media type {main.strip()!r}", where=where)
        params = Params.parse(semi + ptext, where=where) if semi else _EMPTY
        return cls(t.lower(), sub.lower(), params)

    @property
    def mime(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def boundary(self) -> str | None:
        return self.params.get_unquoted("boundary")

    @property
    def charset(self) -> str | None:
        return self.params.get_unquoted("charset")

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{self.params}"


@dataclass(frozen=True, slots=True)
class SessionExpires:
    """RFC 4028 §4: ``delta-seconds *(;se-params)`` with ``refresher=uac|uas``."""

    delta: int
    params: Params = field(default_factory=Params)

    @classmethod
    def parse(cls, text: str, where: str = "Session-Expires") -> SessionExpires:
        num, semi, ptext = text.partition(";")
        delta = parse_int_header(num, where, 2**32 - 1)
        return cls(delta, Params.parse(semi + ptext, where=where) if semi else _EMPTY)

    @property
    def refresher(self) -> str | None:
        r = self.params.get("refresher")
        return r.lower() if r else None

    def __str__(self) -> str:
        return f"{self.delta}{self.params}"


@dataclass(frozen=True, slots=True)
class ContactPattern:
    """RFC 3841 §9.2 Accept-Contact / Reject-Contact value: ``*`` followed by feature params."""

    params: Params = field(default_factory=Params)

    @classmethod
    def parse(cls, text: str, where: str = "Accept-Contact") -> ContactPattern:
        star, semi, ptext = text.partition(";")
        if star.strip(" \t") != "*":
            raise SipParseError("ac-value must start with *", where=where)
        return cls(Params.parse(semi + ptext, where=where) if semi else _EMPTY)

    @property
    def require(self) -> bool:
        return "require" in self.params

    @property
    def explicit(self) -> bool:
        return "explicit" in self.params

    def __str__(self) -> str:
        return f"*{self.params}"
