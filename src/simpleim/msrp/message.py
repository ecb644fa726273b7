"""MSRP messages (RFC 4975 §7, §9): requests, responses, typed header values, serialization.

A message object holds the start line and the headers; the body is ``bytes`` for messages that
fit in memory.  Large bodies never live in a message object: the parser streams them as
:class:`~simpleim.msrp.parser.BodyChunk` events and the sender writes them from a source.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from simpleim.errors import LocalProtocolError, MsrpParseError
from simpleim.msrp.uri import MsrpUri, format_path, parse_path

__all__ = [
    "ByteRange",
    "MsrpStatus",
    "MsrpHeaders",
    "MsrpRequest",
    "MsrpResponse",
    "MsrpMessage",
    "REASONS",
    "FLAG_END",
    "FLAG_MORE",
    "FLAG_ABORT",
    "TID_RE",
    "end_line",
]

FLAG_END = "$"     # RFC 4975 §9 continuation-flag: last chunk of the message
FLAG_MORE = "+"    # more chunks follow
FLAG_ABORT = "#"   # the message is abandoned (§7.1.1)

# RFC 4975 §9: transact-id = ident; ident = ALPHANUM 3*31ident-char;
# ident-char = ALPHANUM / "." / "-" / "+" / "%" / "="
TID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-+%=]{3,31}")
# method = 1*UPALPHA (§9)
METHOD_RE = re.compile(r"[A-Z]+")
_HNAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
_BYTE_RANGE = re.compile(r"\s*(\d{1,19})-(\d{1,19}|\*)/(\d{1,19}|\*)\s*")
_STATUS = re.compile(r"\s*(\d{3}) (\d{3})(?: (.*))?")

# IANA MSRP status code registry (RFC 4975 §15.5.3, RFC 4976 §8).
REASONS: dict[int, str] = {
    200: "OK",
    400: "Unintelligible",
    401: "Unauthorized",
    403: "Action-not-allowed",
    408: "Transaction-did-not-complete-in-allotted-time",
    413: "Stop-sending-message",
    415: "MIME-not-understood",
    423: "Parameter-out-of-bounds",
    481: "Session-does-not-exist",
    501: "Request-method-not-understood",
    506: "Session-already-in-use",
}


def end_line(tid: str, flag: str) -> bytes:
    """``-------<tid><flag>CRLF`` (RFC 4975 §9 end-line)."""
    return b"-------" + tid.encode("ascii") + flag.encode("ascii") + b"\r\n"


@dataclass(frozen=True, slots=True)
class ByteRange:
    """``Byte-Range: start-end/total`` (RFC 4975 §7.1.1, §9); ``None`` stands for ``*``."""

    start: int
    end: int | None
    total: int | None

    @classmethod
    def parse(cls, text: str) -> ByteRange:
        m = _BYTE_RANGE.fullmatch(text)
        if not m:
            raise MsrpParseError(f"bad Byte-Range {text!r}", where="Byte-Range")
        start = int(m.group(1))
        end = None if m.group(2) == "*" else int(m.group(2))
        total = None if m.group(3) == "*" else int(m.group(3))
        # §9: range-start = 1*DIGIT (1-based); end >= start-1 (an empty chunk has end = start-1).
        if start < 1 or (end is not None and end < start - 1) or (
            total is not None and end is not None and end > total
        ):
            raise MsrpParseError(f"inconsistent Byte-Range {text!r}", where="Byte-Range")
        return cls(start, end, total)

    def __str__(self) -> str:
        e = "*" if self.end is None else str(self.end)
        t = "*" if self.total is None else str(self.total)
        return f"{self.start}-{e}/{t}"


@dataclass(frozen=True, slots=True)
class MsrpStatus:
    """``Status: namespace SP status-code [SP comment]`` (RFC 4975 §9); namespace 000 = MSRP."""

    code: int
    comment: str | None = None
    namespace: str = "000"

    @classmethod
    def parse(cls, text: str) -> MsrpStatus:
        m = _STATUS.fullmatch(text)
        if not m:
            raise MsrpParseError(f"bad Status {text!r}", where="Status")
        return cls(int(m.group(2)), m.group(3), m.group(1))

    def __str__(self) -> str:
        s = f"{self.namespace} {self.code:03d}"
        return f"{s} {self.comment}" if self.comment else s


class MsrpHeaders:
    """Ordered header list, case-insensitive names (ABNF literals are case-insensitive)."""

    __slots__ = ("_items", "_index")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = list(items)
        self._index: dict[str, str] | None = None

    def get(self, name: str) -> str | None:
        index = self._index
        if index is None:
            # Keys: every lower-cased name, plus the name as written for the first field of
            # each name (both map to that first field's value): a lookup with the usual
            # spelling ("To-Path") needs no lower().
            index = {}
            for n, v in self._items:
                low = n.lower()
                if low not in index:
                    index[low] = v
                    index[n] = v
            self._index = index
        found = index.get(name)
        return found if found is not None else index.get(name.lower())

    def get_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for n, v in self._items if n.lower() == low]

    def add(self, name: str, value: str) -> None:
        _check_header(name, value)
        self._items.append((name, value))
        self._index = None

    def set(self, name: str, value: str) -> None:
        _check_header(name, value)
        low = name.lower()
        for i, (n, _) in enumerate(self._items):
            if n.lower() == low:
                self._items[i] = (name, value)
                self._items = [it for j, it in enumerate(self._items)
                               if j <= i or it[0].lower() != low]
                self._index = None
                return
        self._items.append((name, value))
        self._index = None

    def remove(self, name: str) -> None:
        low = name.lower()
        self._items = [it for it in self._items if it[0].lower() != low]
        self._index = None

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MsrpHeaders) and self._items == other._items

    def __repr__(self) -> str:
        return f"MsrpHeaders({self._items!r})"


def _check_header(name: str, value: str) -> None:
    if not _HNAME.fullmatch(name):
        raise LocalProtocolError(f"bad MSRP header name {name!r}", where=name)
    if "\r" in value or "\n" in value:
        raise LocalProtocolError(f"CR/LF in MSRP header value of {name}", where=name)


@dataclass(slots=True)
class _Base:
    tid: str
    headers: MsrpHeaders = field(default_factory=MsrpHeaders)

    # ---- typed accessors (raise MsrpParseError on bad peer input) ----
    def _path(self, name: str) -> list[MsrpUri]:
        v = self.headers.get(name)
        if v is None:
            raise MsrpParseError(f"missing {name}", where=name)
        return parse_path(v)

    @property
    def to_path(self) -> list[MsrpUri]:
        return self._path("To-Path")

    @property
    def from_path(self) -> list[MsrpUri]:
        return self._path("From-Path")

    @property
    def message_id(self) -> str | None:
        v = self.headers.get("Message-ID")
        if v is None:
            return None
        v = v.strip()
        # §9: Message-ID = ident
        if not TID_RE.fullmatch(v):
            raise MsrpParseError(f"bad Message-ID {v!r}", where="Message-ID")
        return v

    @property
    def byte_range(self) -> ByteRange | None:
        v = self.headers.get("Byte-Range")
        return None if v is None else ByteRange.parse(v)

    @property
    def status(self) -> MsrpStatus | None:
        v = self.headers.get("Status")
        return None if v is None else MsrpStatus.parse(v)

    @property
    def content_type(self) -> str | None:
        v = self.headers.get("Content-Type")
        return None if v is None else v.strip()

    def _report(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        v = self.headers.get(name)
        if v is None:
            return default
        v = v.strip().lower()
        if v not in allowed:
            raise MsrpParseError(f"bad {name} value {v!r}", where=name)
        return v

    @property
    def success_report(self) -> bool:
        """Success-Report: yes / no (default no, RFC 4975 §7.1.1)."""
        return self._report("Success-Report", ("yes", "no"), "no") == "yes"

    @property
    def failure_report(self) -> str:
        """Failure-Report: yes / no / partial (default yes, RFC 4975 §7.1.1)."""
        return self._report("Failure-Report", ("yes", "no", "partial"), "yes")

    @property
    def expires(self) -> int | None:
        v = self.headers.get("Expires")
        if v is None:
            return None
        v = v.strip()
        if not v.isdigit() or not v.isascii() or len(v) > 10:
            raise MsrpParseError(f"bad Expires {v!r}", where="Expires")
        return int(v)

    @property
    def use_path(self) -> list[MsrpUri] | None:
        v = self.headers.get("Use-Path")
        return None if v is None else parse_path(v)

    def _head_lines(self) -> list[str]:
        return [f"{n}: {v}" for n, v in self.headers.items()]


@dataclass(slots=True)
class MsrpRequest(_Base):
    """``MSRP tid METHOD`` + headers [+ body] + end-line."""

    method: str = "SEND"
    body: bytes | None = None
    flag: str = FLAG_END

    def __post_init__(self) -> None:
        if not TID_RE.fullmatch(self.tid):
            raise LocalProtocolError(f"bad transaction id {self.tid!r}", where="tid")
        if not METHOD_RE.fullmatch(self.method):
            raise LocalProtocolError(f"bad method {self.method!r}", where="method")

    def head_bytes(self, has_body: bool) -> bytes:
        """Start line + headers (+ the blank line when a body follows)."""
        lines = [f"MSRP {self.tid} {self.method}", *self._head_lines()]
        text = "\r\n".join(lines) + "\r\n"
        if has_body:
            text += "\r\n"
        return text.encode("utf-8")

    def to_bytes(self) -> bytes:
        if self.body is not None:
            if b"-------" + self.tid.encode() in self.body:
                raise LocalProtocolError("body contains the end-line of its transaction "
                                         "(RFC 4975 §7.1: pick another transaction id)")
            if self.content_type is None:
                raise LocalProtocolError("a body needs a Content-Type (RFC 4975 §9)")
            return (self.head_bytes(True) + self.body + b"\r\n"
                    + end_line(self.tid, self.flag))
        return self.head_bytes(False) + end_line(self.tid, self.flag)

    __bytes__ = to_bytes


@dataclass(slots=True)
class MsrpResponse(_Base):
    """``MSRP tid code [comment]`` + headers + end-line (responses have no body, §9)."""

    status_code: int = 200
    comment: str | None = None

    def __post_init__(self) -> None:
        if not TID_RE.fullmatch(self.tid):
            raise LocalProtocolError(f"bad transaction id {self.tid!r}", where="tid")
        if not 100 <= self.status_code <= 999:
            raise LocalProtocolError(f"bad status code {self.status_code}", where="status")

    def to_bytes(self) -> bytes:
        first = f"MSRP {self.tid} {self.status_code:03d}"
        if self.comment:
            first += f" {self.comment}"
        text = "\r\n".join([first, *self._head_lines()]) + "\r\n"
        return text.encode("utf-8") + end_line(self.tid, FLAG_END)

    __bytes__ = to_bytes


MsrpMessage = MsrpRequest | MsrpResponse


def make_request(
    tid: str,
    method: str,
    to_path: list[MsrpUri],
    from_path: list[MsrpUri],
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
    flag: str = FLAG_END,
) -> MsrpRequest:
    """To-Path first, From-Path second, Content-Type last (RFC 4975 §7.1, §9)."""
    items = [("To-Path", format_path(to_path)), ("From-Path", format_path(from_path))]
    items += list(headers)
    return MsrpRequest(tid, MsrpHeaders(items), method, body, flag)


__all__ += ["make_request"]


def _trusted_request(tid: str, method: str) -> MsrpRequest:
    """A request whose tid/method the parser already validated (skips __post_init__)."""
    req = MsrpRequest.__new__(MsrpRequest)
    req.tid = tid
    req.headers = MsrpHeaders()
    req.method = method
    req.body = None
    req.flag = FLAG_END
    return req


def _trusted_response(tid: str, status: int, comment: str | None) -> MsrpResponse:
    resp = MsrpResponse.__new__(MsrpResponse)
    resp.tid = tid
    resp.headers = MsrpHeaders()
    resp.status_code = status
    resp.comment = comment
    return resp
