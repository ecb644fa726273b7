"""The server store: users (HA1 only) and registrar bindings, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from simpleim.errors import ConfigError, StorageError
from simpleim.server.auth import UserDirectory
from simpleim.server.location import Binding, BindingStore, LocationService
from simpleim.sip.auth import DigestServer, answer_challenge, ha1
from simpleim.store import Store, StoreConfig, open_store, store_scheme
from simpleim.store.postgres import split_postgres_url, to_dollar_params
from simpleim.store.sql import SCHEMA_VERSION
from simpleim.store.sqlite import SqliteStore, parse_sqlite_url


def binding(aor: str = "alice@example.com", contact: str = "sip:alice@10.0.0.1:5060",
            expires_at: float = 1000.0, **kw: object) -> Binding:
    return Binding(aor=aor, contact=contact, expires_at=expires_at, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- users


async def test_add_and_get_user_stores_only_ha1(store: Store) -> None:
    user = await store.add_user("alice", "Example.COM", "s3cret")
    assert user.domain == "example.com" and user.realm == "example.com"
    got = await store.get_user("alice", "example.com")
    assert got == user
    assert got.ha1_md5 == ha1("alice", "example.com", "s3cret", "MD5")
    assert got.ha1_sha256 == ha1("alice", "example.com", "s3cret", "SHA-256")
    assert "s3cret" not in repr(got)
    assert await store.get_ha1("alice", "example.com", "MD5") == got.ha1_md5
    assert await store.get_ha1("alice", "example.com", "sha-256-sess") == got.ha1_sha256
    assert await store.get_ha1("alice", "example.com", "SHA-512-256") is None
    assert await store.get_ha1("alice", "other.realm", "MD5") is None
    assert await store.get_ha1("bob", "example.com", "MD5") is None
    assert await store.user_exists("alice") and not await store.user_exists("bob")


async def test_user_conflicts_update_and_remove(store: Store) -> None:
    await store.add_user("alice", "example.com", "one")
    with pytest.raises(StorageError, match="already exists"):
        await store.add_user("alice", "example.com", "two")
    await store.add_user("alice", "example.com", "two", replace=True)
    assert await store.get_ha1("alice", "example.com", "MD5") == ha1(
        "alice", "example.com", "two", "MD5")
    await store.add_user("alice", "other.org", "x", realm="special")
    await store.add_user("bob", "example.com", "y")
    names = [u.aor for u in await store.list_users()]
    assert names == ["alice@example.com", "bob@example.com", "alice@other.org"]
    assert [u.aor for u in await store.list_users("other.org")] == ["alice@other.org"]
    assert await store.get_ha1("alice", "special", "SHA-256") == ha1(
        "alice", "special", "x", "SHA-256")
    assert await store.remove_user("alice", "example.com")
    assert not await store.remove_user("alice", "example.com")
    assert [u.aor for u in await store.list_users()] == ["bob@example.com", "alice@other.org"]


@pytest.mark.parametrize("name", ["", "a b", "al:ice", "-lead", "x" * 64, "é", "a@b", "a\n"])
async def test_invalid_user_names(store: Store, name: str) -> None:
    with pytest.raises(ConfigError):
        await store.add_user(name, "example.com", "pw")


@pytest.mark.parametrize("domain", ["", "exa mple.com", "-x.com", "a..b", "x/y"])
async def test_invalid_domains(store: Store, domain: str) -> None:
    with pytest.raises(ConfigError):
        await store.add_user("alice", domain, "pw")


async def test_empty_password_refused(store: Store) -> None:
    with pytest.raises(ConfigError):
        await store.add_user("alice", "example.com", "")


async def test_store_drives_digest_server(store: Store) -> None:
    await store.add_user("alice", "example.com", "wonderland")
    server = DigestServer("example.com", b"k" * 32, 60.0)
    creds = answer_challenge(server.challenge(0.0), method="REGISTER", uri="sip:example.com",
                             username="alice", password="wonderland", cnonce="c")
    stored = await store.get_ha1("alice", "example.com", "SHA-256")
    assert server.verify_ha1(creds, "REGISTER", stored, 1.0).ok


# ---------------------------------------------------------------- bindings


async def test_save_get_binding_roundtrip(store: Store) -> None:
    full = binding(
        q=0.7, call_id="abc@host", cseq=42, instance="<urn:uuid:00000000-0000-1000-8000-1>",
        reg_id=1, params=(("+sip.instance", '"<urn:uuid:1>"'), ("audio", None)),
        path=("<sip:edge.example.com;lr>",), source=("tcp", "192.0.2.1", 40000),
    )
    await store.save_binding(full)
    (got,) = await store.get_bindings("alice@example.com", 10.0)
    assert got == full.with_key()
    # Same identity (instance, reg-id) with a new contact replaces (RFC 5626 §6).
    moved = binding(contact="sip:alice@10.0.0.2", instance=full.instance, reg_id=1, cseq=43)
    await store.save_binding(moved)
    (got,) = await store.get_bindings("alice@example.com", 10.0)
    assert got.contact == "sip:alice@10.0.0.2" and got.cseq == 43 and got.source is None


async def test_bindings_expire_order_and_remove(store: Store) -> None:
    aor = "bob@example.com"
    await store.save_binding(binding(aor, "sip:bob@a", 100.0, q=0.1))
    await store.save_binding(binding(aor, "sip:bob@b", 200.0, q=0.9))
    await store.save_binding(binding(aor, "sip:bob@c", 50.0))
    await store.save_binding(binding("carol@example.com", "sip:carol@x", 300.0))
    assert [b.contact for b in await store.get_bindings(aor, 60.0)] == ["sip:bob@b", "sip:bob@a"]
    assert len(await store.load_bindings()) == 4
    assert len(await store.load_bindings(now=60.0)) == 3
    assert await store.purge_expired(60.0) == 1
    assert await store.remove_binding(aor, "sip:bob@a")
    assert not await store.remove_binding(aor, "sip:bob@a")
    assert await store.remove_all_bindings(aor) == 1
    assert await store.get_bindings(aor, 0.0) == []
    assert len(await store.get_bindings("carol@example.com", 0.0)) == 1


async def test_replace_bindings_is_atomic(store: Store) -> None:
    aor = "dave@example.com"
    await store.save_binding(binding(aor, "sip:dave@old", 100.0))
    bad = [binding(aor, "sip:dave@new", 100.0), binding(aor, "sip:dave@bad", 100.0, q=2.0)]
    with pytest.raises(StorageError):
        await store.replace_bindings(aor, bad)
    assert [b.contact for b in await store.get_bindings(aor, 0.0)] == ["sip:dave@old"]
    with pytest.raises(StorageError):
        await store.replace_bindings(aor, [binding("other@x", "sip:o", 1.0)])
    await store.replace_bindings(aor, [binding(aor, "sip:dave@new", 100.0)])
    assert [b.contact for b in await store.get_bindings(aor, 0.0)] == ["sip:dave@new"]
    await store.replace_bindings(aor, [])
    assert await store.get_bindings(aor, 0.0) == []


async def test_location_service_write_through(store: Store) -> None:
    loc = LocationService(store, clock=lambda: 10.0)
    await loc.replace("erin@example.com", [binding("erin@example.com", "sip:erin@h", 500.0)])
    fresh = LocationService(store, clock=lambda: 20.0)
    assert await fresh.load() == 1
    assert [b.contact for b in fresh.lookup("erin@example.com")] == ["sip:erin@h"]


async def test_concurrent_writes(store: Store) -> None:
    await asyncio.gather(*(
        store.save_binding(binding(f"u{i}@example.com", f"sip:u{i}@h", 100.0))
        for i in range(40)
    ))
    assert len(await store.load_bindings()) == 40


async def test_driver_errors_take_one_path(store: Store) -> None:
    """Both backends turn their driver's exceptions into StorageError through
    simpleim.store.sql.driver_errors, with the same wording and the cause chained."""
    from simpleim.store.sql import SqlStore

    assert isinstance(store, SqlStore)
    with pytest.raises(StorageError, match=f"^{store.BACKEND} write failed: ") as w:
        await store._run([("INSERT INTO no_such_table VALUES (?)", (1,))])
    with pytest.raises(StorageError, match=f"^{store.BACKEND} read failed: ") as r:
        await store._query("SELECT * FROM no_such_table")
    for err in (w.value, r.value):
        assert isinstance(err.__cause__, store._driver_error_types)
    assert await store.list_users() == []            # still usable afterwards


async def test_closed_store_raises(store: Store) -> None:
    await store.close()
    with pytest.raises(StorageError):
        await store.list_users()
    await store.close()  # idempotent


# ---------------------------------------------------------------- sqlite specifics


def file_url(path: Path) -> str:
    """An absolute path gives sqlite:////abs/path (RFC 1738 style: three slashes + path)."""
    return f"sqlite:///{path.resolve()}"


