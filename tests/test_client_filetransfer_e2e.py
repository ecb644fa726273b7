"""End-to-end file transfer through the simpleim server: push of several files (m-lines)
with thumbnail + hash check, pull, resume after the MSRP connection is cut, size limit,
sanitized names."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from PIL import Image

from client_helpers import pair, wait_event
from cuts import cut_msrp_after
from simpleim.client.config import Policy
from simpleim.client.events import FileEvent, ImdnEvent, SessionEvent
from simpleim.sdp import FileSelector


def _received(e: object) -> bool:
    return isinstance(e, FileEvent) and e.state == "received"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_push_two_files_with_thumbnail(tmp_path: Path, transport: str) -> None:
    img = tmp_path / "photo.jpg"
    Image.new("RGB", (320, 200), (200, 30, 30)).save(img, "JPEG")
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(300_000))
    async with pair(tmp_path, transport) as (alice, bob):
        results = await alice.files.send("bob", [img, data])
        assert [r.status for r in results] == ["sent", "sent"]
        got = [await wait_event(bob, _received), await wait_event(bob, _received)]
        by_name = {e.file_name: e for e in got if isinstance(e, FileEvent)}
        for src in (img, data):
            ev = by_name[src.name]
            assert ev.hash_ok is True and ev.path is not None
            assert Path(ev.path).read_bytes() == src.read_bytes()
            assert Path(ev.path).parent == tmp_path / "dl-bob"
        imdn = await wait_event(alice, lambda e: isinstance(e, ImdnEvent))
        assert isinstance(imdn, ImdnEvent) and imdn.status == "delivered"
        # Tc1 (0.5 s here) then BYE: both sides see the end.
        await wait_event(bob, lambda e: isinstance(e, SessionEvent) and e.state == "ended")


async def test_offer_with_icon_and_same_name_no_overwrite(tmp_path: Path) -> None:
    img = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 64), (0, 30, 200)).save(img, "JPEG")
    async with pair(tmp_path) as (alice, bob):
        await alice.files.send("bob", [img])
        offered = await wait_event(bob, lambda e: isinstance(e, FileEvent) and e.state == "offered")
        assert isinstance(offered, FileEvent) and offered.reason is not None  # icon seen
        first = await wait_event(bob, _received)
        await alice.files.send("bob", [img])
        second = await wait_event(bob, _received)
        assert isinstance(first, FileEvent) and isinstance(second, FileEvent)
        assert first.path != second.path
        assert Path(first.path or "").exists() and Path(second.path or "").exists()


async def test_too_large_declined(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * 5000)
    async with pair(tmp_path, bob={"max_file_size": 1000}) as (alice, _bob):
        from simpleim.client.session import SessionFailed

        try:
            await alice.files.send("bob", [big])
        except SessionFailed as exc:
            assert exc.status == 603
        else:
            raise AssertionError("expected a decline")


async def test_declined_by_policy(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("x")
    async with pair(tmp_path, bob={"policy": Policy(files="decline")}) as (alice, _bob):
        from simpleim.client.session import SessionFailed

        try:
            await alice.files.send("bob", [f])
        except SessionFailed as exc:
            assert exc.status == 603
        else:
            raise AssertionError("expected a decline")


async def test_pull(tmp_path: Path) -> None:
    src = tmp_path / "shared.bin"
    src.write_bytes(os.urandom(200_000))
    async with pair(tmp_path) as (alice, bob):
        desc = alice.files.share(src)
        result = await bob.files.pull("alice", desc.selector)
        assert result.status == "received" and result.hash_ok
        assert Path(result.path or "").read_bytes() == src.read_bytes()


async def test_resume_after_connection_cut(tmp_path: Path) -> None:
    src = tmp_path / "movie.bin"
    src.write_bytes(os.urandom(24 * 1024 * 1024))
    digest = hashlib.sha1(src.read_bytes()).digest()  # noqa: S324
    async with pair(tmp_path) as (alice, bob):
        # Bob's MSRP connection is aborted once exactly 2 MiB of the stream reached him: the
        # cut does not depend on how fast the machine moves the 24 MiB (the sender cannot get
        # further than 2 MiB + the loopback socket buffers, a few MiB).
        with cut_msrp_after(bob.msrp, 2 * 1024 * 1024) as cut:
            first = await alice.files.send("bob", [src])
            assert cut.cut and cut.received == 2 * 1024 * 1024
            assert first[0].status == "failed"
            failed = await wait_event(
                bob, lambda e: isinstance(e, FileEvent) and e.state == "failed")
        assert isinstance(failed, FileEvent)
        assert 1024 * 1024 < failed.transferred < 2 * 1024 * 1024
        second = await alice.files.send("bob", [src])
        assert second[0].status == "sent" and second[0].resumed_from > 0
        done = await wait_event(bob, _received, timeout=30)
        assert isinstance(done, FileEvent) and done.hash_ok
        got = Path(done.path or "").read_bytes()
        assert hashlib.sha1(got).digest() == digest  # noqa: S324


__all__ = ["FileSelector"]


async def test_tc1_reinvite_port0_then_bye(tmp_path: Path) -> None:
    """OMA §10.2: a finished file m-line is released by a re-INVITE with port 0 while the
    session goes on; the last one by BYE."""
    a = tmp_path / "a.bin"
    a.write_bytes(os.urandom(5000))
    b = tmp_path / "b.bin"
    b.write_bytes(os.urandom(7000))
    async with pair(tmp_path) as (alice, bob):
        from simpleim.client.filetransfer import FileTransferSession

        results = await alice.files.send("bob", [a, b], tc1=30.0, wait_release=False)
        assert [r.status for r in results] == ["sent", "sent"]
        session = next(s for s in alice.sessions.values() if isinstance(s, FileTransferSession))
        await session.release_lines({0})
        assert 0 not in session.streams and 1 in session.streams
        assert not session.ended.is_set()
        bob_session = bob.sessions[session.call_id]
        assert 0 not in bob_session.streams and not bob_session.ended.is_set()
        await session.end("done")
        await wait_event(bob, lambda e: isinstance(e, SessionEvent) and e.state == "ended")
