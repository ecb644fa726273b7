"""SDP parse/serialize (RFC 4566), MSRP media view (RFC 4975/6135/6714) and RFC 5547 attributes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simpleim.errors import SdpError
from simpleim.sdp import (
    Attribute,
    Connection,
    Direction,
    FileDate,
    FileDescription,
    FileHash,
    FileRange,
    FileSelector,
    MediaDescription,
    MsrpMedia,
    Origin,
    SessionDescription,
    Setup,
    intersect_types,
    parse_sdp,
    type_matches,
)

VECTORS = Path(__file__).parent / "vectors" / "sdp"
ALL_VECTORS = sorted(VECTORS.glob("*.sdp"))


def load(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def msrp(name: str, index: int = -1) -> MsrpMedia:
    sd = parse_sdp(load(name))
    return MsrpMedia.from_media(sd.media[index], sd)


# ---------------------------------------------------------------- vectors


@pytest.mark.parametrize("path", ALL_VECTORS, ids=lambda p: p.name)
def test_vector_parses_and_reserializes_stably(path: Path) -> None:
    sd = parse_sdp(path.read_bytes())
    again = parse_sdp(sd.to_bytes())
    assert again == sd
    assert again.to_bytes() == sd.to_bytes()


@pytest.mark.parametrize("name", ["rcs51-cpm-session-offer.sdp", "rfc5547-9.1-push-offer.sdp",
                                  "rfc5547-9.1-push-answer.sdp", "rcs51-ft-push-offer.sdp"])
def test_vectors_in_canonical_order_round_trip_byte_exact(name: str) -> None:
    data = load(name)
    assert parse_sdp(data).to_bytes() == data


def test_rcs_cpm_session_offer() -> None:
    """seed 002, CPM Session INVITE: setup:active, sendrecv, CPIM + isComposing."""
    sd = parse_sdp(load("rcs51-cpm-session-offer.sdp"))
    assert sd.origin == Origin("SAMSUNG-IMS-UE", "1234564", "0", "IN", "IP4", "172.16.80.82")
    assert sd.session_name == "SS VOIP" and sd.information == "A VOIP Session"
    assert sd.connection == Connection("172.16.80.82")
    m = MsrpMedia.from_media(sd.media[0], sd)
    assert m.port == 9 and m.proto == "TCP/MSRP"
    assert m.accept_types == ("message/cpim", "application/im-iscomposing+xml")
    assert m.accept_wrapped_types == ("text/plain", "message/imdn+xml")
    assert m.setup is Setup.ACTIVE and m.direction is Direction.SENDRECV
    assert m.path == ("msrp://172.16.80.82:8881/vrhyu7FpMQRki1rQtp;tcp",)


def test_rcs_cpm_session_answer() -> None:
    m = msrp("rcs51-cpm-session-answer.sdp")
    assert m.setup is Setup.PASSIVE and m.max_size == 20971520
    assert m.connection == Connection("172.16.139.157")


def test_rcs_file_transfer_offer_ipv6_cema() -> None:
    """seed 002, CPM File Transfer INVITE: IN IP6, msrp-cema, setup:passive, RFC 5547 push."""
    sd = parse_sdp(load("rcs51-ft-push-offer.sdp"))
    assert sd.connection == Connection("2001:0:0:1::2", "IP6")
    m = MsrpMedia.from_media(sd.media[0], sd)
    assert m.cema and m.setup is Setup.PASSIVE and m.direction is Direction.SENDONLY
    assert m.path == ("msrp://[2001:0000:0000:0001:0000:0000:0000:0002]:16012/e4a55405c2;tcp",)
    f = m.file
    assert f is not None
    assert f.selector.name == "1MB.jpg" and f.selector.type == "image/jpeg"
    assert f.selector.size == 1049274
    assert f.selector.hash == FileHash("sha-1", "ce:55:63:...")  # truncated in the trace
    with pytest.raises(SdpError) as exc:
        f.selector.hashes[0].digest()
    assert exc.value.status == 400
    assert f.transfer_id == "0dc99042ca5344798bbb19883d4f6bbf"
    assert f.disposition == "render"
    assert f.date == FileDate(creation="Fri, 06 Feb 2015 06:48:12 +0900")


def test_rcs_file_transfer_answer() -> None:
    m = msrp("rcs51-ft-push-answer.sdp")
    assert m.direction is Direction.RECVONLY and m.setup is Setup.ACTIVE and m.cema
    assert m.accept_types == ("image/jpeg",)
    assert m.file is not None and m.file.range == FileRange(1, 1049274)


def test_mercuro_offer_media_level_connection_and_draft_date() -> None:
    """seed 001: c= after m=, unquoted ISO file-date, file-icon cid, upper-case sha-1."""
    sd = parse_sdp(load("mercuro-image-share-offer.sdp"))
    assert sd.connection is None
    assert sd.media[0].connection == Connection("192.168.16.108")
    m = MsrpMedia.from_media(sd.media[0], sd)
    assert m.file is not None
    assert m.file.selector.name == "Image 18.png"
    assert m.file.selector.hash is not None
    assert m.file.selector.hash.digest() == bytes.fromhex(
        "4AFBE201A90BC06FEBC723BD2E2621A65D2B6CDB")
    assert m.file.date == FileDate(creation="2008-10-15T10:40:46.405Z", quoted=False)
    assert m.file.icon_cid == "test@mercuro.net"
    assert m.accept_wrapped_types == ("*",)


def test_ir79_image_share_offer_and_answer() -> None:
    """GSMA IR.79 §2.4: i= title, sendonly/recvonly, accept-types:*, type in file-selector."""
    offer = msrp("ir79-image-share-offer.sdp")
    assert offer.title == "This is my latest picture"
    assert offer.accept_types == ("*",) and offer.direction is Direction.SENDONLY
    assert offer.file is not None and offer.file.selector.type == "image/jpeg"
    answer = msrp("ir79-image-share-answer.sdp")
    assert answer.direction is Direction.RECVONLY
    assert answer.file is not None
    # IR.79's example repeats "image/jpeg": kept as an extra token, never an error.
    assert answer.file.selector.extra == ("image/jpeg",)
    assert answer.file.selector.size == 32349


def test_ir79_capabilities_two_m_lines_port_zero() -> None:
    """IR.79 §2.3: OPTIONS 200 with video and message m-lines, port 0, bare a=file-selector."""
    sd = parse_sdp(load("ir79-options-capabilities.sdp"))
    assert [m.media for m in sd.media] == ["video", "message"]
    assert sd.media[0].formats == ("96",)
    m = MsrpMedia.from_media(sd.media[1], sd)
    assert m.port == 0 and m.max_size == 4096
    assert "image/png" in m.accept_types
    assert m.file == FileDescription(FileSelector())


def test_rfc5547_9_1_offer() -> None:
    """RFC 5547 §9.1: the offer of Alice's file push."""
    m = msrp("rfc5547-9.1-push-offer.sdp")
    assert m.file is not None
    sel = m.file.selector
    assert (sel.name, sel.type, sel.size) == ("My cool picture.jpg", "image/jpeg", 32349)
    assert sel.hash is not None and len(sel.hash.digest()) == 20
    assert m.file.transfer_id == "vBnG916bdberum2fFEABR1FR3ExZMUrd"
    assert m.file.disposition == "attachment"
    assert m.file.icon_cid == "id2@alicepc.example.com"
    assert m.file.range == FileRange(1, 32349)


