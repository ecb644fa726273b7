"""``simpleim agent|send|chat|group-chat|send-file|share-image|capabilities``: the client
commands.

Every command is built on :class:`simpleim.client.account.Account` only.  Common options come
from (lowest first) ``~/.config/simpleim/client.toml`` (or ``--config``), ``SIMPLEIM_*``
environment variables and the command line.  Exit codes: see :data:`EXIT_CODES` and
docs/cli.md.
"""

from __future__ import annotations

import argparse

from simpleim.cli.client_run import (
    EXIT_CODES,
    run_agent,
    run_capabilities,
    run_chat,
    run_group_chat,
    run_send,
    run_send_file,
    run_share_image,
)

__all__ = ["add_client_commands", "EXIT_CODES"]

_EPILOG = ("exit codes: " + ", ".join(f"{code} {what}" for code, what in EXIT_CODES.items())
           + ".  Options may also come from ~/.config/simpleim/client.toml (--config) and "
           "SIMPLEIM_* variables (SIMPLEIM_ACCOUNT, SIMPLEIM_PASSWORD, SIMPLEIM_PROXY, ...).")


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("account")
    g.add_argument("--account", metavar="USER@DOMAIN", help="our address of record")
    g.add_argument("--password", help="digest password (prefer SIMPLEIM_PASSWORD)")
    g.add_argument("--proxy", metavar="[udp:|tcp:|tls:|sips:]HOST:PORT",
                   help="outbound proxy / registrar (default: the account's domain, port "
                        "5060; tls:/sips: signalling over TLS, port 5061)")
    g.add_argument("--tls-ca", metavar="FILE",
                   help="CA certificate(s) to verify a TLS proxy with (PEM)")
    g.add_argument("--tls-cert", metavar="PEM",
                   help="certificate chain for MSRP over TLS (with a tls: proxy)")
    g.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    g.add_argument("--insecure", action="store_true",
                   help="do not verify the TLS proxy's certificate (test setups only)")
    g.add_argument("--listen", metavar="[udp:|tcp:]HOST:PORT",
                   help="local SIP address (default 127.0.0.1, ephemeral port)")
    g.add_argument("--msrp-listen", metavar="HOST:PORT", help="local MSRP address")
    g.add_argument("--msrp-relay", metavar="MSRP-URI",
                   help="our RFC 4976 MSRP relay, e.g. msrp://relay.example:2855;tcp")
    g.add_argument("--config", metavar="FILE", help="TOML config file")
    g.add_argument("--display-name", help="display name in From")
    g.add_argument("--expires", type=int, help="registration interval in seconds")
    g.add_argument("--no-register", action="store_true",
                   help="do not REGISTER (talk straight to a peer given as --proxy)")
    g.add_argument("--fixed-datetime", metavar="RFC3339",
                   help="CPIM DateTime to send (for peers with date bugs)")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for an answer")
    g.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    return p


