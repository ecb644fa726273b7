"""RFC 5547 file-transfer media attributes: file-selector, file-transfer-id,
file-disposition, file-date, file-icon and file-range.

Parsing is tolerant of what deployed clients send (selectors in any order,
lower-case hash hex, unquoted ISO dates in ``file-date`` as written by
draft-ietf-mmusic-file-transfer-mech-08 clients such as Mercuro, stray tokens in
the selector list as in the GSMA IR.79 example).  Unknown tokens are kept in
:attr:`FileSelector.extra` so nothing is silently lost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import quote, unquote

from simpleim.errors import SdpError

from .model import Attribute, MediaDescription

__all__ = [
    "FileDate",
    "FileDescription",
    "FileHash",
    "FileRange",
    "FileSelector",
    "FILE_ATTRIBUTE_NAMES",
]

_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.0-9A-Z^_`a-z|~]+$")
_HEX_PAIR_RE = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*$")
_MEDIA_TYPE_RE = re.compile(r"^[!#$%&'*+\-.0-9A-Z^_`a-z|~]+/[!#$%&'*+\-.0-9A-Z^_`a-z|~]+(;.*)?$")


@dataclass(frozen=True)
class FileHash:
    """``hash:<algorithm>:<XX:XX:...>`` (RFC 5547 §6; hash-value is colon-separated upper hex)."""

    algorithm: str
    value: str

    def digest(self) -> bytes:
        """The hash octets; SdpError 400 if the value is not colon-separated hex pairs."""
        if not _HEX_PAIR_RE.match(self.value):
            raise SdpError("file-selector hash is not colon-separated hex", status=400,
                           where="a=file-selector")
        return bytes.fromhex(self.value.replace(":", ""))

    @classmethod
    def from_digest(cls, algorithm: str, digest: bytes) -> FileHash:
        # RFC 5547 §6: "hash-value = 2UHEX *(":" 2UHEX)" - upper-case hex.
        return cls(algorithm, ":".join(f"{b:02X}" for b in digest))

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.value}"


_NAME_ESCAPES: Mapping[str, str] = MappingProxyType(
    {'"': "%22", "%": "%25", "\\": "%5C", "\r": "%0D", "\n": "%0A", "\x00": "%00"})


def _escape_name(name: str) -> str:
    # RFC 5547 §6 filename-char excludes NUL, CR, LF, DQUOTE and "%": pct-encode exactly those.
    return "".join(_NAME_ESCAPES.get(c, c) for c in name)


def _parse_name(text: str, start: int) -> tuple[str, int]:
    """Parse ``"<filename-string>"`` beginning at ``text[start] == '"'``; return (name, end)."""
    i = start + 1
    out: list[str] = []
    while i < len(text):
        c = text[i]
        if c == '"':
            # RFC 5547 §6: the filename is percent-encoded (pct-encoded for '"', '%', CR, LF, NUL).
            return unquote(''.join(out), errors="strict"), i + 1
        if c == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            out.append(quote(text[i + 1], safe=""))  # liberal: accept backslash escapes too
            i += 2
            continue
        out.append(c)
        i += 1
    raise SdpError("unterminated quoted file name", status=400, where="a=file-selector")


@dataclass(frozen=True)
class FileSelector:
    """``a=file-selector`` (RFC 5547 §6): name, type, size, hash - all optional."""

    name: str | None = None
    type: str | None = None
    size: int | None = None
    hashes: tuple[FileHash, ...] = ()
    extra: tuple[str, ...] = ()

    @property
    def hash(self) -> FileHash | None:
        return self.hashes[0] if self.hashes else None

    @classmethod
    def parse(cls, value: str) -> FileSelector:
        where = "a=file-selector"
        name: str | None = None
        ftype: str | None = None
        size: int | None = None
        hashes: list[FileHash] = []
        extra: list[str] = []
        i = 0
        n = len(value)
        while i < n:
            if value[i] == " ":
                i += 1
                continue
            if value.startswith("name:", i):
                if i + 5 >= n or value[i + 5] != '"':
                    raise SdpError("file name must be quoted", status=400, where=where)
                try:
                    name, i = _parse_name(value, i + 5)
                except UnicodeDecodeError:
                    raise SdpError("file name is not UTF-8", status=400, where=where) from None
                continue
            end = value.find(" ", i)
            end = n if end < 0 else end
            token = value[i:end]
            i = end
            key, sep, rest = token.partition(":")
            if key == "size" and sep:
                if not rest.isdigit() or not rest.isascii():
                    raise SdpError("file size must be an integer", status=400, where=where)
                size = int(rest)
            elif key == "type" and sep:
                if not _MEDIA_TYPE_RE.match(rest):
                    raise SdpError("bad file type", status=400, where=where)
                ftype = rest
            elif key == "hash" and sep:
                algo, sep2, hval = rest.partition(":")
                if not sep2 or not _TOKEN_RE.match(algo) or not hval:
                    raise SdpError("bad file hash", status=400, where=where)
                hashes.append(FileHash(algo, hval))
            else:
                extra.append(token)
        return cls(name, ftype, size, tuple(hashes), tuple(extra))

    def __str__(self) -> str:
        parts: list[str] = []
        if self.name is not None:
            # RFC 5547 §6: percent-encode '"', '%', CR, LF and NUL inside the quotes.
            parts.append(f'name:"{_escape_name(self.name)}"')
        if self.type is not None:
            parts.append(f"type:{self.type}")
        if self.size is not None:
            parts.append(f"size:{self.size}")
        parts += [f"hash:{h}" for h in self.hashes]
        parts += list(self.extra)
        return " ".join(parts)

    def matches(self, other: FileSelector) -> bool:
        """RFC 5547 §8.3.2 (pull): each selector present in ``self`` equals ``other``'s."""
        if self.name is not None and self.name != other.name:
            return False
        if self.type is not None and (other.type is None
                                      or self.type.lower() != other.type.lower()):
            return False
        if self.size is not None and self.size != other.size:
            return False
        for h in self.hashes:
            if not any(o.algorithm.lower() == h.algorithm.lower()
                       and o.value.upper() == h.value.upper() for o in other.hashes):
                return False
        return True


