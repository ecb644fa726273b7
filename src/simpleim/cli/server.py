"""``simpleim server``: run the registrar + stateful proxy for one domain."""

from __future__ import annotations

import argparse
import sys

from simpleim.errors import ConfigError
from simpleim.server.config import (
    AUTH_ALGORITHMS,
    DEFAULT_AUTH_ALGORITHMS,
    ServerConfig,
    parse_auth_algorithms,
    parse_listen,
)
from simpleim.transport.sip_addr import ListenSpec

__all__ = ["add_server_command", "config_from_args", "run_server_command"]

_LISTEN_HELP = (
    "address to listen on, [udp:|tcp:|tls:]HOST[:PORT]; repeatable. No prefix means UDP and "
    "TCP; IPv6 as [::1]:5060. Default: 127.0.0.1:5060 (UDP+TCP)"
)


def add_server_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "server",
        help="run the IM server (registrar + stateful proxy)",
        description=(
            "Run the simpleim SIP server: a registrar (RFC 3261 §10) and a stateful proxy "
            "(RFC 3261 §16) for one domain, with digest authentication against the user "
            "store. Requests for other domains are refused with 403."
        ),
    )
    parser.add_argument(
        "--domain", default="localhost", help="the SIP domain served (default: %(default)s)"
    )
    parser.add_argument(
        "--listen", action="append", metavar="[PROTO:]HOST:PORT", default=None, help=_LISTEN_HELP
    )
    parser.add_argument(
        "--db", default="sqlite:///simpleim.db", metavar="URL",
        help="store URL, sqlite:///PATH or postgresql://... (default: %(default)s)",
    )
    parser.add_argument("--tls-cert", metavar="PEM", help="certificate chain for tls: listeners")
    parser.add_argument("--tls-key", metavar="PEM", help="private key for tls: listeners")
    parser.add_argument(
        "--log-level", default="info",
        choices=["debug", "info", "warning", "error", "critical"],
        help="log level (default: %(default)s); 'warning' turns off the per-transaction "
             "lines (benchmarks)",
    )
    parser.add_argument("--realm", default=None, help="digest realm (default: the domain)")
    parser.add_argument(
        "--no-auth", action="store_true",
        help="DANGEROUS, for tests only: no digest authentication, anyone may register",
    )
    parser.add_argument(
        "--auth-algorithms", default=",".join(a.lower() for a in DEFAULT_AUTH_ALGORITHMS),
        metavar="ALG[,ALG...]",
        help="digest algorithms offered, most preferred first, one challenge each "
             f"(RFC 8760): {', '.join(a.lower() for a in AUTH_ALGORITHMS)}. Default: "
             "%(default)s (SIPp and baresip 1.0 handle only MD5); 'sha-256,md5' lets "
             "RFC 8760 clients pick SHA-256",
    )
    parser.add_argument(
        "--min-expires", type=int, default=60,
        help="registrar Min-Expires in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--max-expires", type=int, default=3600,
        help="registrar maximum expires in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--alias", action="append", default=None, metavar="HOST",
        help="another host name meaning this server (repeatable)",
    )
    parser.set_defaults(func=run_server_command)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    listen: list[ListenSpec] = []
    for item in args.listen or ["127.0.0.1:5060"]:
        listen.extend(parse_listen(item))
    config = ServerConfig(
        domain=args.domain,
        listen=tuple(listen),
        db_url=args.db,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        log_level=args.log_level,
        realm=args.realm,
        auth=not args.no_auth,
        auth_algorithms=parse_auth_algorithms(args.auth_algorithms),
        min_expires=args.min_expires,
        max_expires=args.max_expires,
        aliases=tuple(args.alias or ()),
    )
    config.validate()
    return config


def run_server_command(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"simpleim server: {exc}", file=sys.stderr)
        return 2
    from simpleim.server.app import run_server

    return run_server(config)
