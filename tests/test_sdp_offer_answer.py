"""SDP offer/answer (RFC 3264) for MSRP chat, RFC 5547 push/pull, IR.79 image share."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simpleim.errors import LocalProtocolError, SdpError
from simpleim.sdp import (
    Capabilities,
    Direction,
    FileDescription,
    FileHash,
    FileRange,
    FileSelector,
    LocalEndpoint,
    MsrpMedia,
    SessionDescription,
    Setup,
    answer_offer,
    build_offer,
    capabilities_sdp,
    chat_stream,
    disable_streams,
    file_pull_stream,
    file_push_stream,
    image_share_stream,
    large_message_stream,
    parse_sdp,
    process_answer,
    require_sdp_content_type,
)

VECTORS = Path(__file__).parent / "vectors" / "sdp"
ALICE = LocalEndpoint("192.0.2.1", 7654, ("msrp://192.0.2.1:7654/alice;tcp",), username="alice",
                      session_id="2890844526", session_version="2890844526")
BOB = LocalEndpoint("192.0.2.2", 8888, ("msrp://192.0.2.2:8888/bob;tcp",), username="bob")
BOB6 = LocalEndpoint("2001:db8::2", 8884, ("msrp://[2001:db8::2]:8884/bob;tcp",), addrtype="IP6")
PIC = FileDescription(FileSelector("My cool picture.jpg", "image/jpeg", 32349,
                                   (FileHash("sha-1", "72:24:5F:E8"),)),
                      transfer_id="vBnG916bdberum2fFEABR1FR3ExZMUrd", disposition="attachment")


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def answer_media(answer_sdp: bytes) -> MsrpMedia:
    sd = parse_sdp(answer_sdp)
    return MsrpMedia.from_media(sd.media[0], sd)


# ------------------------------------------------------------------- offers


def test_chat_offer_matches_the_rcs_shape() -> None:
    """seed 002 CPM session offer: CPIM + isComposing, wrapped text + IMDN, active, sendrecv."""
    offer = build_offer(ALICE, [chat_stream(ALICE)])
    data = offer.to_bytes()
    assert parse_sdp(data).to_bytes() == data  # what we produce round-trips exactly
    text = data.decode()
    assert "m=message 7654 TCP/MSRP *\r\n" in text
    assert "a=accept-types:message/cpim application/im-iscomposing+xml\r\n" in text
    assert "a=accept-wrapped-types:text/plain message/imdn+xml\r\n" in text
    assert "a=setup:active\r\n" in text and "a=sendrecv\r\n" in text
    assert text.startswith("v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\ns=-\r\n"
                           "c=IN IP4 192.0.2.1\r\nt=0 0\r\n")


def test_file_push_offer_is_sendonly_with_file_attributes() -> None:
    """RFC 5547 §8.2.1: push offer is sendonly and carries the file-selector."""
    offer = build_offer(ALICE, [file_push_stream(ALICE, PIC, title="This is my latest picture")])
    m = MsrpMedia.from_media(offer.media[0], offer)
    assert m.direction is Direction.SENDONLY and m.title == "This is my latest picture"
    assert m.file == PIC
    assert parse_sdp(offer.to_bytes()).to_bytes() == offer.to_bytes()


def test_file_push_requires_name_type_size_and_generates_transfer_id() -> None:
    with pytest.raises(LocalProtocolError):
        file_push_stream(ALICE, FileDescription(FileSelector(name="x")))
    m = file_push_stream(ALICE, FileDescription(FileSelector("x", "text/plain", 1)))
    assert m.file is not None and m.file.transfer_id and len(m.file.transfer_id) >= 24


def test_file_pull_offer_is_recvonly() -> None:
    """RFC 5547 §8.2.2: pull offer is recvonly."""
    m = file_pull_stream(ALICE, FileSelector(name="sunset.jpg", type="image/jpeg"))
    assert m.direction is Direction.RECVONLY and m.file is not None and m.file.transfer_id
    with pytest.raises(LocalProtocolError):
        file_pull_stream(ALICE, FileSelector())


def test_image_share_offer_follows_ir79() -> None:
    """IR.79 §2.4: sendonly, accept-types:*, file-selector with type, transfer id, i=."""
    f = FileDescription(FileSelector("My cool picture.jpg", "image/jpeg", 32349),
                        disposition="render")
    sd = build_offer(ALICE, [image_share_stream(ALICE, f, title="This is my latest picture")])
    m = MsrpMedia.from_media(sd.media[0], sd)
    assert m.accept_types == ("*",) and m.direction is Direction.SENDONLY
    assert m.file is not None and m.file.transfer_id and m.file.selector.type == "image/jpeg"
    with pytest.raises(LocalProtocolError):
        image_share_stream(ALICE, FileDescription(FileSelector(name="x")))


def test_offer_needs_streams() -> None:
    with pytest.raises(LocalProtocolError):
        build_offer(ALICE, [])


# ------------------------------------------------------------------- answers: chat


def test_answer_rcs_chat_offer() -> None:
    """Answer to the seed 002 offer: passive (offer active), sendrecv, max-size, intersection."""
    offer = parse_sdp(vector("rcs51-cpm-session-offer.sdp"))
    caps = Capabilities(accept_types=("message/cpim", "application/im-iscomposing+xml"),
                        accept_wrapped_types=("text/plain", "message/imdn+xml"),
                        max_size=20971520)
    ans = answer_offer(offer, BOB, caps)
    m = answer_media(ans.sdp.to_bytes())
    assert m.setup is Setup.PASSIVE and not ans.streams[0].we_connect
    assert m.direction is Direction.SENDRECV and m.max_size == 20971520
    assert m.accept_types == ("message/cpim", "application/im-iscomposing+xml")
    assert m.accept_wrapped_types == ("text/plain", "message/imdn+xml")
    assert m.path == BOB.path
    # and the offerer accepts this answer
    neg = process_answer(offer, ans.sdp)
    assert neg[0].accepted and neg[0].we_connect


def test_process_the_real_rcs_answer() -> None:
    offer = parse_sdp(vector("rcs51-cpm-session-offer.sdp"))
    answer = parse_sdp(vector("rcs51-cpm-session-answer.sdp"))
    (s,) = process_answer(offer, answer)
    assert s.accepted and s.we_connect  # we said active, they said passive
    assert s.remote is not None and s.remote.max_size == 20971520


@pytest.mark.parametrize("offered, ours, connect", [
    (Setup.ACTIVE, Setup.PASSIVE, False),
    (Setup.PASSIVE, Setup.ACTIVE, True),
    (Setup.ACTPASS, Setup.ACTIVE, True),
    (None, Setup.PASSIVE, False),          # RFC 4145 §4: absent means active
    (Setup.HOLDCONN, Setup.HOLDCONN, False),
])
def test_setup_resolution(offered: Setup | None, ours: Setup, connect: bool) -> None:
    """RFC 6135 / RFC 4145 §4.1: active<->passive; actpass lets the answerer pick."""
    offer = build_offer(ALICE, [chat_stream(ALICE, setup=offered)])
    ans = answer_offer(offer, BOB)
    assert ans.streams[0].local is not None and ans.streams[0].local.setup is ours
    assert ans.streams[0].we_connect is connect


def test_actpass_with_passive_preference() -> None:
    offer = build_offer(ALICE, [chat_stream(ALICE, setup=Setup.ACTPASS)])
    ans = answer_offer(offer, BOB, Capabilities(setup_when_actpass=Setup.PASSIVE))
    assert ans.streams[0].local is not None and ans.streams[0].local.setup is Setup.PASSIVE
    (neg,) = process_answer(offer, ans.sdp)
    assert neg.we_connect


def test_both_active_is_rejected_by_offerer() -> None:
    offer = build_offer(ALICE, [chat_stream(ALICE, setup=Setup.ACTIVE)])
    bad = build_offer(BOB, [chat_stream(BOB, setup=Setup.ACTIVE)])
    with pytest.raises(SdpError) as exc:
        process_answer(offer, bad)
    assert exc.value.status == 488


@pytest.mark.parametrize("offered, answered", [
    (Direction.SENDRECV, Direction.SENDRECV),
    (Direction.SENDONLY, Direction.RECVONLY),
    (Direction.RECVONLY, Direction.SENDONLY),
    (Direction.INACTIVE, Direction.INACTIVE),
])
def test_direction_reversal(offered: Direction, answered: Direction) -> None:
    """RFC 3264 §6.1."""
    offer = build_offer(ALICE, [chat_stream(ALICE, direction=offered)])
    m = answer_media(answer_offer(offer, BOB).sdp.to_bytes())
    assert m.direction is answered


def test_cema_only_when_both_support_it() -> None:
    """RFC 6714: msrp-cema appears in the answer only if offered and supported."""
    offer = build_offer(ALICE, [chat_stream(ALICE, cema=True)])
    assert answer_media(answer_offer(offer, BOB, Capabilities(cema=True)).sdp.to_bytes()).cema
    assert not answer_media(answer_offer(offer, BOB).sdp.to_bytes()).cema


def test_accept_types_wildcards() -> None:
    offer = build_offer(ALICE, [chat_stream(ALICE, accept_types=("*",))])
    m = answer_media(answer_offer(offer, BOB, Capabilities(accept_types=("text/plain",)))
                     .sdp.to_bytes())
    assert m.accept_types == ("text/plain",) and m.accept_wrapped_types == ()
    offer = build_offer(ALICE, [chat_stream(ALICE, accept_types=("message/cpim", "text/html"))])
    m = answer_media(answer_offer(offer, BOB, Capabilities(accept_types=("*",))).sdp.to_bytes())
    assert m.accept_types == ("message/cpim", "text/html")


def test_no_common_type_is_488() -> None:
    """OMA SIMPLE IM 9.2.1.2 (checklist C-LM-07): accept-types not acceptable -> 488."""
    offer = build_offer(ALICE, [chat_stream(ALICE, accept_types=("text/html",))])
    with pytest.raises(SdpError) as exc:
        answer_offer(offer, BOB, Capabilities(accept_types=("message/cpim",)))
    assert exc.value.status == 488 and exc.value.where == "m-line 1"
    assert "accept-types" in exc.value.reason


def test_mixed_streams_reject_with_port_zero_and_keep_m_line_count() -> None:
    """RFC 3264 §6: same number of m-lines; rejected streams get port 0."""
    offer = parse_sdp(vector("ir79-options-capabilities.sdp").replace(
        b"m=message 0", b"m=message 9").replace(b"a=file-selector\r\n", b"") +
        b"a=path:msrp://192.0.2.2:9/s;tcp\r\n")
    ans = answer_offer(offer, BOB, Capabilities(accept_types=("text/plain", "image/jpeg")))
    assert len(ans.sdp.media) == 2
    assert ans.sdp.media[0].media == "video" and ans.sdp.media[0].port == 0
    assert ans.sdp.media[0].formats == ("96",)
    assert ans.sdp.media[1].port == BOB.port
    assert [s.accepted for s in ans.streams] == [False, True]
    assert process_answer(offer, ans.sdp)[1].accepted


def test_disabled_stream_stays_disabled() -> None:
    offer = build_offer(ALICE, [chat_stream(ALICE), chat_stream(ALICE)])
    offer = offer.__class__(**{**offer.__dict__,
                               "media": (offer.media[0].with_port(0), offer.media[1])})
    ans = answer_offer(offer, BOB)
    assert ans.sdp.media[0].port == 0 and ans.sdp.media[1].port == BOB.port


def test_everything_rejected_is_488() -> None:
    offer = parse_sdp(b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\n")
    with pytest.raises(SdpError) as exc:
        answer_offer(offer, BOB)
    assert exc.value.status == 488
    with pytest.raises(SdpError):
        answer_offer(parse_sdp(b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nt=0 0\r\n"), BOB)


def test_missing_path_is_rejected() -> None:
    """RFC 4975 §8.2: a=path is mandatory."""
    offer = parse_sdp(b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nt=0 0\r\n"
                      b"m=message 9 TCP/MSRP *\r\na=accept-types:text/plain\r\n")
    with pytest.raises(SdpError) as exc:
        answer_offer(offer, BOB)
    assert "path" in exc.value.reason


def test_tls_policy() -> None:
    tls_local = LocalEndpoint("192.0.2.1", 1, ("msrps://192.0.2.1:1/a;tcp",), proto="TCP/TLS/MSRP")
    offer = build_offer(tls_local, [chat_stream(tls_local)])
    with pytest.raises(SdpError):
        answer_offer(offer, BOB, Capabilities(tls=False))
    ans = answer_offer(offer, BOB)
    assert ans.sdp.media[0].proto == "TCP/TLS/MSRP"
    plain = build_offer(ALICE, [chat_stream(ALICE)])
    with pytest.raises(SdpError):
        answer_offer(plain, BOB, Capabilities(plain_tcp=False))


def test_answer_ipv6_connection() -> None:
    offer = build_offer(ALICE, [chat_stream(ALICE)])
    data = answer_offer(offer, BOB6).sdp.to_bytes()
    assert b"c=IN IP6 2001:db8::2\r\n" in data and b"o=- 0 0 IN IP6 2001:db8::2\r\n" in data


def test_connection_attribute_answered_new() -> None:
    offer = parse_sdp(b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=message 9 TCP/MSRP *\r\n"
                      b"a=accept-types:text/plain\r\na=path:msrp://h:9/x;tcp\r\n"
                      b"a=setup:actpass\r\na=connection:new\r\n")
    m = answer_media(answer_offer(offer, BOB).sdp.to_bytes())
    assert m.connection_attr == "new" and m.setup is Setup.ACTIVE


# ------------------------------------------------------------------- answers: file transfer


def test_rfc5547_9_1_answer_echoes_selector_and_id() -> None:
    """RFC 5547 §9.1 / §8.3.1: Bob answers recvonly with the same file-selector and id."""
    offer = parse_sdp(vector("rfc5547-9.1-push-offer.sdp"))
    ans = answer_offer(offer, BOB, Capabilities(accept_types=("message/cpim",)))
    ours = answer_media(ans.sdp.to_bytes())
    theirs = MsrpMedia.from_media(offer.media[0], offer)
    assert ours.direction is Direction.RECVONLY
    assert ours.file is not None and theirs.file is not None
    assert ours.file.selector == theirs.file.selector
    assert ours.file.transfer_id == theirs.file.transfer_id
    assert ours.file.icon is None and ours.file.disposition is None
    # the published answer has the same semantics
    published = answer_media(vector("rfc5547-9.1-push-answer.sdp"))
    assert published.file is not None
    assert published.file.selector == ours.file.selector
    assert published.file.transfer_id == ours.file.transfer_id
    assert published.direction is ours.direction
    assert process_answer(offer, parse_sdp(vector("rfc5547-9.1-push-answer.sdp")))[0].accepted


def test_rcs_file_transfer_answer_like_the_trace() -> None:
    """seed 002 FT: offer setup:passive + cema -> answer setup:active, cema, recvonly."""
    offer = parse_sdp(vector("rcs51-ft-push-offer.sdp"))
    caps = Capabilities(accept_types=("message/cpim", "image/jpeg"), cema=True)

    def policy(f: FileDescription) -> FileDescription:
        return FileDescription(f.selector, f.transfer_id, range=FileRange(1, f.selector.size))

    ans = answer_offer(offer, BOB6, caps, file_policy=policy)
    m = answer_media(ans.sdp.to_bytes())
    assert m.setup is Setup.ACTIVE and ans.streams[0].we_connect and m.cema
    assert m.direction is Direction.RECVONLY
    assert m.file is not None and m.file.range == FileRange(1, 1049274)
    assert m.file.transfer_id == "0dc99042ca5344798bbb19883d4f6bbf"
    assert "image/jpeg" in m.accept_types
    # the real answer from the trace is accepted by the offerer logic
    (neg,) = process_answer(offer, parse_sdp(vector("rcs51-ft-push-answer.sdp")))
    assert neg.accepted and not neg.we_connect


def test_file_push_declined_or_too_big_or_wrong_type() -> None:
    offer = build_offer(ALICE, [file_push_stream(ALICE, PIC)])
    with pytest.raises(SdpError):
        answer_offer(offer, BOB, file_policy=lambda f: False)
    with pytest.raises(SdpError):
        answer_offer(offer, BOB, Capabilities(max_file_size=1000))
    with pytest.raises(SdpError):
        answer_offer(offer, BOB, Capabilities(accept_types=("message/cpim",),
                                              accept_wrapped_types=("text/plain",)))
    with pytest.raises(SdpError):
        answer_offer(offer, BOB, Capabilities(accept_files=False))


def test_file_pull_answer_is_sendonly_with_full_selector() -> None:
    """RFC 5547 §8.3.2: the answerer of a pull sends; it describes the file it will send."""
    want = FileSelector(name="My cool picture.jpg")
    offer = build_offer(ALICE, [file_pull_stream(ALICE, want, transfer_id="pull1",
                                                 accept_types=("image/jpeg",))])

    def source(sel: FileSelector) -> FileDescription | None:
        return PIC if sel.matches(PIC.selector) else None

    ans = answer_offer(offer, BOB, Capabilities(accept_types=("message/cpim", "image/jpeg")),
                       pull_source=source)
    m = answer_media(ans.sdp.to_bytes())
    assert m.direction is Direction.SENDONLY
    assert m.file is not None and m.file.selector == PIC.selector and m.file.transfer_id == "pull1"
    (neg,) = process_answer(offer, ans.sdp)
    assert neg.accepted
    with pytest.raises(SdpError):
        answer_offer(offer, BOB, pull_source=lambda s: None)


def test_file_selector_on_sendrecv_is_rejected() -> None:
    offer = parse_sdp(b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=message 9 TCP/MSRP *\r\n"
                      b"a=accept-types:*\r\na=path:msrp://h:9/x;tcp\r\n"
                      b"a=file-selector:type:image/jpeg\r\na=sendrecv\r\n")
    with pytest.raises(SdpError) as exc:
        answer_offer(offer, BOB)
    assert exc.value.status == 488


def test_image_share_end_to_end() -> None:
    """IR.79 §2.4 flow: A offers, B answers recvonly + same selector + id, A checks."""
    f = FileDescription(FileSelector("My cool picture.jpg", "image/jpeg", 32349))
    offer = build_offer(ALICE, [image_share_stream(ALICE, f)])
    ans = answer_offer(parse_sdp(offer.to_bytes()), BOB,
                       Capabilities(accept_types=("image/jpeg", "image/png")))
    m = answer_media(ans.sdp.to_bytes())
    assert m.direction is Direction.RECVONLY and "image/jpeg" in m.accept_types
    assert process_answer(offer, ans.sdp)[0].accepted


def test_process_answer_errors() -> None:
    offer = build_offer(ALICE, [file_push_stream(ALICE, PIC)])
    two = build_offer(BOB, [chat_stream(BOB), chat_stream(BOB)])
    with pytest.raises(SdpError):
        process_answer(offer, two)  # RFC 3264 §6: m-line count differs
    wrong_id = build_offer(BOB, [MsrpMedia(port=1, path=BOB.path, accept_types=("*",),
                                           direction=Direction.RECVONLY, setup=Setup.PASSIVE,
                                           file=FileDescription(PIC.selector, "other"))])
    with pytest.raises(SdpError):
        process_answer(offer, wrong_id)  # RFC 5547 §8.1: id must be echoed
    wrong_dir = build_offer(BOB, [MsrpMedia(port=1, path=BOB.path, accept_types=("*",),
                                            direction=Direction.SENDONLY, setup=Setup.PASSIVE,
                                            file=PIC)])
    with pytest.raises(SdpError):
        process_answer(offer, wrong_dir)
    rejected = build_offer(BOB, [chat_stream(BOB)])
    rejected = rejected.__class__(**{**rejected.__dict__,
                                     "media": (rejected.media[0].with_port(0),)})
    assert not process_answer(offer, rejected)[0].accepted


def test_require_sdp_content_type() -> None:
    require_sdp_content_type("application/SDP; charset=utf-8")
    with pytest.raises(SdpError) as exc:
        require_sdp_content_type("text/plain")
    assert exc.value.status == 415


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_answer_offer_on_garbage_only_raises_sdp_error(data: bytes) -> None:
    prefix = b"v=0\r\no=- 0 0 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=message 9 TCP/MSRP *\r\n"
    try:
        answer_offer(parse_sdp(prefix + data), BOB)
    except SdpError:
        pass


def test_large_message_offer() -> None:
    """seed 002 CPM-03: sendonly, accept-types message/cpim, file-selector:size:N."""
    sd = build_offer(ALICE, [large_message_stream(ALICE, 5000)])
    assert b"a=file-selector:size:5000\r\n" in sd.to_bytes()
    m = MsrpMedia.from_media(sd.media[0], sd)
    assert m.direction is Direction.SENDONLY and m.accept_types == ("message/cpim",)
    ans = answer_offer(sd, BOB)
    assert answer_media(ans.sdp.to_bytes()).direction is Direction.RECVONLY
    with pytest.raises(LocalProtocolError):
        large_message_stream(ALICE, -1)


def test_capabilities_sdp_like_ir79() -> None:
    """IR.79 §2.3: one m=message 0 line with accept-types, file-selector, max-size."""
    caps = Capabilities(accept_types=("text/plain", "text/html", "image/jpeg", "image/gif",
                                      "image/bmp", "image/png"), accept_wrapped_types=(),
                        max_size=4096)
    sd = capabilities_sdp(BOB, caps)
    text = sd.to_bytes().decode()
    assert ("m=message 0 TCP/MSRP *\r\na=accept-types:text/plain text/html image/jpeg "
            "image/gif image/bmp image/png\r\na=file-selector\r\na=max-size:4096\r\n") in text
    ref = parse_sdp(vector("ir79-options-capabilities.sdp")).media[1]
    assert sd.media[0].attributes == ref.attributes


def test_disable_streams_bumps_version_and_keeps_m_lines() -> None:
    """OMA SIMPLE IM 10.2 / RFC 3264 §8: re-offer with port 0, o= version + 1."""
    offer = build_offer(ALICE, [chat_stream(ALICE), file_push_stream(ALICE, PIC)])
    again = disable_streams(offer, [1])
    assert [m.port for m in again.media] == [ALICE.port, 0]
    assert int(again.origin.sess_version) == int(offer.origin.sess_version) + 1
    assert again.media[1].proto == "TCP/MSRP" and again.media[1].attributes == ()
    ans = answer_offer(again, BOB)
    assert [m.port for m in ans.sdp.media] == [BOB.port, 0]
    with pytest.raises(LocalProtocolError):
        disable_streams(offer, [5])


# ------------------------------------------------------------------- one MSRP session per m-line
def _two_files_offer() -> SessionDescription:
    pic2 = FileDescription(FileSelector("second.jpg", "image/jpeg", 1000), transfer_id="t2")
    return build_offer(ALICE, [file_push_stream(ALICE, PIC), file_push_stream(ALICE, pic2)])


def test_answer_gives_each_m_line_its_own_msrp_path() -> None:
    """RFC 4975 §8.1 / §6: the session-id in a=path identifies one MSRP session per m-line;
    RFC 5547 §8: one m-line per file - two files must not share a session."""
    offer = _two_files_offer()
    per_line = replace(BOB, stream_paths=(("msrp://192.0.2.2:8888/bob-f1;tcp",),
                                          ("msrp://192.0.2.2:8888/bob-f2;tcp",)))
    ans = answer_offer(offer, per_line)
    paths = [MsrpMedia.from_media(m, ans.sdp).path for m in ans.sdp.media]
    assert paths == [("msrp://192.0.2.2:8888/bob-f1;tcp",), ("msrp://192.0.2.2:8888/bob-f2;tcp",)]
    assert [o.local.path for o in ans.streams if o.local] == paths
    assert all(n.accepted for n in process_answer(offer, ans.sdp))
    # a factory, called only for accepted lines
    calls: list[int] = []

    def factory(i: int) -> tuple[str, ...]:
        calls.append(i)
        return (f"msrp://192.0.2.2:8888/bob-x{i};tcp",)

    def policy(f: FileDescription) -> bool:
        return f.transfer_id == "t2"           # decline the first file

    ans = answer_offer(offer, replace(BOB, path_factory=factory),
                       file_policy=policy)
    assert calls == [1] and ans.sdp.media[0].port == 0
    assert MsrpMedia.from_media(ans.sdp.media[1], ans.sdp).path == (
        "msrp://192.0.2.2:8888/bob-x1;tcp",)


def test_answer_refuses_one_path_for_two_accepted_m_lines() -> None:
    with pytest.raises(LocalProtocolError, match="share the MSRP path"):
        answer_offer(_two_files_offer(), BOB)
