"""Repository of the IM service settings (OMA SIMPLE IM §5.2.4, §6.1.1.5, Appendix E).

One row per AOR: the published document as received, its parsed values (JSON, written by
the settings role), the entity tag of the publication (RFC 3903 §4.1) and its expiry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simpleim.store.executor import SqlExecutor

__all__ = ["SettingsRecord", "SettingsRepository"]

_COLUMNS = "aor, etag, expires_at, settings, document"


@dataclass(frozen=True, slots=True)
class SettingsRecord:
    aor: str
    etag: str
    expires_at: float
    settings: str  # JSON of the parsed values
    document: str  # the poc-settings XML as published


def _from_row(row: Sequence[Any]) -> SettingsRecord:
    aor, etag, expires_at, settings, document = row
    return SettingsRecord(str(aor), str(etag), float(expires_at), str(settings), str(document))


class SettingsRepository:
    def __init__(self, db: SqlExecutor) -> None:
        self._db = db

    async def put(self, record: SettingsRecord) -> None:
        """Insert or replace the publication of ``record.aor`` (committed on return)."""
        await self._db.execute([(
            f"INSERT INTO service_settings ({_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (aor) DO UPDATE SET etag = excluded.etag, "
            "expires_at = excluded.expires_at, settings = excluded.settings, "
            "document = excluded.document",
            (record.aor, record.etag, float(record.expires_at), record.settings,
             record.document),
        )])

    async def get(self, aor: str, now: float) -> SettingsRecord | None:
        """The unexpired publication of ``aor``, if any."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM service_settings WHERE aor = ? AND expires_at > ?",
            (aor, float(now)))
        return _from_row(rows[0]) if rows else None

    async def load_all(self, now: float) -> list[SettingsRecord]:
        """Every unexpired publication."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM service_settings WHERE expires_at > ? ORDER BY aor",
            (float(now),))
        return [_from_row(r) for r in rows]

    async def remove(self, aor: str) -> bool:
        (count,) = await self._db.execute([
            ("DELETE FROM service_settings WHERE aor = ?", (aor,))])
        return count > 0

    async def purge_expired(self, now: float) -> int:
        (count,) = await self._db.execute([
            ("DELETE FROM service_settings WHERE expires_at <= ?", (float(now),))])
        return count
