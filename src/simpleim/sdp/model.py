"""SDP session descriptions (RFC 4566 / RFC 8866): values, parser, serializer.

The parser is tolerant where interoperability needs it (LF-only line ends, a
missing ``t=`` line, fields in a slightly different order inside a section) and
strict where the RFC is: ``v=0`` first, every line ``<letter>=<value>``, known
type letters only, numeric fields numeric.  Any syntax error raises
:class:`simpleim.errors.SdpError` with status 400 and ``where`` naming the line.

Serialization always writes the RFC 4566 §5 field order with CRLF line ends, so
``parse_sdp(sd.to_bytes()).to_bytes() == sd.to_bytes()`` for everything we build.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from simpleim.errors import SdpError

__all__ = [
    "Attribute",
    "Connection",
    "MediaDescription",
    "Origin",
    "SdpLimits",
    "SessionDescription",
    "Timing",
    "parse_sdp",
]

# RFC 4566 §5: the type letters defined for SDP.  §5: "An SDP parser MUST
# completely ignore any session description that contains a type letter that
# it does not understand" - we reject such a description (status 400).
_SESSION_LETTERS = frozenset("vosiuepcbtrzkam")
_MEDIA_LETTERS = frozenset("icbka")


@dataclass(frozen=True)
class SdpLimits:
    """Resource limits applied while parsing (defence against hostile input)."""

    max_size: int = 65536
    max_lines: int = 2048
    max_media: int = 64


@dataclass(frozen=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`` (RFC 4566 §5.2)."""

    username: str = "-"
    sess_id: str = "0"
    sess_version: str = "0"
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    @classmethod
    def parse(cls, text: str, *, where: str = "o=") -> Origin:
        parts = text.split()
        if len(parts) != 6:
            raise SdpError("o= needs 6 fields", status=400, where=where)
        if not (parts[1].isdigit() and parts[2].isdigit()):
            raise SdpError("o= sess-id and sess-version must be numeric", status=400, where=where)
        return cls(*parts)

    def __str__(self) -> str:
        return (
            f"{self.username} {self.sess_id} {self.sess_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (RFC 4566 §5.7)."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @classmethod
    def parse(cls, text: str, *, where: str = "c=") -> Connection:
        parts = text.split()
        if len(parts) != 3:
            raise SdpError("c= needs 3 fields", status=400, where=where)
        return cls(address=parts[2], addrtype=parts[1], nettype=parts[0])

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True)
class Attribute:
    """``a=<name>`` (property) or ``a=<name>:<value>`` (value attribute), RFC 4566 §5.13."""

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str, *, where: str = "a=") -> Attribute:
        name, sep, value = text.partition(":")
        if not name or any(c.isspace() for c in name):
            raise SdpError("bad attribute name", status=400, where=where)
        return cls(name, value if sep else None)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True)
class Timing:
    """``t=<start> <stop>`` plus its ``r=`` repeat lines (RFC 4566 §5.9, §5.10)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()


def _find(attributes: tuple[Attribute, ...], name: str) -> Attribute | None:
    for attr in attributes:
        if attr.name == name:
            return attr
    return None


@dataclass(frozen=True)
class MediaDescription:
    """One ``m=`` section (RFC 4566 §5.14) with its ``i= c= b= k= a=`` lines."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...] = ("*",)
    port_count: int | None = None
    title: str | None = None
    connections: tuple[Connection, ...] = ()
    bandwidths: tuple[str, ...] = ()
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()

    def get(self, name: str) -> str | None:
        """Value of the first ``a=name:value`` (``""`` for a property attribute, None if absent)."""
        attr = _find(self.attributes, name)
        if attr is None:
            return None
        return "" if attr.value is None else attr.value

    def get_all(self, name: str) -> list[str]:
        return ["" if a.value is None else a.value for a in self.attributes if a.name == name]

    def has(self, name: str) -> bool:
        return _find(self.attributes, name) is not None

    @property
    def connection(self) -> Connection | None:
        return self.connections[0] if self.connections else None

    def with_port(self, port: int) -> MediaDescription:
        return replace(self, port=port)

    def lines(self) -> list[str]:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}".rstrip()]
        if self.title is not None:
            out.append(f"i={self.title}")
        out += [f"c={c}" for c in self.connections]
        out += [f"b={b}" for b in self.bandwidths]
        if self.key is not None:
            out.append(f"k={self.key}")
        out += [f"a={a}" for a in self.attributes]
        return out