# ---------------------------------------------------------------- parser details


def test_lf_only_input_is_accepted() -> None:
    data = load("rcs51-cpm-session-offer.sdp")
    assert parse_sdp(data.replace(b"\r\n", b"\n")) == parse_sdp(data)


def test_build_and_round_trip_exact() -> None:
    sd = SessionDescription(
        origin=Origin("alice", "1", "1", "IN", "IP6", "2001:db8::1"),
        session_name="-", connection=Connection("2001:db8::1", "IP6"),
        media=(MediaDescription("message", 7394, "TCP/TLS/MSRP", ("*",), title="chat",
                                attributes=(Attribute("accept-types", "message/cpim"),
                                            Attribute("path", "msrps://[2001:db8::1]:7394/a;tcp"),
                                            Attribute("connection", "new"),
                                            Attribute("inactive"))),
               MediaDescription("message", 0, "TCP/MSRP")),
    )
    data = sd.to_bytes()
    assert data.startswith(b"v=0\r\no=alice 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6")
    assert parse_sdp(data) == sd and parse_sdp(data).to_bytes() == data
    m = MsrpMedia.from_media(parse_sdp(data).media[0])
    assert m.tls and m.direction is Direction.INACTIVE and m.connection_attr == "new"


def test_session_level_direction_applies_to_media() -> None:
    sd = parse_sdp(b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nt=0 0\r\na=recvonly\r\n"
                   b"m=message 1 TCP/MSRP *\r\na=path:msrp://h:1/x;tcp\r\n")
    assert MsrpMedia.from_media(sd.media[0], sd).direction is Direction.RECVONLY


