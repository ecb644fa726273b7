"""PostgreSQL store (asyncpg, optional dependency ``simpleim[postgres]``).

URL: ``postgresql://[user[:password]@]host[:port]/dbname[?schema=NAME]``.  The optional
``schema`` query parameter (created if missing) puts simpleim's tables in their own
schema; other query parameters are passed to asyncpg.  Each write is one transaction,
committed before the coroutine returns.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from simpleim.errors import ConfigError, StorageError
from simpleim.store.base import StoreConfig
from simpleim.store.sql import SqlStore, Statement, driver_errors

__all__ = ["PostgresStore", "split_postgres_url", "to_dollar_params"]

_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def split_postgres_url(url: str) -> tuple[str, str | None]:
    """(DSN for asyncpg, schema or None); raises ConfigError on a malformed URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"not a PostgreSQL URL: {url!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = None
    rest: list[tuple[str, str]] = []
    for key, value in query:
        if key == "schema":
            if not _SCHEMA_RE.fullmatch(value):
                raise ConfigError(f"invalid schema name {value!r} (lower-case identifier)")
            schema = value
        else:
            rest.append((key, value))
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), ""))
    return dsn, schema


@functools.lru_cache(maxsize=512)
def to_dollar_params(sql: str) -> str:
    """``?`` placeholders → PostgreSQL ``$1, $2, ...`` (our SQL has no literal '?').
    Memoised: the statements are a fixed set, converted once each."""
    out: list[str] = []
    n = 0
    for ch in sql:
        if ch == "?":
            n += 1
            out.append(f"${n}")
        else:
            out.append(ch)
    return "".join(out)


def _rowcount(status: str) -> int:
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresStore(SqlStore):
    """Use :meth:`open` (or :func:`simpleim.store.open_store`), not the constructor."""

    BACKEND = "PostgreSQL"

    def __init__(self, pool: Any, errors: tuple[type[BaseException], ...]) -> None:
        self._pool = pool
        self._driver_error_types = errors    # asyncpg's, known once it is imported

    @classmethod
    async def open(cls, config: StoreConfig | str) -> PostgresStore:
        cfg = StoreConfig(config) if isinstance(config, str) else config
        dsn, schema = split_postgres_url(cfg.url)
        try:
            import asyncpg
        except ImportError as exc:
            raise ConfigError(
                "PostgreSQL needs asyncpg: pip install 'simpleim[postgres]'"
            ) from exc
        errors: tuple[type[BaseException], ...] = (
            asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError,
        )
        # write before acknowledge: a commit returns once it is flushed to the WAL, whatever
        # the server's default (synchronous_commit = off would lose the last commits)
        settings = {"synchronous_commit": "on"}
        if schema:
            settings["search_path"] = schema
        with driver_errors(errors, "cannot connect to PostgreSQL"):
            if schema:
                conn = await asyncpg.connect(dsn, timeout=cfg.timeout)
                try:
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                finally:
                    await conn.close()
            pool = await asyncpg.create_pool(
                dsn, min_size=cfg.pool_min, max_size=cfg.pool_max, timeout=cfg.timeout,
                server_settings=settings,
            )
        store = cls(pool, errors)
        try:
            await store._migrate()
        except StorageError:
            await store.close()
            raise
        return store

    async def _execute(self, statements: Sequence[Statement]) -> list[int]:
        if len(statements) == 1:
            # One statement needs no BEGIN/COMMIT round trips: outside a transaction block
            # PostgreSQL runs it as a transaction of its own, committed (and, with
            # synchronous_commit on for our connections, flushed to the WAL) before the
            # answer comes back.
            sql, params = statements[0]
            async with self._pool.acquire() as conn:
                status = await conn.execute(to_dollar_params(sql), *params)
            return [_rowcount(str(status))]
        counts: list[int] = []
        async with self._pool.acquire() as conn, conn.transaction():
            for sql, params in statements:
                status = await conn.execute(to_dollar_params(sql), *params)
                counts.append(_rowcount(str(status)))
        return counts

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(to_dollar_params(sql), *params)
        return [tuple(r) for r in rows]

    async def _close_driver(self) -> None:
        await self._pool.close()