@dataclass(frozen=True)
class SessionDescription:
    """A whole session description (RFC 4566 §5)."""

    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    connection: Connection | None = None
    bandwidths: tuple[str, ...] = ()
    times: tuple[Timing, ...] = (Timing(),)
    timezones: str | None = None
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()

    def get(self, name: str) -> str | None:
        attr = _find(self.attributes, name)
        if attr is None:
            return None
        return "" if attr.value is None else attr.value

    def has(self, name: str) -> bool:
        return _find(self.attributes, name) is not None

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """Media-level ``c=`` wins over the session-level one (RFC 4566 §5.7)."""
        return media.connection or self.connection

    def lines(self) -> list[str]:
        out = ["v=0", f"o={self.origin}", f"s={self.session_name}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out += [f"e={e}" for e in self.emails]
        out += [f"p={p}" for p in self.phones]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"b={b}" for b in self.bandwidths]
        for t in self.times:
            out.append(f"t={t.start} {t.stop}")
            out += [f"r={r}" for r in t.repeats]
        if self.timezones is not None:
            out.append(f"z={self.timezones}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out += [f"a={a}" for a in self.attributes]
        for m in self.media:
            out += m.lines()
        return out

    def __str__(self) -> str:
        return "".join(line + "\r\n" for line in self.lines())

    def to_bytes(self) -> bytes:
        """RFC 4566 §5: lines end with CRLF; text is UTF-8."""
        return str(self).encode("utf-8")


def _int(text: str, where: str, what: str, upper: int | None = None) -> int:
    if not text.isdigit() or not text.isascii():
        raise SdpError(f"{what} must be a non-negative integer", status=400, where=where)
    value = int(text)
    if upper is not None and value > upper:
        raise SdpError(f"{what} out of range", status=400, where=where)
    return value


def _parse_media_line(value: str, where: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError("m= needs <media> <port> <proto> [<fmt> ...]", status=400, where=where)
    media, port_text, proto = parts[0], parts[1], parts[2]
    port_str, slash, count_str = port_text.partition("/")
    port = _int(port_str, where, "m= port", 65535)
    count = _int(count_str, where, "m= port count", 65535) if slash else None
    return MediaDescription(media=media, port=port, proto=proto, formats=tuple(parts[3:]),
                            port_count=count)


class _MediaBuilder:
    """Collects the lines of one media section while parsing (local to one parse call)."""

    def __init__(self, base: MediaDescription) -> None:
        self.base = base
        self.single: dict[str, str] = {}
        self.connections: list[Connection] = []
        self.bandwidths: list[str] = []
        self.attributes: list[Attribute] = []

    def add(self, letter: str, value: str, where: str) -> None:
        if letter not in _MEDIA_LETTERS:
            raise SdpError(f"'{letter}=' not allowed in a media section", status=400, where=where)
        if letter == "c":
            self.connections.append(Connection.parse(value, where=where))
        elif letter == "b":
            self.bandwidths.append(value)
        elif letter == "a":
            self.attributes.append(Attribute.parse(value, where=where))
        elif letter in self.single:
            raise SdpError(f"duplicate '{letter}=' in media section", status=400, where=where)
        else:
            self.single[letter] = value

    def build(self) -> MediaDescription:
        return replace(
            self.base,
            title=self.single.get("i"),
            connections=tuple(self.connections),
            bandwidths=tuple(self.bandwidths),
            key=self.single.get("k"),
            attributes=tuple(self.attributes),
        )


def parse_sdp(data: bytes | str, limits: SdpLimits = SdpLimits()) -> SessionDescription:  # noqa: B008
    """Parse a session description; raise :class:`SdpError` (400) on malformed input."""
    if isinstance(data, bytes):
        if len(data) > limits.max_size:
            raise SdpError("SDP body too large", status=400, where=f"byte {limits.max_size}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            # RFC 4566 §5: text fields are UTF-8 (default charset) - anything else we refuse.
            where = f"byte {exc.start}"
            raise SdpError("SDP is not valid UTF-8", status=400, where=where) from None
    else:
        text = data
        if len(text) > limits.max_size:
            raise SdpError("SDP body too large", status=400)
    raw_lines = text.split("\n")
    if len(raw_lines) > limits.max_lines:
        raise SdpError("too many SDP lines", status=400)
    lines: list[tuple[int, str, str]] = []
    for number, raw in enumerate(raw_lines, start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if line == "":
            continue  # tolerate blank lines (trailing CRLF, double line ends)
        where = f"line {number}"
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise SdpError("expected <type>=<value>", status=400, where=where)
        if "\r" in line or "\x00" in line:
            raise SdpError("control character in SDP line", status=400, where=where)
        lines.append((number, line[0], line[2:]))
    if not lines:
        raise SdpError("empty SDP", status=400)
    number, letter, value = lines[0]
    if letter != "v" or value.strip() != "0":
        # RFC 4566 §5.1: "v=0" is the first line; there is no minor version number.
        raise SdpError("SDP must start with v=0", status=400, where=f"line {number}")

    session: dict[str, str] = {}
    origin: Origin | None = None
    conn: Connection | None = None
    emails: list[str] = []
    phones: list[str] = []
    bandwidths: list[str] = []
    times: list[Timing] = []
    attributes: list[Attribute] = []
    media: list[MediaDescription] = []
    current: _MediaBuilder | None = None

    for number, letter, value in lines[1:]:
        where = f"line {number}"
        if letter == "m":
            if current is not None:
                media.append(current.build())
            if len(media) >= limits.max_media:
                raise SdpError("too many m= lines", status=400, where=where)
            current = _MediaBuilder(_parse_media_line(value, where))
            continue
        if current is not None:
            current.add(letter, value, where)
            continue
        if letter not in _SESSION_LETTERS or letter == "v":
            raise SdpError(f"unknown or misplaced type letter '{letter}'", status=400, where=where)
        if letter == "o":
            if origin is not None:
                raise SdpError("duplicate o=", status=400, where=where)
            origin = Origin.parse(value, where=where)
        elif letter == "c":
            if conn is not None:
                raise SdpError("duplicate session c=", status=400, where=where)
            conn = Connection.parse(value, where=where)
        elif letter == "t":
            parts = value.split()
            if len(parts) != 2:
                raise SdpError("t= needs <start> <stop>", status=400, where=where)
            start = _int(parts[0], where, "t= start")
            times.append(Timing(start, _int(parts[1], where, "t= stop")))
        elif letter == "r":
            if not times:
                raise SdpError("r= without t=", status=400, where=where)
            times[-1] = replace(times[-1], repeats=(*times[-1].repeats, value))
        elif letter == "e":
            emails.append(value)
        elif letter == "p":
            phones.append(value)
        elif letter == "b":
            bandwidths.append(value)
        elif letter == "a":
            attributes.append(Attribute.parse(value, where=where))
        else:  # s i u z k
            if letter in session:
                raise SdpError(f"duplicate '{letter}='", status=400, where=where)
            session[letter] = value
    if current is not None:
        media.append(current.build())
    if origin is None:
        raise SdpError("missing o= line", status=400, where="o=")  # RFC 4566 §5.2 (required)
    name = session.get("s")
    if name is None:
        raise SdpError("missing s= line", status=400, where="s=")  # RFC 4566 §5.3 (required)
    return SessionDescription(
        origin=origin,
        session_name=name,
        information=session.get("i"),
        uri=session.get("u"),
        emails=tuple(emails),
        phones=tuple(phones),
        connection=conn,
        bandwidths=tuple(bandwidths),
        # RFC 4566 §5.9 requires t=; we tolerate its absence and assume "t=0 0".
        times=tuple(times) if times else (Timing(),),
        timezones=session.get("z"),
        key=session.get("k"),
        attributes=tuple(attributes),
        media=tuple(media),
    )
