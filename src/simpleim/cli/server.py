"""``simpleim server``: run the IM server (registrar, proxy and the IM application-server
roles) for one domain."""

from __future__ import annotations

import argparse
import sys

from simpleim.errors import ConfigError
from simpleim.server.config import (
    AUTH_ALGORITHMS,
    DEFAULT_AUTH_ALGORITHMS,
    LOG_FORMATS,
    PF_MEDIA_MODES,
    ServerConfig,
    parse_auth_algorithms,
    parse_listen,
)
from simpleim.server.config_file import (
    ConfigValue,
    load_server_config_file,
    server_config_overrides,
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
        help="run the IM server (registrar, proxy, group chat, deferred messages, history, XCAP)",
        description=(
            "Run the simpleim SIP server: a registrar (RFC 3261 §10) and a stateful proxy "
            "(RFC 3261 §16) for one domain, with digest authentication against the user "
            "store. Requests for other domains are refused with 403."
        ),
    )
    parser.add_argument(
        "--domain", default=None, help="the SIP domain served (default: localhost)"
    )
    parser.add_argument(
        "--listen", action="append", metavar="[PROTO:]HOST:PORT", default=None, help=_LISTEN_HELP
    )
    parser.add_argument(
        "--db", default=None, metavar="URL",
        help="store URL, sqlite:///PATH or postgresql://... (default: sqlite:///simpleim.db)",
    )
    parser.add_argument("--tls-cert", metavar="PEM", help="certificate chain for tls: listeners")
    parser.add_argument("--tls-key", metavar="PEM", help="private key for tls: listeners")
    parser.add_argument(
        "--log-level", default=None,
        choices=["debug", "info", "warning", "error", "critical"],
        help="log level (default: info); 'warning' turns off the per-transaction "
             "lines (benchmarks)",
    )
    parser.add_argument(
        "--log-format", default=None, choices=list(LOG_FORMATS),
        help="log lines as text or as one JSON object per line (default: text)",
    )
    parser.add_argument(
        "--log-file", default=None, metavar="PATH",
        help="append the log to PATH instead of stderr (reopened when logrotate moves "
             "it; default: stderr)",
    )
    parser.add_argument(
        "--metrics", default=None, metavar="HOST:PORT",
        help="serve /healthz and Prometheus /metrics over HTTP on HOST:PORT "
             "(default: off; e.g. 127.0.0.1:9090)",
    )
    parser.add_argument(
        "--xcap", default=None, metavar="HOST:PORT",
        help="serve XDM documents over XCAP (RFC 4825: groups, resource lists, deferred "
             "and history metadata) on HTTP HOST:PORT under /xcap-root, with digest "
             "authentication against the user store (default: off; e.g. 127.0.0.1:8080)",
    )
    parser.add_argument(
        "--xcap-tls", action="store_true", default=None,
        help="serve XCAP over HTTPS with the --tls-cert / --tls-key certificate",
    )
    parser.add_argument(
        "--msrp-listen", default=None, metavar="HOST:PORT|auto|off",
        help="MSRP listener of the sessions the server is an endpoint of (PF B2BUA, "
             "deferred push...); auto (default): the first --listen address, port + 1 "
             "when free, else an ephemeral port",
    )
    parser.add_argument(
        "--pf-media", default=None, choices=list(PF_MEDIA_MODES),
        help="the terminating Participating Function out of the media path (proxy, "
             "default) or in it as a B2BUA relaying the MSRP (b2bua)",
    )
    parser.add_argument(
        "--config", default=None, metavar="FILE",
        help="TOML configuration file (docs/server.md); flags override it",
    )
    parser.add_argument(
        "--check-config", action="store_true",
        help="check the configuration (file + flags, TLS files) and exit: 0 if valid, "
             "else one line on stderr and exit 2",
    )
    parser.add_argument("--realm", default=None, help="digest realm (default: the domain)")
    parser.add_argument(
        "--no-auth", action="store_true",
        help="DANGEROUS, for tests only: no digest authentication, anyone may register",
    )
    parser.add_argument(
        "--auth-algorithms", default=None,
        metavar="ALG[,ALG...]",
        help="digest algorithms offered, most preferred first, one challenge each "
             f"(RFC 8760): {', '.join(a.lower() for a in AUTH_ALGORITHMS)}. Default: "
             + ",".join(a.lower() for a in DEFAULT_AUTH_ALGORITHMS)
             + " (SIPp and baresip 1.0 handle only MD5); 'sha-256,md5' lets "
             "RFC 8760 clients pick SHA-256",
    )
    parser.add_argument(
        "--min-expires", type=int, default=None,
        help="registrar Min-Expires in seconds (default: 60)",
    )
    parser.add_argument(
        "--max-expires", type=int, default=None,
        help="registrar maximum expires in seconds (default: 3600)",
    )
    parser.add_argument(
        "--alias", action="append", default=None, metavar="HOST",
        help="another host name meaning this server (repeatable)",
    )
    limits = parser.add_argument_group(
        "limits", "abuse and overload limits (docs/security.md lists each with its default)")
    for flag, kind, name, text in _LIMIT_FLAGS:
        limits.add_argument(flag, type=kind, default=None, dest=name, help=text)
    parser.set_defaults(func=run_server_command)


