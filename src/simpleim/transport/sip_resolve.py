"""Next hop of a SIP URI without DNS (RFC 3263 §4 with IP literals only)."""

from __future__ import annotations

import ipaddress

from simpleim.errors import TransactionError
from simpleim.sip.uri import SipUri
from simpleim.transport.sip_addr import TransportAddr, normalize_host

__all__ = ["resolve_uri"]


def resolve_uri(uri: SipUri, host_map: dict[str, str] | None = None) -> TransportAddr:
    """Transport address of a SIP URI without DNS (RFC 3263 §4 with IP literals only).

    ``transport`` parameter or ``sips`` (TLS) picks the transport, else UDP (§4.1);
    ``maddr`` overrides the host (RFC 3261 §19.1.1); the port defaults to 5060/5061.
    Host names must be in ``host_map`` (``localhost`` maps to 127.0.0.1).
    """
    transport = uri.transport
    if uri.secure:
        transport = "tls"
    elif transport is None or transport not in ("udp", "tcp", "tls"):
        transport = "udp"
    host = uri.maddr or uri.bare_host
    host = normalize_host(host)
    mapped = (host_map or {}).get(host)
    if mapped is not None:
        host = mapped
    elif host == "localhost":
        host = "127.0.0.1"
    elif not _is_ip(host):
        # No DNS here (RFC 3263 resolution is not done): an unknown name is unreachable.
        raise TransactionError(f"cannot resolve {host!r} without DNS", status=503,
                               where="Request-URI")
    port = uri.port or (5061 if transport == "tls" else 5060)
    return TransportAddr(transport, host, port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
