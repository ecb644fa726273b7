"""RFC 4475 SIP torture tests: every vector gets the verdict tests/vectors/sip/README.md gives."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from simpleim.errors import SipParseError
from simpleim.sip import (
    AbsoluteUri,
    SipRequest,
    SipResponse,
    SipUri,
    TelUri,
    parse_message,
    parse_multipart,
    validate_message,
)
from simpleim.sip.framing import SipFramingError, StreamFramer

VECTORS = Path(__file__).parent / "vectors" / "sip"
DIR = VECTORS / "rfc4475"

# file -> expected status of the refusal (None: must parse and validate)
VALID = {
    "wsinv.dat", "intmeth.dat", "esc01.dat", "escnull.dat", "esc02.dat", "lwsdisp.dat",
    "longreq.dat", "dblreq.dat", "semiuri.dat", "transports.dat", "mpart01.dat", "unreason.dat",
    "noreason.dat", "inv2543.dat",
}
# VALID-SYNTAX (transaction / application layer): parse_message must accept them
VALID_SYNTAX = {
    "badbranch.dat", "unkscm.dat", "novelsc.dat", "unksm2.dat", "bext01.dat", "invut.dat",
    "regaut01.dat", "bcast.dat", "zeromf.dat", "cparam01.dat", "cparam02.dat", "regescrt.dat",
    "sdp01.dat",
}
# VALID-SYNTAX files the RFC says should still be answered 400: validate_message() refuses them
APP_400 = {"insuf.dat": 400, "multi01.dat": 400}
INVALID = {
    "badinv01.dat": 400, "clerr.dat": 400, "ncl.dat": 400, "scalar02.dat": 400,
    "scalarlg.dat": 400, "quotbal.dat": 400, "ltgtruri.dat": 400, "lwsruri.dat": 400,
    "lwsstart.dat": 400, "trws.dat": 400, "escruri.dat": 400, "baddate.dat": 400,
    "regbadct.dat": 400, "badaspec.dat": 400, "baddn.dat": 400, "badvers.dat": 505,
    "mismatch01.dat": 400, "mismatch02.dat": 400, "bigcode.dat": 400,
    # RFC 4475 §3.3.9 (VALID-SYNTAX in the table, but a framing error): conflicting lengths
    "mcl01.dat": 400,
}


def _files() -> list[str]:
    return sorted(p.name for p in DIR.glob("*.dat"))


def _load(name: str) -> bytes:
    return (DIR / name).read_bytes()


def test_every_vector_has_a_verdict() -> None:
    names = set(_files())
    assert len(names) == 49
    assert names == VALID | VALID_SYNTAX | set(APP_400) | set(INVALID)


def test_vectors_are_byte_exact_copies() -> None:
    manifest = json.loads((VECTORS / "MANIFEST.json").read_text())
    for entry in manifest:
        path = VECTORS / entry["file"].removeprefix("sip/")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], path


@pytest.mark.parametrize("name", sorted(VALID | VALID_SYNTAX))
def test_valid_parses_and_round_trips(name: str) -> None:
    msg = parse_message(_load(name))
    validate_message(msg)
    again = parse_message(msg.to_bytes())
    assert again.headers.items() == msg.headers.items() or name == "inv2543.dat"
    assert again.body == msg.body
    validate_message(again)


@pytest.mark.parametrize("name", sorted(APP_400))
def test_application_layer_400(name: str) -> None:
    msg = parse_message(_load(name))  # syntactically fine
    with pytest.raises(SipParseError) as info:
        validate_message(msg)
    assert info.value.status == APP_400[name]


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_refused(name: str) -> None:
    with pytest.raises(SipParseError) as info:
        validate_message(parse_message(_load(name)))
    assert info.value.status == INVALID[name]
    assert info.value.where


def test_baddn_ersip_variant_refused() -> None:
    data = (DIR / "variants" / "baddn.ersip.dat").read_bytes()
    with pytest.raises(SipParseError) as info:
        validate_message(parse_message(data))
    assert info.value.status == 400
    assert info.value.where in {"From", "To"}


# -- values asserted per vector ------------------------------------------------------------------


def test_wsinv() -> None:
    msg = parse_message(_load("wsinv.dat"))
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE"
    assert isinstance(msg.uri, SipUri)
    assert "unknownparam" in msg.uri.params
    assert msg.max_forwards == 68
    assert msg.cseq.seq == 9 and msg.cseq.method == "INVITE"
    vias = msg.via
    assert len(vias) == 3
    assert [v.transport for v in vias] == ["UDP", "TCP", "UDP"]
    assert [v.branch for v in vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert vias[1].host == "spindle.example.com"
    assert msg.from_addr.display_name == 'J Rosenberg \\"'
    assert msg.from_addr.tag == "98asjd8"
    assert msg.to_addr.tag == "1918181833n"
    assert msg.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (contact,) = msg.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params.get("newparam") == "newvalue"
    assert "secondparam" in contact.params
    assert contact.q == pytest.approx(0.33)
    assert msg.route[0].uri.lr  # type: ignore[union-attr]
    assert msg.content_type == "application/sdp"
    assert msg.content_length == 150 and len(msg.body) == 150
    assert b"UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n" in msg.to_bytes()


def test_intmeth() -> None:
    msg = parse_message(_load("intmeth.dat"))
    assert isinstance(msg, SipRequest)
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.cseq.method == msg.method
    uri = msg.uri
    assert isinstance(uri, SipUri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert msg.to_addr.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_addr.display_name == "token1~` token2'+_ token3*%!.-"
    assert msg.from_addr.tag == "_token~1'+`*%!-."
    assert msg.from_addr.params.get_unquoted("fromParam''~+*_!.-%") == "работающий"
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_escapes_are_equivalent() -> None:
    msg = parse_message(_load("esc01.dat"))
    assert isinstance(msg, SipRequest) and isinstance(msg.uri, SipUri)
    assert msg.uri.user_unescaped == "sips:user@example.com"
    assert str(msg.uri) == "sip:sips%3Auser%40example.com@example.net"  # kept as written
    to = msg.to_addr.uri
    assert isinstance(to, SipUri) and to.user_unescaped == "user"
    assert to.matches(SipUri.parse("sip:user@example.com"))
    contact = msg.contacts[0].uri
    assert isinstance(contact, SipUri)
    assert contact.user_unescaped == "caller"
    assert contact.matches(SipUri.parse("sip:caller@host5.example.net;lr;name=value%41"))


def test_escnull_does_not_truncate() -> None:
    msg = parse_message(_load("escnull.dat"))
    users = [c.uri.user_unescaped for c in msg.contacts]  # type: ignore[union-attr]
    assert users == ["\x00", "\x00\x00"]
    to = msg.to_addr.uri
    assert isinstance(to, SipUri) and to.user_unescaped == "null-\x00-null"


def test_esc02_percent_is_not_an_escape_there() -> None:
    msg = parse_message(_load("esc02.dat"))
    assert isinstance(msg, SipRequest)
    assert msg.method == "RE%47IST%45R" and msg.method != "REGISTER"
    assert msg.to_addr.display_name == "%Z%45"
    assert msg.top_via.branch == "z9hG4bK209%fzsnel234"
    assert [str(c.uri) for c in msg.contacts] == [
        "sip:alias1@host1.example.com", "sip:alias3@host3.example.com"]
    assert msg.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_semiuri_longreq() -> None:
    msg = parse_message(_load("lwsdisp.dat"))
    assert msg.from_addr.display_name == "caller"
    msg = parse_message(_load("semiuri.dat"))
    assert isinstance(msg, SipRequest) and isinstance(msg.uri, SipUri)
    assert msg.uri.user == "user;par=u%40example.net"
    assert msg.uri.host == "example.com" and not msg.uri.params
    assert len(msg.headers.get_all("Accept")) == 6
    msg = parse_message(_load("longreq.dat"))
    validate_message(msg)
    assert len(msg.via) >= 2
    assert len(msg.to_addr.display_name or "") > 100


def test_dblreq_trailing_octets_ignored() -> None:
    data = _load("dblreq.dat")
    msg = parse_message(data)
    assert isinstance(msg, SipRequest) and msg.method == "REGISTER"
    assert msg.body == b""


def test_transports() -> None:
    msg = parse_message(_load("transports.dat"))
    assert [v.transport for v in msg.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_mpart01_binary_multipart() -> None:
    msg = parse_message(_load("mpart01.dat"))
    assert msg.content_length == 553 and len(msg.body) == 553
    assert b"\x00" in msg.body
    mt = msg.media_type
    assert mt is not None and mt.mime == "multipart/mixed" and mt.boundary == "7a9cbec02ceef655"
    parts = parse_multipart(msg.body, mt.boundary)
    assert [p.content_type for p in parts] == ["text/plain", "application/octet-stream"]
    assert parts[0].body == b"Hello"
    assert b"\x00" in parts[1].body and b"\n" in parts[1].body
    assert parts[1].headers.get("Content-Transfer-Encoding") == "binary"


def test_responses_reason_phrases() -> None:
    msg = parse_message(_load("unreason.dat"))
    assert isinstance(msg, SipResponse) and msg.status == 200
    assert msg.reason.startswith("= 2**3 * 5**2 но сто девяносто девять")
    msg = parse_message(_load("noreason.dat"))
    assert isinstance(msg, SipResponse) and msg.status == 100 and msg.reason == ""
    assert msg.to_bytes().startswith(b"SIP/2.0 100 \r\n")


def test_inv2543_no_content_length_on_udp() -> None:
    msg = parse_message(_load("inv2543.dat"))
    assert msg.content_length is None and msg.max_forwards is None
    assert msg.body.startswith(b"v=0") and msg.body.endswith(b"\r\n")
    assert msg.top_via.branch is None and not msg.top_via.is_rfc3261_branch
    assert msg.from_addr.tag is None
    # on a stream, Content-Length is mandatory (RFC 3261 §18.3)
    with pytest.raises(SipFramingError):
        StreamFramer().feed(_load("inv2543.dat"))


def test_valid_syntax_values() -> None:
    msg = parse_message(_load("badbranch.dat"))
    assert msg.top_via.branch == "z9hG4bK" and msg.top_via.is_rfc3261_branch
    msg = parse_message(_load("unkscm.dat"))
    assert isinstance(msg, SipRequest)
    assert msg.uri == AbsoluteUri("nobodyKnowsThisScheme", "totallyopaquecontent")
    msg = parse_message(_load("novelsc.dat"))
    assert isinstance(msg, SipRequest) and isinstance(msg.uri, AbsoluteUri)
    assert msg.uri.scheme == "soap.beep"
    msg = parse_message(_load("unksm2.dat"))
    assert str(msg.to_addr.uri) == "isbn:2983792873"
    assert str(msg.from_addr.uri) == "http://www.example.com"
    assert str(msg.contacts[0].uri) == "name:John_Smith"
    msg = parse_message(_load("bext01.dat"))
    assert msg.require == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert msg.proxy_require == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    msg = parse_message(_load("invut.dat"))
    assert msg.content_type == "application/unknownformat"
    msg = parse_message(_load("regaut01.dat"))
    assert msg.headers.get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"
    msg = parse_message(_load("bcast.dat"))
    assert msg.via[1].host == "255.255.255.255"
    assert parse_message(_load("zeromf.dat")).max_forwards == 0
    msg = parse_message(_load("cparam01.dat"))
    (c,) = msg.contacts
    assert "unknownparam" in c.params and not c.uri.params  # type: ignore[union-attr]
    msg = parse_message(_load("cparam02.dat"))
    (c,) = msg.contacts
    assert "unknownparam" in c.uri.params and not c.params  # type: ignore[union-attr]
    msg = parse_message(_load("regescrt.dat"))
    (c,) = msg.contacts
    assert isinstance(c.uri, SipUri) and c.uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)
    msg = parse_message(_load("sdp01.dat"))
    assert "application/sdp" not in msg.headers.get_all("Accept")


def test_scalar_errors_name_the_header() -> None:
    msg = parse_message(_load("scalar02.dat"))
    with pytest.raises(SipParseError) as info:
        _ = msg.cseq
    assert info.value.where == "CSeq" and info.value.status == 400
    msg = parse_message(_load("scalarlg.dat"))
    with pytest.raises(SipParseError):
        _ = msg.cseq


def test_tel_uri_in_to() -> None:
    # not an RFC 4475 vector, but the same path as unksm2: tel URIs in name-addr
    from simpleim.sip import Address

    addr = Address.parse("<tel:+1-201-555-0123;phone-context=example.com>;tag=1")
    assert isinstance(addr.uri, TelUri) and addr.uri.normalized == "+12015550123"
    assert addr.uri.phone_context == "example.com" and addr.tag == "1"
