"""Sans-I/O stream framing of SIP over TCP/TLS (RFC 3261 §18.3, RFC 5626 §3.5.1).

Feed received bytes, get complete messages (as bytes, ready for
:func:`~simpleim.sip.message.parse_message`) and keep-alive notices back::

    framer = StreamFramer()
    for item in framer.feed(chunk):
        if isinstance(item, KeepAlive):
            if item.pong_needed:
                transport.write(b"\\r\\n")
        else:
            msg = parse_message(item, limits)

A :class:`SipFramingError` is fatal: the stream cannot be resynchronised and the
connection must be closed (RFC 4475 §3.1.2.3, §3.3.9).
"""

from __future__ import annotations

from dataclasses import dataclass

from simpleim.errors import SipParseError
from simpleim.sip._abnf import FOLD_RE
from simpleim.sip.message import DEFAULT_LIMITS, SipLimits

__all__ = ["StreamFramer", "KeepAlive", "SipFramingError"]


class SipFramingError(SipParseError):
    """The byte stream cannot be framed any more; close the connection."""


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """CRLF keep-alive seen between messages (RFC 5626 §3.5.1).

    ``ping`` is a double CRLF; the receiver MUST answer it with a single CRLF
    (``pong_needed``).  A single CRLF is a pong (or stray CRLF) and needs no answer.
    """

    ping: bool

    @property
    def pong_needed(self) -> bool:
        return self.ping


_PING = KeepAlive(True)
_PONG = KeepAlive(False)


class StreamFramer:
    """Splits a SIP byte stream into messages by Content-Length.

    The buffer is bounded: a header section longer than ``limits.max_message_size``
    or a body larger than ``limits.max_body`` is a fatal 513.
    """

    __slots__ = ("_buf", "_limits", "_failed", "_scan", "_total")

    def __init__(self, limits: SipLimits = DEFAULT_LIMITS) -> None:
        self._buf = bytearray()
        self._limits = limits
        self._failed: SipFramingError | None = None
        self._scan = 0  # where the search for the end of the head resumes (no rescans)
        self._total = -1  # length of the message being received, once its head is known

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a message."""
        return len(self._buf)

    @property
    def at_boundary(self) -> bool:
        """True when no partial message is buffered (safe to close cleanly)."""
        return not self._buf

    def feed(self, data: bytes) -> list[bytes | KeepAlive]:
        """Add received bytes; return every complete message and keep-alive, in order."""
        if self._failed is not None:
            raise self._failed
        buf = self._buf
        buf += data
        out: list[bytes | KeepAlive] = []
        try:
            while buf:
                if buf[0] in (0x0D, 0x0A):
                    if not self._keepalive(out):
                        break
                    continue
                item = self._message()
                if item is None:
                    break
                out.append(item)
        except SipFramingError as exc:
            self._failed = exc
            buf.clear()
            raise
        return out

    def _keepalive(self, out: list[bytes | KeepAlive]) -> bool:
        # RFC 3261 §7.5: CRLFs before a start-line are ignored; RFC 5626 §3.5.1:
        # CRLFCRLF is a ping (answer with CRLF), a single CRLF a pong.
        buf = self._buf
        if buf.startswith(b"\r\n\r\n"):
            del buf[:4]
            out.append(_PING)
            return True
        if buf.startswith(b"\r\n"):
            if len(buf) == 2 or buf[2] != 0x0D:
                del buf[:2]
                out.append(_PONG)
                return True
            if len(buf) == 3:
                return False  # "\r\n\r" : wait for the last octet
            raise SipFramingError("bare CR between messages", where="framing")
        if len(buf) == 1 and buf[0] == 0x0D:
            return False
        raise SipFramingError("bare CR/LF between messages", where="framing")

    def _message(self) -> bytes | None:
        buf = self._buf
        total = self._total
        if total < 0:
            limits = self._limits
            end = buf.find(b"\r\n\r\n", self._scan)
            if end < 0:
                if len(buf) > limits.max_message_size:
                    raise SipFramingError("header section too large", status=513,
                                          where="framing")
                self._scan = max(0, len(buf) - 3)
                return None
            length = _content_length(bytes(buf[:end]))
            if length > limits.max_body:
                raise SipFramingError(f"body of {length} bytes too large", status=513,
                                      where="Content-Length")
            total = end + 4 + length
            if total > limits.max_message_size:
                raise SipFramingError("message too large", status=513, where="framing")
            self._total = total
        if len(buf) < total:
            return None
        msg = bytes(buf[:total])
        del buf[:total]
        self._total = -1
        self._scan = 0
        return msg


def _content_length(head: bytes) -> int:
    """Content-Length of a header section; mandatory on streams (RFC 3261 §18.3, §20.14)."""
    text = head.decode("latin-1")
    if "\r\n " in text or "\r\n\t" in text:
        text = FOLD_RE.sub(" ", text)
    found: str | None = None
    for line in text.split("\r\n")[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            continue
        low = name.rstrip(" \t").lower()
        if low == "content-length" or low == "l":
            if found is not None:
                # RFC 4475 §3.3.9: conflicting lengths cannot be framed
                raise SipFramingError("multiple Content-Length headers", where="Content-Length")
            found = value.strip(" \t")
    if found is None:
        raise SipFramingError("Content-Length is mandatory on stream transports",
                              where="Content-Length")
    if not found.isdigit() or not found.isascii() or len(found) > 10:
        # RFC 4475 §3.1.2.3: a negative or malformed length is an unrecoverable framing error
        raise SipFramingError(f"bad Content-Length {found[:20]!r}", where="Content-Length")
    return int(found)
