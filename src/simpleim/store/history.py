"""Repository of the Conversation History Function (OMA SIMPLE IM §13.2.3, CH-04).

Two tables (schema version 5):

* ``history``: one row per stored *history* - a pager / large message, or a recorded
  session - of one served user (``owner``): its history reference (§13.2.3 step 7: the
  unique ``id`` of the URI ``id@host``), kind, the peer, subject, file name
  (``historyfilename``, §13.2.2.2 step 2a), the original Call-ID, start / end times and
  the size of its items.  This is what the history metadata document lists (§13.3.2).
* ``history_items``: what was stored, in arrival order (``seq``): the whole SIP MESSAGE
  (step 4), the relevant INVITE / 200 / BYE headers of a session (steps 5-6, as a
  ``message/sipfrag``), and each MSRP SEND with its headers, the time the server received
  it and its content (step 6); the original Call-ID and MSRP Message-ID are kept
  unaltered for the delivery (§13.3.3.1), ``text`` is the searchable plain text.

Every write is committed before the coroutine returns (write before acknowledge).  Bytes
are base64 TEXT so the same DDL runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simpleim.errors import StorageError
from simpleim.store.executor import SqlExecutor, Statement

__all__ = ["HistoryItem", "HistoryKind", "HistoryQuery", "HistoryRecord",
           "HistoryRepository", "ItemKind"]


class HistoryKind(enum.StrEnum):
    PAGER = "pager"        # one SIP MESSAGE (§13.2.3 step 4)
    LARGE = "large"        # one large message (MSRP, §13.2.3 step 2)
    SESSION = "session"    # a recorded IM session (§13.2.3 step 3)


class ItemKind(enum.StrEnum):
    MESSAGE = "message"    # the complete SIP MESSAGE (delivered as message/sip)
    SIPFRAG = "sipfrag"    # relevant INVITE / 200 / BYE headers (message/sipfrag)
    SEND = "send"          # one MSRP SEND with headers and content (message/msrp)


_H_COLUMNS = ("id, owner, kind, peer, subject, filename, call_id, started_at, ended_at, "
              "size, direction")
_I_COLUMNS = ("id, history, owner, seq, kind, direction, received_at, call_id, message_id, "
              "content_type, text, headers, content, size")


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One stored history of ``owner`` (a metadata ``<history>`` element)."""

    id: str                 # the history reference is ``id@host``
    owner: str              # the served user's AOR
    kind: HistoryKind
    peer: str               # the other party (AOR or session identity)
    subject: str
    filename: str           # historyfilename (§13.2.2.2 step 2a), else the server's name
    call_id: str            # the original Call-ID
    started_at: float
    ended_at: float | None = None  # None: a session still being recorded
    size: int = 0
    direction: str = ""     # a pager history: "in" (to the owner) / "out"; "" a session


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One stored message of a history, in arrival order."""

    id: str
    history: str
    owner: str
    seq: int
    kind: ItemKind
    direction: str          # "in" (to the owner) / "out" (from the owner)
    received_at: float      # when the server received it
    call_id: str            # the original SIP Call-ID
    message_id: str         # the original MSRP Message-ID (SEND), else ""
    content_type: str
    text: str               # searchable plain text ("" when none)
    headers: tuple[tuple[str, str], ...]
    content: bytes          # the whole MESSAGE / sipfrag, or the SEND's body

    @property
    def size(self) -> int:
        return len(self.content) + sum(len(n) + len(v) for n, v in self.headers)


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A search over one owner's stored items (beyond the spec): ``peer`` (substring of
    the history's peer), ``since`` / ``until`` (received time), ``text`` (substring,
    case-insensitive), a page of ``limit`` items after ``offset``."""

    owner: str
    peer: str | None = None
    since: float | None = None
    until: float | None = None
    text: str | None = None
    limit: int = 50
    offset: int = 0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise StorageError(f"corrupt history {what}: {exc}") from exc


def _record(row: Sequence[Any]) -> HistoryRecord:
    hid, owner, kind, peer, subject, filename, call_id, started, ended, size, direction = row
    try:
        k = HistoryKind(str(kind))
    except ValueError as exc:
        raise StorageError(f"corrupt history {hid!r}: kind {kind!r}") from exc
    return HistoryRecord(str(hid), str(owner), k, str(peer), str(subject), str(filename),
                         str(call_id), float(started), None if ended is None else float(ended),
                         int(size), str(direction))


def _item(row: Sequence[Any]) -> HistoryItem:
    (iid, hist, owner, seq, kind, direction, received, call_id, message_id, ctype, text,
     headers, content, _size) = row
    try:
        k = ItemKind(str(kind))
        pairs = tuple((str(n), str(v)) for n, v in json.loads(str(headers)))
    except (ValueError, TypeError) as exc:
        raise StorageError(f"corrupt history item {iid!r}: {exc}") from exc
    return HistoryItem(str(iid), str(hist), str(owner), int(seq), k, str(direction),
                       float(received), str(call_id), str(message_id), str(ctype), str(text),
                       pairs, _unb64(content, f"item {iid!r}"))


