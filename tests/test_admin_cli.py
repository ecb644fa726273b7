"""``simpleim admin deferred list|purge`` on the server store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from simpleim.cli.main import main
from simpleim.store import open_store
from simpleim.store.deferred import DeferredMessage


async def _seed(url: str) -> None:
    store = await open_store(url)
    async with store:
        now = time.time()
        for i, expires in enumerate((now + 3600, now - 1)):
            await store.deferred.add(DeferredMessage(
                id=f"id{i}", recipient="bob@example.test", sender="alice@example.test",
                seq=i, received_at=now - 10, expires_at=expires, subject=f"s{i}",
                request=b"MESSAGE sip:bob@example.test SIP/2.0\r\n\r\nhi"))


def test_admin_deferred_list_and_purge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    asyncio.run(_seed(url))
    assert main(["admin", "deferred", "list", "bob@example.test", "--db", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in out] == ["sip:id0@example.test",
                                                       "sip:id1@example.test"]
    assert main(["admin", "deferred", "list", "bob", "--domain", "example.test", "--db", url,
                 "--xml"]) == 0
    xml = capsys.readouterr().out
    assert 'xmlns="urn:oma:xml:history-list"' in xml and 'history-reference="id0@example.test"' \
        in xml and "<from>alice@example.test</from>" in xml
    assert main(["admin", "deferred", "purge", "--db", url]) == 0  # only the expired one
    assert "removed 1" in capsys.readouterr().out
    assert main(["admin", "deferred", "purge", "--all", "--user", "bob@example.test",
                 "--db", url]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert main(["admin", "deferred", "purge", "--all", "--db", url]) == 2
    assert main(["admin", "deferred", "list", "bad name", "--db", url]) == 2