def add_client_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = _common()
    fmt = argparse.RawDescriptionHelpFormatter

    p = subparsers.add_parser(
        "agent", parents=[common], formatter_class=fmt, epilog=_EPILOG,
        help="stay registered and print every event",
        description="Register and print every event (messages, sessions, files, IMDNs, "
                    "is-composing, errors) until interrupted.  --json prints one JSON object "
                    "per line with an 'event' field.")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--download-dir", metavar="DIR", help="where received files go")
    pol = p.add_mutually_exclusive_group()
    pol.add_argument("--accept", action="store_true",
                     help="accept every session, file and image (default)")
    pol.add_argument("--decline", action="store_true",
                     help="decline every session (480), file and image (603)")
    p.add_argument("--sessions", choices=["accept", "decline"], help="policy for chats")
    p.add_argument("--files", choices=["accept", "decline"], help="policy for file transfers")
    p.add_argument("--images", choices=["accept", "decline"], help="policy for image share")
    p.add_argument("--max-file-size", type=int, metavar="BYTES",
                   help="decline offers larger than this")
    p.add_argument("--auto-display", action="store_true",
                   help="send display notifications for received messages")
    p.add_argument("--echo", action="store_true",
                   help="answer every received message with 'echo: <text>' (tests)")
    p.add_argument("--duration", type=float, metavar="S", help="exit after S seconds")
    p.add_argument("--history", action="append", metavar="REF", default=[],
                   help="retrieve this stored history once registered (repeatable): its "
                        "items are 'history' events")
    p.set_defaults(func=run_agent)

    p = subparsers.add_parser(
        "send", parents=[common], formatter_class=fmt, epilog=_EPILOG,
        help="send one instant message (pager or large message mode)",
        description="Send TEXT to TO: SIP MESSAGE up to 1300 bytes (OMA SIMPLE IM §8.1), "
                    "a large message session above (§9).  With several TOs, one MESSAGE "
                    "with the recipient list goes to the server's exploder "
                    "(sip:Exploder@DOMAIN, RFC 5365), which sends each a copy.  Prints "
                    "'sent <mode> <message-id>'.")
    p.add_argument("to", metavar="TO", nargs="+",
                   help="recipient(s): user, user@domain or a SIP URI")
    p.add_argument("text", metavar="TEXT", help="message text ('-' reads stdin)")
    p.add_argument("--content-type", default="text/plain", help="type of TEXT")
    p.add_argument("--wait-imdn", type=float, metavar="S", default=0.0,
                   help="wait up to S seconds for the delivery notification(s)")
    p.add_argument("--final-report", action="store_true",
                   help="large message mode whatever the size, asking for the Final Delivery "
                        "Report (OMA SIMPLE IM §5.7): prints 'final-report STATUS RECIPIENT' "
                        "per recipient (9999 max-size=N: above what it takes)")
    p.set_defaults(func=run_send)

    p = subparsers.add_parser(
        "chat", parents=[common], formatter_class=fmt, epilog=_EPILOG,
        help="interactive 1-1 chats: with TO, or waiting for whoever writes",
        description="Chat on the console.  With TO, invite TO to an MSRP session; without, "
                    "wait for chats and messages.  Every message received is shown, from "
                    "anyone (also pager messages and chats others open); typed lines go to "
                    "the current peer (TO, else the last one who wrote; /to PEER switches).  "
                    "✓ = delivered, ✓✓ = displayed; '… typing' shows is-composing, which is "
                    "sent while you type (on a terminal; an empty line on a pipe).  Ctrl-D or "
                    "/quit ends it.")
    p.add_argument("to", metavar="TO", nargs="?", help="whom to invite (optional)")
    p.set_defaults(func=run_chat)

    p = subparsers.add_parser(
        "group-chat", parents=[common], formatter_class=fmt, epilog=_EPILOG,
        help="an ad-hoc group chat with MEMBERs (the server's conference focus)",
        description="Start a group chat: one INVITE to the server's conference factory "
                    "(sip:Conference-Factory@DOMAIN) names the MEMBERs (RFC 5366); the "
                    "server invites them and relays every message to everybody.  Typed "
                    "lines go to the group; what others write is shown with their name, and "
                    "who joins or leaves (conference event package).  /add USER, "
                    "/remove USER (the initiator only), /who, /msg NICK TEXT (private), "
                    "/alias NAME; /leave, /quit or Ctrl-D ends "
                    "it (and the group chat ends for all when its initiator leaves).  "
                    "--join GROUP starts or joins a pre-defined group or chat room "
                    "(simpleim group create), or rejoins a group chat by its conference URI.")
    p.add_argument("members", metavar="MEMBER", nargs="*",
                   help="users to invite: user, user@domain or a SIP URI")
    p.add_argument("--join", metavar="GROUP",
                   help="a pre-defined group's URI (or name), a chat room or a conference "
                        "URI to join instead of inviting MEMBERs")
    p.add_argument("--subject", help="the Subject of the group chat")
    p.add_argument("--alias", metavar="NICK",
                   help="your chat alias: the name the others see (OMA SIMPLE IM §7.1.1.15)")
    p.add_argument("--anonymous", action="store_true",
                   help="join anonymously (Privacy: id): the others see your alias and an "
                        "anonymous address, not yours - where the group allows it (else 403)")
    p.set_defaults(func=run_group_chat)

    p = subparsers.add_parser(
        "send-file", parents=[common], formatter_class=fmt, epilog=_EPILOG,
        help="push files (RFC 5547), with progress bar",
        description="Push one or more files in one session (one m-line each), with a JPEG "
                    "thumbnail for images, sha-1 hash, resume of interrupted transfers.")
    p.add_argument("to", metavar="TO")
    p.add_argument("files", metavar="FILE", nargs="+")
    p.add_argument("--no-thumbnail", action="store_true", help="do not send a file-icon")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_send_file)

    p = subparsers.add_parser(
        "share-image", parents=[common], formatter_class=fmt, epilog=_EPILOG,
        help="GSMA IR.79 image share",
        description="Share an image (JPEG, GIF, PNG, BMP) the IR.79 way: sendonly MSRP "
                    "stream, file-disposition:render, the whole image in one SEND.")
    p.add_argument("to", metavar="TO")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--title", help="the i= line shown to the recipient")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_share_image)

    p = subparsers.add_parser(
        "capabilities", parents=[common], formatter_class=fmt, epilog=_EPILOG,
        help="query a contact's capabilities (SIP OPTIONS)",
        description="SIP OPTIONS capability query (IR.79 §2.3): prints the services found "
                    "in the answer's Contact (im, filetransfer, imageshare, ...).")
    p.add_argument("to", metavar="TO")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(func=run_capabilities)