async def test_sqlite_file_persists_and_versions(tmp_path: Path) -> None:
    url = file_url(tmp_path / "x.db")
    assert url.startswith("sqlite:////")
    assert parse_sqlite_url(url).path == f"{tmp_path}/x.db"
    async with await open_store(url) as s:
        await s.add_user("alice", "example.com", "pw")
        await s.save_binding(binding())
        assert await s.schema_version() == SCHEMA_VERSION
    async with await open_store(StoreConfig(url)) as s:
        assert [u.name for u in await s.list_users()] == ["alice"]
        assert len(await s.load_bindings()) == 1
        assert await s.schema_version() == SCHEMA_VERSION


async def test_sqlite_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "private.db"
    async with await open_store(file_url(path)) as s:
        await s.add_user("alice", "example.com", "pw")
    assert path.stat().st_mode & 0o077 == 0


def test_store_satisfies_server_protocols() -> None:
    """Checked by mypy: the store plugs into the authenticator and location service."""

    def wire(store: Store) -> tuple[UserDirectory, BindingStore]:
        return store, store

    assert callable(wire)


async def test_sqlite_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    async with await open_store(file_url(path)):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE simpleim_schema SET version = 999")
    with pytest.raises(StorageError, match="newer"):
        await open_store(file_url(path))


