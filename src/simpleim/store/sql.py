"""The SQL implementation of :class:`~simpleim.store.base.Store`, shared by SQLite and
PostgreSQL.  A backend only provides :meth:`SqlStore._run` (statements in one
transaction) and :meth:`SqlStore._query`; SQL is written with ``?`` placeholders and
portable types (both engines accept ``DOUBLE PRECISION``/``BIGINT`` and
``INSERT ... ON CONFLICT ... DO UPDATE``).

Schema versions live in ``simpleim_schema(version)``; :data:`MIGRATIONS` is applied in
order at open, each step in its own transaction.  A database newer than this code is
refused rather than guessed at.
"""

from __future__ import annotations

import abc
import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from simpleim.errors import StorageError
from simpleim.store.aggregations import AggregationRepository
from simpleim.store.base import Store, User
from simpleim.store.conferences import ConferenceRepository
from simpleim.store.deferred import DeferredRepository
from simpleim.store.executor import Statement
from simpleim.store.history import HistoryRepository
from simpleim.store.model import Binding, binding_key
from simpleim.store.settings import SettingsRepository
from simpleim.store.system import SystemMessageRepository
from simpleim.store.xdm import XdmRepository

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqlStore", "Statement"]

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # version 1
    (
        """CREATE TABLE users (
            name TEXT NOT NULL,
            domain TEXT NOT NULL,
            realm TEXT NOT NULL,
            ha1_md5 TEXT NOT NULL,
            ha1_sha256 TEXT NOT NULL,
            PRIMARY KEY (name, domain),
            UNIQUE (name, realm)
        )""",
        """CREATE TABLE bindings (
            aor TEXT NOT NULL,
            binding_key TEXT NOT NULL,
            contact TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            q DOUBLE PRECISION NOT NULL,
            call_id TEXT NOT NULL,
            cseq BIGINT NOT NULL,
            instance TEXT,
            reg_id BIGINT,
            params TEXT NOT NULL,
            path TEXT NOT NULL,
            source_transport TEXT,
            source_host TEXT,
            source_port INTEGER,
            PRIMARY KEY (aor, binding_key)
        )""",
        "CREATE INDEX bindings_expires_at ON bindings (expires_at)",
    ),
    # version 2: the Deferred Messaging Function's store (OMA SIMPLE IM §12.2.2.3, DM-05)
    # and the IM service settings (§6.1.1.5, Appendix E).  Bytes are kept as base64 TEXT so
    # that the same DDL runs on SQLite and PostgreSQL.
    (
        """CREATE TABLE deferred_messages (
            id TEXT NOT NULL PRIMARY KEY,
            recipient TEXT NOT NULL,
            sender TEXT NOT NULL,
            seq BIGINT NOT NULL,
            received_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            subject TEXT NOT NULL,
            request TEXT NOT NULL
        )""",
        "CREATE INDEX deferred_messages_recipient ON deferred_messages (recipient, seq)",
        "CREATE INDEX deferred_messages_expires_at ON deferred_messages (expires_at)",
        """CREATE TABLE service_settings (
            aor TEXT NOT NULL PRIMARY KEY,
            etag TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            settings TEXT NOT NULL,
            document TEXT NOT NULL
        )""",
    ),
    # version 3: System Messages of the IM server (OMA SIMPLE IM §5.4) and their Ts1
    # deadlines (§15, checked by §6.1.1.1 step 2).
    (
        """CREATE TABLE system_messages (
            id TEXT NOT NULL PRIMARY KEY,
            aor TEXT NOT NULL,
            body TEXT NOT NULL,
            content_type TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            ts1 DOUBLE PRECISION,
            sent_at DOUBLE PRECISION,
            respond_by DOUBLE PRECISION,
            answered_at DOUBLE PRECISION
        )""",
        "CREATE INDEX system_messages_aor ON system_messages (aor)",
    ),
    # version 4: the Controlling Function's pending IMDN aggregations (OMA SIMPLE IM
    # §8.3.1.1 step 9, Timer Ts2): written before the exploder's 202, resumed on restart.
    (
        """CREATE TABLE imdn_aggregations (
            id TEXT NOT NULL PRIMARY KEY,
            sender TEXT NOT NULL,
            message_id TEXT NOT NULL,
            deadline DOUBLE PRECISION NOT NULL,
            state TEXT NOT NULL
        )""",
        "CREATE INDEX imdn_aggregations_message ON imdn_aggregations (message_id)",
    ),
    # version 5: XDM documents served over XCAP (RFC 4825; OMA SIMPLE IM §7.1.1.4, §12.1.2,
    # Appendix Q): per-user trees by AUID, each document with its entity tag; the URIs a
    # document claims server-wide (group URIs) in their own table, unique.
    (
        """CREATE TABLE xdm_documents (
            auid TEXT NOT NULL,
            owner TEXT NOT NULL,
            name TEXT NOT NULL,
            etag TEXT NOT NULL,
            content TEXT NOT NULL,
            updated DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (auid, owner, name)
        )""",
        """CREATE TABLE xdm_uris (
            uri TEXT NOT NULL PRIMARY KEY,
            auid TEXT NOT NULL,
            owner TEXT NOT NULL,
            name TEXT NOT NULL
        )""",
        "CREATE INDEX xdm_uris_document ON xdm_uris (auid, owner, name)",
    ),
    # version 6: the Conversation History Function (OMA SIMPLE IM §13.2.3, CH-04): the
    # stored histories of each user (the metadata of §13.3.2) and their items in arrival
    # order (whole MESSAGEs, session headers as sipfrag, each MSRP SEND).
    (
        """CREATE TABLE history (
            id TEXT NOT NULL PRIMARY KEY,
            owner TEXT NOT NULL,
            kind TEXT NOT NULL,
            peer TEXT NOT NULL,
            subject TEXT NOT NULL,
            filename TEXT NOT NULL,
            call_id TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            ended_at DOUBLE PRECISION,
            size BIGINT NOT NULL,
            direction TEXT NOT NULL
        )""",
        "CREATE INDEX history_owner ON history (owner, started_at)",
        """CREATE TABLE history_items (
            id TEXT NOT NULL PRIMARY KEY,
            history TEXT NOT NULL,
            owner TEXT NOT NULL,
            seq BIGINT NOT NULL,
            kind TEXT NOT NULL,
            direction TEXT NOT NULL,
            received_at DOUBLE PRECISION NOT NULL,
            call_id TEXT NOT NULL,
            message_id TEXT NOT NULL,
            content_type TEXT NOT NULL,
            text TEXT NOT NULL,
            headers TEXT NOT NULL,
            content TEXT NOT NULL,
            size BIGINT NOT NULL
        )""",
        "CREATE INDEX history_items_history ON history_items (history, seq)",
        "CREATE INDEX history_items_owner ON history_items (owner, received_at)",
    ),
    # version 7: the Controlling Function's conferences (OMA SIMPLE IM §7.2): the IM Session
    # Identity, creator, status and participants, written before the creator's 200.
    (
        """CREATE TABLE conferences (
            uri TEXT NOT NULL PRIMARY KEY,
            creator TEXT NOT NULL,
            status TEXT NOT NULL,
            updated DOUBLE PRECISION NOT NULL,
            state TEXT NOT NULL
        )""",
        "CREATE INDEX conferences_status ON conferences (status)",
    ),
    # version 8: system messages into a running IM conference (OMA SIMPLE IM §7.2.3.5): the
    # service type shown as the CPIM From display name; NULL for a user's System Message.
    (
        "ALTER TABLE system_messages ADD COLUMN service_type TEXT",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_BINDING_COLUMNS = (
    "aor, binding_key, contact, expires_at, q, call_id, cseq, instance, reg_id, params, path, "
    "source_transport, source_host, source_port"
)
_UPSERT_BINDING = (
    f"INSERT INTO bindings ({_BINDING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (aor, binding_key) DO UPDATE SET contact = excluded.contact, "
    "expires_at = excluded.expires_at, q = excluded.q, call_id = excluded.call_id, "
    "cseq = excluded.cseq, instance = excluded.instance, reg_id = excluded.reg_id, "
    "params = excluded.params, path = excluded.path, "
    "source_transport = excluded.source_transport, source_host = excluded.source_host, "
    "source_port = excluded.source_port"
)
_USER_COLUMNS = "name, domain, realm, ha1_md5, ha1_sha256"
_HA1_COLUMN = {"MD5": "ha1_md5", "SHA-256": "ha1_sha256"}


def _binding_row(b: Binding) -> tuple[Any, ...]:
    src = b.source
    return (
        b.aor, b.key or binding_key(b), b.contact, float(b.expires_at), float(b.q), b.call_id,
        int(b.cseq), b.instance, b.reg_id,
        json.dumps([list(p) for p in b.params], separators=(",", ":")),
        json.dumps(list(b.path), separators=(",", ":")),
        src[0] if src else None, src[1] if src else None, src[2] if src else None,
    )


def _binding_from_row(row: Sequence[Any]) -> Binding:
    (aor, key, contact, expires_at, q, call_id, cseq, instance, reg_id, params, path,
     s_transport, s_host, s_port) = row
    try:
        param_list = json.loads(params)
        path_list = json.loads(path)
        parsed_params = tuple((str(n), None if v is None else str(v)) for n, v in param_list)
        parsed_path = tuple(str(p) for p in path_list)
    except (ValueError, TypeError) as exc:
        raise StorageError(f"corrupt binding row for {aor!r}: {exc}") from exc
    source = None
    if s_transport is not None and s_host is not None and s_port is not None:
        source = (str(s_transport), str(s_host), int(s_port))
    return Binding(
        aor=str(aor), contact=str(contact), expires_at=float(expires_at), q=float(q),
        call_id=str(call_id), cseq=int(cseq), instance=instance,
        reg_id=None if reg_id is None else int(reg_id), params=parsed_params, path=parsed_path,
        source=source, key=str(key),
    )


def _check_binding(aor: str, b: Binding) -> None:
    if b.aor != aor:
        raise StorageError(f"binding for {b.aor!r} given for AOR {aor!r}")
    if not 0.0 <= b.q <= 1.0:
        # RFC 3261 §20.10: qvalue is between 0 and 1.
        raise StorageError(f"binding q {b.q} outside 0..1")


@contextlib.contextmanager
def driver_errors(errors: tuple[type[BaseException], ...], what: str) -> Iterator[None]:
    """The one error-wrapping path of the SQL backends: a driver exception (one of
    ``errors``) inside the block becomes ``StorageError("<what>: <cause>")``."""
    try:
        yield
    except errors as exc:
        raise StorageError(f"{what}: {exc}") from exc


class SqlStore(Store):
    """Backend-independent SQL; a backend implements the driver calls :meth:`_execute`,
    :meth:`_fetch` and :meth:`_close_driver` and names its driver's exceptions in
    ``_driver_error_types``: they become :class:`StorageError` here (:func:`driver_errors`),
    in one place for both backends."""

    #: the backend's name in error messages
    BACKEND: ClassVar[str] = "SQL"
    #: the driver exceptions that mean a database operation failed
    _driver_error_types: tuple[type[BaseException], ...] = ()

    #: set by ``close()``; every primitive checks it first
    _closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the store is closed")

    def _driver_errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return driver_errors(self._driver_error_types, f"{self.BACKEND} {what}")

    # ---- the per-role repositories (SqlExecutor: execute / fetch)

    async def execute(self, statements: Sequence[Statement]) -> list[int]:
        return await self._run(statements)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._query(sql, params)

    @property
    def deferred(self) -> DeferredRepository:
        """Deferred messages (OMA SIMPLE IM §12.2.2.3)."""
        return DeferredRepository(self)

    @property
    def settings(self) -> SettingsRepository:
        """IM service settings (Appendix E)."""
        return SettingsRepository(self)

    @property
    def system_messages(self) -> SystemMessageRepository:
        """System Messages (OMA SIMPLE IM §5.4)."""
        return SystemMessageRepository(self)

    @property
    def aggregations(self) -> AggregationRepository:
        """Pending IMDN aggregations of the exploder (§8.3.1.2, Timer Ts2)."""
        return AggregationRepository(self)

    @property
    def xdm(self) -> XdmRepository:
        """XDM documents served over XCAP (RFC 4825, schema v5)."""
        return XdmRepository(self)

    @property
    def history(self) -> HistoryRepository:
        """Conversation history (OMA SIMPLE IM §13.2.3)."""
        return HistoryRepository(self)

    @property
    def conferences(self) -> ConferenceRepository:
        """Conferences of the focus (§7.2, schema v7)."""
        return ConferenceRepository(self)

    async def _run(self, statements: Sequence[Statement]) -> list[int]:
        """Execute ``statements`` in one committed transaction; their row counts.
        Any failure rolls back and raises StorageError."""
        self._check_open()
        with self._driver_errors("write failed"):
            return await self._execute(statements)

    async def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one SELECT."""
        self._check_open()
        with self._driver_errors("read failed"):
            return await self._fetch(sql, params)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._driver_errors("close failed"):
            await self._close_driver()

    @abc.abstractmethod
    async def _execute(self, statements: Sequence[Statement]) -> list[int]:
        """Driver: run ``statements`` in one transaction (rolled back on failure)."""

    @abc.abstractmethod
    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Driver: the rows of one SELECT."""

    @abc.abstractmethod
    async def _close_driver(self) -> None:
        """Driver: release the connection / pool."""

    # ---- schema

    async def _migrate(self) -> None:
        await self._run([(
            "CREATE TABLE IF NOT EXISTS simpleim_schema (version INTEGER NOT NULL)", ()
        )])
        current = await self.schema_version()
        if current > SCHEMA_VERSION:
            raise StorageError(
                f"database schema version {current} is newer than this simpleim supports "
                f"({SCHEMA_VERSION}); upgrade simpleim"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            steps: list[Statement] = [(sql, ()) for sql in MIGRATIONS[version - 1]]
            steps.append(("DELETE FROM simpleim_schema", ()))
            steps.append(("INSERT INTO simpleim_schema (version) VALUES (?)", (version,)))
            await self._run(steps)

    async def schema_version(self) -> int:
        rows = await self._query("SELECT MAX(version) FROM simpleim_schema")
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    # ---- users

    async def _put_user(self, user: User, *, replace: bool) -> None:
        if not replace and await self.get_user(user.name, user.domain) is not None:
            raise StorageError(f"user {user.aor} already exists")
        sql = f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
        if replace:
            sql += (" ON CONFLICT (name, domain) DO UPDATE SET realm = excluded.realm, "
                    "ha1_md5 = excluded.ha1_md5, ha1_sha256 = excluded.ha1_sha256")
        await self._run([(sql, (user.name, user.domain, user.realm, user.ha1_md5,
                                user.ha1_sha256))])

    async def get_user(self, name: str, domain: str) -> User | None:
        rows = await self._query(
            f"SELECT {_USER_COLUMNS} FROM users WHERE name = ? AND domain = ?",
            (name, domain.lower()),
        )
        return User(*rows[0]) if rows else None

    async def remove_user(self, name: str, domain: str) -> bool:
        (count,) = await self._run([
            ("DELETE FROM users WHERE name = ? AND domain = ?", (name, domain.lower())),
        ])
        return count > 0

    async def list_users(self, domain: str | None = None) -> list[User]:
        sql = f"SELECT {_USER_COLUMNS} FROM users"
        params: tuple[Any, ...] = ()
        if domain is not None:
            sql += " WHERE domain = ?"
            params = (domain.lower(),)
        rows = await self._query(sql + " ORDER BY domain, name", params)
        return [User(*row) for row in rows]

    async def get_ha1(self, name: str, realm: str, algorithm: str) -> str | None:
        column = _HA1_COLUMN.get(algorithm.upper().removesuffix("-SESS"))
        if column is None:
            return None
        rows = await self._query(
            f"SELECT {column} FROM users WHERE name = ? AND realm = ?", (name, realm)
        )
        return str(rows[0][0]) if rows else None

    async def user_exists(self, name: str) -> bool:
        rows = await self._query("SELECT 1 FROM users WHERE name = ? LIMIT 1", (name,))
        return bool(rows)

    # ---- bindings

    async def save_binding(self, binding: Binding) -> None:
        _check_binding(binding.aor, binding)
        await self._run([(_UPSERT_BINDING, _binding_row(binding))])

    async def replace_bindings(self, aor: str, bindings: Sequence[Binding]) -> None:
        for b in bindings:
            _check_binding(aor, b)
        steps: list[Statement] = [("DELETE FROM bindings WHERE aor = ?", (aor,))]
        steps += [(_UPSERT_BINDING, _binding_row(b)) for b in bindings]
        await self._run(steps)

    async def remove_binding(self, aor: str, contact: str) -> bool:
        (count,) = await self._run([(
            "DELETE FROM bindings WHERE aor = ? AND (contact = ? OR binding_key = ?)",
            (aor, contact, contact),
        )])
        return count > 0

    async def remove_all_bindings(self, aor: str) -> int:
        (count,) = await self._run([("DELETE FROM bindings WHERE aor = ?", (aor,))])
        return count

    async def get_bindings(self, aor: str, now: float) -> list[Binding]:
        rows = await self._query(
            f"SELECT {_BINDING_COLUMNS} FROM bindings WHERE aor = ? AND expires_at > ? "
            "ORDER BY q DESC, binding_key",
            (aor, float(now)),
        )
        return [_binding_from_row(r) for r in rows]

    async def load_bindings(self, now: float | None = None) -> list[Binding]:
        if now is None:
            rows = await self._query(
                f"SELECT {_BINDING_COLUMNS} FROM bindings ORDER BY aor, q DESC, binding_key"
            )
        else:
            rows = await self._query(
                f"SELECT {_BINDING_COLUMNS} FROM bindings WHERE expires_at > ? "
                "ORDER BY aor, q DESC, binding_key",
                (float(now),),
            )
        return [_binding_from_row(r) for r in rows]

    async def purge_expired(self, now: float) -> int:
        (count,) = await self._run([
            ("DELETE FROM bindings WHERE expires_at <= ?", (float(now),)),
        ])
        return count
