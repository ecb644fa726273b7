"""Repository of the XDM documents served over XCAP (RFC 4825; OMA XDM, SIMPLE IM §7.1.1.4,
§12.1.2, Appendix Q).

One row per document: its application usage (AUID), the owner's tree (the XUI, e.g.
``sip:alice@example.com``, or ``""`` for the ``global`` tree), the document's name inside the
tree (may contain ``/``), the entity tag, the UTF-8 text and when it was written.  The URIs
a document claims server-wide (the ``uri`` of each ``<list-service>`` of a group document,
unique in the XDMS) are kept in ``xdm_uris`` in the same transaction, so the Controlling
Function can find a group by its URI without scanning every document.

Writes are conditional (optimistic concurrency, RFC 4825 §7.11 / RFC 9110 §13.1): the
caller names the entity tag it read (or that the document must not exist) and gets
``False`` when another writer came first.  Every call is one committed transaction: the
XCAP server answers 200/201 only after :meth:`XdmRepository.write` returned ``True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simpleim.store.executor import SqlExecutor, Statement

__all__ = ["XdmRecord", "XdmRepository"]

_COLUMNS = "auid, owner, name, etag, content, updated"
_KEY = "auid = ? AND owner = ? AND name = ?"


@dataclass(frozen=True, slots=True)
class XdmRecord:
    """One stored document."""

    auid: str
    owner: str  # the XUI of a user's tree, "" for the global tree
    name: str
    etag: str
    content: str  # the XML text (RFC 4825 §6: UTF-8)
    updated: float  # wall-clock seconds of the last write


def _from_row(row: Sequence[Any]) -> XdmRecord:
    auid, owner, name, etag, content, updated = row
    return XdmRecord(str(auid), str(owner), str(name), str(etag), str(content), float(updated))


class XdmRepository:
    """Documents per (AUID, owner, name) and the server-wide URIs they claim."""

    def __init__(self, db: SqlExecutor) -> None:
        self._db = db

    async def get(self, auid: str, owner: str, name: str) -> XdmRecord | None:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM xdm_documents WHERE {_KEY}", (auid, owner, name))
        return _from_row(rows[0]) if rows else None

    async def documents(self, auid: str, owner: str) -> list[XdmRecord]:
        """Documents of one tree, by name."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM xdm_documents WHERE auid = ? AND owner = ? ORDER BY name",
            (auid, owner))
        return [_from_row(r) for r in rows]

    async def owners(self, auid: str) -> list[str]:
        """The owners of at least one document of ``auid``."""
        rows = await self._db.fetch(
            "SELECT DISTINCT owner FROM xdm_documents WHERE auid = ? ORDER BY owner", (auid,))
        return [str(r[0]) for r in rows]

    async def write(self, record: XdmRecord, *, expect: str | None,
                    uris: Sequence[str] = ()) -> bool:
        """Store ``record`` if the document's current entity tag is ``expect`` (None: if it
        does not exist); ``uris``: the server-wide URIs it claims from now on.  False (and
        nothing written) when the condition failed: another writer came first."""
        key = (record.auid, record.owner, record.name)
        if expect is None:
            main: Statement = (
                f"INSERT INTO xdm_documents ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (auid, owner, name) DO NOTHING",
                (*key, record.etag, record.content, float(record.updated)))
        else:
            main = (
                f"UPDATE xdm_documents SET etag = ?, content = ?, updated = ? WHERE {_KEY} "
                "AND etag = ?",
                (record.etag, record.content, float(record.updated), *key, expect))
        # The index follows only when this write won (the new tag is then the current one).
        won = f"EXISTS (SELECT 1 FROM xdm_documents WHERE {_KEY} AND etag = ?)"
        steps: list[Statement] = [
            main,
            (f"DELETE FROM xdm_uris WHERE {_KEY} AND {won}", (*key, *key, record.etag)),
        ]
        steps += [(
            f"INSERT INTO xdm_uris (uri, auid, owner, name) SELECT ?, ?, ?, ? WHERE {won}",
            (uri, *key, *key, record.etag)) for uri in dict.fromkeys(uris)]
        counts = await self._db.execute(steps)
        return counts[0] > 0

    async def delete(self, auid: str, owner: str, name: str, *, expect: str) -> bool:
        """Delete the document if its entity tag is ``expect``; False otherwise."""
        counts = await self._db.execute([
            (f"DELETE FROM xdm_uris WHERE {_KEY} AND EXISTS (SELECT 1 FROM xdm_documents "
             f"WHERE {_KEY} AND etag = ?)", (auid, owner, name, auid, owner, name, expect)),
            (f"DELETE FROM xdm_documents WHERE {_KEY} AND etag = ?",
             (auid, owner, name, expect)),
        ])
        return counts[1] > 0

    async def claimed_by(self, uri: str) -> tuple[str, str, str] | None:
        """(AUID, owner, name) of the document that claims ``uri``, None if none does."""
        rows = await self._db.fetch(
            "SELECT auid, owner, name FROM xdm_uris WHERE uri = ?", (uri,))
        return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None

    async def find(self, uri: str) -> XdmRecord | None:
        """The document that claims ``uri`` (one read)."""
        rows = await self._db.fetch(
            "SELECT d.auid, d.owner, d.name, d.etag, d.content, d.updated FROM xdm_uris u "
            "JOIN xdm_documents d ON d.auid = u.auid AND d.owner = u.owner AND d.name = u.name "
            "WHERE u.uri = ?", (uri,))
        return _from_row(rows[0]) if rows else None
