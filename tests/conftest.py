"""Fixtures shared by the whole suite.

``store_url`` / ``store``: every store test runs twice, against SQLite (a file in the test's tmp
dir) and PostgreSQL (a fresh random schema, dropped afterwards).  PostgreSQL missing is a skip
on a laptop and a failure under ``CI=true`` (see ``needs.unavailable``).  Other tests that need
a store (server repositories, migrations) take ``store_url`` and get both backends for free;
``pg_url`` is for PostgreSQL-only tests.

Caches: see ``SIMPLEIM_TEST_CACHE`` below.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from needs import PG_BASE, unavailable
from simpleim.store import Store, open_store

# A test run writes nothing into the checkout: the pytest cache (pyproject.toml cache_dir) and
# Hypothesis' example database live under SIMPLEIM_TEST_CACHE (default: a per-user temp dir).
# Set here, at conftest import, before pytest's cache plugin reads cache_dir.
_CACHE = Path(os.environ.setdefault(
    "SIMPLEIM_TEST_CACHE", str(Path(tempfile.gettempdir()) / f"simpleim-test-cache-{os.getuid()}")))
set_hypothesis_home_dir(_CACHE / "hypothesis")

# Ctrl-C tests (test_cli_transfer, test_docs_examples, ...) send SIGINT to the programs they
# start.  A suite started in the background of a non-interactive shell (`make test &` in a
# script, CI runners) inherits SIGINT *ignored* (POSIX sh, asynchronous lists without job
# control), every child inherits that across exec, and Python then installs no handler: the
# signal is lost, a transfer runs to its end (exit 0), an unanswered INVITE times out (exit 4,
# 408) and a `KeyboardInterrupt` program never stops.  Those children are stand-ins for a
# command typed in a terminal, where Ctrl-C is never ignored: give the suite the normal
# disposition, which exec resets to the default in every child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

_PG_PROBE: dict[str, str | None] = {}


async def _probe_pg() -> str | None:
    """None when PostgreSQL answers at PG_BASE, else why not."""
    try:
        import asyncpg
    except ImportError:
        return "asyncpg not installed (pip install -e '.[test]')"
    try:
        conn = await asyncpg.connect(PG_BASE, timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return f"no PostgreSQL at {PG_BASE} ({exc}; .ci/run starts one)"
    await conn.close()
    return None


async def _pg_missing() -> str | None:
    if "result" not in _PG_PROBE:  # probe once per run
        _PG_PROBE["result"] = await _probe_pg()
    return _PG_PROBE["result"]


async def _drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_BASE, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def _pg_schema() -> AsyncIterator[str]:
    missing = await _pg_missing()
    if missing:
        unavailable(missing)
    schema = "simpleim_test_" + secrets.token_hex(6)
    try:
        yield f"{PG_BASE}?schema={schema}"
    finally:
        await _drop_schema(schema)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A PostgreSQL store URL with a schema of its own (``?schema=simpleim_test_<random>``)."""
    async with _pg_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A store URL for each backend: SQLite file in tmp_path, PostgreSQL in a random schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'store.db').resolve()}"
        return
    async with _pg_schema() as url:
        yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open store on each backend (closed at teardown)."""
    s = await open_store(store_url)
    async with s:
        yield s
