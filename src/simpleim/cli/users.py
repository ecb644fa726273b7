"""``simpleim user add|list|remove``: manage the users of the server store.

Handler convention
------------------
:func:`add_user_commands` sets ``func`` on every sub-command to a **synchronous**
callable ``handler(args: argparse.Namespace) -> int`` that returns the exit code (it runs
its store work with :func:`asyncio.run`, so call it outside a running event loop).  The
coroutine versions are :func:`user_add`, :func:`user_list` and :func:`user_remove`
(``async def (args) -> int``) for callers that already run a loop.

Exit codes: 0 success; 1 store failure (database unreachable, corrupt, missing, ...); 2
usage error (bad user name, domain, URL or password); 3 conflict (``add``: the user exists,
``remove``: no such user).  Errors are one line on stderr.

A SQLite database is never created by accident: ``user list|remove`` on a path with no
database say so, ``user add`` creates one only with ``--create`` (the server creates its own
store when it starts).

Passwords are never stored: the store keeps only the digest HA1 for MD5 and SHA-256.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

from simpleim.errors import ConfigError, StorageError
from simpleim.store import (
    DEFAULT_STORE_URL,
    Store,
    open_store,
    store_scheme,
    validate_domain,
    validate_user_name,
)
from simpleim.store.sqlite import parse_sqlite_url

__all__ = [
    "EXIT_CONFLICT",
    "EXIT_OK",
    "EXIT_STORAGE",
    "EXIT_USAGE",
    "add_user_commands",
    "user_add",
    "user_list",
    "user_remove",
]

EXIT_OK = 0
EXIT_STORAGE = 1
EXIT_USAGE = 2
EXIT_CONFLICT = 3
DEFAULT_DOMAIN = "localhost"

_EPILOG = (
    "exit codes: 0 ok, 1 store error, 2 usage error, 3 user exists (add) / not found (remove)"
)


def _fail(prog: str, message: str, code: int, err: TextIO | None = None) -> int:
    print(f"{prog}: error: {message}", file=err or sys.stderr)
    return code


def _split_name(args: argparse.Namespace) -> tuple[str, str]:
    """NAME or NAME@DOMAIN plus --domain -> (validated name, validated domain)."""
    raw: str = args.name
    name, at, domain_part = raw.partition("@")
    domain_opt: str | None = args.domain
    if at and domain_opt is not None and domain_opt.lower() != domain_part.lower():
        raise ConfigError(
            f"{raw!r} names domain {domain_part!r} but --domain is {domain_opt!r}"
        )
    domain = domain_part if at else (domain_opt or DEFAULT_DOMAIN)
    return validate_user_name(name), validate_domain(domain)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    else:
        password = args.password or ""
    if not password:
        raise ConfigError("the password must not be empty")
    if any(ord(c) < 0x20 for c in password):
        raise ConfigError("the password must not contain control characters")
    return password


def _missing_sqlite_file(url: str) -> str | None:
    """The path of a ``sqlite:`` URL whose database file does not exist, else None
    (ConfigError for a malformed URL)."""
    if store_scheme(url) != "sqlite":
        return None
    target = parse_sqlite_url(url)
    if target.memory or os.path.exists(target.path):
        return None
    return target.path


async def _with_store(
    prog: str, url: str, body: Callable[[Store], Awaitable[int]], *, create: bool = False
) -> int:
    try:
        missing = _missing_sqlite_file(url)
    except ConfigError as exc:
        return _fail(prog, str(exc), EXIT_USAGE)
    if missing is not None and not create:
        hint = ("pass --create to make a new one" if prog.endswith(" add") else
                "check --db, or start the server (it creates its store) and add users")
        return _fail(prog, f"no database at {missing} ({url}): {hint}", EXIT_STORAGE)
    try:
        store = await open_store(url)
        if missing is not None:
            print(f"created a new database at {missing}")
    except ConfigError as exc:
        return _fail(prog, str(exc), EXIT_USAGE)
    except StorageError as exc:
        return _fail(prog, str(exc), EXIT_STORAGE)
    try:
        async with store:
            return await body(store)
    except ConfigError as exc:
        return _fail(prog, str(exc), EXIT_USAGE)
    except StorageError as exc:
        return _fail(prog, str(exc), EXIT_STORAGE)


async def user_add(args: argparse.Namespace) -> int:
    """``simpleim user add NAME --password PW [--domain D] [--realm R] [--update]``."""
    prog = "simpleim user add"
    try:
        name, domain = _split_name(args)
        password = _read_password(args)
    except ConfigError as exc:
        return _fail(prog, str(exc), EXIT_USAGE)
    realm: str | None = args.realm

    async def body(store: Store) -> int:
        if not args.update and await store.get_user(name, domain) is not None:
            return _fail(prog, f"user {name}@{domain} already exists (use --update to "
                               "change the password)", EXIT_CONFLICT)
        user = await store.add_user(name, domain, password, realm=realm, replace=args.update)
        verb = "updated" if args.update else "added"
        print(f"{verb} user {user.aor} (realm {user.realm})")
        return EXIT_OK

    return await _with_store(prog, args.db, body, create=args.create)


async def user_list(args: argparse.Namespace) -> int:
    """``simpleim user list [--domain D]``: one ``name@domain`` per line."""
    prog = "simpleim user list"
    domain: str | None = None
    if args.domain is not None:
        try:
            domain = validate_domain(args.domain)
        except ConfigError as exc:
            return _fail(prog, str(exc), EXIT_USAGE)

    async def body(store: Store) -> int:
        for user in await store.list_users(domain):
            extra = "" if user.realm == user.domain else f"  (realm {user.realm})"
            print(f"{user.aor}{extra}")
        return EXIT_OK

    return await _with_store(prog, args.db, body)


async def user_remove(args: argparse.Namespace) -> int:
    """``simpleim user remove NAME [--domain D]``."""
    prog = "simpleim user remove"
    try:
        name, domain = _split_name(args)
    except ConfigError as exc:
        return _fail(prog, str(exc), EXIT_USAGE)

    async def body(store: Store) -> int:
        if not await store.remove_user(name, domain):
            return _fail(prog, f"no user {name}@{domain}", EXIT_CONFLICT)
        print(f"removed user {name}@{domain}")
        return EXIT_OK

    return await _with_store(prog, args.db, body)


def _sync(handler: Callable[[argparse.Namespace], Awaitable[int]]) -> Callable[
    [argparse.Namespace], int
]:
    def run(args: argparse.Namespace) -> int:
        async def main() -> int:
            return await handler(args)

        return asyncio.run(main())

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def _usage_handler(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    return run


def add_user_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``user add|list|remove`` to the ``simpleim`` sub-commands (see module docs for
    the handler convention: ``args.func(args) -> int``, synchronous)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--db", default=DEFAULT_STORE_URL, metavar="URL",
        help="store URL: sqlite:///PATH (relative), sqlite:////PATH (absolute), "
             "postgresql://USER@HOST/DB (default: %(default)s)",
    )
    named = argparse.ArgumentParser(add_help=False)
    named.add_argument(
        "name", metavar="NAME",
        help="user name (letters, digits and ._~+-), or NAME@DOMAIN",
    )
    named.add_argument(
        "--domain", default=None,
        help=f"SIP domain of the user (default: the one in NAME@DOMAIN, else {DEFAULT_DOMAIN})",
    )

    user = subparsers.add_parser(
        "user", help="manage the users of the server store",
        description="Add, list and remove the users the server authenticates. Only digest "
                    "HA1 values (MD5, SHA-256) are stored, never passwords.",
        epilog=_EPILOG,
    )
    user.set_defaults(func=_usage_handler(user))
    actions = user.add_subparsers(dest="user_command", metavar="ACTION")

    add = actions.add_parser(
        "add", parents=[named, common], help="add a user (or --update its password)",
        description="Add a user to the store.", epilog=_EPILOG,
    )
    secret = add.add_mutually_exclusive_group(required=True)
    secret.add_argument("--password", metavar="PW",
                        help="the password (visible to other local users; see --password-stdin)")
    secret.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input")
    add.add_argument("--realm", default=None,
                     help="digest realm the HA1 is computed for (default: the domain)")
    add.add_argument("--update", action="store_true",
                     help="replace the password of an existing user instead of failing")
    add.add_argument("--create", action="store_true",
                     help="create the SQLite database if it does not exist yet (without it "
                          "a missing database is an error)")
    add.set_defaults(func=_sync(user_add))

    lst = actions.add_parser(
        "list", parents=[common], help="list users", description="List users, one per line "
        "as NAME@DOMAIN.", epilog=_EPILOG,
    )
    lst.add_argument("--domain", default=None, help="only users of this domain")
    lst.set_defaults(func=_sync(user_list))

    rm = actions.add_parser(
        "remove", parents=[named, common], help="remove a user",
        description="Remove a user from the store.", epilog=_EPILOG,
    )
    rm.set_defaults(func=_sync(user_remove))
