"""MSRP framing: vectors, RFC 4975 example messages, any-split / round-trip / fuzz properties."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simpleim.errors import LocalProtocolError, MsrpParseError
from simpleim.msrp import (
    BodyChunk,
    ByteRange,
    MessageEnd,
    MessageHead,
    MsrpLimits,
    MsrpParser,
    MsrpRequest,
    MsrpResponse,
    MsrpStatus,
    MsrpUri,
    make_request,
    parse_stream,
)
from simpleim.msrp.message import MsrpHeaders

VECTORS = Path(__file__).parent / "vectors" / "msrp"


def crlf(path: Path) -> bytes:
    # The shared vectors are stored LF-only (tests/vectors/msrp/README.md): MSRP needs CRLF.
    return path.read_bytes().replace(b"\n", b"\r\n")


def collect(events: list) -> list:
    out: list = []
    parts: list[bytes] = []
    has_body = False
    for ev in events:
        if isinstance(ev, MessageHead):
            out.append(ev.message)
            parts, has_body = [], ev.has_body
        elif isinstance(ev, BodyChunk):
            parts.append(bytes(ev.data))
        else:
            assert isinstance(ev, MessageEnd)
            msg = out[-1]
            assert msg.tid == ev.tid
            if isinstance(msg, MsrpRequest):
                msg.flag = ev.flag
                if has_body:
                    msg.body = b"".join(parts)
    return out


# --------------------------------------------------------------------------- vectors
def test_vector_send_hi_alice() -> None:
    # RFC 4975 §7.1.1 example; Byte-Range says 1-16/16 but the body is 14 bytes: the body is
    # delimited by the end-line, never by Byte-Range (tests/vectors/msrp/README.md).
    (m,) = parse_stream(crlf(VECTORS / "MsrpRequestMessage1.txt"))
    assert isinstance(m, MsrpRequest)
    assert (m.tid, m.method, m.flag) == ("d93kswow", "SEND", "$")
    assert m.message_id == "12339sdqwer"
    assert m.byte_range == ByteRange(1, 16, 16)
    assert m.content_type == "text/plain"
    assert m.body == b"Hi, I'm Alice!"
    assert m.to_path == [MsrpUri.parse("msrp://bob.example.com:8888/9di4eae923wzd;tcp")]
    assert m.from_path[0].session_id == "iau39soe2843z"
    assert m.success_report is False and m.failure_report == "yes"   # defaults (§7.1.1)


def test_vector_response() -> None:
    (m,) = parse_stream(crlf(VECTORS / "MsrpResponseMessage1.txt"))
    assert isinstance(m, MsrpResponse)
    assert (m.tid, m.status_code, m.comment) == ("dkei38sd", 200, "OK")
    assert m.to_path[0].host == "bob.example.com" and m.from_path[0].port == 7777


def test_vector_report() -> None:
    (m,) = parse_stream(crlf(VECTORS / "MsrpReportRequest1.txt"))
    assert isinstance(m, MsrpRequest) and m.method == "REPORT" and m.body is None
    assert m.status == MsrpStatus(200, "OK", "000")
    assert m.byte_range == ByteRange(1, 106, 106)
    assert m.message_id == "12339sdqwer"


def test_vector_positive_report_send() -> None:
    # Byte-Range 1-106/106 although the (CRLF) body is 121 bytes: the end-line decides.
    (m,) = parse_stream(crlf(VECTORS / "MsrpPositiveReport1.txt"))
    assert isinstance(m, MsrpRequest)
    assert m.success_report is True and m.failure_report == "no"
    assert m.content_type == "text/html"
    assert m.body is not None and len(m.body) == 121
    assert m.body.startswith(b"<html><body>\r\n") and m.body.endswith(b"</body></html>")


def test_vector_nickname_and_unknown_method() -> None:
    (nick,) = parse_stream(crlf(VECTORS / "MsrpNicknameRequest1.txt"))
    assert isinstance(nick, MsrpRequest) and nick.method == "NICKNAME"
    assert nick.headers.get("Use-Nickname") == '"Alice the great"'
    (unk,) = parse_stream(crlf(VECTORS / "MsrpUnknownRequestMethod.txt"))
    assert isinstance(unk, MsrpRequest) and unk.method == "UNKNOWN"   # parses; 501 is later
    assert unk.body == b"Hi, I'm Alice!"


@pytest.mark.parametrize("path", sorted(VECTORS.glob("*.txt")), ids=lambda p: p.name)
def test_vectors_roundtrip_and_every_split(path: Path) -> None:
    data = crlf(path)
    (m,) = parse_stream(data)
    assert m.to_bytes() == data
    for i in range(1, len(data)):
        p = MsrpParser()
        (again,) = collect(p.feed(data[:i]) + p.feed(data[i:]))
        assert again.to_bytes() == data


# --------------------------------------------------------------------------- RFC 4975 text
# RFC 4975 §4 (Protocol Overview): Alice's first SEND and Bob's 200, as printed in the RFC.
RFC4975_S4_SEND = (
    b"MSRP a786hjs2 SEND\r\n"
    b"To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n"
    b"From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n"
    b"Message-ID: 87652491\r\n"
    b"Byte-Range: 1-25/25\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"Hey Bob, are you there?\r\n"
    b"-------a786hjs2$\r\n"
)
RFC4975_S4_200 = (
    b"MSRP a786hjs2 200 OK\r\n"
    b"To-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n"
    b"From-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n"
    b"-------a786hjs2$\r\n"
)
# RFC 4976 §7.1 (AUTH exchange with a relay), shape of the RFC's example.
RFC4976_AUTH = (
    b"MSRP 49fi AUTH\r\n"
    b"To-Path: msrps://alice@intra.example.com;tcp\r\n"
    b"From-Path: msrps://alice.example.com:9892/98cjs;tcp\r\n"
    b"-------49fi$\r\n"
)
RFC4976_AUTH_200 = (
    b"MSRP 49fh 200 OK\r\n"
    b"To-Path: msrps://alice.example.com:9892/98cjs;tcp\r\n"
    b"From-Path: msrps://alice@intra.example.com;tcp\r\n"
    b"Expires: 900\r\n"
    b"Use-Path: msrps://intra.example.com:9000/jui787s2f;tcp\r\n"
    b"-------49fh$\r\n"
)


def test_rfc4975_section4_exchange() -> None:
    (send,) = parse_stream(RFC4975_S4_SEND)
    assert isinstance(send, MsrpRequest)
    # §4 prints Byte-Range 1-25/25 for a 23-byte body: the end-line frames the body.
    assert send.body == b"Hey Bob, are you there?" and send.byte_range == ByteRange(1, 25, 25)
    (ok,) = parse_stream(RFC4975_S4_200)
    assert isinstance(ok, MsrpResponse) and ok.status_code == 200
    assert ok.to_path[0].matches(send.from_path[0])
    assert send.to_bytes() == RFC4975_S4_SEND and ok.to_bytes() == RFC4975_S4_200


def test_rfc4976_auth_shapes() -> None:
    (auth,) = parse_stream(RFC4976_AUTH)
    assert isinstance(auth, MsrpRequest) and auth.method == "AUTH"
    relay = auth.to_path[0]
    assert relay.userinfo == "alice" and relay.port is None and relay.session_id is None
    assert relay.secure and relay.effective_port == 2855
    (ok,) = parse_stream(RFC4976_AUTH_200)
    assert isinstance(ok, MsrpResponse)
    assert ok.expires == 900
    assert ok.use_path == [MsrpUri.parse("msrps://intra.example.com:9000/jui787s2f;tcp")]


def test_chunk_flags_and_star_ranges() -> None:
    # RFC 4975 §5.1/§7.1.1: an interrupted chunk has Byte-Range n-*/total and ends with '+';
    # '#' aborts a message.
    a = make_request("abcd1", "SEND", [MsrpUri.parse("msrp://b.example:1/s1;tcp")],
                     [MsrpUri.parse("msrp://a.example:2/s2;tcp")],
                     [("Message-ID", "m1234"), ("Byte-Range", "1-*/100"),
                      ("Content-Type", "text/plain")], b"x" * 40, "+")
    b = make_request("abcd2", "SEND", [MsrpUri.parse("msrp://b.example:1/s1;tcp")],
                     [MsrpUri.parse("msrp://a.example:2/s2;tcp")],
                     [("Message-ID", "m1234"), ("Byte-Range", "41-60/100"),
                      ("Content-Type", "text/plain")], b"y" * 20, "#")
    msgs = parse_stream(a.to_bytes() + b.to_bytes())
    assert [m.flag for m in msgs if isinstance(m, MsrpRequest)] == ["+", "#"]
    assert msgs[0].byte_range == ByteRange(1, None, 100)
    assert str(msgs[0].byte_range) == "1-*/100"


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("data,status", [
    (b"HTTP/1.1 200 OK\r\n", 400),
    (b"MSRP ab SEND\r\n", 400),                                  # tid too short (§9 ident)
    (b"MSRP abcd send\r\n", 400),                                # method must be UPALPHA
    (b"MSRP abcd SEND\r\nTo-Path msrp://x\r\n-------abcd$\r\n", 400),
    (b"MSRP abcd SEND\r\nX: y\r\n-------abcd!\r\n", 400),       # bad continuation flag
    (b"MSRP abcd 200 OK\r\nX: y\r\n\r\nbody\r\n-------abcd$\r\n", 400),  # response body
    (b"MSRP abcd SEND\r\nX: \xff\r\n-------abcd$\r\n", 400),    # not UTF-8
])
def test_malformed(data: bytes, status: int) -> None:
    with pytest.raises(MsrpParseError) as ei:
        MsrpParser().feed(data)
    assert ei.value.status == status


def test_header_limits_413() -> None:
    lim = MsrpLimits(max_line=100, max_head=300, max_headers=5)
    with pytest.raises(MsrpParseError) as ei:
        MsrpParser(lim).feed(b"MSRP abcd SEND\r\nX: " + b"a" * 200)
    assert ei.value.status == 413
    with pytest.raises(MsrpParseError) as ei:
        MsrpParser(lim).feed(b"MSRP abcd SEND\r\n" + b"X: y\r\n" * 60)
    assert ei.value.status == 413
    p = MsrpParser(lim)
    with pytest.raises(MsrpParseError) as ei:
        p.feed(b"MSRP abcd SEND\r\n" + b"X: y\r\n" * 6 + b"-------abcd$\r\n")
    assert ei.value.status == 413
    with pytest.raises(MsrpParseError):   # a failed parser stays failed (no resync)
        p.feed(b"MSRP abcd SEND\r\n")


def test_body_never_buffered_whole() -> None:
    head = (b"MSRP abcd SEND\r\nTo-Path: msrp://b:1/s;tcp\r\nFrom-Path: msrp://a:2/t;tcp\r\n"
            b"Message-ID: m1234\r\nContent-Type: application/octet-stream\r\n\r\n")
    p = MsrpParser()
    events = p.feed(head)
    got = 0
    for _ in range(100):
        for ev in p.feed(b"z" * 65536):
            if isinstance(ev, BodyChunk):
                got += len(ev.data)
        assert len(p._carry) < 64        # only a possible end-line prefix is kept
    events = p.feed(b"\r\n-------abcd$\r\n")
    got += sum(len(e.data) for e in events if isinstance(e, BodyChunk))
    assert got == 100 * 65536 and isinstance(events[-1], MessageEnd) and p.idle


def test_serializer_guards() -> None:
    uri = MsrpUri.parse("msrp://b:1/s;tcp")
    with pytest.raises(LocalProtocolError):
        make_request("abcd1", "SEND", [uri], [uri], [("Content-Type", "text/plain")],
                     b"a\r\n-------abcd1$\r\n").to_bytes()
    with pytest.raises(LocalProtocolError):
        make_request("abcd1", "SEND", [uri], [uri], [], b"no content type").to_bytes()
    with pytest.raises(LocalProtocolError):
        MsrpHeaders().add("Bad Name", "x")
    with pytest.raises(LocalProtocolError):
        MsrpRequest("a b", MsrpHeaders(), "SEND")


# --------------------------------------------------------------------------- properties
_ident = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.\-+%=]{3,15}", fullmatch=True)
_sid = st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True)
_hval = st.from_regex(r"[A-Za-z0-9 ;=/.,\-]{0,30}", fullmatch=True).map(str.strip)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    tid = draw(_ident)
    to = MsrpUri("msrp", "b.example", draw(st.integers(1, 65535)), draw(_sid))
    frm = MsrpUri("msrps", "[2001:db8::1]".strip("[]"), 2855, draw(_sid))
    extra = draw(st.lists(st.tuples(st.sampled_from(["X-A", "Foo", "Use-Nickname"]), _hval),
                          max_size=3))
    if draw(st.booleans()):
        code = draw(st.sampled_from([200, 400, 403, 408, 413, 415, 481, 501, 506]))
        resp = MsrpResponse(tid, MsrpHeaders([("To-Path", str(to)), ("From-Path", str(frm))]),
                            code, draw(st.sampled_from([None, "OK", "Failed to deliver"])))
        return resp.to_bytes()
    body = draw(st.one_of(st.none(), st.binary(max_size=300)))
    headers = [("Message-ID", draw(_ident)), *extra]
    if body is not None:
        if b"-------" + tid.encode() in body:
            body = body.replace(b"-", b"_")
        headers.append(("Content-Type", "application/octet-stream"))
    req = make_request(tid, draw(st.sampled_from(["SEND", "REPORT", "NICKNAME"])), [to], [frm],
                       headers, body, draw(st.sampled_from(["$", "+", "#"])))
    return req.to_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=1, max_size=5), st.data())
def test_any_split_same_messages(msgs: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(msgs)
    whole = [m.to_bytes() for m in parse_stream(stream)]
    assert whole == msgs                                     # serialize ∘ parse = identity
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    p = MsrpParser()
    events = []
    prev = 0
    for c in [*cuts, len(stream)]:
        events += p.feed(stream[prev:c])
        prev = c
    assert [m.to_bytes() for m in collect(events)] == msgs
    assert p.idle


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 50))
def test_random_bytes_only_raise_msrp_parse_error(blob: bytes, step: int) -> None:
    p = MsrpParser(MsrpLimits(max_line=120, max_head=300, max_headers=8))
    try:
        for i in range(0, len(blob), step):
            for ev in p.feed(blob[i:i + step]):
                if isinstance(ev, MessageHead):
                    m = ev.message
                    for attr in ("to_path", "from_path", "message_id", "byte_range", "status",
                                 "success_report", "failure_report", "expires", "use_path"):
                        try:
                            getattr(m, attr)
                        except MsrpParseError:
                            pass
    except MsrpParseError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_prefixed_stream(blob: bytes) -> None:
    try:
        MsrpParser().feed(b"MSRP abcd SEND\r\n" + blob)
    except MsrpParseError:
        pass
