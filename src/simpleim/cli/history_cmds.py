"""``simpleim history ...``: the user's side of conversation history (OMA SIMPLE IM §13.1).

* ``history on|off [--sessions] [--messages]``: PUBLISH ``hist-activation`` (both when
  neither is given; the other settings as last published from here).
* ``history list [--with PEER] [--since T] [--until T] [--search TEXT] [--limit N]
  [--offset K]``: without a filter the stored histories (reference, kind, start, peer, file
  name, size); with one the matching stored messages.  Uses the server's history HTTP
  endpoint (``history_url``).  ``history search TEXT`` is ``list --search TEXT``.
* ``history show REF...``: retrieve the histories over SIP/MSRP (INVITE to
  ``sip:History@DOMAIN``, §13.1.3) and print each item; ``history fetch REF...`` prints them
  as JSON lines (kind, sender, date, call_id, message_id, content_type, text).
* ``history delete REF...`` / ``history delete --all``: REFER to ``sip:Delete@DOMAIN`` (several
  references: one REFER with their resource-lists, multiple-refer, all or nothing).

Recording a running chat on demand is ``/record start [NAME]`` / ``/record stop`` inside
``simpleim chat`` (a REFER needs the live session).  Exit codes are those of the other
client commands (docs/cli.md).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace

from simpleim.cli.client import _EPILOG, _common
from simpleim.cli.client_run import _fail, _run, exit_code_for
from simpleim.cli.xcap_cmds import add_history_metadata
from simpleim.client.account import Account
from simpleim.client.history import HistoryPage

__all__ = ["add_history_commands"]


def _print_page(page: HistoryPage, items: bool) -> None:
    fields: tuple[str, ...]
    for row in page.rows:
        if items:
            fields = ("received", "direction", "peer", "reference", "text")
        else:
            fields = ("reference", "kind", "started", "peer", "filename", "size")
        print("\t".join(str(row.get(f, "") or "-") for f in fields), flush=True)
    noun = "message(s)" if items else "history(ies)"
    print(f"{len(page.rows)} {noun}" + ("" if page.next_offset is None
                                        else f"; more with --offset {page.next_offset}"),
          flush=True)


def run_history_list(args: argparse.Namespace) -> int:
    async def body(account: Account) -> int:
        search = getattr(args, "search", None) or getattr(args, "text", None)
        filtered = any((args.peer, args.since, args.until, search))
        if filtered:
            page = await account.history.search(peer=args.peer, since=args.since,
                                                until=args.until, text=search,
                                                limit=args.limit, offset=args.offset)
        else:
            page = await account.history.histories(limit=args.limit, offset=args.offset)
        _print_page(page, filtered)
        return 0

    return _run("history list", args, body, publish_settings=False,
                history_url=args.history_url)


def run_history_show(args: argparse.Namespace) -> int:
    async def body(account: Account) -> int:
        entries = await account.history.fetch(args.refs)
        for e in entries:
            if args.json:
                row = asdict(e)
                row.pop("raw")
                print(json.dumps(row, ensure_ascii=False), flush=True)
            elif e.kind == "headers":
                print(f"{e.date or '-'}\t--\t{e.text.splitlines()[0]}", flush=True)
            else:
                print(f"{e.date or '-'}\t{e.sender or '-'}\t{e.text}", flush=True)
        if not args.json:
            print(f"{len(entries)} item(s)", flush=True)
        return 0

    return _run("history show", args, body, publish_settings=False)


def run_history_delete(args: argparse.Namespace) -> int:
    async def body(account: Account) -> int:
        if args.all:
            statuses, names = [await account.history.delete_all()], ["all"]
        else:
            if not args.refs:
                return _fail("history delete", 2, "give history references or --all")
            if len(args.refs) > 1:
                # §13.1.6: several in one REFER (multiple-refer); all or nothing
                status = await account.history.delete_many(args.refs)
                statuses, names = [status] * len(args.refs), list(args.refs)
            else:
                statuses, names = await account.history.delete(args.refs), list(args.refs)
        code = 0
        for name, status in zip(names, statuses, strict=True):
            ok = 200 <= status < 300
            print(f"{'deleted' if ok else 'not deleted'} {name} ({status})", flush=True)
            if not ok and code == 0:
                code = exit_code_for(status)
        return code

    return _run("history delete", args, body)


def run_history_switch(args: argparse.Namespace) -> int:
    async def body(account: Account) -> int:
        on = args.history_action == "on"
        both = not args.sessions and not args.messages
        changes = {}
        if both or args.sessions:
            changes["history_session"] = on
        if both or args.messages:
            changes["history_pager"] = on
        settings = replace(account.settings.current, **changes)
        status = await account.settings.publish(settings)
        if not 200 <= status < 300:
            return _fail("history", exit_code_for(status), f"PUBLISH answered {status}")
        print(f"history: sessions={'on' if settings.history_session else 'off'} "
              f"messages={'on' if settings.history_pager else 'off'}", flush=True)
        return 0

    return _run("history", args, body, publish_settings=False)


def add_history_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    common = _common()
    fmt = argparse.RawDescriptionHelpFormatter
    history = subparsers.add_parser("history", help="conversation history kept by the server")
    hsub = history.add_subparsers(dest="history_action", metavar="ACTION", required=True)
    for action, what in (("on", "ask the server to record"),
                         ("off", "stop asking the server to record")):
        p = hsub.add_parser(action, parents=[common], formatter_class=fmt, epilog=_EPILOG,
                            help=f"{what} your sessions and/or messages (hist-activation)")
        p.add_argument("--sessions", action="store_true", help="sessions only")
        p.add_argument("--messages", action="store_true", help="pager/large messages only")
        p.set_defaults(func=run_history_switch)
    for action, helptext in (("list", "the stored histories, or the messages matching "
                                      "filters (history HTTP endpoint)"),
                             ("search", "the stored messages containing TEXT")):
        p = hsub.add_parser(action, parents=[common], formatter_class=fmt, epilog=_EPILOG,
                            help=helptext)
        if action == "search":
            p.add_argument("text", metavar="TEXT", help="case-insensitive substring")
        else:
            p.add_argument("--search", metavar="TEXT", help="messages containing TEXT")
        p.add_argument("--with", dest="peer", metavar="PEER", help="the other party")
        p.add_argument("--since", metavar="T", help="ISO 8601 time or epoch seconds")
        p.add_argument("--until", metavar="T", help="ISO 8601 time or epoch seconds")
        p.add_argument("--limit", type=int, default=50, metavar="N", help="page size")
        p.add_argument("--offset", type=int, default=0, metavar="K", help="skip K rows")
        p.add_argument("--history-url", metavar="URL",
                       help="the server's history endpoint, e.g. http://HOST:8090/history "
                            "(default: history_url of the config, SIMPLEIM_HISTORY_URL)")
        p.set_defaults(func=run_history_list)
    for action, helptext, as_json in (
            ("show", "retrieve histories over MSRP and print their items", False),
            ("fetch", "retrieve histories over MSRP, one JSON line per item", True)):
        p = hsub.add_parser(action, parents=[common], formatter_class=fmt, epilog=_EPILOG,
                            help=helptext)
        p.add_argument("refs", nargs="+", metavar="REF", help="history reference (REF@DOMAIN)")
        p.set_defaults(func=run_history_show, json=as_json)
    p = hsub.add_parser("delete", parents=[common], formatter_class=fmt, epilog=_EPILOG,
                        help="delete stored histories (REFER to sip:Delete@DOMAIN)")
    p.add_argument("refs", nargs="*", metavar="REF", help="history reference")
    p.add_argument("--all", action="store_true", help="every stored history")
    p.set_defaults(func=run_history_delete)
    add_history_metadata(hsub)  # history metadata: the XDMS document over XCAP (§13.1.4)
