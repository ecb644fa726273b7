"""Repository of the Controlling Function's conferences (OMA SIMPLE IM §7.2: the IM Session
Identity, its creator, participants and status).

One row per conference: written before the creator gets the 200 that names the conference
URI (write before acknowledging), rewritten at each participant change, kept with status
``released`` after the end so that a rejoin to a released conference is told so (§7.2.1.5
step 1: 403 + ``123 Session does not exist``) and deleted when it is older than the
retention the focus is configured with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simpleim.store.executor import SqlExecutor

__all__ = ["ConferenceRecord", "ConferenceRepository"]

_COLUMNS = "uri, creator, status, updated, state"


@dataclass(frozen=True, slots=True)
class ConferenceRecord:
    uri: str          # the conference URI (IM Session Identity), lower-case user part key
    creator: str      # AOR of the initiator
    status: str       # active / released
    updated: float    # epoch seconds of the last change
    state: str        # JSON of the conference (participants...)


def _from_row(row: Sequence[Any]) -> ConferenceRecord:
    uri, creator, status, updated, state = row
    return ConferenceRecord(str(uri), str(creator), str(status), float(updated), str(state))


class ConferenceRepository:
    def __init__(self, db: SqlExecutor) -> None:
        self._db = db

    async def put(self, record: ConferenceRecord) -> None:
        """Insert or replace ``record`` (committed on return)."""
        await self._db.execute([(
            f"INSERT INTO conferences ({_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (uri) DO UPDATE SET creator = excluded.creator, "
            "status = excluded.status, updated = excluded.updated, state = excluded.state",
            (record.uri, record.creator, record.status, float(record.updated), record.state),
        )])

    async def get(self, uri: str) -> ConferenceRecord | None:
        rows = await self._db.fetch(f"SELECT {_COLUMNS} FROM conferences WHERE uri = ?", (uri,))
        return _from_row(rows[0]) if rows else None

    async def delete_before(self, cutoff: float) -> int:
        """Forget released conferences last changed before ``cutoff``; how many."""
        (count,) = await self._db.execute([(
            "DELETE FROM conferences WHERE status = 'released' AND updated < ?",
            (float(cutoff),))])
        return count

    async def active(self) -> list[ConferenceRecord]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM conferences WHERE status = 'active' ORDER BY uri")
        return [_from_row(r) for r in rows]
