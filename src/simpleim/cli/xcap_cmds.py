"""``simpleim xcap get|put|delete``, ``simpleim group create|show|list|delete`` and
``simpleim deferred list``: the user's XDM documents over XCAP (RFC 4825), no SIP needed.

* ``xcap get PATH`` prints the document / element / attribute (``--etag`` also prints the
  entity tag on stderr); ``xcap put PATH [FILE|-]`` with ``--content-type`` (default: the
  usage's type for a document, ``application/xcap-el+xml`` / ``xcap-att+xml`` behind
  ``~~``), ``--if-match`` / ``--if-none-match``; ``xcap delete PATH``.  ``PATH`` is a URL or
  a path below the XCAP root, where ``~`` is our own tree:
  ``resource-lists/~/index/~~/resource-lists/list[@name="friends"]``.
* ``group create NAME [MEMBER...]`` writes a pre-defined group (the Shared Group XDMS
  document the Controlling Function reads), ``--uri`` (default ``sip:NAME@DOMAIN``),
  ``--subject``, ``--max N``, ``--chat`` (Appendix Q ``<imusage>chat``: a chat room anyone
  may join), ``--block URI``; ``group show NAME``, ``group list``, ``group delete NAME``;
  ``group add NAME MEMBER...`` / ``group remove NAME MEMBER...`` edit a stored group's
  members one element PUT / DELETE each (the rest of the document is left as it is).
* ``block add USER...`` / ``block remove USER...`` / ``block list``: the blocked contacts
  (the OMA blocked-contacts list and the access rule that rejects its members: the server
  answers them 403 + Warning 122 for every IM medium, §6.1.2.1 step 2).
* ``deferred list``: the deferred-message metadata (§12.1.2, Appendix J), one line each;
  ``history metadata``: the conversation history metadata (§13.1.4), one line each.

The XCAP root comes from ``--xcap-root``, ``SIMPLEIM_XCAP_ROOT`` or ``xcap_root`` in the
client config.  Exit codes are those of the other client commands (3: authentication
failed, 5: not found, 9: forbidden, 1: refused (409/412), 2: bad input).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from simpleim.cli.client_run import _fail
from simpleim.cli.outcome import exit_code_for
from simpleim.client.config import ClientConfig, load_config
from simpleim.client.xcap import (
    AUID_GROUPS,
    GroupSpec,
    XcapClient,
    XcapResponse,
)
from simpleim.errors import ConfigError, SimpleImError, XcapError
from simpleim.transport import tls

__all__ = ["add_xcap_commands", "add_deferred_list", "add_history_metadata",
           "run_block", "run_deferred_list", "run_group", "run_history_metadata", "run_xcap"]

_MIME = {
    "xcap-caps": "application/xcap-caps+xml",
    "resource-lists": "application/resource-lists+xml",
    AUID_GROUPS: "application/vnd.oma.poc.groups+xml",
    "org.openmobilealliance.group-usage-list": "application/vnd.oma.group-usage-list+xml",
}


def _xcap_common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("account")
    g.add_argument("--account", metavar="USER@DOMAIN", help="our address of record")
    g.add_argument("--password", help="digest password (prefer SIMPLEIM_PASSWORD)")
    g.add_argument("--config", metavar="FILE", help="TOML config file")
    g.add_argument("--xcap-root", metavar="URL",
                   help="XCAP root, e.g. http://127.0.0.1:8080/xcap-root "
                        "(or SIMPLEIM_XCAP_ROOT / xcap_root in the config)")
    g.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for an answer")
    return p


def _config(args: argparse.Namespace) -> ClientConfig:
    cfg = load_config(path=args.config, overrides={
        "aor": args.account, "password": args.password, "xcap_root": args.xcap_root})
    if not cfg.xcap_root:
        raise ConfigError("no XCAP root: give --xcap-root URL (or SIMPLEIM_XCAP_ROOT, "
                          "or xcap_root in the client config)")
    return cfg


def _run(cmd: str, args: argparse.Namespace,
         body: Callable[[XcapClient, ClientConfig], Awaitable[int]]) -> int:
    try:
        cfg = _config(args)
    except ConfigError as exc:
        return _fail(cmd, 2, str(exc))

    async def main() -> int:
        root = cfg.xcap_root or ""
        # an https:// root is checked like the SIP proxy's certificate (tls_ca, tls_insecure)
        context = tls.client_context(cfg.tls_ca, insecure=cfg.tls_insecure) \
            if root.startswith("https://") else None
        async with XcapClient(root, cfg.aor, cfg.password, timeout=args.timeout,
                              ssl_context=context) as client:
            return await body(client, cfg)

    try:
        return asyncio.run(main())
    except XcapError as exc:
        return _fail(cmd, exit_code_for(exc.status) if exc.status not in (409, 412) else 1,
                     f"{exc.status} {exc.reason}")
    except ConfigError as exc:
        return _fail(cmd, 2, str(exc))
    except (SimpleImError, OSError, TimeoutError) as exc:
        return _fail(cmd, 8, f"cannot reach the XCAP server: {exc}")


def _outcome(cmd: str, resp: XcapResponse) -> int:
    if resp.ok:
        return 0
    text = resp.body.decode("utf-8", "replace").strip()
    code = exit_code_for(resp.status) if resp.status not in (409, 412) else 1
    return _fail(cmd, code, f"{resp.status}" + (f": {text}" if text else ""))


def _default_type(path: str) -> str:
    if "/~~/" in path:
        return ("application/xcap-att+xml" if path.rsplit("/", 1)[-1].startswith("@")
                else "application/xcap-el+xml")
    auid = path.split("://", 1)[-1].split("/xcap-root/", 1)[-1].lstrip("/").split("/", 1)[0]
    return _MIME.get(auid, "application/xml")


def run_xcap(args: argparse.Namespace) -> int:
    cmd = f"xcap {args.xcap_action}"

    async def body(client: XcapClient, cfg: ClientConfig) -> int:
        if args.xcap_action == "get":
            resp = await client.get(args.path)
            if resp.ok:
                sys.stdout.buffer.write(resp.body if resp.body.endswith(b"\n")
                                        else resp.body + b"\n")
                sys.stdout.flush()
                if args.etag and resp.etag:
                    print(f"etag {resp.etag}", file=sys.stderr, flush=True)
            return _outcome(cmd, resp)
        if args.xcap_action == "delete":
            resp = await client.delete(args.path, if_match=args.if_match)
        else:
            data = (sys.stdin.buffer.read() if args.file in (None, "-")
                    else Path(args.file).read_bytes())
            resp = await client.put(args.path, data, args.content_type
                                    or _default_type(args.path), if_match=args.if_match,
                                    if_none_match=args.if_none_match)
        if resp.ok:
            print(f"{resp.status} etag {resp.etag or '-'}", flush=True)
        return _outcome(cmd, resp)

    return _run(cmd, args, body)


def _member(text: str, domain: str) -> tuple[str, str | None]:
    """``bob``, ``bob@example.com``, ``sip:bob@example.com`` or ``Bob=sip:bob@...``."""
    name, eq, uri = text.partition("=")
    if not eq:
        name, uri = "", text
    if ":" not in uri:
        uri = f"sip:{uri}" if "@" in uri else f"sip:{uri}@{domain}"
    return uri, name or None


def run_group(args: argparse.Namespace) -> int:
    cmd = f"group {args.group_action}"

    async def body(client: XcapClient, cfg: ClientConfig) -> int:
        domain = cfg.aor.rpartition("@")[2]
        if args.group_action == "create":
            me = (f"sip:{cfg.aor}", None)
            members = [_member(m, domain) for m in args.members]
            if all(uri != me[0] for uri, _ in members):
                members.insert(0, me)
            spec = GroupSpec(args.name, args.uri or f"sip:{args.name}@{domain}",
                             tuple(members), display_name=args.display_name,
                             subject=args.subject, max_participants=args.max, chat=args.chat,
                             blocked=tuple(_member(b, domain)[0] for b in args.block))
            resp = await client.put_group(spec, create_only=not args.replace)
            print(f"group {args.name} {spec.uri} "
                  f"{'created' if resp.status == 201 else 'replaced'}", flush=True)
            return 0
        if args.group_action in ("add", "remove"):
            for text in args.members:
                uri, display = _member(text, domain)
                if args.group_action == "add":
                    resp = await client.add_member(args.name, uri, display)
                    done = "added to" if resp.status == 201 else "updated in"
                else:
                    await client.remove_member(args.name, uri)
                    done = "removed from"
                print(f"{uri} {done} {args.name}", flush=True)
            return 0
        if args.group_action == "list":
            for name in await client.group_names():
                print(name, flush=True)
            return 0
        if args.group_action == "show":
            resp = await client.get_group(args.name)
            if resp.ok:
                sys.stdout.write(resp.body.decode("utf-8", "replace").rstrip("\n") + "\n")
                sys.stdout.flush()
            return _outcome(cmd, resp)
        resp = await client.delete_group(args.name)
        if resp.ok:
            print(f"group {args.name} deleted", flush=True)
        return _outcome(cmd, resp)

    return _run(cmd, args, body)


def run_block(args: argparse.Namespace) -> int:
    cmd = f"block {args.block_action}"

    async def body(client: XcapClient, cfg: ClientConfig) -> int:
        domain = cfg.aor.rpartition("@")[2]
        if args.block_action == "list":
            uris = await client.blocked()
            for uri in uris:
                print(uri, flush=True)
            print(f"{len(uris)} blocked", flush=True)
            return 0
        for text in args.users:
            uri = _member(text, domain)[0]
            if args.block_action == "add":
                fresh = await client.block(uri)
                print(f"{uri} {'blocked' if fresh else 'was already blocked'}", flush=True)
            else:
                await client.unblock(uri)
                print(f"{uri} unblocked", flush=True)
        return 0

    return _run(cmd, args, body)


def run_deferred_list(args: argparse.Namespace) -> int:
    async def body(client: XcapClient, cfg: ClientConfig) -> int:
        items = await client.deferred_list()
        for item in items:
            print(f"{item.timestamp or item.date}\t{item.sender}\t{item.reference}\t"
                  f"{item.size if item.size is not None else '-'}\t{item.subject}", flush=True)
        print(f"{len(items)} deferred message(s)", flush=True)
        return 0

    return _run("deferred list", args, body)


def run_history_metadata(args: argparse.Namespace) -> int:
    async def body(client: XcapClient, cfg: ClientConfig) -> int:
        items = await client.history_list()
        for item in items:
            print(f"{item.date}\t{item.mode}\t{item.sender}\t{item.recipient}\t"
                  f"{item.reference}\t{item.size if item.size is not None else '-'}\t"
                  f"{item.subject}", flush=True)
        print(f"{len(items)} history(ies)", flush=True)
        return 0

    return _run("history metadata", args, body)


def add_history_metadata(
    hsub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """``history metadata`` (added to the ``history`` command of :mod:`history_cmds`)."""
    p = hsub.add_parser("metadata", parents=[_xcap_common()],
                        help="the history metadata over XCAP (§13.1.4): date, mode, sender, "
                             "recipient, reference, size, subject")
    p.set_defaults(func=run_history_metadata)


def add_deferred_list(
    dsub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """``deferred list`` (added to the ``deferred`` command of :mod:`deferred_cmds`)."""
    p = dsub.add_parser("list", parents=[_xcap_common()],
                        help="the metadata of the stored messages over XCAP (§12.1.2): "
                             "time, sender, Message-ID, size, subject")
    p.set_defaults(func=run_deferred_list)


def add_xcap_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = _xcap_common()
    xcap = subparsers.add_parser("xcap", help="read and write XDM documents (XCAP, RFC 4825)")
    xsub = xcap.add_subparsers(dest="xcap_action", metavar="ACTION", required=True)
    for action, what in (("get", "print a document, element or attribute"),
                         ("put", "write a document, element or attribute"),
                         ("delete", "delete a document, element or attribute")):
        p = xsub.add_parser(action, parents=[common], help=what)
        p.add_argument("path", metavar="URL-or-PATH",
                       help="a URL, or AUID/~/DOCUMENT[/~~/SELECTOR] below the XCAP root")
        if action == "put":
            p.add_argument("file", nargs="?", metavar="FILE", help="body (default: stdin)")
            p.add_argument("--content-type", help="default: from the usage / selector")
            p.add_argument("--if-none-match", metavar="ETAG|*")
        if action in ("put", "delete"):
            p.add_argument("--if-match", metavar="ETAG|*")
        if action == "get":
            p.add_argument("--etag", action="store_true", help="print the ETag on stderr")
        p.set_defaults(func=run_xcap)

    group = subparsers.add_parser("group", help="pre-defined groups (over XCAP)")
    gsub = group.add_subparsers(dest="group_action", metavar="ACTION", required=True)
    p = gsub.add_parser("create", parents=[common], help="define a group (you are a member)")
    p.add_argument("name", help="document name and default URI user part")
    p.add_argument("members", nargs="*", metavar="MEMBER",
                   help="bob, bob@example.com, sip:bob@example.com or Bob=sip:bob@...")
    p.add_argument("--uri", help="group URI (default sip:NAME@DOMAIN)")
    p.add_argument("--display-name", help="the group's display name (default NAME)")
    p.add_argument("--subject", help="subject of the group's conferences")
    p.add_argument("--max", type=int, metavar="N", help="max-participant-count")
    p.add_argument("--chat", action="store_true",
                   help="a chat room (Appendix Q imusage chat): anyone not blocked may join")
    p.add_argument("--block", action="append", default=[], metavar="URI",
                   help="refuse this user (join-handling block); repeatable")
    p.add_argument("--replace", action="store_true", help="replace an existing group")
    p.set_defaults(func=run_group)
    for action, what in (("show", "print a group's document"),
                         ("delete", "delete a group")):
        p = gsub.add_parser(action, parents=[common], help=what)
        p.add_argument("name")
        p.set_defaults(func=run_group)
    for action, what in (("add", "add members to a stored group (or change their names)"),
                         ("remove", "remove members from a stored group")):
        p = gsub.add_parser(action, parents=[common], help=what)
        p.add_argument("name", help="the group's document name")
        p.add_argument("members", nargs="+", metavar="MEMBER",
                       help="bob, bob@example.com, sip:bob@example.com or Bob=sip:bob@...")
        p.set_defaults(func=run_group)
    p = gsub.add_parser("list", parents=[common], help="your groups")
    p.set_defaults(func=run_group)

    block = subparsers.add_parser(
        "block", help="blocked contacts: the server refuses their messages, sessions and "
                      "files (403, access policy over XCAP)")
    bsub = block.add_subparsers(dest="block_action", metavar="ACTION", required=True)
    for action, what in (("add", "block users"), ("remove", "unblock users")):
        p = bsub.add_parser(action, parents=[common], help=what)
        p.add_argument("users", nargs="+", metavar="USER",
                       help="bob, bob@example.com or sip:bob@example.com")
        p.set_defaults(func=run_block)
    p = bsub.add_parser("list", parents=[common], help="the blocked users")
    p.set_defaults(func=run_block)
