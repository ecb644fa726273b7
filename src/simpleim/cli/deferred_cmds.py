"""``simpleim deferred fetch|delete`` and ``simpleim settings set``: the user's side of the
deferred messages (OMA SIMPLE IM §12.1) and of the IM service settings (§5.2.4).

* ``deferred fetch [ID...]``: retrieve the stored messages - all, or those named - over an
  MSRP session (INVITE to ``sip:Deferred@DOMAIN``, a=recvonly, §12.1.1), without
  registering; print each (date, sender, Message-ID URI, text) and how many.  Exit 0 (also
  when nothing is stored).
* ``deferred delete ID...`` / ``deferred delete --all``: REFER to ``sip:Delete@DOMAIN``
  (several IDs: one multiple-refer REFER listing them, §12.1.3.3 — the server deletes all
  of them or none); exit 0 when deleted, else the exit code of the failure (403: not ours,
  404: no such message).
* ``deferred list``: the metadata of the stored messages over XCAP (§12.1.2, Appendix J;
  :mod:`simpleim.cli.xcap_cmds`).
* ``settings set [--offline-delivery on|off] [--bar-sessions on|off] [--bar-messages on|off]
  [--invisible on|off] [--history-sessions on|off] [--history-messages on|off]``: PUBLISH
  the settings (options not given keep what was last published from this account, kept in
  the state directory; else the E.1 default: the server replaces the whole document).
* ``settings show``: those settings, and whether the server still holds that publication
  (a refresh with its entity-tag, RFC 3903 §4.2: 200 yes, 412 no).

Common options and exit codes are those of the other client commands (docs/cli.md).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from simpleim.cli.client import _EPILOG, _common
from simpleim.cli.client_run import _fail, _run, exit_code_for
from simpleim.cli.xcap_cmds import add_deferred_list
from simpleim.client.account import Account
from simpleim.client.events import MessageEvent
from simpleim.content.poc_settings import ServiceSettings

__all__ = ["add_deferred_commands", "run_deferred_delete", "run_deferred_fetch",
           "run_settings_set",
           "run_settings_show"]


def run_deferred_fetch(args: argparse.Namespace) -> int:
    # C-DM-01 needs no registration, and a registration would have the server re-send the
    # stored messages by MESSAGE meanwhile
    args.no_register = True

    async def body(account: Account) -> int:
        count = await account.deferred.retrieve(args.ids or None, timeout=args.timeout)
        for ev in account.events.pending():
            if isinstance(ev, MessageEvent) and ev.deferred:
                print(f"{ev.datetime or '-'}\t{ev.sender}\t{ev.deferred_id}\t{ev.text}",
                      flush=True)
        print(f"{count} deferred message(s)", flush=True)
        return 0

    return _run("deferred fetch", args, body)


def run_deferred_delete(args: argparse.Namespace) -> int:
    async def body(account: Account) -> int:
        if args.all:
            statuses = [await account.deferred.delete_all()]
            names = ["all"]
        else:
            if not args.ids:
                return _fail("deferred delete", 2, "give message IDs or --all")
            names = list(args.ids)
            if len(names) > 1:
                # §12.1.3.3: one multiple-refer REFER (RFC 5368); all of them or none
                statuses = [await account.deferred.delete_many(names)] * len(names)
            else:
                statuses = await account.deferred.delete(names)
        code = 0
        for name, status in zip(names, statuses, strict=True):
            ok = 200 <= status < 300
            print(f"{'deleted' if ok else 'not deleted'} {name} ({status})", flush=True)
            if not ok and code == 0:
                code = exit_code_for(status)
        return code

    return _run("deferred delete", args, body)


def _on_off(text: str) -> bool:
    value = text.strip().lower()
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")


_SETTING_FLAGS = (
    # flag, attribute of the parsed arguments, ServiceSettings field, inverted, help
    ("--offline-delivery", "offline_delivery", "offline_delivery", False,
     "push stored messages when online (OMA §12.2.2.2)"),
    ("--bar-sessions", "bar_sessions", "incoming_session_barring", False,
     "refuse incoming sessions and file transfers (403)"),
    ("--bar-messages", "bar_messages", "incoming_pager_barring", False,
     "refuse incoming pager and large messages (403)"),
    ("--invisible", "invisible", "visible", True,
     "look unregistered to others' capability queries"),
    ("--history-sessions", "history_sessions", "history_session", False,
     "ask the server to store your sessions"),
    ("--history-messages", "history_messages", "history_pager", False,
     "ask the server to store your pager and large messages"),
)


def describe_settings(settings: ServiceSettings) -> str:
    """``offline-delivery=on bar-sessions=off ...`` (the flags' names and values)."""
    words = []
    for flag, _dest, field, inverted, _help in _SETTING_FLAGS:
        on = getattr(settings, field) != inverted
        words.append(f"{flag[2:]}={'on' if on else 'off'}")
    return " ".join(words)


def run_settings_set(args: argparse.Namespace) -> int:
    async def body(account: Account) -> int:
        changes = {field: value != inverted
                   for _flag, dest, field, inverted, _help in _SETTING_FLAGS
                   if (value := getattr(args, dest)) is not None}
        # options not given keep what this account published last (state_dir), else the
        # Appendix E.1 defaults: the server replaces the whole document
        settings = replace(account.settings.current, **changes)
        status = await account.settings.publish(settings)
        if not 200 <= status < 300:
            return _fail("settings set", exit_code_for(status), f"PUBLISH answered {status}")
        print(f"published: {describe_settings(settings)}", flush=True)
        return 0

    return _run("settings set", args, body, publish_settings=False)


def run_settings_show(args: argparse.Namespace) -> int:
    async def body(account: Account) -> int:
        found = await account.settings.fetch()
        print(describe_settings(found.settings), flush=True)
        if found.stored:
            print(f"stored on the server (expires in {found.expires} s)", flush=True)
        elif found.status == 0:
            print("not published from here yet: the server applies its defaults unless "
                  "another device published", flush=True)
        else:
            print(f"not stored on the server ({found.status}): expired, or replaced by "
                  "another device's publication", flush=True)
        return 0

    return _run("settings show", args, body, publish_settings=False)


def add_deferred_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    common = _common()
    fmt = argparse.RawDescriptionHelpFormatter
    deferred = subparsers.add_parser("deferred", help="messages stored while you were offline")
    dsub = deferred.add_subparsers(dest="deferred_action", metavar="ACTION", required=True)
    p = dsub.add_parser("fetch", parents=[common], formatter_class=fmt, epilog=_EPILOG,
                        help="retrieve the stored messages (INVITE to sip:Deferred@DOMAIN)")
    p.add_argument("ids", nargs="*", metavar="ID",
                   help="only these Message-IDs (sip:ID@DOMAIN or ID); default: all")
    p.set_defaults(func=run_deferred_fetch)
    p = dsub.add_parser("delete", parents=[common], formatter_class=fmt, epilog=_EPILOG,
                        help="delete stored messages (REFER to sip:Delete@DOMAIN)")
    p.add_argument("ids", nargs="*", metavar="ID", help="Message-ID (sip:ID@DOMAIN or ID)")
    p.add_argument("--all", action="store_true", help="every stored message")
    p.set_defaults(func=run_deferred_delete)
    add_deferred_list(dsub)  # deferred list: the metadata over XCAP (§12.1.2)

    settings = subparsers.add_parser("settings", help="IM service settings (PUBLISH)")
    ssub = settings.add_subparsers(dest="settings_action", metavar="ACTION", required=True)
    p = ssub.add_parser("set", parents=[common], formatter_class=fmt, epilog=_EPILOG,
                        help="publish the IM service settings (OMA SIMPLE IM Appendix E)")
    for flag, dest, _field, _inverted, what in _SETTING_FLAGS:
        p.add_argument(flag, dest=dest, type=_on_off, default=None, metavar="on|off",
                       help=f"{what} (default: as last published from here, else off)")
    p.set_defaults(func=run_settings_set)
    p = ssub.add_parser("show", parents=[common], formatter_class=fmt, epilog=_EPILOG,
                        help="the settings last published from here and whether the server "
                             "still holds them")
    p.set_defaults(func=run_settings_show)
