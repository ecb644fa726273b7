"""File-transfer INVITE bodies: SDP + message/cpim + base64 icon parts, cid: matching."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simpleim.content.filetransfer import (
    BodyPart,
    cid_matches,
    decode_part,
    find_part_by_cid,
    split_file_transfer_body,
)
from simpleim.errors import ContentError
from simpleim.sdp import MsrpMedia, parse_sdp

VECTORS = Path(__file__).parent / "vectors"
ICON = bytes(range(256)) * 4


def _parts() -> list[BodyPart]:
    sdp = (VECTORS / "sdp" / "mercuro-image-share-offer.sdp").read_bytes()
    cpim = (VECTORS / "cpim" / "rcs51-chat-message.cpim").read_bytes()
    b64 = base64.encodebytes(ICON)  # 76-column lines, as MIME writes them
    return [
        BodyPart.of([("Content-Type", "application/sdp")], sdp),
        BodyPart.of([("Content-Type", "message/cpim")], cpim),
        BodyPart.of([("Content-Type", "image/png"), ("Content-Transfer-Encoding", "base64"),
                     ("Content-ID", "<test@mercuro.net>")], b64),
    ]


def test_mercuro_multipart_icon_by_cid() -> None:
    """seed 001: SDP + base64 icon; a=file-icon:cid:test@mercuro.net names the icon part."""
    body = split_file_transfer_body(_parts())
    assert body.sdp is not None and body.cpim is not None
    sd = parse_sdp(body.sdp)
    media = MsrpMedia.from_media(sd.media[0], sd)
    assert media.file is not None
    icon = body.icon(media.file.icon)
    assert icon is not None and icon.content_type == "image/png" and icon.data == ICON
    assert body.cpim.imdn_message_id == "2XTvyeM9M"
    assert body.icon(None) is None and body.icon("cid:nothere@x") is None


def test_cid_matching_rules() -> None:
    """RFC 2392: cid URLs are URL-encoded and name the Content-ID without brackets."""
    assert cid_matches("cid:id2@alicepc.example.com", "<id2@alicepc.example.com>")
    assert cid_matches("cid:foo4%25bar1@x", "<foo4%bar1@x>")
    assert cid_matches("id2@alicepc.example.com", "id2@alicepc.example.com")
    assert not cid_matches("cid:a@x", "<b@x>")
    parts = _parts()
    assert find_part_by_cid(parts, "cid:test@mercuro.net") is parts[2]
    assert find_part_by_cid(parts, "cid:other@mercuro.net") is None


def test_transfer_encodings() -> None:
    assert decode_part(BodyPart.of([("Content-Transfer-Encoding", "8bit")], b"x")) == b"x"
    assert decode_part(BodyPart.of([], b"raw")) == b"raw"
    with pytest.raises(ContentError) as exc:
        decode_part(BodyPart.of([("Content-Transfer-Encoding", "quoted-printable")], b"x"))
    assert exc.value.status == 415
    with pytest.raises(ContentError) as exc:
        decode_part(BodyPart.of([("Content-Transfer-Encoding", "base64")], b"@@@@"))
    assert exc.value.status == 400
    big = BodyPart.of([("Content-Transfer-Encoding", "base64")], base64.b64encode(b"x" * 5000))
    with pytest.raises(ContentError) as exc:
        decode_part(big, max_size=1000)
    assert exc.value.status == 413


def test_two_sdp_parts_is_400() -> None:
    sdp = BodyPart.of([("Content-Type", "application/sdp")], b"v=0\r\n")
    with pytest.raises(ContentError):
        split_file_transfer_body([sdp, sdp])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["base64", "binary", "7bit", "x-uuencode"]))
def test_random_parts_only_raise_content_error(data: bytes, cte: str) -> None:
    part = BodyPart.of([("Content-Type", "message/cpim"), ("Content-Transfer-Encoding", cte)],
                       data)
    try:
        split_file_transfer_body([part])
    except ContentError:
        pass
