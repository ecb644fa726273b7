"""Issue 11 §3: several files offered in one invitation are accepted or declined one by one
(RFC 5547 §8: one m-line per file; a declined one is answered with port 0, RFC 3264 §6) -
a declined file is never written, the accepted one arrives; every file declined -> 603."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from client_helpers import pair
from simpleim.client import Account
from simpleim.client.config import Policy
from simpleim.client.events import FileEvent
from simpleim.client.session import FileOffer, SessionFailed


async def _answer(bob: Account, decide: dict[str, bool], want: int) -> list[FileEvent]:
    """Bob's application: decide each offered file by name; returns the events seen until
    ``want`` files reached a final state on bob's side."""
    seen: list[FileEvent] = []
    final = 0
    async with asyncio.timeout(60):
        async for ev in bob.events:
            if not isinstance(ev, FileEvent):
                continue
            seen.append(ev)
            if ev.state == "offered":
                assert isinstance(ev.invitation, FileOffer)
                if decide[ev.file_name or ""]:
                    ev.invitation.accept()
                else:
                    ev.invitation.decline(603)
            elif ev.state in ("received", "failed"):
                final += 1
            if final >= want:
                return seen
    return seen


async def test_accept_one_file_decline_the_other(tmp_path: Path) -> None:
    small = tmp_path / "notes.txt"
    small.write_text("keep me\n")
    big = tmp_path / "movie.bin"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    async with pair(tmp_path, bob={"policy": Policy(files="ask")}) as (alice, bob):
        answering = asyncio.ensure_future(
            _answer(bob, {"notes.txt": True, "movie.bin": False}, want=1))
        results = await alice.files.send("bob", [small, big], tc1=0.0)
        seen = await answering
    by_name = {r.name: r.status for r in results}
    assert by_name == {"notes.txt": "sent", "movie.bin": "declined"}
    received = [e for e in seen if e.state == "received"]
    assert [e.file_name for e in received] == ["notes.txt"]
    assert Path(received[0].path or "").read_text() == "keep me\n"
    dl = Path(bob.config.download_dir)
    written = [p.name for p in dl.rglob("*") if p.is_file()]
    assert written == ["notes.txt"], written           # nothing of the declined 12 MB


async def test_every_file_declined_one_by_one_is_603(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    a.write_text("a")
    b = tmp_path / "b.txt"
    b.write_text("b")
    async with pair(tmp_path, bob={"policy": Policy(files="ask")}) as (alice, bob):
        answering = asyncio.ensure_future(_answer(bob, {"a.txt": False, "b.txt": False}, 99))
        with pytest.raises(SessionFailed) as failed:
            await alice.files.send("bob", [a, b])
        answering.cancel()
    assert failed.value.status == 603


def test_file_offers_settle_the_invitation() -> None:
    class _Inv:
        accepted: bool | None = None
        status = 0

        def accept(self) -> None:
            self.accepted = True

        def decline(self, status: int = 480) -> None:
            self.accepted, self.status = False, status

    inv = _Inv()
    group: list[FileOffer] = []
    first, second = FileOffer(inv, group), FileOffer(inv, group)  # type: ignore[arg-type]
    first.decline(603)
    assert inv.accepted is None                  # undecided until every file is
    second.accept()
    assert inv.accepted is True and first.accepted is False
    inv2 = _Inv()
    group2: list[FileOffer] = []
    only = FileOffer(inv2, group2)  # type: ignore[arg-type]
    only.decline(486)
    assert inv2.accepted is False and inv2.status == 486