@dataclass(frozen=True)
class FileDate:
    """``a=file-date`` (RFC 5547 §6): creation / modification / read dates, kept as text."""

    creation: str | None = None
    modification: str | None = None
    read: str | None = None
    quoted: bool = True

    @classmethod
    def parse(cls, value: str) -> FileDate:
        where = "a=file-date"
        found: dict[str, str] = {}
        quoted = True
        i, n = 0, len(value)
        while i < n:
            if value[i] == " ":
                i += 1
                continue
            key, sep, _ = value[i:].partition(":")
            if not sep or key not in ("creation", "modification", "read") or key in found:
                raise SdpError("bad file-date parameter", status=400, where=where)
            i += len(key) + 1
            if i < n and value[i] == '"':
                end = value.find('"', i + 1)
                if end < 0:
                    raise SdpError("unterminated file-date", status=400, where=where)
                found[key] = value[i + 1:end]
                i = end + 1
            else:
                # draft-08 clients (Mercuro) write an unquoted ISO 8601 date: be liberal.
                end = value.find(" ", i)
                end = n if end < 0 else end
                if end == i:
                    raise SdpError("empty file-date", status=400, where=where)
                found[key] = value[i:end]
                quoted = False
                i = end
        return cls(found.get("creation"), found.get("modification"), found.get("read"), quoted)

    def __str__(self) -> str:
        q = '"' if self.quoted else ""
        parts = [f"{k}:{q}{v}{q}" for k, v in (("creation", self.creation),
                                               ("modification", self.modification),
                                               ("read", self.read)) if v is not None]
        return " ".join(parts)


@dataclass(frozen=True)
class FileRange:
    """``a=file-range:<start>-<stop|*>`` (RFC 5547 §6), 1-based inclusive octets."""

    start: int = 1
    stop: int | None = None

    @classmethod
    def parse(cls, value: str) -> FileRange:
        where = "a=file-range"
        start_s, sep, stop_s = value.strip().partition("-")
        if not sep or not start_s.isdigit() or not start_s.isascii():
            raise SdpError("bad file-range", status=400, where=where)
        start = int(start_s)
        if start < 1:
            raise SdpError("file-range start is 1-based", status=400, where=where)
        if stop_s == "*":
            return cls(start, None)
        if not stop_s.isdigit() or not stop_s.isascii() or int(stop_s) < start:
            raise SdpError("bad file-range stop", status=400, where=where)
        return cls(start, int(stop_s))

    def __str__(self) -> str:
        return f"{self.start}-{'*' if self.stop is None else self.stop}"


@dataclass(frozen=True)
class FileDescription:
    """Every RFC 5547 attribute of one media stream."""

    selector: FileSelector
    transfer_id: str | None = None
    disposition: str | None = None
    date: FileDate | None = None
    icon: str | None = None
    range: FileRange | None = None

    @property
    def icon_cid(self) -> str | None:
        """The Content-ID named by ``a=file-icon:cid:...`` (RFC 5547 §6, RFC 2392)."""
        if self.icon is None or not self.icon.lower().startswith("cid:"):
            return None
        return unquote(self.icon[4:])

    @classmethod
    def from_media(cls, media: MediaDescription) -> FileDescription | None:
        """The file description of ``media``, or None when it has no ``file-selector``."""
        sel = media.get("file-selector")
        if sel is None:
            return None
        tid = media.get("file-transfer-id")
        if tid is not None and not _TOKEN_RE.match(tid):
            raise SdpError("bad file-transfer-id", status=400, where="a=file-transfer-id")
        disp = media.get("file-disposition")
        date = media.get("file-date")
        icon = media.get("file-icon")
        rng = media.get("file-range")
        return cls(
            selector=FileSelector.parse(sel),
            transfer_id=tid,
            disposition=disp or None,
            date=FileDate.parse(date) if date else None,
            icon=icon or None,
            range=FileRange.parse(rng) if rng else None,
        )

    def attributes(self) -> tuple[Attribute, ...]:
        """The ``a=`` lines, in the order RFC 5547 §9 examples use."""
        sel = str(self.selector)
        out = [Attribute("file-selector", sel or None)]
        if self.transfer_id is not None:
            out.append(Attribute("file-transfer-id", self.transfer_id))
        if self.disposition is not None:
            out.append(Attribute("file-disposition", self.disposition))
        if self.date is not None:
            out.append(Attribute("file-date", str(self.date)))
        if self.icon is not None:
            out.append(Attribute("file-icon", self.icon))
        if self.range is not None:
            out.append(Attribute("file-range", str(self.range)))
        return tuple(out)


FILE_ATTRIBUTE_NAMES = frozenset({"file-selector", "file-transfer-id", "file-disposition",
                                  "file-date", "file-icon", "file-range"})
