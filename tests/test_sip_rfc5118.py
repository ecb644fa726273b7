"""RFC 5118 IPv6 torture tests, verdicts from tests/vectors/sip/README.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from simpleim.errors import SipParseError
from simpleim.sip import SipRequest, SipUri, parse_message, validate_message

DIR = Path(__file__).parent / "vectors" / "sip" / "rfc5118"

ACCEPT = {
    "ipv6-good", "port-ambiguous", "port-unambiguous", "via-received-param-with-delim",
    "via-received-param-no-delim", "ipv6-in-sdp", "mult-ip-in-header", "mult-ip-in-sdp",
    "ipv4-mapped-ipv6", "ipv6-correct-abnf-2-colons",
}
# ipv6-bug-abnf-3-colons is "INVALID-but-MAY-ACCEPT": we take the strict reading (400)
REFUSE = {"ipv6-bad": 400, "ipv6-bug-abnf-3-colons": 400}


def _load(name: str) -> bytes:
    return (DIR / name).read_bytes()


def test_every_vector_has_a_verdict() -> None:
    assert {p.name for p in DIR.iterdir()} == ACCEPT | set(REFUSE)


@pytest.mark.parametrize("name", sorted(ACCEPT))
def test_accepted(name: str) -> None:
    msg = parse_message(_load(name))
    validate_message(msg)
    again = parse_message(msg.to_bytes())
    assert again == msg


@pytest.mark.parametrize("name", sorted(REFUSE))
def test_refused(name: str) -> None:
    with pytest.raises(SipParseError) as info:
        validate_message(parse_message(_load(name)))
    assert info.value.status == REFUSE[name]
    assert info.value.where == "Request-URI"


def _ruri(name: str) -> SipUri:
    msg = parse_message(_load(name))
    assert isinstance(msg, SipRequest) and isinstance(msg.uri, SipUri)
    return msg.uri


def test_ipv6_good() -> None:
    uri = _ruri("ipv6-good")
    assert uri.host == "[2001:db8::10]" and uri.bare_host == "2001:db8::10" and uri.port is None
    msg = parse_message(_load("ipv6-good"))
    assert msg.top_via.host == "[2001:db8::9:1]"
    assert msg.contacts[0].uri.host == "[2001:db8::1]"  # type: ignore[union-attr]


def test_port_ambiguous_has_no_port() -> None:
    uri = _ruri("port-ambiguous")
    assert uri.host == "[2001:db8::10:5070]" and uri.port is None


def test_port_unambiguous() -> None:
    uri = _ruri("port-unambiguous")
    assert uri.host == "[2001:db8::10]" and uri.port == 5070


def test_via_received_with_and_without_brackets() -> None:
    via = parse_message(_load("via-received-param-no-delim")).top_via
    assert via.received == "2001:db8::9:255"
    via = parse_message(_load("via-received-param-with-delim")).top_via
    assert via.received == "2001:db8::9:255"  # brackets tolerated (RFC 5118 §4.5)
    assert via.params.get("received") == "[2001:db8::9:255]"


def test_multiple_addresses() -> None:
    msg = parse_message(_load("mult-ip-in-header"))
    vias = msg.via
    assert [(v.host, v.port) for v in vias] == [
        ("[2001:db8::9:1]", 6050), ("192.0.2.1", None), ("[2001:db8::9:255]", None)]
    assert vias[2].received == "192.0.2.200"
    msg = parse_message(_load("ipv4-mapped-ipv6"))
    assert msg.via[0].host == "[::ffff:192.0.2.10]" and msg.via[0].port == 19823
    assert msg.contacts[0].uri.host == "[::ffff:192.0.2.2]"  # type: ignore[union-attr]
    assert b"IN IP6 ::ffff:192.0.2.2" in msg.body


def test_correct_two_colons() -> None:
    assert _ruri("ipv6-correct-abnf-2-colons").host == "[2001:db8::192.0.2.1]"
