"""Content-Encoding of message bodies (RFC 3261 §20.12, RFC 9110 §8.4).

liblinphone compresses the IMDNs it sends with ``Content-Encoding: deflate``
(zlib format).  We inflate with a hard cap on the output size, so a
decompression bomb costs at most ``max_size`` bytes and raises
:class:`ContentError` 413.  An unknown coding raises
:class:`UnsupportedEncodingError` (415) carrying the ``Accept-Encoding`` value
to answer with (RFC 3261 §21.4.16: a 415 for an unsupported encoding lists the
ones we understand in Accept-Encoding).
"""

from __future__ import annotations

import zlib

from simpleim.errors import ContentError

__all__ = [
    "ACCEPT_ENCODING",
    "DEFAULT_MAX_INFLATED",
    "UnsupportedEncodingError",
    "decode_body",
    "encode_body",
]

#: The codings we decode, in the form of an Accept-Encoding header value.
ACCEPT_ENCODING = "identity, deflate, gzip"
DEFAULT_MAX_INFLATED = 1024 * 1024
_SUPPORTED = ("identity", "deflate", "gzip", "x-gzip")


class UnsupportedEncodingError(ContentError):
    """415 Unsupported Media Type for a Content-Encoding we cannot decode."""

    def __init__(self, coding: str, *, accept_encoding: str = ACCEPT_ENCODING) -> None:
        super().__init__(f"unsupported Content-Encoding {coding!r}", status=415,
                         where="Content-Encoding")
        self.coding = coding
        self.accept_encoding = accept_encoding


def _inflate(data: bytes, wbits: int, max_size: int) -> bytes:
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(data, max_size + 1)
    except zlib.error as exc:
        raise ContentError(f"corrupt compressed body ({exc})", status=400,
                           where="Content-Encoding") from None
    if len(out) > max_size or d.unconsumed_tail:
        raise ContentError(f"inflated body exceeds {max_size} bytes", status=413,
                           where="Content-Encoding")
    if not d.eof:
        raise ContentError("truncated compressed body", status=400, where="Content-Encoding")
    return out


def _decode_one(coding: str, data: bytes, max_size: int) -> bytes:
    if coding == "identity":
        return data
    if coding == "deflate":
        # "deflate" is the zlib format (RFC 1950); some peers send raw deflate (RFC 1951).
        try:
            return _inflate(data, zlib.MAX_WBITS, max_size)
        except ContentError as exc:
            if exc.status == 413:
                raise
            return _inflate(data, -zlib.MAX_WBITS, max_size)
    if coding in ("gzip", "x-gzip"):
        return _inflate(data, 16 + zlib.MAX_WBITS, max_size)
    raise UnsupportedEncodingError(coding)


def decode_body(body: bytes, content_encoding: str | None, *,
                max_size: int = DEFAULT_MAX_INFLATED) -> bytes:
    """Undo ``Content-Encoding`` (a comma list, applied in order, so undone in reverse)."""
    if content_encoding is None:
        return body
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in codings:
        if coding not in _SUPPORTED:
            raise UnsupportedEncodingError(coding)
    for coding in reversed(codings):
        body = _decode_one(coding, body, max_size)
    return body


def encode_body(body: bytes, coding: str = "deflate") -> bytes:
    """Compress ``body`` for ``Content-Encoding: coding`` (deflate = zlib format)."""
    if coding == "identity":
        return body
    if coding == "deflate":
        return zlib.compress(body)
    if coding == "gzip":
        c = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        return c.compress(body) + c.flush()
    raise UnsupportedEncodingError(coding)
