"""Typed header values: Address, Via, CSeq, media types, feature tags, IMS headers."""

from __future__ import annotations

import pytest

from simpleim.errors import LocalProtocolError, SipParseError
from simpleim.sip import (
    Address,
    ContactPattern,
    CSeq,
    Headers,
    MediaType,
    Params,
    SessionExpires,
    SipUri,
    TelUri,
    Via,
    canonical_name,
    encode_feature_tag,
    feature_tag_values,
    feature_tags,
    with_feature_tag,
)

ICSI_MSG = "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.msg"


# -- Address ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "display", "uri", "tag"),
    [
        ("<sip:alice@atlanta.com>;tag=1928301774", None, "sip:alice@atlanta.com", "1928301774"),
        ('"Alice" <sip:alice@atlanta.com>;tag=1', "Alice", "sip:alice@atlanta.com", "1"),
        ('"A \\"B\\" \\\\C" <sip:a@b.com>', 'A "B" \\C', "sip:a@b.com", None),
        ("Bob <sips:bob@biloxi.com> ;tag=a6c85cf", "Bob", "sips:bob@biloxi.com", "a6c85cf"),
        ("The Operator <sip:operator@cs.columbia.edu>;tag=287447",
         "The Operator", "sip:operator@cs.columbia.edu", "287447"),
        ("sip:+12125551212@server.phone2net.com;tag=887s", None,
         "sip:+12125551212@server.phone2net.com", "887s"),
        ("<tel:+12893255769>;tag=3818778252", None, "tel:+12893255769", "3818778252"),
        ('"Ünïcødé" <sip:u@example.com>', "Ünïcødé", "sip:u@example.com", None),
        ("<sip:u@example.com;lr>", None, "sip:u@example.com;lr", None),
        ("caller<sip:caller@example.com>;tag=323", "caller", "sip:caller@example.com", "323"),
        ("<urn:service:sos>", None, "urn:service:sos", None),
    ],
)
def test_address_forms(text: str, display: str | None, uri: str, tag: str | None) -> None:
    addr = Address.parse(text)
    assert addr.display_name == display
    assert str(addr.uri) == uri
    assert addr.tag == tag
    assert Address.parse(str(addr)) == addr


def test_addr_spec_params_belong_to_header() -> None:
    addr = Address.parse("sip:alice@atlanta.com;tag=88;expires=60")
    assert isinstance(addr.uri, SipUri) and not addr.uri.params
    assert addr.tag == "88" and addr.expires == 60
    named = Address.parse("<sip:alice@atlanta.com;transport=tcp>;q=0.7")
    assert named.uri.params.get("transport") == "tcp" and named.q == pytest.approx(0.7)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "bad",
    ['"unterminated <sip:a@b>', "<sip:a@b", "< sip:a@b>", "<sip:a@b >", "Bell, A <sip:a@b>",
     "sip:a@b?x=y", "<sip:a@b> junk", "<sip:a@b>;;", "", '"x" sip:a@b', "<sip:a@b>;tag=",
     "<>"],
)
def test_address_malformed(bad: str) -> None:
    with pytest.raises(SipParseError) as info:
        Address.parse(bad, "From")
    assert info.value.status == 400 and info.value.where == "From"


def test_address_helpers() -> None:
    addr = Address.parse("<sip:bob@biloxi.com>")
    tagged = addr.with_tag("xyz")
    assert tagged.tag == "xyz" and addr.tag is None
    assert str(tagged) == "<sip:bob@biloxi.com>;tag=xyz"
    assert str(Address(SipUri(host="h.com", user="u"), "A B")) == '"A B" <sip:u@h.com>'


# -- Via -----------------------------------------------------------------------------------------


