"""Repository of the System Messages the IM server sends (OMA SIMPLE IM §5.4, §15 Ts1).

One row per System Message: the recipient AOR, the body and its content type, when it was
queued, the seconds the recipient has to answer (Ts1; None: no answer asked), and when it
was sent and answered.  A row with a ``service_type`` (``SysAdmin``, ``Announcement``,
``Advertisement``...) is a system message into a running IM conference (§7.2.3.5): its
``aor`` is the conference's (or pre-defined group's) address.  ``respond_by`` (sent_at +
Ts1) is what §6.1.1.1 step 2 checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simpleim.store.executor import SqlExecutor

__all__ = ["SystemMessageRecord", "SystemMessageRepository"]

_COLUMNS = ("id, aor, body, content_type, created_at, ts1, sent_at, respond_by, answered_at, "
            "service_type")


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class SystemMessageRecord:
    id: str
    aor: str
    body: str
    content_type: str
    created_at: float
    ts1: float | None = None  # seconds to answer; None: no answer asked
    sent_at: float | None = None
    respond_by: float | None = None
    answered_at: float | None = None
    #: §7.2.3.5: into the conference ``aor``, the CPIM From display name (None: a user's)
    service_type: str | None = None


def _from_row(row: Sequence[Any]) -> SystemMessageRecord:
    mid, aor, body, ctype, created, ts1, sent, respond_by, answered, service = row
    return SystemMessageRecord(str(mid), str(aor), str(body), str(ctype), float(created),
                               _opt(ts1), _opt(sent), _opt(respond_by), _opt(answered),
                               None if service is None else str(service))


class SystemMessageRepository:
    def __init__(self, db: SqlExecutor) -> None:
        self._db = db

    async def add(self, record: SystemMessageRecord) -> None:
        """Queue a System Message (committed on return)."""
        await self._db.execute([(
            f"INSERT INTO system_messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.id, record.aor, record.body, record.content_type, record.created_at,
             record.ts1, record.sent_at, record.respond_by, record.answered_at,
             record.service_type))])

    async def unsent(self) -> list[SystemMessageRecord]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM system_messages WHERE sent_at IS NULL "
            "ORDER BY created_at, id")
        return [_from_row(r) for r in rows]

    async def mark_sent(self, mid: str, sent_at: float, respond_by: float | None) -> None:
        await self._db.execute([(
            "UPDATE system_messages SET sent_at = ?, respond_by = ? WHERE id = ?",
            (sent_at, respond_by, mid))])

    async def awaiting_answer(self) -> list[SystemMessageRecord]:
        """Sent System Messages whose answer is asked for and has not come."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM system_messages WHERE respond_by IS NOT NULL "
            "AND answered_at IS NULL ORDER BY respond_by")
        return [_from_row(r) for r in rows]

    async def answer(self, aor: str, at: float) -> int:
        """Mark every System Message of ``aor`` that waits for an answer as answered."""
        (count,) = await self._db.execute([(
            "UPDATE system_messages SET answered_at = ? WHERE aor = ? "
            "AND respond_by IS NOT NULL AND answered_at IS NULL", (at, aor))])
        return count

    async def of(self, aor: str) -> list[SystemMessageRecord]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM system_messages WHERE aor = ? ORDER BY created_at, id",
            (aor,))
        return [_from_row(r) for r in rows]
