"""SIP/SIPS/tel/absolute URIs (RFC 3261 §19.1, RFC 3966) and Params."""

from __future__ import annotations

import pytest

from simpleim.errors import SipParseError
from simpleim.sip import AbsoluteUri, Params, SipUri, TelUri, parse_uri


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.com",
        "sip:alice:secretword@atlanta.com;transport=tcp",
        "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sips:1212@gateway.com",
        "sip:alice@192.0.2.4",
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip:alice;day=tuesday@atlanta.com",
        "sip:[2001:db8::10]:5070;lr",
        "sip:user@host.example.com:5061;transport=tls;maddr=239.255.255.1;ttl=15",
        "sip:%61lice@atlanta.com;%6C%72",
    ],
)
def test_rfc3261_examples_round_trip(text: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    assert str(uri) == text
    assert parse_uri(str(uri)) == uri


def test_fields() -> None:
    uri = SipUri.parse("sips:alice:pw@Atlanta.COM:5061;transport=TLS;lr?h=v&x=%20")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips", "alice", "pw", "Atlanta.COM", 5061)
    assert uri.secure and uri.lr and uri.transport == "tls"
    assert uri.headers == (("h", "v"), ("x", "%20"))
    assert uri.aor() == "sips:alice@atlanta.com"
    assert "TRANSPORT" in uri.params


def test_scheme_case_insensitive() -> None:
    uri = parse_uri("SIP:bob@example.com")
    assert isinstance(uri, SipUri) and uri.scheme == "sip"


def test_comparison_rfc3261_19_1_4() -> None:
    a = SipUri.parse("sip:%61lice@atlanta.com;transport=TCP")
    b = SipUri.parse("sip:alice@AtLanTa.CoM;Transport=tcp")
    assert a.matches(b) and a != b
    assert not SipUri.parse("sip:alice@atlanta.com").matches(SipUri.parse("sip:ALICE@atlanta.com"))
    assert not SipUri.parse("sip:bob@biloxi.com").matches(SipUri.parse("sip:bob@biloxi.com:5060"))
    assert not SipUri.parse("sip:bob@biloxi.com").matches(
        SipUri.parse("sip:bob@biloxi.com;transport=udp"))
    assert SipUri.parse("sip:carol@chicago.com").matches(
        SipUri.parse("sip:carol@chicago.com;newparam=5"))
    assert not SipUri.parse("sip:carol@chicago.com?Subject=next%20meeting").matches(
        SipUri.parse("sip:carol@chicago.com"))


def test_ipv6() -> None:
    uri = SipUri.parse("sip:[2001:db8::10:5070]")
    assert uri.port is None and uri.bare_host == "2001:db8::10:5070"
    uri = SipUri.parse("sip:[::ffff:192.0.2.1]:5060")
    assert uri.port == 5060
    for bad in ("sip:2001:db8::10", "sip:[2001:db8:::1]", "sip:[2001:db8::10", "sip:[::1]x",
                "sip:[1:2:3:4:5:6:7:8:9]", "sip:[::1.2.3.256]"):
        with pytest.raises(SipParseError):
            parse_uri(bad)


@pytest.mark.parametrize(
    "bad",
    ["", "sip:", "sip:@host", "sip:user@", "sip:host:99999", "sip:host:port", "sip:ho st",
     "sip:host;", "sip:host;;lr", "sip:host?", "sip:host?a", "sip:u%zz@host", "<sip:host>",
     "1sip:host", "nocolon", "sip:256.1.1.1", "tel:", "tel:+1 234", "http:", "x:a b"],
)
def test_malformed(bad: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(bad, "Request-URI")
    assert info.value.status == 400 and info.value.where == "Request-URI"


def test_tel_uri() -> None:
    uri = parse_uri("tel:+1-201-555-0123;ext=12")
    assert isinstance(uri, TelUri)
    assert uri.is_global and uri.normalized == "+12015550123" and uri.params.get("ext") == "12"
    assert str(uri) == "tel:+1-201-555-0123;ext=12"
    local = parse_uri("tel:7042;phone-context=example.com")
    assert isinstance(local, TelUri) and not local.is_global
    assert local.phone_context == "example.com"


def test_absolute_uris_are_kept() -> None:
    for text in ("urn:service:sos", "im:alice@example.com", "pres:bob@example.org",
                 "http://www.example.com/a?b=c", "mailto:x@example.com"):
        uri = parse_uri(text)
        assert isinstance(uri, AbsoluteUri) and str(uri) == text


def test_params() -> None:
    p = Params.parse(";tag=1 ; A=b;flag;q=\"x;y\"")
    assert p.get("tag") == "1" and p.get("a") == "b" and "FLAG" in p and p.get("flag") is None
    assert p.get("q") == '"x;y"' and p.get_unquoted("q") == "x;y"
    assert p.get("missing", "d") == "d"
    assert list(p) == ["tag", "A", "flag", "q"]
    q = p.with_param("tag", "2").without("flag").with_param("new")
    assert str(q) == ';tag=2;A=b;q="x;y";new'
    assert str(p) == ';tag=1;A=b;flag;q="x;y"'
    assert Params.parse(";a=1") == Params([("a", "1")])
    assert hash(Params.parse(";a=1")) == hash(Params([("a", "1")]))
    assert not Params() and len(p) == 4
    for bad in (";;", ";a=", ";=b", ";a b=c", ';a="x', ";a=b c"):
        with pytest.raises(SipParseError):
            Params.parse(bad)


def test_fast_and_slow_params_agree() -> None:
    fast = Params.parse(";branch=z9hG4bK1;rport;received=192.0.2.1")
    slow = Params.parse("; branch=z9hG4bK1 ;rport; received=192.0.2.1")
    assert fast == slow
    assert fast.get("branch") == "z9hG4bK1" and fast.get("BRANCH") == "z9hG4bK1"
    assert fast.get("rport") is None and "rport" in fast and fast.get("bran") is None


@pytest.mark.parametrize(
    ("text", "ok"),
    [("2001:db8::10", True), ("::ffff:192.0.2.2", True), ("2001:db8:::192.0.2.1", False),
     ("::", True), ("1:2:3:4:5:6:7:8", True), ("1:2:3:4:5:6:7:8:9", False),
     ("2001::1:88fe:fccf:2870:5dee", True), ("1::2::3", False), ("", False), (":1::", False),
     ("1::2:", False), ("12345::", False), ("1:2:3:4:5:6:7::", True), ("::1:2:3:4:5:6:7", True),
     ("1:2:3:4:5:6:7:8::", False), ("1::2:3:4:5:6:7:8", False), ("::1.2.3.256", False),
     ("1:2:3:4:5:6:1.2.3.4", True), ("1:2:3:4:5:6:7:1.2.3.4", False), ("fe80::1%25eth0", False)],
)
def test_ipv6_grammar(text: str, ok: bool) -> None:
    from simpleim.sip._abnf import IPV6_RE, valid_ipv6

    assert valid_ipv6(text) is ok
    assert (IPV6_RE.fullmatch(text) is not None) is ok or "." in text
