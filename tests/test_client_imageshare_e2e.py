"""End-to-end image share (GSMA IR.79) and capability query through the simpleim server."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from client_helpers import pair, wait_event
from simpleim.client.config import Policy
from simpleim.client.events import CapabilitiesEvent, FileEvent
from simpleim.client.session import SessionFailed


def _png(tmp: Path) -> Path:
    p = tmp / "shot.png"
    Image.new("RGB", (200, 120), (10, 200, 10)).save(p, "PNG")
    return p


async def test_image_share_accept(tmp_path: Path) -> None:
    img = tmp_path / "pic.jpg"
    Image.new("RGB", (640, 480), (10, 20, 200)).save(img, "JPEG")
    async with pair(tmp_path) as (alice, bob):
        result = await alice.images.share("bob", img, title="This is my latest picture")
        assert result.status == "sent"
        offered = await wait_event(bob, lambda e: isinstance(e, FileEvent) and e.state == "offered")
        assert isinstance(offered, FileEvent) and offered.kind == "image"
        got = await wait_event(bob, lambda e: isinstance(e, FileEvent) and e.state == "received")
        assert isinstance(got, FileEvent) and got.kind == "image" and got.hash_ok
        assert Path(got.path or "").read_bytes() == img.read_bytes()


async def test_image_share_png_and_decline(tmp_path: Path) -> None:
    async with pair(tmp_path, bob={"policy": Policy(images="decline")}) as (alice, _bob):
        with pytest.raises(SessionFailed) as err:
            await alice.images.share("bob", _png(tmp_path))
        assert err.value.status == 603  # IR.79 §2.4


async def test_image_share_refuses_non_images(tmp_path: Path) -> None:
    txt = tmp_path / "notes.txt"
    txt.write_text("not an image")
    async with pair(tmp_path) as (alice, _bob):
        with pytest.raises(SessionFailed):
            await alice.images.share("bob", txt)


async def test_capabilities(tmp_path: Path) -> None:
    async with pair(tmp_path) as (alice, bob):
        result = await alice.capabilities.query("bob")
        assert result.status == 200
        for name in ("im", "filetransfer", "imageshare", "largemsg", "ftthumb"):
            assert name in result.names
        ev = await wait_event(alice, lambda e: isinstance(e, CapabilitiesEvent))
        assert isinstance(ev, CapabilitiesEvent) and not ev.cached
        again = await alice.capabilities.query("bob")
        assert again is result  # cached (IR.79 §2.3)
        offline = await alice.capabilities.query("carol")
        assert offline.status == 480 and offline.names == ()
        del bob


async def test_image_share_in_2048_byte_chunks(tmp_path: Path) -> None:
    img = tmp_path / "noise.png"
    Image.frombytes("RGB", (64, 64), __import__("os").urandom(64 * 64 * 3)).save(img, "PNG")
    assert img.stat().st_size > 4096
    async with pair(tmp_path) as (alice, bob):
        await alice.images.share("bob", img, chunk_size=2048)  # Mercuro: 2048-byte chunks
        got = await wait_event(bob, lambda e: isinstance(e, FileEvent) and e.state == "received")
        assert isinstance(got, FileEvent) and got.hash_ok
        assert Path(got.path or "").read_bytes() == img.read_bytes()
