"""Unit tests of the client's pure parts: feature tags, pager decisions and decoding,
capability SDP, download names, timers (session timer, Tc1 release, Tc2), thumbnails."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from PIL import Image

from simpleim.client.capabilities import (
    CapabilityCache,
    CapabilityResult,
    options_answer_sdp,
    retry_decision,
)
from simpleim.client.downloads import DownloadDir, sanitize_name, unique_path
from simpleim.client.features import (
    IARI_IMAGE_SHARE,
    ICSI_CPM_FT,
    ServiceSet,
    contact_value,
    services_of,
)
from simpleim.client.filetransfer import release_action
from simpleim.client.imdn import Tc2Tracker
from simpleim.client.pager import build_im, build_request, choose_mode, cpim_datetime, decode_body
from simpleim.client.thumbnails import guess_image_type, make_thumbnail
from simpleim.content.cpim import CpimDateTime
from simpleim.errors import ContentError
from simpleim.sdp import parse_sdp
from simpleim.sip.headers import Address
from simpleim.sip.session_timer import (
    SESSION_TIMER_TABLE,
    SessionTimer,
    TimerAction,
    TimerInput,
    TimerState,
)
from simpleim.timers import Timers


def test_contact_feature_tags_round_trip() -> None:
    addr = Address.parse(contact_value("sip:alice@127.0.0.1:5060"))
    services = services_of([addr])
    assert "+g.oma.sip-im" in services.tags and "+g.3gpp.cs-voice" in services.tags
    assert ICSI_CPM_FT in services.icsi and IARI_IMAGE_SHARE in services.iari
    assert services.image_share and services.file_transfer and services.im
    assert ServiceSet().names() == []


@pytest.mark.parametrize(("size", "mode"), [(10, "pager"), (1300, "pager"), (1301, "large")])
def test_choose_mode(size: int, mode: str) -> None:
    assert choose_mode(size) == mode  # OMA SIMPLE IM §8.1 / §9


def test_cpim_im_and_decode() -> None:
    dt = cpim_datetime(__import__("datetime").datetime(2026, 6, 15, 12, 0, tzinfo=__import__(
        "datetime").UTC))
    assert dt.text == "2026-06-15T12:00:00Z"
    assert cpim_datetime(dt.value, "2026-06-01T00:00:00Z").text == "2026-06-01T00:00:00Z"
    im = build_im(sender="sip:a@x", recipient="sip:b@x", body="héllo".encode(),
                  content_type="text/plain;charset=utf-8", message_id="m1",
                  imdn=("positive-delivery", "display"), date_time=dt)
    d = decode_body("message/cpim", im.to_bytes())
    assert d.kind == "text" and d.text == "héllo" and d.sender == "sip:a@x"
    assert d.message_id == "m1" and "display" in d.disposition
    # deflate-encoded body (liblinphone) and plain text from non-RCS peers (baresip)
    d2 = decode_body("message/cpim", zlib.compress(im.to_bytes()), content_encoding="deflate")
    assert d2.text == "héllo"
    d3 = decode_body("text/plain", b"plain hi", sender="sip:c@x")
    assert d3.kind == "text" and d3.text == "plain hi" and d3.cpim is None
    with pytest.raises(ContentError):
        decode_body("message/cpim", b"garbage without blank line")


def test_build_request_headers() -> None:
    req = build_request("MESSAGE", target="sip:bob@example.test", from_uri="sip:a@example.test",
                        from_tag="t1", call_id="c1", body=b"x", content_type="text/plain")
    assert req.headers.get("Accept-Contact") == "*;+g.oma.sip-im"   # OMA §8.1.1
    assert (req.headers.get("User-Agent") or "").startswith("IM-client/OMA1.0")


def test_options_sdp_is_one_message_line() -> None:
    sdp = parse_sdp(options_answer_sdp("127.0.0.1", max_size=4096))
    assert len(sdp.media) == 1                                     # IR.79 §2.3
    m = sdp.media[0]
    assert (m.media, m.port, m.proto) == ("message", 0, "TCP/MSRP")
    assert m.has("file-selector") and "image/jpeg" in (m.get("accept-types") or "")
    assert m.get("max-size") == "4096"


def test_options_retry_rule_and_cache() -> None:
    assert retry_decision(480, 0, 2) and retry_decision(480, 1, 2)
    assert not retry_decision(480, 2, 2) and not retry_decision(404, 0, 2)
    cache = CapabilityCache(ttl=10)
    r = CapabilityResult("sip:b@x", 200, ServiceSet(), at=0.0)
    cache.put(r)
    assert cache.get("sip:b@x", 5.0) is r and cache.get("sip:b@x", 11.0) is None


@pytest.mark.parametrize(("raw", "safe"), [
    ("../../etc/passwd", "passwd"), ("..\\..\\boot.ini", "boot.ini"), (".hidden", "hidden"),
    ("a/b/c.txt", "c.txt"), ("", "file"), ("..", "file"), ("bad\x00name?.jpg", "bad_name_.jpg"),
])
def test_sanitize(raw: str, safe: str) -> None:
    assert sanitize_name(raw) == safe


def test_unique_path_and_finish(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("1")
    assert unique_path(tmp_path, "a.txt").name == "a (1).txt"
    d = DownloadDir(tmp_path / "dl")
    p = d.partial_path("ab:cd/../x")
    assert p.parent.name == ".partial" and "/" not in p.name and ".." not in p.name
    p.write_text("data")
    final = d.finish(p, "../evil.txt")
    assert final.parent == tmp_path / "dl" and final.name == "evil.txt"
    assert sanitize_name("x" * 500 + ".jpg").endswith(".jpg")


def test_session_timer_table() -> None:
    t = SessionTimer()
    t, a = t.step(TimerInput.NEGOTIATED_US, 0.0, 100.0)
    assert t.state is TimerState.REFRESHER and t.deadline == 50.0   # RFC 4028 §10
    t, a = t.step(TimerInput.DEADLINE, 50.0)
    assert a is TimerAction.SEND_REFRESH
    w, _ = SessionTimer().step(TimerInput.NEGOTIATED_PEER, 0.0, 90.0)
    assert w.deadline == 60.0                                       # 90 - min(32, 30)
    w, a = w.step(TimerInput.DEADLINE, 60.0)
    assert a is TimerAction.SEND_BYE and w.state is TimerState.OFF
    assert all((s, i) in SESSION_TIMER_TABLE for s in TimerState for i in TimerInput)


def test_tc1_release_action() -> None:
    assert release_action({0, 1}, {0, 1}) == "bye"                  # OMA §10.2
    assert release_action({0}, {0, 1}) == "reinvite"
    assert release_action(set(), {0}) == "none"


def test_tc2_tracker() -> None:
    t = Tc2Tracker(Timers(tc2=10))
    t.sent("m1", "sip:b@x", {"delivery-notification", "display-notification"}, 0.0)
    assert "m1" in t and t.next_deadline() == 10.0
    assert t.notification("m1", "delivery-notification")
    assert "m1" in t
    assert t.notification("m1", "display-notification") and "m1" not in t
    t.sent("m2", "sip:b@x", {"delivery-notification"}, 0.0)
    assert [p.message_id for p in t.handle_timer(11.0)] == ["m2"]   # OMA §15.2 Tc2 expiry
    assert not t.notification("m2", "delivery-notification")


def test_thumbnail(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    Image.new("RGB", (1000, 600), (1, 2, 3)).save(p, "PNG")
    assert guess_image_type(p) == "image/png"
    thumb = make_thumbnail(p)
    assert thumb is not None and thumb[:3] == b"\xff\xd8\xff" and len(thumb) <= 8192
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not an image")
    assert make_thumbnail(bad) is None and guess_image_type(bad) is None


def test_cpim_datetime_fixed() -> None:
    assert cpim_datetime(CpimDateTime("2026-01-01T00:00:00Z").value).text.startswith("2026")


def test_refresh_delay() -> None:
    from simpleim.client.account import refresh_delay
    assert refresh_delay(600) == 570.0 and refresh_delay(60) == 30.0 and refresh_delay(0) == 1.0


def test_negative_delivery_imdn() -> None:
    from simpleim.client.pager import imdn_reply
    from simpleim.content.imdn import NotificationType, Status, parse_imdn
    dt = CpimDateTime("2026-06-15T12:00:00Z")
    im = build_im(sender="sip:a@x", recipient="sip:b@x", body=b"", content_type="text/plain",
                  message_id="ft1", imdn=("positive-delivery", "negative-delivery"), date_time=dt)
    decoded = decode_body("message/cpim", im.to_bytes())
    doc = imdn_reply(decoded, NotificationType.DELIVERY, Status.FAILED, me="sip:b@x",
                     date_time=dt)
    assert doc is not None
    imdn = parse_imdn(doc.payload)
    assert imdn.message_id == "ft1" and imdn.status is Status.FAILED
    only_pos = build_im(sender="sip:a@x", recipient="sip:b@x", body=b"x",
                        content_type="text/plain", message_id="m", imdn=("positive-delivery",),
                        date_time=dt)
    assert imdn_reply(decode_body("message/cpim", only_pos.to_bytes()),
                      NotificationType.DELIVERY, Status.FAILED, me="sip:b@x",
                      date_time=dt) is None   # RFC 5438 §7.2.1.1: not asked for


def test_options_request_and_classify() -> None:
    from simpleim.client.capabilities import build_options
    from simpleim.client.invites import classify_invite
    from simpleim.sip.message import Headers, SipRequest

    req = build_options(target="sip:bob@x", from_uri="sip:a@x", from_tag="t", call_id="c",
                        contact="<sip:a@127.0.0.1>;+g.oma.sip-im")
    assert req.headers.get("Accept-Contact") == "*;+g.3gpp.cs-voice"     # IR.79 §2.3
    assert req.headers.get("Accept") == "application/sdp"

    class Inc:
        def __init__(self, ac: str) -> None:
            self.request = SipRequest("INVITE", None, Headers([("Accept-Contact", ac)]), b"")

    chat = parse_sdp(b"v=0\r\no=- 0 0 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
                     b"m=message 9 TCP/MSRP *\r\na=accept-types:message/cpim\r\n"
                     b"a=path:msrp://1.2.3.4:9/x;tcp\r\n")
    ft = parse_sdp(bytes(chat.to_bytes()) + b"a=file-selector:type:image/jpeg\r\n")
    assert classify_invite(Inc("*;+g.oma.sip-im"), chat) == "chat"         # OMA §7.1.2
    assert classify_invite(Inc("*;+g.oma.sip-im;+g.oma.sip-im.large-message"), chat) == "large"
    assert classify_invite(Inc("*;+g.oma.sip-im"), ft) == "file"
    assert classify_invite(Inc('*;+g.3gpp.iari-ref="urn%3Aurn-7%3A3gpp-application.ims.'
                               'iari.gsma-is"'), ft) == "image"
    assert classify_invite(Inc('*;+g.3gpp.app%5fref="urn%3Aurnxxx%3A3gpp-application.ims.'
                               'iari.gsmais"'), ft) == "image"                 # Mercuro


def test_answer_streams_one_msrp_session_per_m_line() -> None:
    """RFC 4975 §8.1: each accepted m-line gets its own MSRP URI (answer_offer with per-stream
    paths); rejected lines' sessions are closed."""
    from simpleim.client.filetransfer import FT_CAPS
    from simpleim.sdp import (
        FileDescription,
        FileSelector,
        LocalEndpoint,
        MsrpMedia,
        build_offer,
        file_push_stream,
    )
    from simpleim.transport.msrp import EndpointSession, MsrpEndpoint
    from simpleim.transport.msrp_sdp import answer_streams, local_endpoint

    ep = MsrpEndpoint("127.0.0.1", 9)
    alice = LocalEndpoint("192.0.2.1", 7654, ("msrp://192.0.2.1:7654/alice;tcp",))
    files = [FileDescription(FileSelector(f"f{i}.bin", "application/octet-stream", 10 + i),
                             transfer_id=f"t{i}") for i in range(3)]
    offer = build_offer(alice, [file_push_stream(alice, f) for f in files])
    made: list[EndpointSession] = []

    def new(i: int) -> tuple[LocalEndpoint, EndpointSession]:
        s = ep.new_session()
        made.append(s)
        return local_endpoint(ep, s), s

    sdp, outcomes, streams = answer_streams(
        offer, new, FT_CAPS, file_policy=lambda d: d.transfer_id != "t1")
    paths = [MsrpMedia.from_media(m, sdp).path for m in sdp.media]
    assert [o.accepted for o in outcomes] == [True, False, True]
    assert sorted(streams) == [0, 2] and sdp.media[1].port == 0
    assert paths[0] == tuple(str(u) for u in made[0].local_path)
    assert paths[2] == tuple(str(u) for u in made[2].local_path) and paths[0] != paths[2]
    assert made[1].core.session_id not in ep._sessions          # rejected line: closed
