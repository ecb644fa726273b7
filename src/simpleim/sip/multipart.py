"""multipart/mixed bodies (RFC 2046 §5.1, RFC 5621 for SIP).

Used for SDP + message/cpim and for the base64 file icon in RCS file transfer.
Parts are binary-safe: they are delimited only by ``CRLF--boundary`` (RFC 4475 §3.1.1.11).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from simpleim.errors import ContentError
from simpleim.sip._abnf import FOLD_RE, TOKEN_RE
from simpleim.sip.headers import Headers, MediaType

__all__ = ["MultipartPart", "parse_multipart", "build_multipart", "make_boundary"]

# RFC 2046 §5.1.1: boundary := 0*69<bchars> bcharsnospace
_BOUNDARY_RE = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


@dataclass(slots=True)
class MultipartPart:
    """One body part: its MIME headers and its content."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @classmethod
    def create(cls, content_type: str, body: bytes,
               headers: Iterable[tuple[str, str]] = ()) -> MultipartPart:
        h = Headers([("Content-Type", content_type)])
        for name, value in headers:
            h.add(name, value)
        return cls(h, body)

    @property
    def media_type(self) -> MediaType | None:
        v = self.headers.get("Content-Type")
        return MediaType.parse(v) if v is not None else None

    @property
    def content_type(self) -> str | None:
        """Bare media type, lowercased; RFC 2046 §5.1 default is text/plain."""
        mt = self.media_type
        return mt.mime if mt is not None else "text/plain"

    def to_bytes(self) -> bytes:
        head = "".join(f"{n}: {v}\r\n" for n, v in self.headers)
        return head.encode("utf-8", "surrogateescape") + b"\r\n" + self.body


def make_boundary(parts: Sequence[MultipartPart], seed: str = "simpleim") -> str:
    """A boundary that occurs in none of the parts (deterministic: no randomness needed)."""
    n = 0
    while True:
        b = f"{seed}-{n:08x}-boundary"
        marker = b"--" + b.encode("ascii")
        if not any(marker in p.body or marker in p.to_bytes() for p in parts):
            return b
        n += 1


def build_multipart(parts: Sequence[MultipartPart], boundary: str | None = None,
                    subtype: str = "mixed") -> tuple[bytes, str]:
    """Serialize ``parts``; returns (body, Content-Type value with the boundary)."""
    if boundary is None:
        boundary = make_boundary(parts)
    if not _BOUNDARY_RE.fullmatch(boundary):
        raise ContentError(f"bad boundary {boundary!r}", status=400, where="boundary")
    delim = b"--" + boundary.encode("ascii")
    out = bytearray()
    for p in parts:
        out += delim + b"\r\n" + p.to_bytes() + b"\r\n"
    out += delim + b"--\r\n"
    value = boundary if TOKEN_RE.fullmatch(boundary) else f'"{boundary}"'
    return bytes(out), f"multipart/{subtype};boundary={value}"


def parse_multipart(body: bytes, boundary: str) -> list[MultipartPart]:
    """Split a multipart body (RFC 2046 §5.1.1): preamble and epilogue are dropped.

    Raises :class:`ContentError` 400 when the boundary is absent or unterminated.
    """
    if not boundary or not _BOUNDARY_RE.fullmatch(boundary):
        raise ContentError(f"bad boundary {boundary!r}", status=400, where="boundary")
    delim = b"--" + boundary.encode("ascii")
    # The first delimiter may start the body; later ones are preceded by CRLF.
    if body.startswith(delim):
        pos = 0
    else:
        pos = body.find(b"\r\n" + delim)
        if pos < 0:
            raise ContentError("multipart boundary not found", status=400, where="multipart")
        pos += 2
    parts: list[MultipartPart] = []
    sep = b"\r\n" + delim
    while True:
        after = pos + len(delim)
        if body.startswith(b"--", after):
            return parts  # close-delimiter
        # transport-padding (LWSP) then CRLF
        eol = body.find(b"\r\n", after)
        if eol < 0 or body[after:eol].strip(b" \t"):
            raise ContentError("bad multipart delimiter line", status=400, where="multipart")
        start = eol + 2
        # the CRLF ending the delimiter line may also start the next one (empty part)
        nxt = body.find(sep, start - 2)
        if nxt < 0:
            raise ContentError("unterminated multipart body", status=400, where="multipart")
        chunk = body[start:nxt] if nxt >= start else b""
        parts.append(_parse_part(chunk))
        pos = nxt + 2


def _parse_part(chunk: bytes) -> MultipartPart:
    # RFC 2046 §5.1: body-part := MIME-part-headers [CRLF *OCTET]; no headers -> starts with CRLF
    if not chunk:
        return MultipartPart(Headers(), b"")
    if chunk.startswith(b"\r\n"):
        return MultipartPart(Headers(), chunk[2:])
    end = chunk.find(b"\r\n\r\n")
    if end < 0:
        head, content = chunk, b""
    else:
        head, content = chunk[:end], chunk[end + 4 :]
    text = head.decode("utf-8", "surrogateescape")
    if "\r\n " in text or "\r\n\t" in text:
        text = FOLD_RE.sub(" ", text)
    headers = Headers()
    for line in text.split("\r\n"):
        name, colon, value = line.partition(":")
        name = name.strip(" \t")
        if not colon or not TOKEN_RE.fullmatch(name):
            raise ContentError(f"bad part header {line[:40]!r}", status=400, where="multipart")
        if "\r" in value or "\n" in value:
            # a bare CR or LF inside a part header (found by the fuzz campaign: it used to
            # escape as LocalProtocolError 500 from Headers.add)
            raise ContentError(f"CR/LF inside part header {name}", status=400,
                               where="multipart")
        headers.add(name, value.strip(" \t"))
    return MultipartPart(headers, content)
