"""Transport-level addresses of SIP elements (no sockets here)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["ListenSpec", "TransportAddr", "normalize_host", "RELIABLE"]

# RFC 3261 §18: TCP and TLS are reliable, stream-oriented transports.
RELIABLE = frozenset({"tcp", "tls"})


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """One listening socket: transport (udp/tcp/tls), host (IP literal) and port (0 = any)."""

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


class TransportAddr(NamedTuple):
    """A transport-level address: ``transport`` is ``udp``, ``tcp`` or ``tls``."""

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def normalize_host(host: str) -> str:
    """Strip IPv6 brackets and compress IPv6 literals, lower-case names, so that
    dictionary keys match (RFC 3261 §19.1.4: hosts compare case-insensitively)."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            return host.lower()
    return host.lower()
