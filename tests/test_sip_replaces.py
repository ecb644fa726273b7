"""The Replaces header (RFC 3891) and its place in a recipient-list URI (Appendix L)."""

from __future__ import annotations

import pytest

from simpleim.errors import SipParseError
from simpleim.sip.replaces import Replaces, split_replaces_uri


def test_parse_print_and_match() -> None:
    r = Replaces.parse("a84b4c76e66710 ; to-tag=1928301774;from-tag=a6c85cf;early-only")
    assert r == Replaces("a84b4c76e66710", "1928301774", "a6c85cf", early_only=True)
    assert str(r) == "a84b4c76e66710;to-tag=1928301774;from-tag=a6c85cf;early-only"
    assert r.matches("a84b4c76e66710", "1928301774", "a6c85cf")
    assert not r.matches("a84b4c76e66710", "a6c85cf", "1928301774")
    # our dialog as its other end names it
    assert Replaces.of_dialog("c@h", "mine", "theirs") == Replaces("c@h", "theirs", "mine")
    with pytest.raises(SipParseError):
        Replaces.parse("callid;to-tag=x")


def test_in_and_out_of_a_uri() -> None:
    uri = Replaces("c@h", "t", "f").in_uri("sip:bob@example.com")
    assert uri == "sip:bob@example.com?Replaces=c%40h%3Bto-tag%3Dt%3Bfrom-tag%3Df"
    assert split_replaces_uri(uri) == ("sip:bob@example.com", Replaces("c@h", "t", "f"))
    # Appendix L's entry (method parameter, escaped header)
    assert split_replaces_uri(
        "sip:bob@biloxi.com;method=INVITE?Replaces=a84b%3Bto-tag%3D1928%3Bfrom-tag%3Da6c8"
    ) == ("sip:bob@biloxi.com", Replaces("a84b", "1928", "a6c8"))
    assert split_replaces_uri("sip:ted@example.net") == ("sip:ted@example.net", None)