def test_via_fields_and_rport() -> None:
    via = Via.parse("SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;rport")
    assert (via.transport, via.host, via.port) == ("UDP", "pc33.atlanta.com", 5066)
    assert via.branch == "z9hG4bK776asdhds" and via.is_rfc3261_branch
    assert via.rport_requested and via.rport is None
    assert via.sent_by == "pc33.atlanta.com:5066"
    # RFC 3581 §4: server adds received and fills rport
    stamped = via.with_received("192.0.2.1", 9988)
    assert stamped.received == "192.0.2.1" and stamped.rport == 9988
    assert str(stamped) == ("SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds"
                            ";rport=9988;received=192.0.2.1")
    # RFC 3261 §18.2.1: received only when the host differs
    plain = Via.parse("SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKx")
    assert plain.with_received("192.0.2.1", 5060) == plain
    assert plain.with_received("192.0.2.2").received == "192.0.2.2"


def test_via_lws_and_case() -> None:
    via = Via.parse("SIP  / 2.0  / tcp     spindle.example.com   ; branch  =   z9hG4bK9ikj8")
    assert via.transport == "TCP" and via.host == "spindle.example.com"
    assert via.branch == "z9hG4bK9ikj8" and via.protocol == "SIP/2.0"
    via = Via.parse("SIP/2.0/UDP host.example.com : 5060;ttl=16;maddr=224.2.0.1")
    assert via.port == 5060 and via.ttl == 16 and via.maddr == "224.2.0.1"


@pytest.mark.parametrize(
    "bad",
    ["SIP/2.0/UDP", "SIP/2.0 host", "SIP/2.0/UDP host:99999", "SIP/2.0/UDP host;;",
     "SIP/2.0/UDP 192.0.2.15;;,;,,", "SIP/2.0/UDP ho st", "SIP/2.0/UDP [::1", "/ /UDP x"],
)
def test_via_malformed(bad: str) -> None:
    with pytest.raises(SipParseError):
        Via.parse(bad)


# -- CSeq, media types, Session-Expires, Accept-Contact -----------------------------------------


def test_cseq() -> None:
    assert CSeq.parse("4711 INVITE") == CSeq(4711, "INVITE")
    assert CSeq.parse("0009\t INVITE") == CSeq(9, "INVITE")
    assert CSeq.parse("4294967295 ACK").seq == 2**32 - 1
    assert str(CSeq(1, "MESSAGE")) == "1 MESSAGE"
    for bad in ("4294967296 INVITE", "36893488147419103232 REGISTER", "-1 INVITE", "1",
                "1 INVITE x", "x INVITE", "1 IN<VITE"):
        with pytest.raises(SipParseError) as info:
            CSeq.parse(bad)
        assert info.value.status == 400 and info.value.where == "CSeq"


def test_media_type() -> None:
    mt = MediaType.parse('Multipart/Mixed; boundary="abc def";charset=UTF-8')
    assert mt.mime == "multipart/mixed" and mt.boundary == "abc def" and mt.charset == "UTF-8"
    assert str(MediaType.parse("message/cpim")) == "message/cpim"
    with pytest.raises(SipParseError):
        MediaType.parse("text")


def test_session_expires() -> None:
    se = SessionExpires.parse("3600;refresher=UAC")
    assert se.delta == 3600 and se.refresher == "uac"
    assert str(se) == "3600;refresher=UAC"
    with pytest.raises(SipParseError):
        SessionExpires.parse("soon")


def test_accept_contact() -> None:
    encoded = ICSI_MSG.replace(":", "%3A")
    ac = ContactPattern.parse(f'*;+g.3gpp.icsi-ref="{encoded}";require;explicit')
    assert ac.require and ac.explicit
    assert feature_tag_values(ac.params, "+g.3gpp.icsi-ref") == [ICSI_MSG]
    with pytest.raises(SipParseError):
        ContactPattern.parse("sip:a@b")


# -- feature tags (RFC 3840, 3GPP icsi-ref / iari-ref) -----------------------------------------


