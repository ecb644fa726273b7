"""``simpleim user add|list|remove`` (simpleim.cli.users), driven through argparse."""

from __future__ import annotations

import argparse
import asyncio
import io
from pathlib import Path

import pytest

from simpleim.cli.users import (
    EXIT_CONFLICT,
    EXIT_OK,
    EXIT_STORAGE,
    EXIT_USAGE,
    add_user_commands,
    user_list,
)
from simpleim.sip.auth import ha1
from simpleim.store import open_store


def build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simpleim")
    sub = parser.add_subparsers(dest="command")
    add_user_commands(sub)
    return parser


def run(argv: list[str]) -> int:
    args = build().parse_args(argv)
    result = args.func(args)
    assert isinstance(result, int)  # the convention: synchronous handler -> exit code
    return result


@pytest.fixture
def db(tmp_path: Path) -> str:
    """An existing (empty) store, as the server leaves it."""
    url = f"sqlite:///{(tmp_path / 'users.db').resolve()}"

    async def create() -> None:
        await (await open_store(url)).close()

    asyncio.run(create())
    return url


def test_missing_database_is_not_created_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 11 §4: ``user ...`` on a path without a database says so; ``add --create``
    creates it and says what it did."""
    path = tmp_path / "new.db"
    url = f"sqlite:///{path}"
    assert run(["user", "list", "--db", url]) == EXIT_STORAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no database at {path}" in err
    assert run(["user", "remove", "bob", "--db", url]) == EXIT_STORAGE
    assert run(["user", "add", "bob", "--password", "pw", "--db", url]) == EXIT_STORAGE
    err = capsys.readouterr().err
    assert "--create" in err and not path.exists()
    assert run(["user", "add", "bob", "--password", "pw", "--db", url, "--create"]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"created a new database at {path}" in out and "added user bob@localhost" in out
    assert path.exists()
    assert run(["user", "add", "carol", "--password", "pw", "--db", url, "--create"]) == 0
    assert "created" not in capsys.readouterr().out


def test_add_list_remove(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["user", "add", "alice", "--password", "pw1", "--domain", "example.com",
                "--db", db]) == EXIT_OK
    assert "added user alice@example.com" in capsys.readouterr().out
    assert run(["user", "add", "bob@Example.com", "--password", "pw2", "--db", db]) == EXIT_OK
    assert run(["user", "add", "carol", "--password", "pw3", "--realm", "r", "--db", db]) == 0
    capsys.readouterr()
    assert run(["user", "list", "--db", db]) == EXIT_OK
    out = capsys.readouterr().out.splitlines()
    assert out == ["alice@example.com", "bob@example.com", "carol@localhost  (realm r)"]
    assert run(["user", "list", "--domain", "example.com", "--db", db]) == EXIT_OK
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert run(["user", "remove", "alice", "--domain", "example.com", "--db", db]) == EXIT_OK
    assert run(["user", "remove", "alice@example.com", "--db", db]) == EXIT_CONFLICT
    err = capsys.readouterr().err
    assert err.strip() == "simpleim user remove: error: no user alice@example.com"


def test_stored_as_ha1_only(db: str, tmp_path: Path) -> None:
    assert run(["user", "add", "alice@example.com", "--password", "Sup3rSecret",
                "--db", db]) == 0
    assert b"Sup3rSecret" not in (tmp_path / "users.db").read_bytes()

    async def check() -> None:
        async with await open_store(db) as store:
            assert await store.get_ha1("alice", "example.com", "SHA-256") == ha1(
                "alice", "example.com", "Sup3rSecret", "SHA-256")

    asyncio.run(check())


def test_add_existing_and_update(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["user", "add", "alice", "--password", "a", "--db", db]) == EXIT_OK
    assert run(["user", "add", "alice", "--password", "b", "--db", db]) == EXIT_CONFLICT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]
    assert run(["user", "add", "alice", "--password", "b", "--update", "--db", db]) == EXIT_OK
    assert "updated user alice@localhost" in capsys.readouterr().out


def test_password_stdin(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin\n"))
    assert run(["user", "add", "alice", "--password-stdin", "--db", db]) == EXIT_OK
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert run(["user", "add", "bob", "--password-stdin", "--db", db]) == EXIT_USAGE


@pytest.mark.parametrize(
    "argv",
    [
        ["user", "add", "bad name", "--password", "x"],
        ["user", "add", "al:ice", "--password", "x"],
        ["user", "add", "alice@a.com", "--domain", "b.com", "--password", "x"],
        ["user", "add", "alice", "--domain", "bad domain", "--password", "x"],
        ["user", "add", "alice", "--password", ""],
        ["user", "add", "alice", "--password", "tab\there"],
        ["user", "remove", "-x"],
        ["user", "list", "--domain", "bad/domain"],
    ],
)
def test_usage_errors(argv: list[str], db: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = run([*argv, "--db", db])
    except SystemExit as exc:  # argparse's own usage errors exit 2 as well
        code = int(exc.code or 0)
    assert code == EXIT_USAGE
    assert capsys.readouterr().err.strip()


def test_bad_db_urls(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["user", "list", "--db", "mysql://x"]) == EXIT_USAGE
    assert "unsupported store URL" in capsys.readouterr().err
    assert run(["user", "list", "--db", "sqlite:////nonexistent-dir-simpleim/a/b.db"]) == (
        EXIT_STORAGE)
    err = capsys.readouterr().err
    assert err.startswith("simpleim user list: error: no database at /nonexistent-dir")
    assert len(err.strip().splitlines()) == 1
    assert run(["user", "add", "x", "--password", "p", "--create",
                "--db", "sqlite:////nonexistent-dir-simpleim/a/b.db"]) == EXIT_STORAGE
    err = capsys.readouterr().err
    assert err.startswith("simpleim user add: error: cannot open SQLite")
    assert len(err.strip().splitlines()) == 1


def test_password_required() -> None:
    with pytest.raises(SystemExit) as info:
        build().parse_args(["user", "add", "alice"])
    assert info.value.code == 2


def test_bare_user_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["user"]) == EXIT_USAGE
    assert "add" in capsys.readouterr().err


def test_help_texts(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["user", "--help"], ["user", "add", "--help"], ["user", "list", "--help"],
                 ["user", "remove", "--help"]):
        with pytest.raises(SystemExit) as info:
            build().parse_args(argv)
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert "exit codes" in out
    with pytest.raises(SystemExit):
        build().parse_args(["user", "add", "--help"])
    assert "--password-stdin" in capsys.readouterr().out


async def test_async_core_from_running_loop(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = build().parse_args(["user", "list", "--db", db])
    assert await user_list(args) == EXIT_OK


def test_wired_into_main(db: str) -> None:
    import simpleim.cli.main as main_mod

    assert main_mod.main(["user", "add", "zed", "--password", "p", "--db", db]) == 0
    assert main_mod.main(["user", "remove", "zed", "--db", db]) == 0