# (flag, type, ServerConfig field, help): issue 7 limits a user may want to change
_LIMIT_FLAGS: tuple[tuple[str, type, str, str], ...] = (
    ("--max-contacts", int, "max_contacts", "bindings per address-of-record (default: 10)"),
    ("--max-branches", int, "max_branches", "branches a request forks to (default: 10)"),
    ("--auth-max-failures", int, "auth_max_failures_source",
     "failed authentications per source address within the window before a lockout "
     "(default: 10; 0: off)"),
    ("--auth-max-failures-user", int, "auth_max_failures_user",
     "failed authentications per user name within the window before a lockout "
     "(default: 20; 0: off)"),
    ("--auth-failure-window", float, "auth_failure_window",
     "window of the failure counts in seconds (default: 60)"),
    ("--auth-lockout", float, "auth_lockout", "lockout duration in seconds (default: 300)"),
    ("--overload-max-pending", int, "overload_max_pending",
     "unanswered requests above which new ones get 503 (default: 2000; 0: off)"),
    ("--overload-max-lag", float, "overload_max_lag",
     "event-loop lag in seconds above which new requests get 503 (default: 1; 0: off)"),
    ("--overload-max-busy", float, "overload_max_busy",
     "fraction of time handling messages above which new requests without credentials "
     "get 503 (default: 0.85; 0: off)"),
    ("--max-transactions", int, "max_transactions",
     "live SIP transactions; beyond, 503 (default: 100000)"),
    ("--max-tcp-connections", int, "max_tcp_connections",
     "open TCP/TLS connections in all (default: 4096)"),
    ("--max-tcp-per-source", int, "max_tcp_per_source",
     "open TCP/TLS connections per source address (default: 64)"),
)


def _flag_overrides(args: argparse.Namespace) -> dict[str, ConfigValue]:
    """The ServerConfig fields the command line sets explicitly (they win over the file)."""
    out: dict[str, ConfigValue] = {}
    if args.listen:
        listen: list[ListenSpec] = []
        for item in args.listen:
            listen.extend(parse_listen(item))
        out["listen"] = tuple(listen)
    if args.auth_algorithms is not None:
        out["auth_algorithms"] = parse_auth_algorithms(args.auth_algorithms)
    if args.no_auth:
        out["auth"] = False
    if args.alias:
        out["aliases"] = tuple(args.alias)
    if args.xcap_tls:
        out["xcap_tls"] = True
    simple = {"domain": "domain", "db": "db_url", "tls_cert": "tls_cert",
              "tls_key": "tls_key", "log_level": "log_level", "log_format": "log_format",
              "log_file": "log_file", "metrics": "metrics_listen", "realm": "realm",
              "xcap": "xcap_listen",
              "min_expires": "min_expires", "max_expires": "max_expires",
              "msrp_listen": "msrp_listen", "pf_media": "pf_media"}
    simple.update({name: name for _, _, name, _ in _LIMIT_FLAGS})
    for attr, name in simple.items():
        value = getattr(args, attr)
        if value is not None:
            out[name] = value
    return out


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Defaults, then the ``--config`` file, then the flags; validated."""
    from_file = load_server_config_file(args.config) if args.config else {}
    return server_config_overrides(ServerConfig(), from_file, _flag_overrides(args))


def check_config(config: ServerConfig) -> None:
    """What ``--check-config`` adds to validation: the TLS files load."""
    from simpleim.server.serve import make_server_ssl

    make_server_ssl(config)


def _listen_without_port(item: str) -> bool:
    """``[udp:|tcp:|tls:]HOST`` with no ``:PORT`` (IPv6 literals in brackets)."""
    text = item.strip()
    prefix, colon, rest = text.partition(":")
    if colon and prefix.lower() in ("udp", "tcp", "tls"):
        text = rest
    if text.startswith("["):
        return "]:" not in text
    return text.count(":") != 1


def run_server_command(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        if args.check_config:
            check_config(config)
    except ConfigError as exc:
        print(f"simpleim server: {exc}", file=sys.stderr)
        return 2
    for item in args.listen or []:
        if _listen_without_port(item):
            specs = parse_listen(item)
            print(f"simpleim server: --listen {item} has no port: using the default "
                  f"{specs[0].port}", file=sys.stderr, flush=True)
    if args.check_config:
        print(f"simpleim server: configuration OK (domain={config.domain}, "
              + " ".join(str(spec) for spec in config.listen) + ")")
        return 0
    from simpleim.server.serve import run_server

    return run_server(config)
