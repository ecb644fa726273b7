"""Property tests: hostile bytes only ever raise SipParseError; parse(serialize(m)) == m."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simpleim.errors import SipParseError
from simpleim.sip import (
    Address,
    Params,
    SipLimits,
    SipMessage,
    SipRequest,
    SipResponse,
    SipUri,
    StreamFramer,
    Via,
    parse_message,
    validate_message,
)

VECTORS = sorted((Path(__file__).parent / "vectors" / "sip").rglob("*"))
SEEDS = [p.read_bytes() for p in VECTORS if p.is_file() and p.suffix not in {".md", ".json"}]
LIMITS = SipLimits(max_message_size=8192, max_headers=64, max_header_line=2048, max_body=4096)


def _touch_everything(msg: SipMessage) -> None:
    """Read every typed accessor; each may only fail with SipParseError."""
    for attr in ("via", "top_via", "from_addr", "to_addr", "call_id", "cseq", "contacts",
                 "max_forwards", "content_type", "content_length", "route", "record_route",
                 "path", "p_asserted_identity", "p_preferred_identity", "referred_by",
                 "supported", "require", "proxy_require", "allow", "privacy",
                 "request_disposition", "accept_contact", "reject_contact", "session_expires",
                 "min_se", "expires", "media_type", "contact_star"):
        try:
            getattr(msg, attr)
        except SipParseError:
            pass
    if isinstance(msg, SipRequest):
        try:
            _ = msg.uri
        except SipParseError:
            pass
    try:
        validate_message(msg)
    except SipParseError:
        pass
    for _name, _value in msg.headers:
        pass
    for name in ("Via", "Contact", "Accept", "X-Unknown"):
        try:
            assert all(isinstance(v, str) for v in msg.headers.get_all(name))
        except SipParseError:
            pass
    msg.to_bytes()


def _parse_all(data: bytes) -> None:
    try:
        msg = parse_message(data, LIMITS)
    except SipParseError as exc:
        assert 400 <= exc.status <= 599
        return
    _touch_everything(msg)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    _parse_all(data)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.data())
def test_mutated_vectors(seed: bytes, data: st.DataObject) -> None:
    buf = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        pos = data.draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[pos] = data.draw(st.sampled_from(b'\x00\r\n :;,<>"\\@[]%=\t/?&\xff'))
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del buf[pos : pos + data.draw(st.integers(1, 16))]
        elif op == "dup":
            buf[pos:pos] = buf[pos : pos + 40]
    _parse_all(bytes(buf))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=80), st.sampled_from(SEEDS),
                          st.just(b"\r\n\r\n"), st.just(b"\r\n")), max_size=6),
       st.integers(1, 64))
def test_stream_framer(chunks: list[bytes], step: int) -> None:
    framer = StreamFramer(LIMITS)
    stream = b"".join(chunks)
    try:
        for i in range(0, len(stream), step):
            for item in framer.feed(stream[i : i + step]):
                if isinstance(item, bytes):
                    _parse_all(item)
    except SipParseError:
        pass


# -- round trip of generated messages -----------------------------------------------------------

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
                min_size=1, max_size=12)
HOST = st.one_of(
    st.from_regex(r"[a-z][a-z0-9\-]{0,10}(\.[a-z][a-z0-9]{0,6}){0,3}", fullmatch=True),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    st.just("[2001:db8::10]"), st.just("[::ffff:192.0.2.1]"),
)
USER = st.from_regex(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/]{1,12}|%[0-9A-F]{2}[a-z]{0,4}", fullmatch=True)
PORT = st.one_of(st.none(), st.integers(0, 65535))
PARAMS = st.lists(st.tuples(TOKEN, st.one_of(st.none(), TOKEN)), max_size=3).map(Params)
UTOKEN = st.from_regex(r"[A-Za-z0-9\-_.!~*'()]{1,8}", fullmatch=True)
URI_PARAMS = st.lists(st.tuples(UTOKEN, st.one_of(st.none(), UTOKEN)), max_size=3).map(Params)
DISPLAY = st.one_of(st.none(), st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF, exclude_characters="\r\n"),
    max_size=15))


@st.composite
def sip_uris(draw: st.DrawFn) -> SipUri:
    return SipUri(draw(st.sampled_from(["sip", "sips"])), draw(st.one_of(st.none(), USER)), None,
                  draw(HOST), draw(PORT), draw(URI_PARAMS))


@st.composite
def addresses(draw: st.DrawFn) -> Address:
    return Address(draw(sip_uris()), draw(DISPLAY), draw(PARAMS))


@st.composite
def messages(draw: st.DrawFn) -> SipMessage:
    vias = draw(st.lists(st.builds(Via, st.sampled_from(["UDP", "TCP", "TLS", "WS"]), HOST,
                                   PORT, PARAMS), min_size=1, max_size=3))
    method = draw(st.sampled_from(["INVITE", "MESSAGE", "OPTIONS", "REGISTER", "BYE", "X-NEW"]))
    headers: list[tuple[str, object]] = [("Via", v) for v in vias]
    headers += [("From", draw(addresses())), ("To", draw(addresses())),
                ("Call-ID", draw(TOKEN) + "@" + draw(TOKEN)),
                ("CSeq", f"{draw(st.integers(0, 2**32 - 1))} {method}"),
                ("Max-Forwards", draw(st.integers(0, 255)))]
    headers += [("Contact", a) for a in draw(st.lists(addresses(), max_size=2))]
    headers += [(draw(st.from_regex(r"X-[A-Za-z]{1,8}", fullmatch=True)),
                 draw(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                              max_size=20)))
                for _ in range(draw(st.integers(0, 3)))]
    body = draw(st.binary(max_size=64))
    headers.append(("Content-Length", len(body)))
    headers = draw(st.permutations(headers))
    if draw(st.booleans()):
        return SipRequest(method, draw(sip_uris()), headers, body)
    return SipResponse(draw(st.integers(100, 699)), draw(st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)),
        headers, body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_round_trip(msg: SipMessage) -> None:
    data = msg.to_bytes()
    again = parse_message(data)
    assert again == msg
    assert again.to_bytes() == data
    validate_message(again)
    assert again.via == msg.via
    assert again.from_addr == msg.from_addr and again.to_addr == msg.to_addr
    assert again.contacts == msg.contacts
    assert again.cseq == msg.cseq
