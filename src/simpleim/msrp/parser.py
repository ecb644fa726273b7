"""Incremental MSRP stream parser (RFC 4975 §9 framing), sans-I/O.

Feed it bytes split anywhere; it returns events:

* :class:`MessageHead` - start line + headers parsed (``has_body`` tells whether data follows),
* :class:`BodyChunk`   - a piece of body data, emitted as it arrives (never the whole body),
* :class:`MessageEnd`  - the end-line ``-------<tid><flag>`` was seen.

The body is delimited **only** by its end-line (``CRLF "-------" transact-id flag CRLF``), never
by Byte-Range: RFC 4975's own examples (§7.1.1 "Hi, I'm Alice!" 1-16/16 for 14 bytes) and
interrupted chunks (``Byte-Range: n-*/t``) show Byte-Range cannot frame a body.  Header sizes are
bounded (:class:`MsrpLimits`); an over-long head raises ``MsrpParseError(status=413)``, anything
malformed ``MsrpParseError(status=400)``.  After an error the stream cannot be resynchronised:
the connection must be closed (the parser stays failed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from simpleim.errors import MsrpParseError
from simpleim.msrp.message import (
    _HNAME,
    METHOD_RE,
    TID_RE,
    MsrpMessage,
    MsrpRequest,
    MsrpResponse,
    _trusted_request,
    _trusted_response,
)

__all__ = [
    "MsrpLimits",
    "MessageHead",
    "BodyChunk",
    "MessageEnd",
    "ParserEvent",
    "MsrpParser",
    "parse_stream",
]

_HEAD, _BODY, _FAILED = 0, 1, 2
# Fast path of the start line (one C-level regex match instead of decode/split/checks);
# anything it does not match goes through the detailed checks, which raise the precise error.
# §9: req-start = pMSRP SP transact-id SP method CRLF; resp-start = pMSRP SP transact-id SP
# status-code [SP comment] CRLF (comment = utf8text, no control characters here).
_START_FAST = re.compile(
    rb"MSRP ([A-Za-z0-9][A-Za-z0-9.\-+%=]{3,31}) (?:([A-Z]+)|([0-9]{3})(?: ([\x20-\x7f]*))?)")
# The usual transaction response (§7.2: To-Path, From-Path, nothing else), matched as a whole:
# start line, the two paths and the end-line with the same transaction id (backreference).
_RESP_FAST = re.compile(
    rb"MSRP ([A-Za-z0-9][A-Za-z0-9.\-+%=]{3,31}) ([0-9]{3})(?: ([\x20-\x7e]*))?\r\n"
    rb"To-Path: ?([\x21-\x7e][\x20-\x7e]*)\r\nFrom-Path: ?([\x21-\x7e][\x20-\x7e]*)\r\n"
    rb"-------\1\$\r\n")
_FLAGS = frozenset(b"$+#")
_KNOWN = frozenset({"To-Path", "From-Path", "Message-ID", "Byte-Range", "Success-Report",
                    "Failure-Report", "Status", "Content-Type", "Expires", "Use-Path"})


@dataclass(frozen=True, slots=True)
class MsrpLimits:
    """Hard limits on the head of a message (start line + headers)."""

    max_line: int = 8192        # one start/header line, without CRLF
    max_head: int = 32768       # the whole head
    max_headers: int = 64       # header fields in one message


@dataclass(slots=True)
class MessageHead:
    message: MsrpMessage
    has_body: bool


@dataclass(slots=True)
class BodyChunk:
    """Body bytes (a ``memoryview`` of the input when possible: consume it, don't keep it)."""

    tid: str
    data: bytes | memoryview


@dataclass(slots=True)
class MessageEnd:
    tid: str
    flag: str


ParserEvent = MessageHead | BodyChunk | MessageEnd


class MsrpParser:
    """Byte stream -> events.  One parser per connection.

    Input is scanned in place (``bytes.find`` for the end-line, no per-byte Python loop); body
    events are zero-copy ``memoryview`` slices of the input when possible.  Only a small
    remainder (a partial head, or the last few bytes that could start an end-line) is carried
    over to the next :meth:`feed`.
    """

    __slots__ = ("_limits", "_carry", "_state", "_scan", "_msg", "_marker", "_virtual",
                 "_consumed", "_error", "_tid", "_fast_limit", "_at")

    def __init__(self, limits: MsrpLimits | None = None) -> None:
        self._limits = limits or MsrpLimits()
        self._carry = b""
        self._state = _HEAD
        self._scan = 0              # head: offset (from the message start) of the next line
        self._msg: MsrpMessage | None = None
        self._marker = b""
        self._virtual = 0           # body: leading carried bytes that are not body (CRLF)
        self._consumed = 0          # stream offset of the carry's first byte
        self._at = 0                # offset in the work buffer of the message being parsed
        self._error: MsrpParseError | None = None
        self._tid: str | None = None
        lim = self._limits
        # a message no longer than this satisfies every limit (fast paths need no checks)
        self._fast_limit = min(lim.max_line, lim.max_head) if lim.max_headers >= 2 else 0

    @property
    def current_tid(self) -> str | None:
        """Transaction id of the message being parsed (to answer an error), if known."""
        return self._tid

    @property
    def idle(self) -> bool:
        """True between messages with nothing buffered (a clean place to close)."""
        return self._state == _HEAD and not self._carry and self._msg is None

    @property
    def error(self) -> MsrpParseError | None:
        """The error that failed the stream, if any (see :meth:`feed`)."""
        return self._error

    def feed(self, data: bytes | bytearray | memoryview) -> list[ParserEvent]:
        """Parse ``data``; returns the events of everything before a framing error.

        When the input holds complete messages followed by garbage, the messages' events are
        returned and the error is kept: :attr:`error` is set and every later call raises it.
        When nothing preceded the error, it is raised at once.  The error's ``where`` names
        the stream offset of the bad data.
        """
        if self._error is not None:
            raise self._error
        events: list[ParserEvent] = []
        if not data:
            return events
        if not isinstance(data, bytes):
            data = bytes(data)
        try:
            carry = self._carry
            if carry and self._state == _BODY and len(data) > len(self._marker) + 2:
                # Emit the carried body bytes first unless an end-line may start in them;
                # then the new data is scanned in place instead of being copied after them.
                m = len(self._marker) + 2
                if (carry + data[:m]).find(self._marker) < 0:
                    if len(carry) > self._virtual:
                        events.append(BodyChunk(self._tid or "", carry[self._virtual:]))
                    self._consumed += len(carry)
                    self._virtual = 0
                    carry = b""
            work = carry + data if carry else data
            pos = self._run(work, events)
            self._carry = work[pos:]
            self._consumed += pos
        except MsrpParseError as exc:
            self._state = _FAILED
            self._error = exc
            if not events:
                raise
        return events

    # ------------------------------------------------------------------ internals
    def _fail(self, reason: str, where: str, status: int = 400,
              at: int | None = None) -> MsrpParseError:
        """``at``: offset in the current work buffer of the bad data (default: the start of
        the message being parsed); reported as a stream offset."""
        off = self._consumed + (self._at if at is None else at)
        return MsrpParseError(reason, status=status, where=f"{where} (byte {off})")

    def _run(self, work: bytes, events: list[ParserEvent]) -> int:
        pos = 0
        while pos < len(work) or self._state == _BODY:
            self._at = pos
            if self._state == _HEAD:
                new = self._parse_head(work, pos, events)
            else:
                new = self._parse_body(work, pos, events)
            if new < 0:
                return -new - 1
            pos = new
        return pos

    # A parse step returns the new position (>= 0) when it completed a part, or ``-pos - 1``
    # when it needs more data (``pos`` = where to keep the data from).
    def _parse_head(self, work: bytes, pos: int, events: list[ParserEvent]) -> int:
        lim = self._limits
        if self._msg is None:
            m = _RESP_FAST.match(work, pos)
            if m is not None and m.end() - pos <= self._fast_limit:
                tid_b, code, comment_b, to_b, from_b = m.groups()
                tid = tid_b.decode("ascii")
                resp = _trusted_response(tid, int(code),
                                         None if comment_b is None else comment_b.decode("ascii"))
                resp.headers._items += [("To-Path", to_b.decode("ascii").rstrip(" ")),
                                        ("From-Path", from_b.decode("ascii").rstrip(" "))]
                events.append(MessageHead(resp, False))
                events.append(MessageEnd(tid, "$"))
                return m.end()
            if work[pos: pos + 5] != b"MSRP "[: len(work) - pos]:
                raise self._fail("stream does not start with 'MSRP '", "start-line")
            idx = work.find(b"\r\n", pos, pos + lim.max_line + 2)
            if idx < 0:
                if len(work) - pos > lim.max_line:
                    raise self._fail("start line too long", "start-line", 413)
                return -pos - 1
            self._msg = self._start_line(work[pos:idx])
            self._scan = idx + 2 - pos
        msg = self._msg
        marker = self._marker
        # The head ends with an empty line (a body follows) or with the end-line (no body).
        s = pos + self._scan - 2
        limit = pos + lim.max_head + 4
        if isinstance(msg, MsrpResponse):
            e_body = -1     # responses have no body (§9): only the end-line ends them
            e_end = work.find(marker, s, limit)
        else:
            e_body = work.find(b"\r\n\r\n", s, limit)
            e_end = work.find(marker, s, limit if e_body < 0 else e_body + 2)
        if e_end >= 0:
            stop = e_end + len(marker)
            if len(work) < stop + 3:
                return -pos - 1
            flag = work[stop]
            if flag not in _FLAGS or work[stop + 1: stop + 3] != b"\r\n":
                raise self._fail("malformed end-line", "end-line", at=e_end + 2)
            self._headers(work, pos, e_end, msg)
            events.append(MessageHead(msg, False))
            events.append(MessageEnd(msg.tid, chr(flag)))
            self._reset_head()
            return stop + 3
        if e_body >= 0:
            self._headers(work, pos, e_body, msg)
            events.append(MessageHead(msg, True))
            self._virtual = 2          # work[e_body+2:e_body+4] is the blank line's CRLF
            self._state = _BODY
            return e_body + 2
        if isinstance(msg, MsrpResponse) and work.find(b"\r\n\r\n", s, limit) >= 0:
            raise self._fail("a response cannot carry a body (RFC 4975 §9)", "body")
        if len(work) - pos > lim.max_head:
            raise self._fail("message head too large", "header", 413)
        last = work.rfind(b"\r\n", pos)
        if len(work) - max(last, s) > lim.max_line:
            raise self._fail("line too long", "header", 413)
        return -pos - 1

    def _headers(self, work: bytes, pos: int, end: int, msg: MsrpMessage) -> None:
        """Parse the header lines ``work[pos+scan:end]`` into ``msg.headers``."""
        lim = self._limits
        start = pos + self._scan
        if end - pos > lim.max_head:
            raise self._fail("message head too large", "header", 413)
        if end <= start:
            return
        try:
            block = work[start:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._fail("header is not UTF-8", "header") from exc
        lines = block.split("\r\n")
        nl = len(lines) - 1
        if (len(block) <= lim.max_line and nl < lim.max_headers and "\x00" not in block
                and block.count("\r") == nl and block.count("\n") == nl):
            # Fast path: no line can be too long, no CR/LF/NUL inside a line (C-level checks).
            items = msg.headers._items
            for line in lines:
                name, colon, value = line.partition(":")
                if not colon or (name not in _KNOWN and not _HNAME.fullmatch(name)):
                    raise self._fail(f"bad header line {line[:40]!r}", "header")
                items.append((name, value.strip(" \t")))
            return
        if len(lines) > lim.max_headers:
            raise self._fail("too many header fields", "header", 413)
        items = msg.headers._items
        for line in lines:
            if len(line) > lim.max_line:
                raise self._fail("line too long", "header", 413)
            name, colon, value = line.partition(":")
            if not colon or (name not in _KNOWN and not _HNAME.fullmatch(name)):
                raise self._fail(f"bad header line {line[:40]!r}", "header")
            if "\r" in value or "\n" in value or "\x00" in value:
                raise self._fail(f"control character in {name}", name)
            # §9: header = hname ":" SP hval -- tolerate missing or extra whitespace.
            items.append((name, value.strip(" \t")))

    def _reset_head(self) -> None:
        self._scan = 0
        self._msg = None
        self._tid = None
        self._virtual = 0
        self._state = _HEAD

    def _start_line(self, line: bytes) -> MsrpMessage:
        m = _START_FAST.fullmatch(line)
        if m is not None:
            tid_b, method, code, comment_b = m.groups()
            tid = tid_b.decode("ascii")
            self._tid = tid
            self._marker = b"\r\n-------" + tid_b
            if method is not None:
                return _trusted_request(tid, method.decode("ascii"))
            comment = None if comment_b is None else comment_b.decode("ascii")
            return _trusted_response(tid, int(code), comment)
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError as exc:
            raise self._fail("non-ASCII start line", "start-line") from exc
        parts = text.split(" ", 3)
        if len(parts) < 3 or parts[0] != "MSRP":
            raise self._fail("bad start line", "start-line")
        tid = parts[1]
        if not TID_RE.fullmatch(tid):
            raise self._fail(f"bad transaction id {tid!r}", "start-line")
        self._tid = tid
        self._marker = b"\r\n-------" + tid.encode("ascii")
        third = parts[2]
        if len(third) == 3 and third.isdigit():
            comment = parts[3] if len(parts) == 4 else None
            if comment is not None and any(ord(c) < 32 for c in comment):
                raise self._fail("control character in comment", "start-line")
            return _trusted_response(tid, int(third), comment)
        if len(parts) != 3 or not METHOD_RE.fullmatch(third):
            raise self._fail(f"bad method {third!r}", "start-line")
        return _trusted_request(tid, third)

    def _parse_body(self, work: bytes, pos: int, events: list[ParserEvent]) -> int:
        marker = self._marker
        mlen = len(marker)
        tid = self._tid or ""
        start = pos
        view = memoryview(work)
        while True:
            body_from = pos + self._virtual
            idx = work.find(marker, start)
            if idx < 0:
                cut = len(work) - (mlen + 2)
                if cut > body_from:
                    events.append(BodyChunk(tid, view[body_from:cut]))
                    self._virtual = 0
                    return -cut - 1
                return -pos - 1
            if len(work) < idx + mlen + 3:
                # end-line candidate not complete yet: emit what precedes it, wait.
                if idx > body_from:
                    events.append(BodyChunk(tid, view[body_from:idx]))
                    self._virtual = 0
                    return -idx - 1
                return -pos - 1
            flag = work[idx + mlen]
            if flag in _FLAGS and work[idx + mlen + 1: idx + mlen + 3] == b"\r\n":
                if idx > body_from:
                    events.append(BodyChunk(tid, view[body_from:idx]))
                events.append(MessageEnd(tid, chr(flag)))
                self._reset_head()
                return idx + mlen + 3
            # "-------tid" followed by something else is body data, not an end-line (§9).
            start = idx + 1


def parse_stream(data: bytes, limits: MsrpLimits | None = None) -> list[MsrpMessage]:
    """Parse complete messages from ``data`` (bodies joined).  Trailing partial data is an error."""
    parser = MsrpParser(limits)
    out: list[MsrpMessage] = []
    parts: list[bytes | memoryview] = []
    has_body = False
    for ev in parser.feed(data):
        if isinstance(ev, MessageHead):
            out.append(ev.message)
            parts = []
            has_body = ev.has_body
        elif isinstance(ev, BodyChunk):
            parts.append(ev.data)
        else:
            msg = out[-1]
            if isinstance(msg, MsrpRequest):
                msg.flag = ev.flag
                if has_body:
                    msg.body = b"".join(parts)
    if parser.error is not None:
        raise parser.error
    if not parser.idle:
        raise MsrpParseError("truncated MSRP stream", where="end of data")
    return out
