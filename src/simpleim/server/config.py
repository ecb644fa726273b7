"""Configuration of the simpleim server: frozen dataclasses, parsed once, passed in.

Nothing here is global; the CLI builds a :class:`ServerConfig` and hands it to
:func:`simpleim.server.app.run_server` (or :class:`simpleim.server.app.ImServer`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from simpleim.errors import ConfigError
from simpleim.timers import DEFAULT_TIMERS, Timers
from simpleim.transport.sip_addr import ListenSpec

__all__ = [
    "ListenSpec",
    "ServerConfig",
    "parse_listen",
    "DEFAULT_SIP_PORT",
    "DEFAULT_SIPS_PORT",
    "TRANSPORTS",
]

# RFC 3261 §19.1.2: default ports 5060 (udp/tcp) and 5061 (tls).
DEFAULT_SIP_PORT = 5060
DEFAULT_SIPS_PORT = 5061
TRANSPORTS = ("udp", "tcp", "tls")


def _split_host_port(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConfigError(f"bad listen address {text!r}: missing ']'")
        host = text[1:end]
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ConfigError(f"bad listen address {text!r}")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":", 1)
    elif text.count(":") > 1:
        # a bare IPv6 literal without a port
        host, port_text = text, ""
    else:
        host, port_text = text, ""
    if not host:
        raise ConfigError(f"bad listen address {text!r}: empty host")
    if port_text:
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ConfigError(f"bad port in listen address {text!r}")
        port = int(port_text)
    else:
        port = default_port
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"listen host must be an IP address, got {host!r}") from None
    return host, port


def parse_listen(text: str) -> list[ListenSpec]:
    """``[udp:|tcp:|tls:]HOST[:PORT]`` -> listen specs; no prefix means UDP + TCP.

    IPv6 hosts are written in brackets: ``tcp:[::1]:5060``.
    """
    text = text.strip()
    transport: str | None = None
    lowered = text.lower()
    for name in TRANSPORTS:
        if lowered.startswith(name + ":"):
            transport = name
            text = text[len(name) + 1 :]
            break
    default_port = DEFAULT_SIPS_PORT if transport == "tls" else DEFAULT_SIP_PORT
    host, port = _split_host_port(text, default_port)
    if transport is None:
        return [ListenSpec("udp", host, port), ListenSpec("tcp", host, port)]
    return [ListenSpec(transport, host, port)]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything the server needs; immutable after start."""

    domain: str = "localhost"
    listen: tuple[ListenSpec, ...] = (
        ListenSpec("udp", "127.0.0.1", DEFAULT_SIP_PORT),
        ListenSpec("tcp", "127.0.0.1", DEFAULT_SIP_PORT),
    )
    db_url: str = "sqlite:///simpleim.db"
    tls_cert: str | None = None
    tls_key: str | None = None
    log_level: str = "info"
    realm: str | None = None
    auth: bool = True
    # RFC 3261 §10.3 step 7 / §20.23: registrar expiry bounds and default.
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    # Extra host names/addresses that mean "this server" besides the listen addresses.
    aliases: tuple[str, ...] = ()
    # RFC 3261 §16.6 step 11: Timer C etc. come from here.
    timers: Timers = field(default=DEFAULT_TIMERS)
    # RFC 3261 §18.1.1: maximum UDP message size we accept (513 above it, §21.5.14).
    max_message_size: int = 65535
    user_agent: str = "simpleim"

    @property
    def auth_realm(self) -> str:
        return self.realm or self.domain

    def validate(self) -> None:
        """Raise :class:`ConfigError` on an inconsistent configuration."""
        if not self.domain:
            raise ConfigError("--domain must not be empty")
        if not self.listen:
            raise ConfigError("at least one --listen address is needed")
        if any(spec.transport == "tls" for spec in self.listen) and not (
            self.tls_cert and self.tls_key
        ):
            raise ConfigError("a tls: listener needs --tls-cert and --tls-key")
        if not 0 < self.min_expires <= self.max_expires:
            raise ConfigError("min_expires must be > 0 and <= max_expires")
        if self.log_level.lower() not in {"debug", "info", "warning", "error", "critical"}:
            raise ConfigError(f"unknown log level {self.log_level!r}")
