"""CPIM messages (``message/cpim``, RFC 3862).

A CPIM message is: message headers, a blank line, the MIME headers of the
encapsulated object, a blank line, the body.  Parsing keeps every header line's
exact text so that ``parse_cpim(data).to_bytes() == data`` for well-formed input
(the RFC 3862 §6.1 example vector round-trips byte for byte); typed accessors give
the From/To addresses, DateTime (RFC 3339), Subject;lang=..., NS prefixes and
the RFC 5438 ``imdn.*`` headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from simpleim.errors import ContentError

__all__ = [
    "ANONYMOUS",
    "CPIM_NS",
    "IMDN_NS",
    "CpimAddress",
    "CpimDateTime",
    "CpimHeader",
    "CpimMessage",
    "build_cpim",
    "parse_cpim",
]

#: RFC 3862 §4.4: the default namespace of unprefixed headers.
CPIM_NS = "urn:ietf:params:cpim-headers:"
#: RFC 5438 §6: the namespace of the imdn.* CPIM headers.
IMDN_NS = "urn:ietf:params:imdn"
_DEFAULT_MAX = 1024 * 1024
_NAME_RE = re.compile(r"^(?:[!#$%&'*+\-0-9A-Z^_`a-z|~]+\.)?[!#$%&'*+\-0-9A-Z^_`a-z|~]+$")
_DT_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class CpimAddress:
    """``[Formal-name] "<" URI ">"`` (RFC 3862 §5.1, §4.6)."""

    uri: str
    display_name: str | None = None

    @classmethod
    def parse(cls, text: str) -> CpimAddress:
        text = text.strip()
        lt = text.rfind("<")
        if lt < 0 or not text.endswith(">"):
            if text and " " not in text and "<" not in text and ">" not in text:
                return cls(text)  # liberal: a bare URI
            raise ContentError(f"bad CPIM address {text!r}", status=400, where="From/To")
        uri = text[lt + 1:-1].strip()
        name = text[:lt].strip()
        if not uri:
            raise ContentError("empty URI in CPIM address", status=400, where="From/To")
        if name.startswith('"'):
            if len(name) < 2 or not name.endswith('"'):
                raise ContentError("unterminated display name", status=400, where="From/To")
            name = re.sub(r"\\(.)", r"\1", name[1:-1])
        return cls(uri, name or None)

    @property
    def is_anonymous(self) -> bool:
        """RFC 5438 / RCS use ``<...:anonymous@anonymous.invalid>`` to hide the sender."""
        return self.uri.split(":", 1)[-1].lower() == "anonymous@anonymous.invalid"

    def __str__(self) -> str:
        if self.display_name is None:
            return f"<{self.uri}>"
        escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{self.uri}>'


#: RFC 3862 §5.1: the anonymous address (``im:anonymous@anonymous.invalid``).
ANONYMOUS = CpimAddress("im:anonymous@anonymous.invalid")


@dataclass(frozen=True)
class CpimDateTime:
    """An RFC 3339 date-time; the original text is kept (it is echoed in IMDNs)."""

    text: str

    @property
    def value(self) -> datetime:
        m = _DT_RE.match(self.text.strip())
        if not m:
            raise ContentError(f"bad DateTime {self.text!r}", status=400, where="DateTime")
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        frac, off = m.group(7), m.group(8)
        micro = int((frac + "000000")[:6]) if frac else 0
        if off in ("Z", "z"):
            tz = UTC
        else:
            sign = -1 if off[0] == "-" else 1
            hours, minutes = int(off[1:3]), int(off[4:6])
            if hours > 23 or minutes > 59:
                raise ContentError("bad DateTime offset", status=400, where="DateTime")
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        try:
            # RFC 3339 §5.6 allows second 60 (leap second): clamp to 59.
            return datetime(year, month, day, hour, minute, min(second, 59), micro, tzinfo=tz)
        except ValueError as exc:
            raise ContentError(f"bad DateTime ({exc})", status=400, where="DateTime") from None

    @classmethod
    def from_datetime(cls, value: datetime) -> CpimDateTime:
        if value.tzinfo is None:
            raise ContentError("DateTime needs a timezone", status=500, where="DateTime")
        text = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
        return cls(text.replace("+00:00", "Z"))

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class CpimHeader:
    """One header line ``Name:[;param...] value``; ``name`` may carry an NS prefix."""

    name: str
    value: str
    params: tuple[tuple[str, str | None], ...] = ()
    raw: str | None = field(default=None, compare=False, repr=False)

    @property
    def prefix(self) -> str | None:
        return self.name.split(".", 1)[0] if "." in self.name else None

    @property
    def local_name(self) -> str:
        return self.name.split(".", 1)[1] if "." in self.name else self.name

    def param(self, name: str) -> str | None:
        for k, v in self.params:
            if k.lower() == name.lower():
                return v
        return None

    @classmethod
    def parse(cls, line: str, where: str) -> CpimHeader:
        name, sep, raw = line.partition(":")
        if not sep or not _NAME_RE.match(name):
            raise ContentError(f"bad CPIM header line {line[:40]!r}", status=400, where=where)
        rest = raw
        params: list[tuple[str, str | None]] = []
        # RFC 3862 §4.6: Header = Header-name ":" *( ";" Parameter ) SP Header-value CRLF
        while rest.startswith(";"):
            end = len(rest)
            for stop in (" ", ";"):
                pos = rest.find(stop, 1)
                if 0 < pos < end:
                    end = pos
            pname, eq, pval = rest[1:end].partition("=")
            params.append((pname, pval if eq else None))
            rest = rest[end:]
        value = rest[1:] if rest.startswith(" ") else rest
        return cls(name, value, tuple(params), raw)

    def line(self) -> str:
        if self.raw is not None:
            return f"{self.name}:{self.raw}"
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params)
        return f"{self.name}:{params} {self.value}"


@dataclass(frozen=True)
class CpimMessage:
    """A parsed or built CPIM message."""

    headers: tuple[CpimHeader, ...]
    content_headers: tuple[CpimHeader, ...]
    body: bytes = b""
    newline: str = field(default="\r\n", compare=False)

    # ------------------------------------------------------------------ namespaces
    @property
    def namespaces(self) -> dict[str, str]:
        """Prefix -> namespace URI from every ``NS`` header ("" for the default)."""
        out: dict[str, str] = {}
        for h in self.headers:
            if h.name.upper() == "NS":
                v = h.value.strip()
                lt = v.find("<")
                if lt < 0 or not v.endswith(">"):
                    raise ContentError(f"bad NS header {v!r}", status=400, where="NS")
                out[v[:lt].strip()] = v[lt + 1:-1].strip()
        return out

    def get_all(self, name: str, ns: str = CPIM_NS) -> list[CpimHeader]:
        """Headers named ``name`` in namespace ``ns`` (prefixes resolved through NS)."""
        nsmap = self.namespaces
        default = nsmap.get("", CPIM_NS)
        out = []
        for h in self.headers:
            prefix = h.prefix
            h_ns: str | None
            if prefix is None:
                h_ns = default
            else:
                found = nsmap.get(prefix)
                if found is None:  # case-insensitive fallback (liberal)
                    found = next((u for p, u in nsmap.items() if p.lower() == prefix.lower()),
                                 None)
                h_ns = found
            if h_ns == ns and h.local_name.lower() == name.lower():
                out.append(h)
        return out

    def get(self, name: str, ns: str = CPIM_NS) -> str | None:
        found = self.get_all(name, ns)
        return found[0].value.strip() if found else None

    # ------------------------------------------------------------------ typed headers
    @property
    def from_addr(self) -> CpimAddress | None:
        v = self.get("From")
        return None if v is None else CpimAddress.parse(v)

    @property
    def to_addrs(self) -> list[CpimAddress]:
        return [CpimAddress.parse(h.value) for h in self.get_all("To")]

    @property
    def cc_addrs(self) -> list[CpimAddress]:
        return [CpimAddress.parse(h.value) for h in self.get_all("cc")]

    @property
    def datetime(self) -> CpimDateTime | None:
        v = self.get("DateTime")
        return None if v is None else CpimDateTime(v)

    @property
    def subjects(self) -> list[tuple[str | None, str]]:
        """(lang, text) for each Subject header (RFC 3862 §5.5, §4.3 language tags)."""
        return [(h.param("lang"), h.value) for h in self.get_all("Subject")]

    @property
    def required(self) -> list[str]:
        """Header names listed in Require (RFC 3862 §5.7, §4.5)."""
        return [n.strip() for h in self.get_all("Require") for n in h.value.split(",")
                if n.strip()]

    @property
    def imdn_message_id(self) -> str | None:
        return self.get("Message-ID", IMDN_NS)

    @property
    def disposition_notification(self) -> tuple[str, ...]:
        """RFC 5438 §6.2 notification requests, lower-cased, parameters dropped."""
        return tuple(v.split(";", 1)[0].strip().lower()
                     for h in self.get_all("Disposition-Notification", IMDN_NS)
                     for v in h.value.split(",") if v.strip())

    # ------------------------------------------------------------------ MIME part
    def content_header(self, name: str) -> str | None:
        for h in self.content_headers:
            if h.name.lower() == name.lower():
                return h.value.strip()
        return None

    @property
    def content_type(self) -> str | None:
        return self.content_header("Content-Type")

    @property
    def content_id(self) -> str | None:
        return self.content_header("Content-ID")

    @property
    def content_disposition(self) -> str | None:
        return self.content_header("Content-Disposition")

    @property
    def payload(self) -> bytes:
        """The body, cut to Content-Length when a trailing CRLF was added after it."""
        cl = self.content_header("Content-Length")
        if cl is not None and cl.isdigit() and int(cl) < len(self.body):
            return self.body[:int(cl)]
        return self.body

    def to_bytes(self) -> bytes:
        nl = self.newline
        head = "".join(h.line() + nl for h in self.headers) + nl
        head += "".join(h.line() + nl for h in self.content_headers) + nl
        return head.encode("utf-8") + self.body


def parse_cpim(data: bytes, *, max_size: int = _DEFAULT_MAX, max_headers: int = 100) -> CpimMessage:
    """Parse a ``message/cpim`` body; ContentError 400 on syntax errors, 413 if too large."""
    if len(data) > max_size:
        raise ContentError("CPIM message too large", status=413, where="message/cpim")
    first = data.find(b"\n")
    newline = "\r\n" if first > 0 and data[first - 1:first] == b"\r" else "\n"
    sep = (newline * 2).encode()
    end1 = data.find(sep)
    if end1 < 0:
        raise ContentError("CPIM message headers not terminated", status=400,
                           where="message/cpim")
    start2 = end1 + len(sep)
    end2 = data.find(sep, start2)
    if end2 < 0:
        if data[start2:].strip() == b"":
            raise ContentError("CPIM message has no MIME headers", status=400,
                               where="message/cpim")
        raise ContentError("CPIM MIME headers not terminated", status=400, where="message/cpim")
    try:
        block1 = data[:end1].decode("utf-8")
        block2 = data[start2:end2].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContentError("CPIM headers are not UTF-8", status=400,
                           where=f"byte {exc.start}") from None
    body = data[end2 + len(sep):]

    def lines(block: str, offset: int) -> list[CpimHeader]:
        out = []
        raw_lines = block.split(newline)
        if len(raw_lines) > max_headers:
            raise ContentError("too many CPIM headers", status=413, where="message/cpim")
        for n, line in enumerate(raw_lines, start=offset):
            if "\r" in line or "\n" in line or "\x00" in line:
                raise ContentError("control character in CPIM header", status=400,
                                   where=f"line {n}")
            out.append(CpimHeader.parse(line, f"line {n}"))
        return out

    headers = lines(block1, 1)
    content = lines(block2, len(headers) + 2)
    msg = CpimMessage(tuple(headers), tuple(content), body, newline)
    msg.namespaces  # noqa: B018 - validates the NS headers (raises ContentError)
    cl = msg.content_header("Content-Length")
    if cl is not None:
        if not cl.isdigit() or not cl.isascii():
            raise ContentError("bad Content-Length", status=400, where="Content-Length")
        declared = int(cl)
        tail = body[declared:]
        if declared > len(body) or tail not in (b"", b"\r\n", b"\n"):
            raise ContentError(f"Content-Length {declared} does not match the body "
                               f"({len(body)} bytes)", status=400, where="Content-Length")
    return msg


def build_cpim(
    *,
    from_addr: CpimAddress,
    to: Sequence[CpimAddress],
    body: bytes,
    content_type: str,
    date_time: CpimDateTime | None = None,
    message_id: str | None = None,
    disposition_notification: Iterable[str] = (),
    subject: str | None = None,
    cc: Sequence[CpimAddress] = (),
    extra_headers: Sequence[CpimHeader] = (),
    content_disposition: str | None = None,
    content_id: str | None = None,
    content_length: bool = True,
) -> CpimMessage:
    """Build a CPIM message in the header order RCS/CPM clients use (seed 002)."""
    headers = [CpimHeader("From", str(from_addr))]
    headers += [CpimHeader("To", str(t)) for t in to]
    headers += [CpimHeader("cc", str(c)) for c in cc]
    if date_time is not None:
        headers.append(CpimHeader("DateTime", date_time.text))
    if subject is not None:
        headers.append(CpimHeader("Subject", subject))
    dn = [d.strip() for d in disposition_notification if d.strip()]
    if message_id is not None or dn:
        headers.append(CpimHeader("NS", f"imdn <{IMDN_NS}>"))
        if message_id is not None:
            headers.append(CpimHeader("imdn.Message-ID", message_id))
        if dn:
            headers.append(CpimHeader("imdn.Disposition-Notification", ", ".join(dn)))
    headers += list(extra_headers)
    content = [CpimHeader("Content-Type", content_type)]
    if content_disposition is not None:
        content.append(CpimHeader("Content-Disposition", content_disposition))
    if content_id is not None:
        content.append(CpimHeader("Content-ID", content_id))
    if content_length:
        content.append(CpimHeader("Content-Length", str(len(body))))
    return CpimMessage(tuple(headers), tuple(content), body)
