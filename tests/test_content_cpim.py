"""CPIM (RFC 3862): parse, build, byte-exact round trip, typed headers, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simpleim.content.cpim import (
    ANONYMOUS,
    IMDN_NS,
    CpimAddress,
    CpimDateTime,
    CpimHeader,
    build_cpim,
    parse_cpim,
)
from simpleim.errors import ContentError

VECTORS = Path(__file__).parent / "vectors" / "cpim"


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


@pytest.mark.parametrize("path", sorted(VECTORS.glob("*.cpim")), ids=lambda p: p.name)
def test_every_vector_round_trips_byte_exact(path: Path) -> None:
    data = path.read_bytes()
    assert parse_cpim(data).to_bytes() == data


def test_rfc3862_example() -> None:
    """RFC 3862 §6.1 example (liblinphone transcription, shared testdata §4)."""
    msg = parse_cpim(vector("rfc3862-example.cpim"))
    assert len(msg.headers) == 9
    assert msg.from_addr == CpimAddress("im:piglet@100akerwood.com", "MR SANDERS")
    assert msg.to_addrs == [CpimAddress("im:eeyore@100akerwood.com", "Depressed Donkey")]
    dt = msg.datetime
    assert dt is not None and dt.text == "2000-12-13T13:40:00-08:00"
    assert dt.value == datetime(2000, 12, 13, 21, 40, tzinfo=UTC)
    assert msg.subjects == [(None, "the weather will be fine today"),
                            ("fr", "beau temps prevu pour aujourd'hui")]
    assert msg.namespaces == {"MyFeatures": "mid:MessageFeatures@id.foo.com"}
    assert msg.required == ["MyFeatures.VitalMessageOption"]
    ns = "mid:MessageFeatures@id.foo.com"
    assert msg.get("VitalMessageOption", ns) == "Confirmation-requested"
    assert msg.get("WackyMessageOption", ns) == "Use-silly-font"
    # the namespaced headers are not in the default namespace
    assert msg.get("VitalMessageOption") is None
    assert len([h for h in msg.headers if h.prefix == "MyFeatures"]) == 2
    assert msg.content_type == "text/xml; charset=utf-8"
    assert msg.content_id == "<1234567890@foo.com>"
    assert msg.body == b"<body>Here is the text of my message.</body>"


def test_rcs_chat_message() -> None:
    """seed 002, MSRP SEND in a CPM session: anonymous From/To, IMDN request."""
    msg = parse_cpim(vector("rcs51-chat-message.cpim"))
    assert msg.from_addr is not None and msg.from_addr.is_anonymous
    assert msg.imdn_message_id == "2XTvyeM9M"
    assert msg.disposition_notification == ("positive-delivery", "display")
    assert msg.content_type == "text/plain;charset=UTF-8"  # "Content-type" spelling
    assert msg.payload == b"I can't believe is working"


def test_rcs_imdn_envelopes() -> None:
    for name, mid in (("rcs51-delivery-imdn.cpim", "u1vNTIhvFvXJcIN"),
                      ("rcs51-display-imdn.cpim", "FuVVmvUk")):
        msg = parse_cpim(vector(name))
        assert msg.imdn_message_id == mid
        assert msg.content_disposition == "notification"
        assert msg.content_type == "message/imdn+xml"
        assert len(msg.body) == int(msg.content_header("Content-Length") or 0)


def test_fractional_and_offset_datetimes() -> None:
    """RFC 3339 forms seen in seed 002: 7-digit fractions, Z, -00:00."""
    v = CpimDateTime("2015-02-17T06:54:27.8730740Z").value
    assert v.microsecond == 873074 and v.tzinfo == UTC
    assert CpimDateTime("2015-02-17T07:00:21-00:00").value.utcoffset() == timedelta(0)
    v2 = CpimDateTime("2008-04-04T12:16:49+05:30").value
    assert v2.utcoffset() == timedelta(hours=5, minutes=30)
    assert CpimDateTime.from_datetime(datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)).text == \
        "2020-01-02T03:04:05Z"
    tz = timezone(timedelta(hours=-5))
    assert CpimDateTime.from_datetime(datetime(2020, 1, 2, 3, 4, 5, 120000, tzinfo=tz)).text == \
        "2020-01-02T03:04:05.120-05:00"
    for bad in ("yesterday", "2020-13-01T00:00:00Z", "2020-01-01T00:00:00+25:00",
                "2020-01-01 00:00:00Z"):
        with pytest.raises(ContentError):
            _ = CpimDateTime(bad).value


def test_address_forms() -> None:
    assert CpimAddress.parse('"MR SANDERS"<im:piglet@100akerwood.com>').display_name == \
        "MR SANDERS"
    assert CpimAddress.parse("MR SANDERS <im:piglet@100akerwood.com>").display_name == \
        "MR SANDERS"
    assert CpimAddress.parse('"a \\"b\\"" <sip:x@y>') == CpimAddress("sip:x@y", 'a "b"')
    assert CpimAddress.parse("<sip:x@y>") == CpimAddress("sip:x@y")
    assert str(CpimAddress("sip:x@y", 'a "b"')) == '"a \\"b\\"" <sip:x@y>'
    assert ANONYMOUS.is_anonymous and str(ANONYMOUS) == "<im:anonymous@anonymous.invalid>"
    for bad in ("<>", '"open <sip:x@y>', "a b c"):
        with pytest.raises(ContentError):
            CpimAddress.parse(bad)


def test_build_and_parse() -> None:
    msg = build_cpim(from_addr=CpimAddress("sip:alice@example.com"),
                     to=[CpimAddress("sip:bob@example.com", "Bob")],
                     body="héllo".encode(), content_type="text/plain;charset=UTF-8",
                     date_time=CpimDateTime("2015-02-17T06:54:27Z"), message_id="PH7qAIV8cgH5",
                     disposition_notification=["positive-delivery", "display"],
                     subject="hi", cc=[CpimAddress("sip:carol@example.com")])
    data = msg.to_bytes()
    assert data.startswith(b"From: <sip:alice@example.com>\r\n"
                           b"To: \"Bob\" <sip:bob@example.com>\r\n")
    assert b"NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: PH7qAIV8cgH5\r\n" in data
    assert b"imdn.Disposition-Notification: positive-delivery, display\r\n" in data
    assert data.endswith(b"Content-Length: 6\r\n\r\nh\xc3\xa9llo")
    back = parse_cpim(data)
    assert back == msg and back.to_bytes() == data
    assert back.cc_addrs == [CpimAddress("sip:carol@example.com")]
    assert back.get("Message-ID", IMDN_NS) == "PH7qAIV8cgH5"


def test_subject_lang_header_built() -> None:
    h = CpimHeader("Subject", "bonjour", (("lang", "fr"),))
    assert h.line() == "Subject:;lang=fr bonjour"
    assert CpimHeader.parse(h.line(), "x") == h


def test_lf_only_and_namespace_prefix_case() -> None:
    data = vector("rcs51-chat-message.cpim").replace(b"\r\n", b"\n")
    msg = parse_cpim(data)
    assert msg.imdn_message_id == "2XTvyeM9M" and msg.to_bytes() == data
    odd = data.replace(b"imdn.Message-ID", b"IMDN.Message-ID")
    assert parse_cpim(odd).imdn_message_id == "2XTvyeM9M"


def test_content_length_mismatch_is_400() -> None:
    data = vector("rcs51-chat-message.cpim").replace(b"Content-Length: 26", b"Content-Length: 25")
    with pytest.raises(ContentError) as exc:
        parse_cpim(data)
    assert exc.value.status == 400 and exc.value.where == "Content-Length"
    with pytest.raises(ContentError):
        parse_cpim(data.replace(b"Content-Length: 25", b"Content-Length: 99"))
    with pytest.raises(ContentError):
        parse_cpim(data.replace(b"Content-Length: 25", b"Content-Length: x"))
    # a trailing CRLF after the counted body is tolerated
    ok = vector("rcs51-chat-message.cpim") + b"\r\n"
    assert parse_cpim(ok).payload == b"I can't believe is working"


@pytest.mark.parametrize("data", [
    b"From: <sip:a@b>",                                   # no blank line at all
    b"From: <sip:a@b>\r\n\r\nContent-Type: text/plain",    # MIME headers not terminated
    b"From: <sip:a@b>\r\n\r\n\r\n",                        # no MIME headers
    b"Bad Header: x\r\n\r\nContent-Type: text/plain\r\n\r\n",
    b"NoColon\r\n\r\nContent-Type: text/plain\r\n\r\n",
    b"NS: broken\r\n\r\nContent-Type: text/plain\r\n\r\n",
    b"From: \xff\r\n\r\nContent-Type: text/plain\r\n\r\n",
])
def test_malformed_is_400(data: bytes) -> None:
    with pytest.raises(ContentError) as exc:
        parse_cpim(data)
    assert exc.value.status == 400


def test_size_limit_is_413() -> None:
    with pytest.raises(ContentError) as exc:
        parse_cpim(b"x" * 100, max_size=10)
    assert exc.value.status == 413


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=500))
def test_random_bytes_only_raise_content_error(data: bytes) -> None:
    try:
        msg = parse_cpim(data)
        _ = (msg.from_addr, msg.to_addrs, msg.subjects, msg.imdn_message_id,
             msg.disposition_notification, msg.required)
        if msg.datetime is not None:
            _ = msg.datetime.value
    except ContentError:
        pass


_hv = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200), text=_hv, mid=st.text("abcdefXYZ0123", min_size=1,
                                                           max_size=12))
def test_build_parse_round_trip(body: bytes, text: str, mid: str) -> None:
    msg = build_cpim(from_addr=CpimAddress("sip:a@b", text or None), to=[ANONYMOUS],
                     body=body, content_type="application/octet-stream", message_id=mid,
                     subject=text.strip() or None)
    data = msg.to_bytes()
    back = parse_cpim(data)
    assert back.to_bytes() == data
    assert back.payload == body and back.imdn_message_id == mid


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_value_parsers_only_raise_content_error(text: str) -> None:
    try:
        CpimAddress.parse(text)
    except ContentError:
        pass
    try:
        _ = CpimDateTime(text).value
    except ContentError:
        pass
    try:
        CpimHeader.parse(text, "x")
    except ContentError:
        pass