def test_several_paths_relays() -> None:
    sd = parse_sdp(b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=message 1 TCP/MSRP *\r\n"
                   b"a=path:msrps://relay.example.com:2855/r1;tcp msrps://h:1/x;tcp\r\n")
    assert MsrpMedia.from_media(sd.media[0]).path == ("msrps://relay.example.com:2855/r1;tcp",
                                                      "msrps://h:1/x;tcp")


@pytest.mark.parametrize("data, where", [
    (b"", None),
    (b"o=- 0 0 IN IP4 h\r\n", "line 1"),                       # v= must come first
    (b"v=1\r\no=- 0 0 IN IP4 h\r\ns=-\r\n", "line 1"),
    (b"v=0\r\ns=-\r\n", "o="),                                  # o= missing
    (b"v=0\r\no=- 0 0 IN IP4 h\r\n", "s="),                     # s= missing
    (b"v=0\r\no=- 0 0 IN IP4\r\ns=-\r\n", "line 2"),            # o= short
    (b"v=0\r\no=- x 0 IN IP4 h\r\ns=-\r\n", "line 2"),          # non-numeric sess-id
    (b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nx=unknown\r\n", "line 4"),  # unknown letter
    (b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nm=message 99999 TCP/MSRP *\r\n", "line 4"),
    (b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nm=message x TCP/MSRP *\r\n", "line 4"),
    (b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nm=message 9\r\n", "line 4"),
    (b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nm=message 9 TCP/MSRP *\r\nt=0 0\r\n", "line 5"),
    (b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nc=IN IP4\r\n", "line 4"),
    (b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nt=0\r\n", "line 4"),
    (b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nthis is not sdp\r\n", "line 4"),
    (b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\ns=again\r\n", "line 4"),
    (b"v=0\r\no=- 0 0 IN IP4 h\r\ns=\xff\r\n", "byte 25"),
])
def test_syntax_errors_are_400(data: bytes, where: str | None) -> None:
    with pytest.raises(SdpError) as exc:
        parse_sdp(data)
    assert exc.value.status == 400
    if where is not None:
        assert exc.value.where == where


def test_missing_t_line_is_tolerated() -> None:
    sd = parse_sdp(b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nm=message 9 TCP/MSRP *\r\n")
    assert sd.times[0].start == 0 and len(sd.media) == 1


def test_size_limit() -> None:
    with pytest.raises(SdpError) as exc:
        parse_sdp(b"v=0\r\n" + b"a=x\r\n" * 20000)
    assert exc.value.status == 400


@pytest.mark.parametrize("attr, value", [
    ("path", "http://example.com/x"),
    ("max-size", "big"),
    ("setup", "sideways"),
    ("file-selector", "size:abc"),
    ("file-selector", 'name:"unterminated'),
    ("file-selector", "name:unquoted"),
    ("file-selector", "type:notamediatype"),
    ("file-selector", "hash:sha-1"),
    ("file-range", "0-10"),
    ("file-range", "10-5"),
    ("file-range", "a-b"),
    ("file-date", "yesterday"),
    ("file-date", 'creation:"open'),
    ("file-transfer-id", "has space"),
])
def test_msrp_attribute_errors_are_400(attr: str, value: str) -> None:
    extra = "a=file-selector:type:text/plain\r\n" if not attr.startswith("file-selector") \
        and attr.startswith("file-") else ""
    path = "" if attr == "path" else "a=path:msrp://h:9/x;tcp\r\n"
    text = (f"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=message 9 TCP/MSRP *\r\n"
            f"{path}{extra}a={attr}:{value}\r\n")
    sd = parse_sdp(text.encode())
    with pytest.raises(SdpError) as exc:
        MsrpMedia.from_media(sd.media[0], sd)
    assert exc.value.status == 400


# ---------------------------------------------------------------- RFC 5547 attributes


def test_file_selector_any_order_and_escapes() -> None:
    """RFC 5547 §6: selectors in any order; the name is pct-encoded inside the quotes."""
    sel = FileSelector.parse('size:10 hash:sha-1:AB:CD type:text/plain name:"a %22q%22 %25 b.txt"')
    assert sel == FileSelector('a "q" % b.txt', "text/plain", 10, (FileHash("sha-1", "AB:CD"),))
    assert str(sel) == 'name:"a %22q%22 %25 b.txt" type:text/plain size:10 hash:sha-1:AB:CD'
    assert FileSelector.parse(str(sel)) == sel
    # liberal: a backslash-escaped quote is understood too
    assert FileSelector.parse(r'name:"say \"hi\".txt"').name == 'say "hi".txt'
    # non-ASCII names travel as UTF-8 octets (filename-char includes %x80-FF)
    assert FileSelector.parse('name:"résumé.pdf"').name == "résumé.pdf"


def test_file_selector_type_with_parameters_and_several_hashes() -> None:
    sel = FileSelector.parse('type:text/plain;charset="utf-8" hash:sha-1:01 hash:sha-256:02')
    assert sel.type == 'text/plain;charset="utf-8"' and len(sel.hashes) == 2


def test_file_hash_from_digest_is_upper_hex() -> None:
    h = FileHash.from_digest("sha-1", bytes(range(20)))
    assert h.value.startswith("00:01:02") and h.value == h.value.upper()
    assert h.digest() == bytes(range(20))


def test_file_selector_matches() -> None:
    full = FileSelector("a.jpg", "image/jpeg", 5, (FileHash("sha-1", "AA:BB"),))
    assert FileSelector(name="a.jpg").matches(full)
    assert FileSelector(hashes=(FileHash("SHA-1", "aa:bb"),)).matches(full)
    assert not FileSelector(size=6).matches(full)
    assert not FileSelector(type="image/png").matches(full)


def test_file_date_all_three_and_range_star() -> None:
    d = FileDate.parse('creation:"Mon, 15 May 2006 15:01:31 +0300" '
                       'modification:"Mon, 15 May 2006 15:01:31 +0300" '
                       'read:"Mon, 15 May 2006 15:01:31 +0300"')
    assert d.read == d.creation == d.modification
    assert FileDate.parse(str(d)) == d
    assert FileRange.parse("1000-*") == FileRange(1000, None)
    assert str(FileRange(1000, None)) == "1000-*"


def test_file_description_attributes_round_trip() -> None:
    fd = FileDescription(FileSelector("x.bin", "application/octet-stream", 3),
                         "tid", "attachment", FileDate(creation="Mon, 15 May 2006 15:01:31 +0300"),
                         "cid:icon%40host", FileRange(2, 3))
    media = MediaDescription("message", 9, "TCP/MSRP", attributes=fd.attributes())
    assert FileDescription.from_media(media) == fd
    assert fd.icon_cid == "icon@host"


# ---------------------------------------------------------------- media types


@pytest.mark.parametrize("pattern, mtype, ok", [
    ("*", "image/jpeg", True),
    ("image/*", "image/jpeg", True),
    ("image/*", "text/plain", False),
    ("Message/CPIM", "message/cpim", True),
    ("text/plain", "text/plain;charset=utf-8", True),
    ("text/plain", "text/html", False),
])
def test_type_matches(pattern: str, mtype: str, ok: bool) -> None:
    assert type_matches(pattern, mtype) is ok


def test_intersect_types_wildcards() -> None:
    assert intersect_types(("message/cpim", "text/plain"), ("*",)) == ("message/cpim",
                                                                       "text/plain")
    assert intersect_types(("*",), ("message/cpim",)) == ("message/cpim",)
    assert intersect_types(("image/*",), ("image/png", "text/plain")) == ("image/png",)
    assert intersect_types(("text/html",), ("message/cpim",)) == ()


# ---------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_sdp_error(data: bytes) -> None:
    try:
        sd = parse_sdp(data)
        for m in sd.media:
            if m.media == "message" and m.proto.upper() in ("TCP/MSRP", "TCP/TLS/MSRP"):
                MsrpMedia.from_media(m, sd)
    except SdpError:
        pass


_line = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"),
                max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("vosicbtamkz"), _line), max_size=12))
def test_random_sdp_like_text_only_raises_sdp_error(lines: list[tuple[str, str]]) -> None:
    text = "v=0\r\n" + "".join(f"{k}={v}\r\n" for k, v in lines)
    try:
        sd = parse_sdp(text)
        for m in sd.media:
            if m.media == "message":
                MsrpMedia.from_media(m, sd)
    except SdpError:
        pass


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(name=st.text(min_size=1, max_size=30),
       size=st.integers(min_value=0, max_value=2**40), subtype=_token,
       digest=st.binary(min_size=20, max_size=20))
def test_file_selector_round_trip(name: str, size: int, subtype: str, digest: bytes) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return
    sel = FileSelector(name, f"image/{subtype}", size, (FileHash.from_digest("sha-1", digest),))
    assert FileSelector.parse(str(sel)) == sel


@settings(max_examples=200, deadline=None)
@given(port=st.integers(0, 65535), n=st.integers(1, 4), tls=st.booleans(),
       direction=st.sampled_from(list(Direction)), setup=st.sampled_from([None, *Setup]),
       types=st.lists(st.sampled_from(["message/cpim", "text/plain", "*", "image/*"]),
                      min_size=1, max_size=3, unique=True),
       max_size=st.one_of(st.none(), st.integers(0, 2**31)))
def test_msrp_media_round_trip(port: int, n: int, tls: bool, direction: Direction,
                               setup: Setup | None, types: list[str],
                               max_size: int | None) -> None:
    m = MsrpMedia(port=port, proto="TCP/TLS/MSRP" if tls else "TCP/MSRP",
                  path=tuple(f"msrp://h{i}:{port}/s{i};tcp" for i in range(n)),
                  accept_types=tuple(types), max_size=max_size, setup=setup,
                  direction=direction, cema=tls)
    sd = SessionDescription(connection=Connection("192.0.2.1"), media=(m.to_media(),))
    data = sd.to_bytes()
    again = parse_sdp(data)
    assert again.to_bytes() == data
    back = MsrpMedia.from_media(again.media[0], again)
    assert back == MsrpMedia(**{**m.__dict__, "connection": Connection("192.0.2.1")})


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_attribute_value_parsers_only_raise_sdp_error(text: str) -> None:
    for parse in (FileSelector.parse, FileDate.parse, FileRange.parse):
        try:
            parse(text)
        except SdpError:
            pass