async def test_sqlite_unopenable_path() -> None:
    with pytest.raises(StorageError):
        await SqliteStore.open("sqlite:////nonexistent-dir-simpleim/x/y.db")


async def test_sqlite_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError):
        await open_store(file_url(path))


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///simpleim.db", "simpleim.db"),
        ("sqlite:////var/lib/x.db", "/var/lib/x.db"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
        ("SQLITE:///a/b.db", "a/b.db"),
    ],
)
def test_parse_sqlite_url(url: str, path: str) -> None:
    assert parse_sqlite_url(url).path == path


@pytest.mark.parametrize("url", ["sqlite://host/x.db", "sqlite:///", "sqlite:///x.db?mode=ro",
                                 "mysql://x"])
def test_bad_sqlite_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_sqlite_url(url)


# ---------------------------------------------------------------- factory


def test_store_scheme() -> None:
    assert store_scheme("sqlite:///x.db") == "sqlite"
    assert store_scheme("postgresql://h/db") == "postgresql"
    assert store_scheme("postgres://h/db") == "postgresql"
    for bad in ("simpleim.db", "mysql://h/db", ""):
        with pytest.raises(ConfigError):
            store_scheme(bad)


async def test_open_store_bad_urls() -> None:
    with pytest.raises(ConfigError):
        await open_store("redis://localhost")
    with pytest.raises(ConfigError):
        await open_store("postgresql://localhost/test?schema=Bad-Name")


async def test_postgres_unreachable_is_storage_error() -> None:
    with pytest.raises(StorageError):
        await open_store(StoreConfig("postgresql://nobody@127.0.0.1:1/none", timeout=2.0))


def test_postgres_url_helpers() -> None:
    dsn, schema = split_postgres_url("postgresql://u@h:5/db?schema=abc&sslmode=disable")
    assert dsn == "postgresql://u@h:5/db?sslmode=disable" and schema == "abc"
    assert split_postgres_url("postgres://h/db") == ("postgres://h/db", None)
    assert to_dollar_params("a = ? AND b IN (?, ?)") == "a = $1 AND b IN ($2, $3)"


def test_store_does_not_import_the_server() -> None:
    # Layering: server/ -> store/, never the other way round; the binding record lives in
    # simpleim.store.model and is re-exported by simpleim.server.location.
    import subprocess
    import sys

    code = ("import sys, simpleim.store, simpleim.store.sql, simpleim.store.sqlite; "
            "print([m for m in sys.modules if m.startswith('simpleim.server')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
    import simpleim.server.location as location
    import simpleim.store.model as model

    assert location.Binding is model.Binding and location.binding_key is model.binding_key
