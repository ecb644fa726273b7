"""The narrow SQL interface the per-role repositories use.

:class:`~simpleim.store.sql.SqlStore` implements it on SQLite and PostgreSQL; a repository
(deferred messages, service settings) gets it injected and never sees the backend.
Statements use ``?`` placeholders; every :meth:`SqlExecutor.execute` call is one committed
transaction (durable before the coroutine returns: write before acknowledge).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["SqlExecutor", "Statement"]

Statement = tuple[str, Sequence[Any]]


class SqlExecutor(Protocol):
    async def execute(self, statements: Sequence[Statement]) -> list[int]:
        """Run ``statements`` in one committed transaction; their row counts."""

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one SELECT."""
