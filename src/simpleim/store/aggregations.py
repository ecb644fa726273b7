"""Repository of the Controlling Function's pending IMDN aggregations (OMA SIMPLE IM
§8.3.1.1 step 9, §8.3.1.2, Timer Ts2 of §15.1).

One row per exploded pager message that asked for delivery notifications: who sent it, the
``imdn.Message-ID`` it is known by, the Ts2 deadline and the aggregation state (JSON,
written by the exploder).  The row is written before the sender gets its 202 and deleted
when the aggregated IMDN has been sent, so a restarted server resumes every aggregation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simpleim.store.executor import SqlExecutor

__all__ = ["AggregationRecord", "AggregationRepository"]

_COLUMNS = "id, sender, message_id, deadline, state"


@dataclass(frozen=True, slots=True)
class AggregationRecord:
    id: str  # the exploder's own key of the exploded message
    sender: str  # AOR of the sending user (user@domain)
    message_id: str  # the CPIM imdn.Message-ID of the exploded message
    deadline: float  # Timer Ts2 expiry (epoch seconds)
    state: str  # JSON of the aggregation state


def _from_row(row: Sequence[Any]) -> AggregationRecord:
    id_, sender, message_id, deadline, state = row
    return AggregationRecord(str(id_), str(sender), str(message_id), float(deadline),
                             str(state))


class AggregationRepository:
    def __init__(self, db: SqlExecutor) -> None:
        self._db = db

    async def put(self, record: AggregationRecord) -> None:
        """Insert or replace ``record`` (committed on return)."""
        await self._db.execute([(
            f"INSERT INTO imdn_aggregations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET sender = excluded.sender, "
            "message_id = excluded.message_id, deadline = excluded.deadline, "
            "state = excluded.state",
            (record.id, record.sender, record.message_id, float(record.deadline),
             record.state),
        )])

    async def delete(self, id_: str) -> bool:
        """Remove the aggregation ``id_``; whether it existed."""
        (count,) = await self._db.execute([
            ("DELETE FROM imdn_aggregations WHERE id = ?", (id_,))])
        return count > 0

    async def load_all(self) -> list[AggregationRecord]:
        """Every pending aggregation, earliest deadline first."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM imdn_aggregations ORDER BY deadline, id")
        return [_from_row(r) for r in rows]

    async def count(self) -> int:
        rows = await self._db.fetch("SELECT COUNT(*) FROM imdn_aggregations")
        return int(rows[0][0]) if rows else 0
