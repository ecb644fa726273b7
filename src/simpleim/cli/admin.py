"""``simpleim admin deferred list USER|purge``: the server operator's view of the Deferred
Messaging Function's store (OMA SIMPLE IM §12.2.2.3).

``list USER[@DOMAIN]`` prints one line per stored message (Message-ID URI, received, expires,
sender, size, subject), oldest first; ``--xml`` prints the Appendix J ``history-list``
metadata document instead.  ``purge`` removes what has expired (``--all``: everything of
``--user``); failure IMDNs are sent by the running server's own expiry, not by this command.

``simpleim admin system-message USER TEXT [--respond-within S] [--url URL]`` queues a System
Message (OMA SIMPLE IM §5.4) for the running server to send (on its next periodic pass, every
``purge_interval`` seconds, as soon as the user is registered).  ``--respond-within S``
starts Ts1 (§15) when it is sent: after S seconds without an answer (a MESSAGE to
``sip:System@DOMAIN``) the user's requests are refused with 403 (§6.1.1.1 step 2; 0 blocks
at once).  A text above 1300 bytes, or one that needs the user to act, is sent as
``message/external-body`` pointing at ``--url`` (§5.4 step 3, RFC 4483).

``simpleim admin system-message CONFERENCE TEXT --type Announcement`` queues a system message
into a running IM conference instead (§7.2.3.5): ``CONFERENCE`` is its IM Session Identity
(``sip:conf~...@DOMAIN``, as ``simpleim agent`` shows it) or a pre-defined group's URI; every
participant gets it in the group chat from ``Announcement <conference>`` (``SysAdmin``,
``Announcement``, ``Advertisement`` or another word of the operator's).

Exit codes: 0 ok, 1 store error, 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from simpleim.errors import ConfigError, StorageError
from simpleim.server.deferred import history_list
from simpleim.store import DEFAULT_STORE_URL, open_store, validate_domain, validate_user_name
from simpleim.store.system import SystemMessageRecord

__all__ = ["add_admin_commands", "deferred_list", "deferred_purge", "system_message"]

#: §5.4 step 3: a System Message body above this goes by reference (message/external-body).
SYSTEM_MESSAGE_MAX = 1300

_DEFAULT_DOMAIN = "localhost"


def _aor(user: str, domain: str | None) -> tuple[str, str]:
    name, at, dom = user.partition("@")
    return validate_user_name(name), validate_domain(dom if at else domain or _DEFAULT_DOMAIN)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def deferred_list(args: argparse.Namespace) -> int:
    name, domain = _aor(args.user, args.domain)
    async with await open_store(args.db) as store:
        messages = await store.deferred.pending(f"{name}@{domain}", limit=args.limit)
    if args.xml:
        sys.stdout.write(history_list(messages, domain).decode("utf-8"))
        return 0
    for m in messages:
        print(f"sip:{m.id}@{domain}\t{_when(m.received_at)}\t{_when(m.expires_at)}\t"
              f"{m.sender}\t{m.size}\t{m.subject}")
    print(f"{len(messages)} deferred message(s) for {name}@{domain}", file=sys.stderr)
    return 0


async def deferred_purge(args: argparse.Namespace) -> int:
    async with await open_store(args.db) as store:
        if args.all:
            if not args.user:
                raise ConfigError("--all needs --user")
            name, domain = _aor(args.user, args.domain)
            count = await store.deferred.remove_all(f"{name}@{domain}")
        else:
            count = 0
            for m in await store.deferred.expired(time.time(), limit=100_000):
                if await store.deferred.remove(m.id):
                    count += 1
    print(f"removed {count} deferred message(s)")
    return 0


async def system_message(args: argparse.Namespace) -> int:
    if args.type is not None:
        return await _conference_message(args)
    name, domain = _aor(args.user, args.domain)
    if args.respond_within is not None and args.respond_within < 0:
        raise ConfigError("--respond-within must be >= 0 seconds (Ts1, §15)")
    text = args.text
    if args.url:
        # §5.4 step 3 / RFC 4483: the document by reference
        # RFC 2046 §5.2.3: the body is the header of the referenced document
        text = "Content-Type: text/html\r\n\r\n"
        ctype = f'message/external-body;access-type="URL";URL="{args.url}"'
    elif len(text.encode("utf-8")) > SYSTEM_MESSAGE_MAX:
        raise ConfigError(f"the text is above {SYSTEM_MESSAGE_MAX} bytes: publish it as an "
                          "HTML page and give --url (OMA SIMPLE IM §5.4 step 3)")
    else:
        ctype = "text/plain;charset=utf-8"
    record = SystemMessageRecord(secrets.token_hex(8), f"{name}@{domain}", text, ctype,
                                 time.time(), args.respond_within)
    async with await open_store(args.db) as store:
        await store.system_messages.add(record)
    answer = ("" if args.respond_within is None
              else f", answer due {args.respond_within:g} s after it is sent")
    print(f"queued system message {record.id} for {name}@{domain}{answer}")
    return 0


async def _conference_message(args: argparse.Namespace) -> int:
    """§7.2.3.5: queued for the running server's Controlling Function."""
    service = args.type.strip()
    if not service or not service.replace("-", "").isalnum():
        raise ConfigError(f"--type {args.type!r}: one word, e.g. SysAdmin, Announcement, "
                          "Advertisement")
    if args.respond_within is not None or args.url:
        raise ConfigError("--type (a conference) takes no --respond-within or --url")
    target = args.user.strip().removeprefix("sip:")
    if "@" not in target:
        target = f"{target}@{args.domain or 'localhost'}"
    if not target.split("@", 1)[0] or len(args.text.encode("utf-8")) > SYSTEM_MESSAGE_MAX:
        raise ConfigError("a conference address and a text of at most "
                          f"{SYSTEM_MESSAGE_MAX} bytes are needed")
    record = SystemMessageRecord(secrets.token_hex(8), target, args.text,
                                 "text/plain;charset=utf-8", time.time(),
                                 service_type=service)
    async with await open_store(args.db) as store:
        await store.system_messages.add(record)
    print(f"queued {service} message {record.id} for the conference sip:{target}")
    return 0


