"""SQLite store (aiosqlite): the default, ``sqlite:///simpleim.db``.

One connection; write transactions are serialized by an :class:`asyncio.Lock` so that
statements of concurrent coroutines never interleave inside one transaction.  File
databases use WAL with ``synchronous=FULL``: a committed write survives a crash, which
is what write-before-acknowledge needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from simpleim.errors import ConfigError, StorageError
from simpleim.store.base import StoreConfig
from simpleim.store.sql import SqlStore, Statement, driver_errors

__all__ = ["SqliteStore", "SqliteTarget", "parse_sqlite_url"]

MEMORY = ":memory:"


@dataclass(frozen=True, slots=True)
class SqliteTarget:
    """Where a ``sqlite:`` URL points: a file path or ``:memory:``."""

    path: str

    @property
    def memory(self) -> bool:
        return self.path == MEMORY


def parse_sqlite_url(url: str) -> SqliteTarget:
    """``sqlite:///rel.db`` → ``rel.db``; ``sqlite:////abs.db`` → ``/abs.db``;
    ``sqlite://:memory:`` and ``sqlite:///:memory:`` → in-memory."""
    prefix = "sqlite://"
    if not url.lower().startswith(prefix):
        raise ConfigError(f"not a sqlite URL: {url!r}")
    rest = url[len(prefix):]
    if rest in (MEMORY, "/" + MEMORY):
        return SqliteTarget(MEMORY)
    if not rest.startswith("/") or len(rest) < 2:
        raise ConfigError(
            f"bad sqlite URL {url!r}: use sqlite:///relative/path.db, sqlite:////absolute.db "
            "or sqlite://:memory:"
        )
    path = rest[1:]
    if "?" in path or "#" in path:
        raise ConfigError(f"bad sqlite URL {url!r}: no query or fragment allowed")
    return SqliteTarget(path)


def _probe(path: str, timeout: float) -> None:
    # The database holds HA1 values, which are password-equivalent for their realm: a new
    # file is created readable by its owner only (SQLite gives -wal/-shm the same mode).
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        pass
    else:
        os.close(fd)
    sqlite3.connect(path, timeout=timeout).close()


class SqliteStore(SqlStore):
    """Use :meth:`open` (or :func:`simpleim.store.open_store`), not the constructor."""

    BACKEND = "SQLite"
    _driver_error_types = (sqlite3.Error,)

    def __init__(self, conn: aiosqlite.Connection, target: SqliteTarget) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.target = target

    @classmethod
    async def open(cls, config: StoreConfig | str) -> SqliteStore:
        cfg = StoreConfig(config) if isinstance(config, str) else config
        target = parse_sqlite_url(cfg.url)
        with driver_errors((sqlite3.Error, OSError),
                           f"cannot open SQLite database {target.path!r}"):
            if not target.memory:
                # aiosqlite leaves its worker thread racing a closing loop when the connect
                # itself fails, so the open is probed first in a plain thread.
                await asyncio.to_thread(_probe, target.path, cfg.timeout)
            conn = await aiosqlite.connect(target.path, timeout=cfg.timeout)
        store = cls(conn, target)
        try:
            with driver_errors(cls._driver_error_types,
                               f"cannot use SQLite database {target.path!r}"):
                await conn.execute("PRAGMA foreign_keys = ON")
                if not target.memory:
                    await conn.execute("PRAGMA journal_mode = WAL")
                await conn.execute("PRAGMA synchronous = FULL")
                await conn.commit()
                await store._migrate()
        except StorageError:
            await store.close()
            raise
        return store

    async def _execute(self, statements: Sequence[Statement]) -> list[int]:
        counts: list[int] = []
        async with self._lock:
            try:
                for sql, params in statements:
                    cursor = await self._conn.execute(sql, tuple(params))
                    counts.append(cursor.rowcount)
                    await cursor.close()
                await self._conn.commit()
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):   # the write's error is the news
                    await self._conn.rollback()
                raise
        return counts

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        async with self._lock, self._conn.execute(sql, tuple(params)) as cursor:
            rows = await cursor.fetchall()
        return [tuple(r) for r in rows]

    async def _close_driver(self) -> None:
        await self._conn.close()