def _item_row(item: HistoryItem) -> tuple[Any, ...]:
    return (item.id, item.history, item.owner, int(item.seq), item.kind.value, item.direction,
            float(item.received_at), item.call_id, item.message_id, item.content_type,
            item.text, json.dumps([list(p) for p in item.headers], separators=(",", ":")),
            _b64(item.content), item.size)


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class HistoryRepository:
    """Histories and their items per owner."""

    def __init__(self, db: SqlExecutor) -> None:
        self._db = db

    async def create(self, record: HistoryRecord, items: Sequence[HistoryItem] = ()) -> None:
        """Store a new history with its first items (one transaction)."""
        size = record.size + sum(i.size for i in items)
        steps: list[Statement] = [(
            f"INSERT INTO history ({_H_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.id, record.owner, record.kind.value, record.peer, record.subject,
             record.filename, record.call_id, float(record.started_at),
             None if record.ended_at is None else float(record.ended_at), int(size),
             record.direction))]
        steps += [(f"INSERT INTO history_items ({_I_COLUMNS}) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _item_row(i)) for i in items]
        await self._db.execute(steps)

    async def append(self, item: HistoryItem) -> None:
        """Add one item to its history (committed on return)."""
        await self._db.execute([
            (f"INSERT INTO history_items ({_I_COLUMNS}) VALUES "
             "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _item_row(item)),
            ("UPDATE history SET size = size + ? WHERE id = ?", (item.size, item.history)),
        ])

    async def append_many(self, items: Sequence[HistoryItem]) -> None:
        """Add items of one history in one transaction (bulk import, benchmarks)."""
        if not items:
            return
        size = sum(i.size for i in items)
        steps: list[Statement] = [
            (f"INSERT INTO history_items ({_I_COLUMNS}) VALUES "
             "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", _item_row(i)) for i in items]
        steps.append(("UPDATE history SET size = size + ? WHERE id = ?",
                      (size, items[0].history)))
        await self._db.execute(steps)

    async def finish(self, history_id: str, ended_at: float) -> None:
        """A recorded session ended (§13.2.7)."""
        await self._db.execute([(
            "UPDATE history SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
            (float(ended_at), history_id))])

    async def get(self, history_id: str) -> HistoryRecord | None:
        rows = await self._db.fetch(
            f"SELECT {_H_COLUMNS} FROM history WHERE id = ?", (history_id,))
        return _record(rows[0]) if rows else None

    async def of(self, owner: str, limit: int = 1000, offset: int = 0) -> list[HistoryRecord]:
        """The histories of ``owner``, oldest first."""
        rows = await self._db.fetch(
            f"SELECT {_H_COLUMNS} FROM history WHERE owner = ? "
            "ORDER BY started_at, id LIMIT ? OFFSET ?", (owner, int(limit), int(offset)))
        return [_record(r) for r in rows]

    async def items(self, history_id: str, *, after: int | None = None,
                    limit: int | None = None) -> list[HistoryItem]:
        """The items of one history in arrival order; ``after``: only those with a larger
        ``seq`` (the next page), ``limit``: at most that many."""
        sql = f"SELECT {_I_COLUMNS} FROM history_items WHERE history = ?"
        params: list[Any] = [history_id]
        if after is not None:
            sql += " AND seq > ?"
            params.append(int(after))
        sql += " ORDER BY seq, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        rows = await self._db.fetch(sql, params)
        return [_item(r) for r in rows]

    async def usage(self, owner: str) -> int:
        """Bytes stored for ``owner`` (the quota of §13.2.3 step 1a)."""
        rows = await self._db.fetch(
            "SELECT COALESCE(SUM(size), 0) FROM history WHERE owner = ?", (owner,))
        return int(rows[0][0]) if rows else 0

    async def remove(self, owner: str, history_ids: Sequence[str]) -> int:
        """Delete histories of ``owner`` with their items; how many histories."""
        if not history_ids:
            return 0
        marks = ", ".join("?" for _ in history_ids)
        ids = tuple(history_ids)
        _items, count = await self._db.execute([
            (f"DELETE FROM history_items WHERE owner = ? AND history IN ({marks})",
             (owner, *ids)),
            (f"DELETE FROM history WHERE owner = ? AND id IN ({marks})", (owner, *ids)),
        ])
        return count

    async def remove_all(self, owner: str) -> int:
        _items, count = await self._db.execute([
            ("DELETE FROM history_items WHERE owner = ?", (owner,)),
            ("DELETE FROM history WHERE owner = ?", (owner,)),
        ])
        return count

    async def search(self, query: HistoryQuery) -> list[tuple[HistoryRecord, HistoryItem]]:
        """Messages of ``query.owner`` matching it (not the session headers), oldest
        first, one page."""
        where = ["i.owner = ?", "i.kind <> 'sipfrag'"]
        params: list[Any] = [query.owner]
        if query.peer:
            where.append("LOWER(h.peer) LIKE ? ESCAPE '\\'")
            params.append(_like(query.peer))
        if query.since is not None:
            where.append("i.received_at >= ?")
            params.append(float(query.since))
        if query.until is not None:
            where.append("i.received_at < ?")
            params.append(float(query.until))
        if query.text:
            where.append("LOWER(i.text) LIKE ? ESCAPE '\\'")
            params.append(_like(query.text))
        h_cols = ", ".join(f"h.{c.strip()}" for c in _H_COLUMNS.split(","))
        i_cols = ", ".join(f"i.{c.strip()}" for c in _I_COLUMNS.split(","))
        rows = await self._db.fetch(
            f"SELECT {h_cols}, {i_cols} FROM history_items i JOIN history h "
            f"ON h.id = i.history WHERE {' AND '.join(where)} "
            "ORDER BY i.received_at, i.seq, i.id LIMIT ? OFFSET ?",
            (*params, max(1, min(int(query.limit), 500)), max(0, int(query.offset))))
        n = len(_H_COLUMNS.split(","))
        return [(_record(r[:n]), _item(r[n:])) for r in rows]