def _sync(handler: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
          ) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(handler(args))
        except ConfigError as exc:
            print(f"simpleim admin: error: {exc}", file=sys.stderr)
            return 2
        except StorageError as exc:
            print(f"simpleim admin: error: {exc}", file=sys.stderr)
            return 1
    return run


def add_admin_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    admin = subparsers.add_parser("admin", help="operate on the server's store")
    admin_sub = admin.add_subparsers(dest="admin_command", metavar="WHAT", required=True)
    deferred = admin_sub.add_parser("deferred", help="deferred (stored offline) messages")
    dsub = deferred.add_subparsers(dest="deferred_command", metavar="ACTION", required=True)
    for p in (dsub.add_parser("list", help="list a user's stored messages, oldest first"),
              dsub.add_parser("purge", help="remove expired messages (or --all of --user)")):
        p.add_argument("--db", default=DEFAULT_STORE_URL, help="store URL (as for the server)")
        p.add_argument("--domain", default=None, help="domain of USER (default localhost)")
    lst = dsub.choices["list"]
    lst.add_argument("user", help="USER or USER@DOMAIN")
    lst.add_argument("--xml", action="store_true",
                     help="print the Appendix J history-list document")
    lst.add_argument("--limit", type=int, default=1000)
    lst.set_defaults(func=_sync(deferred_list))
    purge = dsub.choices["purge"]
    purge.add_argument("--all", action="store_true", help="every message of --user")
    purge.add_argument("--user", default=None, help="USER or USER@DOMAIN (with --all)")
    purge.set_defaults(func=_sync(deferred_purge))

    system = admin_sub.add_parser(
        "system-message", help="queue a System Message for a user (OMA SIMPLE IM §5.4) or, "
                               "with --type, into a running group chat (§7.2.3.5)")
    system.add_argument("user", metavar="USER|CONFERENCE",
                        help="USER or USER@DOMAIN; with --type the conference or group URI")
    system.add_argument("text", help="the message (at most 1300 bytes; else --url)")
    system.add_argument("--respond-within", type=float, default=None, metavar="S",
                        help="Ts1: seconds the user has to answer (a MESSAGE to "
                             "sip:System@DOMAIN) before their requests get 403; 0 = at once")
    system.add_argument("--url", default=None,
                        help="send a link to this HTML page instead (message/external-body)")
    system.add_argument("--type", default=None, metavar="SERVICE-TYPE",
                        help="into the conference CONFERENCE, shown as from SERVICE-TYPE "
                             "(SysAdmin, Announcement, Advertisement)")
    system.add_argument("--db", default=DEFAULT_STORE_URL, help="store URL (as for the server)")
    system.add_argument("--domain", default=None, help="domain of USER (default localhost)")
    system.set_defaults(func=_sync(system_message))
