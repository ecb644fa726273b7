"""Content-Encoding: deflate/gzip inflate with a bomb limit; unknown codings -> 415."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simpleim.content.encoding import (
    ACCEPT_ENCODING,
    UnsupportedEncodingError,
    decode_body,
    encode_body,
)
from simpleim.content.imdn import parse_imdn
from simpleim.errors import ContentError

IMDN = (b'<?xml version="1.0" encoding="UTF-8"?><imdn xmlns="urn:ietf:params:xml:ns:imdn">'
        b"<message-id>x</message-id><datetime>2020-01-01T00:00:00Z</datetime>"
        b"<delivery-notification><status><delivered/></status></delivery-notification></imdn>")


def test_linphone_style_deflate_imdn() -> None:
    """liblinphone sends IMDNs with Content-Encoding: deflate (zlib format)."""
    body = zlib.compress(IMDN)
    assert parse_imdn(decode_body(body, "deflate")).message_id == "x"


def test_raw_deflate_gzip_identity_and_chains() -> None:
    raw = zlib.compressobj(wbits=-15)
    assert decode_body(raw.compress(IMDN) + raw.flush(), "deflate") == IMDN
    assert decode_body(encode_body(IMDN, "gzip"), "gzip") == IMDN
    assert decode_body(IMDN, None) == IMDN and decode_body(IMDN, "identity") == IMDN
    twice = encode_body(encode_body(IMDN, "deflate"), "gzip")
    assert decode_body(twice, "deflate, gzip") == IMDN


def test_decompression_bomb_is_413() -> None:
    bomb = zlib.compress(b"\0" * (50 * 1024 * 1024))
    assert len(bomb) < 100 * 1024
    with pytest.raises(ContentError) as exc:
        decode_body(bomb, "deflate", max_size=1024 * 1024)
    assert exc.value.status == 413
    with pytest.raises(ContentError) as exc:
        decode_body(encode_body(b"\0" * 4096, "gzip"), "gzip", max_size=1000)
    assert exc.value.status == 413


def test_unknown_encoding_is_415_with_accept_encoding() -> None:
    with pytest.raises(UnsupportedEncodingError) as exc:
        decode_body(b"x", "br")
    assert exc.value.status == 415 and exc.value.accept_encoding == ACCEPT_ENCODING
    assert isinstance(exc.value, ContentError) and exc.value.coding == "br"
    with pytest.raises(UnsupportedEncodingError):
        encode_body(b"x", "compress")


def test_corrupt_and_truncated_are_400() -> None:
    with pytest.raises(ContentError) as exc:
        decode_body(b"not compressed at all", "deflate")
    assert exc.value.status == 400
    with pytest.raises(ContentError) as exc:
        decode_body(zlib.compress(IMDN)[:-6], "deflate")
    assert exc.value.status == 400


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["deflate", "gzip", "identity", "x-gzip"]))
def test_random_bytes_only_raise_content_error(data: bytes, coding: str) -> None:
    try:
        decode_body(data, coding, max_size=10000)
    except ContentError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(["deflate", "gzip", "identity"]))
def test_round_trip(data: bytes, coding: str) -> None:
    assert decode_body(encode_body(data, coding), coding) == data
