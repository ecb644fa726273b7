"""SipRequest / SipResponse: parsing, limits, typed access, serialization, proxy helpers."""

from __future__ import annotations

import pytest

from simpleim.errors import LocalProtocolError, RemoteProtocolError, SipParseError
from simpleim.sip import (
    Address,
    Headers,
    SipLimits,
    SipRequest,
    SipResponse,
    SipUri,
    Via,
    parse_message,
    validate_message,
    validate_request,
)

MESSAGE = (
    b"MESSAGE sip:+12345678901@xxx.com;user=phone SIP/2.0\r\n"
    b"P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.msg\r\n"
    b"Contribution-ID: 477b66ae9662e3ad18549bf5dabf9d26d5e707ca\r\n"
    b"Conversation-ID: 1710887c7ca47dc2c1274c11673eb0df5a604fd3\r\n"
    b"InReplyTo-Contribution-ID: 0011\r\n"
    b"P-Preferred-Identity: <sip:00101123456789@xxx.com>\r\n"
    b"P-Asserted-Identity: <sip:alice@xxx.com>, <tel:+4912345>\r\n"
    b"Request-Disposition: no-fork\r\n"
    b"Privacy: id;header\r\n"
    b"Referred-By: <sip:carol@xxx.com>\r\n"
    b"CSeq: 1 MESSAGE\r\n"
    b"Max-Forwards: 70\r\n"
    b"Route: <sip:[2001:0:0:1::2]:5060;lr>, <sip:pcscf.xxx.com;lr>\r\n"
    b"Path: <sip:term@pcscf.xxx.com;lr>\r\n"
    b'Accept-Contact: *;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"\r\n'
    b"Reject-Contact: *;automata\r\n"
    b"Content-Type: message/cpim\r\n"
    b"From: <sip:00101123456789@xxx.com>;tag=1384874566\r\n"
    b"Call-ID: 3712948749@2001::1:88fe:fccf:2870:5dee\r\n"
    b"Contact: <sip:00101123456789@[2001::1:88fe:fccf:2870:5dee]:5060>"
    b';+sip.instance="<urn:gsma:imei:35469106-056673-0>"\r\n'
    b"To: <sip:+12345678901@xxx.com;user=phone>\r\n"
    b"Via: SIP/2.0/TCP [2001::1:88fe:fccf:2870:5dee]:5060;branch=z9hG4bK2629405539smg;rport\r\n"
    b"Supported: timer, 100rel\r\n"
    b"Require: pref\r\n"
    b"Proxy-Require: sec-agree\r\n"
    b"Session-Expires: 1800;refresher=uac\r\n"
    b"Min-SE: 90\r\n"
    b"Expires: 3600\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"hello"
)


def _req(data: bytes = MESSAGE) -> SipRequest:
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    return msg


