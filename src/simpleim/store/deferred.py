"""Repository of the Deferred Messaging Function (OMA SIMPLE IM §12.2.2.3, DM-05).

A deferred message is kept whole (the complete SIP request, headers and body, without the
P-Asserted-Identity when the sender asked for anonymity: the role strips it before it
calls :meth:`DeferredRepository.add`), under its unique Message-ID ``sip:<id>@<host>``,
with the time the server received it, its expiry and its position (``seq``) in the
recipient's queue.  :meth:`DeferredRepository.add` returns only after the row is committed,
so the role can acknowledge (202) afterwards.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simpleim.errors import StorageError
from simpleim.store.executor import SqlExecutor

__all__ = ["DeferredMessage", "DeferredRepository"]

_COLUMNS = "id, recipient, sender, seq, received_at, expires_at, subject, request"


@dataclass(frozen=True, slots=True)
class DeferredMessage:
    """One stored message of ``recipient`` (an AOR ``user@domain``)."""

    id: str  # the unique string of the Message-ID URI sip:<id>@<host> (DM-05)
    recipient: str
    sender: str  # the sender's AOR (for failure reports and listings)
    seq: int  # order of arrival in the recipient's queue
    received_at: float  # wall-clock seconds
    expires_at: float
    subject: str
    request: bytes  # the complete stored SIP request

    @property
    def size(self) -> int:
        return len(self.request)


def _row(m: DeferredMessage) -> tuple[Any, ...]:
    return (m.id, m.recipient, m.sender, int(m.seq), float(m.received_at),
            float(m.expires_at), m.subject, base64.b64encode(m.request).decode("ascii"))


def _from_row(row: Sequence[Any]) -> DeferredMessage:
    mid, recipient, sender, seq, received_at, expires_at, subject, request = row
    try:
        raw = base64.b64decode(str(request), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise StorageError(f"corrupt deferred message {mid!r}: {exc}") from exc
    return DeferredMessage(str(mid), str(recipient), str(sender), int(seq), float(received_at),
                           float(expires_at), str(subject), raw)


class DeferredRepository:
    """Deferred messages per recipient, in arrival order."""

    def __init__(self, db: SqlExecutor) -> None:
        self._db = db

    async def add(self, message: DeferredMessage) -> None:
        """Store ``message`` durably (committed when this returns)."""
        await self._db.execute([(
            f"INSERT INTO deferred_messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            _row(message),
        )])

    async def pending(self, recipient: str, ids: Sequence[str] | None = None,
                      limit: int = 1000) -> list[DeferredMessage]:
        """Stored messages of ``recipient`` (only ``ids`` when given), oldest first."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM deferred_messages WHERE recipient = ? "
            "ORDER BY seq, id LIMIT ?", (recipient, int(limit)))
        found = [_from_row(r) for r in rows]
        if ids is not None:
            wanted = set(ids)
            found = [m for m in found if m.id in wanted]
        return found

    async def replace_request(self, message_id: str, request: bytes) -> bool:
        """Replace the stored request of one message (the large message's BYE headers added
        after the session ended, §12.2.2.3 step 3); False when it is gone (delivered or
        deleted meanwhile)."""
        (count,) = await self._db.execute([(
            "UPDATE deferred_messages SET request = ? WHERE id = ?",
            (base64.b64encode(request).decode("ascii"), message_id))])
        return count > 0

    async def get(self, message_id: str) -> DeferredMessage | None:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM deferred_messages WHERE id = ?", (message_id,))
        return _from_row(rows[0]) if rows else None

    async def remove(self, message_id: str) -> bool:
        """Delete one message; True if it was there (False: already delivered/deleted)."""
        (count,) = await self._db.execute([
            ("DELETE FROM deferred_messages WHERE id = ?", (message_id,))])
        return count > 0

    async def remove_all(self, recipient: str) -> int:
        (count,) = await self._db.execute([
            ("DELETE FROM deferred_messages WHERE recipient = ?", (recipient,))])
        return count

    async def recipients(self) -> list[str]:
        """AORs that have at least one stored message."""
        rows = await self._db.fetch(
            "SELECT DISTINCT recipient FROM deferred_messages ORDER BY recipient")
        return [str(r[0]) for r in rows]

    async def expired(self, now: float, limit: int = 500) -> list[DeferredMessage]:
        """Messages whose expiry has passed at ``now`` (DM-08)."""
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM deferred_messages WHERE expires_at <= ? "
            "ORDER BY expires_at LIMIT ?", (float(now), int(limit)))
        return [_from_row(r) for r in rows]

    async def count(self, recipient: str | None = None) -> int:
        if recipient is None:
            rows = await self._db.fetch("SELECT COUNT(*) FROM deferred_messages")
        else:
            rows = await self._db.fetch(
                "SELECT COUNT(*) FROM deferred_messages WHERE recipient = ?", (recipient,))
        return int(rows[0][0]) if rows else 0
