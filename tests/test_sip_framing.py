"""StreamFramer: SIP over TCP/TLS framing (RFC 3261 §18.3) and CRLF keep-alives (RFC 5626)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simpleim.errors import ContentError, SipParseError
from simpleim.sip import (
    KeepAlive,
    MultipartPart,
    SipFramingError,
    SipLimits,
    StreamFramer,
    build_multipart,
    parse_message,
    parse_multipart,
)

DIR = Path(__file__).parent / "vectors" / "sip" / "rfc4475"

M1 = (b"MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
      b"Content-Length: 5\r\n\r\nhello")
M2 = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl:0\r\n\r\n")


def test_messages_split_and_joined() -> None:
    f = StreamFramer()
    assert f.feed(M1 + M2) == [M1, M2]
    assert f.at_boundary
    stream = M1 + M2 + M1
    out: list[bytes | KeepAlive] = []
    for i in range(len(stream)):  # byte by byte
        out += f.feed(stream[i : i + 1])
    assert out == [M1, M2, M1] and f.buffered == 0
    assert parse_message(M1).body == b"hello"


def test_keepalives() -> None:
    f = StreamFramer()
    out = f.feed(b"\r\n\r\n" + M1 + b"\r\n" + M2)
    assert out == [KeepAlive(True), M1, KeepAlive(False), M2]
    assert out[0].pong_needed and not out[2].pong_needed  # type: ignore[union-attr]
    # a ping split over two reads
    assert f.feed(b"\r\n\r") == []
    assert f.feed(b"\n") == [KeepAlive(True)]
    assert f.feed(b"\r\n") == [KeepAlive(False)]


def test_partial_head_waits() -> None:
    f = StreamFramer()
    assert f.feed(M1[:20]) == [] and f.buffered == 20 and not f.at_boundary
    assert f.feed(M1[20:]) == [M1]


@pytest.mark.parametrize(
    "data",
    [
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n",  # no Content-Length on a stream
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nxx",
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: ten\r\n\r\n",
        b"\n\nOPTIONS sip:a@b SIP/2.0\r\n",
        b"\r\n\rX",
    ],
)
def test_fatal_framing_errors(data: bytes) -> None:
    f = StreamFramer()
    with pytest.raises(SipFramingError) as info:
        f.feed(data)
    assert isinstance(info.value, SipParseError) and info.value.status == 400
    with pytest.raises(SipFramingError):  # the stream stays broken
        f.feed(M1)


def test_torture_vectors_on_a_stream() -> None:
    for name in ("ncl.dat", "mcl01.dat", "inv2543.dat"):
        with pytest.raises(SipFramingError):
            StreamFramer().feed((DIR / name).read_bytes())
    # clerr: Content-Length larger than what arrived -> wait for more (RFC 4475 §3.1.2.2)
    f = StreamFramer()
    assert f.feed((DIR / "clerr.dat").read_bytes()) == [] and f.buffered > 0
    # dblreq on a stream: the REGISTER, a CRLF, then an INVITE whose body is longer than its
    # Content-Length says: the leftover octets cannot be framed (on UDP they are ignored)
    data = (DIR / "dblreq.dat").read_bytes()
    f = StreamFramer()
    cut = data.index(b"INVITE")
    out = f.feed(data[:cut])
    assert len(out) == 2 and out[1] == KeepAlive(False)
    assert parse_message(out[0]).cseq.method == "REGISTER"  # type: ignore[arg-type]
    with pytest.raises(SipFramingError):
        f.feed(data[cut:])


def test_slow_head_is_not_rescanned() -> None:
    # a head trickling in octet by octet must not be searched from the start every time
    head = b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X-Pad: " + b"p" * 20000 + b"\r\nl: 2\r\n\r\nok"
    f = StreamFramer()
    out: list[bytes | KeepAlive] = []
    for i in range(len(head)):
        out += f.feed(head[i : i + 1])
    assert out == [head]


def test_bounded_buffer() -> None:
    limits = SipLimits(max_message_size=1000, max_body=100)
    f = StreamFramer(limits)
    with pytest.raises(SipFramingError) as info:
        f.feed(b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X-Long: " + b"a" * 2000)
    assert info.value.status == 513
    with pytest.raises(SipFramingError) as info:
        StreamFramer(limits).feed(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 500\r\n\r\n")
    assert info.value.status == 513


# -- multipart/mixed (RFC 2046 §5.1) -------------------------------------------------------------

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
CPIM = (b"From: <sip:a@example.com>\r\nTo: <sip:b@example.com>\r\n\r\n"
        b"Content-Type: text/plain\r\n\r\nhi")


def test_multipart_round_trip() -> None:
    parts = [
        MultipartPart.create("application/sdp", SDP),
        MultipartPart.create("message/cpim", CPIM, [("Content-Disposition", "render")]),
        MultipartPart.create("image/jpeg", b"/9j/4AAQSkZJRg==",
                             [("Content-Transfer-Encoding", "base64"),
                              ("Content-Disposition", "icon"), ("Content-ID", "<1234@h>")]),
    ]
    body, ctype = build_multipart(parts)
    assert ctype.startswith("multipart/mixed;boundary=")
    from simpleim.sip import MediaType

    boundary = MediaType.parse(ctype).boundary
    assert boundary is not None
    again = parse_multipart(body, boundary)
    assert [p.content_type for p in again] == ["application/sdp", "message/cpim", "image/jpeg"]
    assert [p.body for p in again] == [SDP, CPIM, b"/9j/4AAQSkZJRg=="]
    assert again[2].headers.get("Content-ID") == "<1234@h>"


def test_multipart_preamble_epilogue_and_empty_parts() -> None:
    body = (b"preamble\r\n--b\r\n\r\nno headers\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
            b"\r\n--b\r\n\r\n--b--\r\nepilogue")
    parts = parse_multipart(body, "b")
    assert [(p.content_type, p.body) for p in parts] == [
        ("text/plain", b"no headers"), ("text/plain", b""), ("text/plain", b"")]


@pytest.mark.parametrize(
    ("body", "boundary"),
    [(b"--x\r\n\r\nbody", "x"), (b"nothing", "x"), (b"--x\r\nBad header\r\n\r\n\r\n--x--", "x"),
     (b"--x\r\n\r\n--x--", ""), (b"--xjunk\r\n\r\n--x--", "x")],
)
def test_multipart_errors(body: bytes, boundary: str) -> None:
    with pytest.raises(ContentError):
        parse_multipart(body, boundary)