def test_typed_access() -> None:
    msg = _req()
    assert msg.method == "MESSAGE"
    assert isinstance(msg.uri, SipUri) and msg.uri.params.get("user") == "phone"
    assert msg.top_via.branch == "z9hG4bK2629405539smg" and msg.top_via.rport_requested
    assert msg.top_via is msg.top_via  # cached
    assert msg.from_addr.tag == "1384874566" and msg.to_addr.tag is None
    assert msg.call_id == "3712948749@2001::1:88fe:fccf:2870:5dee"
    assert (msg.cseq.seq, msg.cseq.method) == (1, "MESSAGE")
    assert msg.max_forwards == 70 and msg.content_length == 5 and msg.body == b"hello"
    assert msg.content_type == "message/cpim"
    assert [str(a.uri) for a in msg.route] == ["sip:[2001:0:0:1::2]:5060;lr",
                                               "sip:pcscf.xxx.com;lr"]
    assert [str(a.uri) for a in msg.p_asserted_identity] == ["sip:alice@xxx.com", "tel:+4912345"]
    assert str(msg.p_preferred_identity[0].uri) == "sip:00101123456789@xxx.com"
    assert msg.p_preferred_service == ["urn:urn-7:3gpp-service.ims.icsi.oma.cpm.msg"]
    assert msg.conversation_id == "1710887c7ca47dc2c1274c11673eb0df5a604fd3"
    assert msg.contribution_id == "477b66ae9662e3ad18549bf5dabf9d26d5e707ca"
    assert msg.in_reply_to_contribution_id == "0011"
    assert msg.request_disposition == ["no-fork"]
    assert msg.privacy == ["id", "header"]
    assert msg.referred_by is not None and str(msg.referred_by.uri) == "sip:carol@xxx.com"
    assert msg.accept_contact[0].params.get("+g.3gpp.icsi-ref") is not None
    assert "automata" in msg.reject_contact[0].params
    assert msg.supported == ["timer", "100rel"] and msg.require == ["pref"]
    assert msg.proxy_require == ["sec-agree"]
    se = msg.session_expires
    assert se is not None and se.delta == 1800 and se.refresher == "uac"
    assert msg.min_se == 90 and msg.expires == 3600
    assert [str(p.uri) for p in msg.path] == ["sip:term@pcscf.xxx.com;lr"]
    assert msg.contacts[0].params.get("+sip.instance") == '"<urn:gsma:imei:35469106-056673-0>"'
    assert not msg.contact_star
    validate_request(msg)


def test_round_trip_bytes_exact_for_canonical_input() -> None:
    msg = _req()
    assert msg.to_bytes() == MESSAGE
    assert bytes(msg) == MESSAGE
    assert parse_message(msg.to_bytes()) == msg


def test_compact_names_expanded_and_content_length_fixed() -> None:
    data = (b"OPTIONS sip:bob@example.com SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKa\r\n"
            b"f: <sip:a@example.com>;tag=1\r\nt: <sip:bob@example.com>\r\ni: x@y\r\n"
            b"CSeq: 2 OPTIONS\r\nl: 0\r\n\r\n")
    msg = _req(data)
    assert msg.headers.items()[0] == ("Via", "SIP/2.0/UDP h;branch=z9hG4bKa")
    msg.body = b"abc"
    out = msg.to_bytes()
    assert b"Content-Length: 3\r\n\r\nabc" in out and b"\nl:" not in out
    bare = SipRequest("OPTIONS", "sip:bob@example.com", [("Via", "SIP/2.0/UDP h")])
    assert bare.to_bytes().endswith(b"Content-Length: 0\r\n\r\n")


def test_headers_mutation_invalidates_cache() -> None:
    msg = _req()
    assert msg.cseq.seq == 1
    msg.headers.set("CSeq", "2 MESSAGE")
    assert msg.cseq.seq == 2
    assert msg.top_via.host.startswith("[2001")
    msg.headers.prepend("Via", Via("UDP", "proxy.example.com", 5060,
                                   Address.parse("<sip:x>;branch=z9hG4bKp").params))
    assert msg.top_via.host == "proxy.example.com" and len(msg.via) == 2


def test_create_response_rfc3261_8_2_6() -> None:
    data = (b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8\r\n"
            b"Via: SIP/2.0/UDP bigbox3.site3.atlanta.com;branch=z9hG4bK77ef4c2312983.1\r\n"
            b"Max-Forwards: 70\r\nTo: Bob <sip:bob@biloxi.com>\r\n"
            b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
            b"Call-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\nTimestamp: 54\r\n"
            b"Record-Route: <sip:p1.example.com;lr>\r\n"
            b"Contact: <sip:alice@pc33.atlanta.com>\r\nContent-Length: 0\r\n\r\n")
    req = _req(data)
    resp = req.create_response(180, to_tag="a6c85cf", copy_record_route=True)
    assert isinstance(resp, SipResponse) and resp.reason == "Ringing"
    assert [v.branch for v in resp.via] == ["z9hG4bKnashds8", "z9hG4bK77ef4c2312983.1"]
    assert resp.to_addr.tag == "a6c85cf" and resp.from_addr.tag == "1928301774"
    assert resp.call_id == "a84b4c76e66710" and resp.cseq == req.cseq
    assert resp.record_route and "Timestamp" not in resp.headers and not resp.contacts
    trying = req.create_response(100, to_tag="ignored")
    assert trying.to_addr.tag is None and trying.headers.get("Timestamp") == "54"
    assert "Record-Route" not in trying.headers
    ok = req.create_response(200, "Fine")
    assert ok.to_bytes().startswith(b"SIP/2.0 200 Fine\r\n")
    again = parse_message(ok.to_bytes())
    assert again.to_bytes() == ok.to_bytes()
    assert isinstance(again, SipResponse) and again.status_class == 2
    with pytest.raises(LocalProtocolError):
        req.create_response(700)