def test_feature_tags_decoded() -> None:
    contact = Address.parse(
        "<sip:+12893255769@172.16.80.82:5060>"
        ';+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg,'
        'urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session"'
        ';+g.3gpp.iari-ref="urn%3Aurn-7%3A3gpp-application.ims.iari.rcs.fthttp"'
        ';+sip.instance="<urn:gsma:imei:35469106-056673-0>";methods="INVITE,MESSAGE";audio;expires=60'
    )
    tags = feature_tags(contact.params)
    assert tags["+g.3gpp.icsi-ref"] == [ICSI_MSG, "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session"]
    assert tags["+g.3gpp.iari-ref"] == ["urn:urn-7:3gpp-application.ims.iari.rcs.fthttp"]
    assert tags["+sip.instance"] == ["urn:gsma:imei:35469106-056673-0"]
    assert tags["methods"] == ["INVITE", "MESSAGE"]
    assert tags["audio"] == []
    assert "expires" not in tags
    assert feature_tag_values(contact.params, "+g.oma.sip-im") is None


def test_feature_tags_encoded() -> None:
    assert encode_feature_tag(ICSI_MSG) == '"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"'
    assert encode_feature_tag(None) is None and encode_feature_tag([]) is None
    params = with_feature_tag(Params(), "+g.3gpp.icsi-ref", [ICSI_MSG])
    params = with_feature_tag(params, "g.oma.sip-im")
    params = with_feature_tag(params, "methods", ["INVITE", "MESSAGE"], percent=False)
    assert str(params) == (';+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"'
                           ';+g.oma.sip-im;methods="INVITE,MESSAGE"')
    again = Address.parse(f"<sip:a@b.com>{params}")
    assert feature_tag_values(again.params, "+g.3gpp.icsi-ref") == [ICSI_MSG]


# -- Headers container ---------------------------------------------------------------------------


def test_headers_multimap() -> None:
    h = Headers([("v", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("Via", "SIP/2.0/UDP b, SIP/2.0/UDP c"),
                 ("i", "abc@h"), ("X-Custom", "1, 2"), ("Supported", "timer, 100rel")])
    assert [n for n, _ in h] == ["Via", "Via", "Call-ID", "X-Custom", "Supported"]
    assert h.get("VIA") == "SIP/2.0/UDP a;branch=z9hG4bK1"
    assert h.get_all("via") == ["SIP/2.0/UDP a;branch=z9hG4bK1", "SIP/2.0/UDP b", "SIP/2.0/UDP c"]
    assert h.get_lines("Via")[1] == "SIP/2.0/UDP b, SIP/2.0/UDP c"
    assert h.get_all("x-custom") == ["1, 2"]  # unknown headers are never split
    assert h.get("Supported") == "timer" and h.get_all("k") == ["timer", "100rel"]
    assert h.count("Via") == 2 and "call-id" in h and "Route" not in h
    h.prepend("Via", "SIP/2.0/TCP proxy;branch=z9hG4bK2")
    assert h.get("Via") == "SIP/2.0/TCP proxy;branch=z9hG4bK2"
    h.set("Via", "SIP/2.0/UDP only")
    assert h.get_all("Via") == ["SIP/2.0/UDP only"] and len(h) == 4
    assert h.remove("via") == 1 and h.remove("via") == 0
    h.add("x-custom", "3")
    assert [n for n, _ in h][-1] == "X-Custom"  # first spelling kept
    with pytest.raises(LocalProtocolError):
        h.add("Bad Name", "x")
    with pytest.raises(LocalProtocolError):
        h.add("X-Inject", "a\r\nVia: evil")
    c = h.copy()
    c.add("Route", "<sip:r>")
    assert "Route" not in h and c != h


def test_canonical_names() -> None:
    assert canonical_name("l") == "Content-Length" and canonical_name("CALL-ID") == "Call-ID"
    assert canonical_name("x") == "Session-Expires" and canonical_name("a") == "Accept-Contact"
    assert canonical_name("P-Asserted-Identity".lower()) == "P-Asserted-Identity"
    assert canonical_name("X-Unknown") == "X-Unknown"


def test_tel_address() -> None:
    addr = Address.parse('"Bob" <tel:+12893255768;phone-context=ims.example>;tag=9')
    assert isinstance(addr.uri, TelUri) and addr.display_name == "Bob"
    assert addr.uri.phone_context == "ims.example"