def test_proxy_helpers() -> None:
    req = _req()
    fork = req.copy()
    fork.prepend_via("SIP/2.0/TCP proxy.xxx.com;branch=z9hG4bKprx")
    assert fork.decrement_max_forwards() == 69 and fork.max_forwards == 69
    fork.add_record_route(Address.parse("<sip:proxy.xxx.com;lr>"))
    first = fork.pop_route()
    assert first is not None and str(first.uri) == "sip:[2001:0:0:1::2]:5060;lr"
    assert [str(r.uri) for r in fork.route] == ["sip:pcscf.xxx.com;lr"]
    second = fork.pop_route()
    assert second is not None and fork.pop_route() is None and not fork.route
    assert fork.headers.get("Record-Route") == "<sip:proxy.xxx.com;lr>"
    assert fork.top_via.host == "proxy.xxx.com" and len(fork.via) == 2
    # the original is untouched
    assert req.max_forwards == 70 and len(req.route) == 2 and len(req.via) == 1
    assert "Record-Route" not in req.headers
    zero = _req(MESSAGE.replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
    with pytest.raises(RemoteProtocolError) as info:
        zero.decrement_max_forwards()
    assert info.value.status == 483
    none = _req(MESSAGE.replace(b"Max-Forwards: 70\r\n", b""))
    assert none.decrement_max_forwards() == 69


def test_request_uri_setter_and_lazy_parse() -> None:
    req = _req()
    req.uri = "sip:other@example.com"
    assert req.to_bytes().startswith(b"MESSAGE sip:other@example.com SIP/2.0\r\n")
    bad = _req(MESSAGE.replace(b"sip:+12345678901@xxx.com;user=phone", b"sip:[::1"))
    with pytest.raises(SipParseError) as info:
        _ = bad.uri
    assert info.value.where == "Request-URI"


def test_contact_star() -> None:
    data = (b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
            b"To: <sip:a@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: c\r\n"
            b"CSeq: 1 REGISTER\r\nContact: *\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n")
    msg = _req(data)
    assert msg.contact_star and msg.contacts == [] and msg.expires == 0
    validate_message(msg)


# -- errors and limits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status", "where"),
    [
        (b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n", 400, "message"),
        (b"INVITE sip:a@b SIP/3.0\r\n\r\n", 505, "request-line"),
        (b"INVITE sip:a@b SIP/2.0 \r\n\r\n", 400, "request-line"),
        (b"INVITE sip:a@b HTTP/1.1\r\n\r\n", 400, "request-line"),
        (b"INV(ITE sip:a@b SIP/2.0\r\n\r\n", 400, "request-line"),
        (b"SIP/2.0 1000 Big\r\n\r\n", 400, "status-line"),
        (b"SIP/2.0 099 Small\r\n\r\n", 400, "status-line"),
        (b"SIP/2.0 700 Too big\r\n\r\n", 400, "status-line"),
        (b"SIP/2.5 200 OK\r\n\r\n", 505, "status-line"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nNoColon\r\n\r\n", 400, "NoColon"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia\r\n\r\n", 400, "Via"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n", 400, "Bad Name"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nX: a\nb\r\n\r\n", 400, "message"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 1\r\n\r\nx", 400, "Content-Length"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n", 400, "Content-Length"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 9\r\n\r\nshort", 400, "Content-Length"),
        (b"OPTIONS <sip:a@b> SIP/2.0\r\n\r\n", 400, "Request-URI"),
        (b"\r\n continuation first\r\n\r\n", 400, "request-line"),
    ],
)
def test_parse_errors(data: bytes, status: int, where: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status == status
    assert info.value.where == where


def test_limits_513() -> None:
    big = MESSAGE.replace(b"hello", b"x" * 100)
    big = big.replace(b"Content-Length: 5", b"Content-Length: 100")
    with pytest.raises(SipParseError) as info:
        parse_message(big, SipLimits(max_message_size=200))
    assert info.value.status == 513
    with pytest.raises(SipParseError) as info:
        parse_message(big, SipLimits(max_body=50))
    assert info.value.status == 513
    with pytest.raises(SipParseError) as info:
        parse_message(MESSAGE, SipLimits(max_headers=5))
    assert info.value.status == 513
    with pytest.raises(SipParseError) as info:
        parse_message(MESSAGE, SipLimits(max_header_line=60))
    assert info.value.status == 513
    assert parse_message(big, SipLimits(max_message_size=4096, max_body=100)).body == b"x" * 100


def test_leading_crlf_ignored_and_folding() -> None:
    data = (b"\r\n\r\nOPTIONS sip:a@b.com SIP/2.0\r\nSubject: one\r\n  two\r\n\tthree\r\n"
            b"Via: SIP/2.0/UDP h;\r\n branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n")
    msg = _req(data)
    assert msg.headers.get("Subject") == "one two three"
    assert msg.top_via.branch == "z9hG4bK1"


def test_validate_message_checks() -> None:
    base = (b"OPTIONS sip:a@b.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
            b"To: <sip:a@b.com>\r\nFrom: <sip:c@d.com>;tag=1\r\nCall-ID: x\r\n"
            b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    validate_message(parse_message(base))
    cases = {
        b"Call-ID: x\r\n": (b"", "Call-ID"),
        b"CSeq: 1 OPTIONS": (b"CSeq: 1 INVITE", "CSeq"),
        b"To: <sip:a@b.com>\r\n": (b"To: <sip:a@b.com>\r\nTo: <sip:e@b.com>\r\n", "To"),
        b"Call-ID: x": (b"Call-ID: x y", "Call-ID"),
        b"Content-Length: 0": (b"Date: Fri, 01 Jan 2010 16:00:00 EST\r\nContent-Length: 0",
                               "Date"),
        b"Via: SIP/2.0/UDP h;branch=z9hG4bK1": (b"Via: SIP/2.0/UDP h;;", "Via"),
    }
    for old, (new, where) in cases.items():
        with pytest.raises(SipParseError) as info:
            validate_message(parse_message(base.replace(old, new)))
        assert info.value.where == where and info.value.status == 400


def test_construct_from_scratch() -> None:
    req = SipRequest(
        "MESSAGE",
        SipUri(user="bob", host="example.com"),
        Headers([
            ("Via", Via("UDP", "192.0.2.1", 5060,
                        Address.parse("<sip:x>;branch=z9hG4bK1;rport").params)),
            ("From", Address.parse('"Al" <sip:al@example.com>').with_tag("t1")),
            ("To", Address.parse("<sip:bob@example.com>")),
            ("Call-ID", "c1"), ("CSeq", "1 MESSAGE"), ("Max-Forwards", 70),
            ("Content-Type", "text/plain"),
        ]),
        "hé".encode(),
    )
    data = req.to_bytes()
    assert data.startswith(b"MESSAGE sip:bob@example.com SIP/2.0\r\n"
                           b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport\r\n")
    again = parse_message(data)
    validate_message(again)
    assert again.body == "hé".encode() and again.content_length == 3
    with pytest.raises(LocalProtocolError):
        SipRequest("BAD METHOD", "sip:a@b")
    with pytest.raises(LocalProtocolError):
        SipResponse(99)
    assert SipResponse(486).reason == "Busy Here" and SipResponse(299).reason == ""
