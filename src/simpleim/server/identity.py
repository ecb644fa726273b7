"""Who "we" are: the served domain, its aliases and the listening addresses.

Used to decide whether a URI names this server (Route / Record-Route / Request-URI,
RFC 3261 §16.4) or an address-of-record of the served domain (§10.3 step 1, §16.5).
"""

from __future__ import annotations

from simpleim.sip.uri import SipUri
from simpleim.transport.sip_addr import TransportAddr, normalize_host

__all__ = ["LocalIdentity"]


class LocalIdentity:
    """The served domain, its aliases and the bound listeners."""

    def __init__(self, domain: str, aliases: tuple[str, ...] = ()) -> None:
        self.domain = domain.lower()
        self._names = {self.domain} | {normalize_host(a) for a in aliases}
        self._addrs: set[tuple[str, int]] = set()
        self._ports: set[int] = set()
        self._cache: dict[str, bool] = {}

    def add_listener(self, local: TransportAddr) -> None:
        self._addrs.add((local.host, local.port))
        self._ports.add(local.port)
        self._cache.clear()

    def _default_port(self, uri: SipUri) -> int:
        # RFC 3261 §19.1.2: 5061 for sips / transport=tls, else 5060.
        return 5061 if uri.secure or uri.transport == "tls" else 5060

    def is_us(self, uri: SipUri) -> bool:
        """True if ``uri`` addresses this server (an address we listen on, or the domain /
        an alias with no port or one of our ports)."""
        host = normalize_host(uri.maddr or uri.bare_host)
        port = uri.port
        if host in self._names:
            return port is None or port in self._ports
        if host == "localhost":
            host = "127.0.0.1"
        return (host, port if port is not None else self._default_port(uri)) in self._addrs

    def is_our_sent_by(self, host: str, port: int | None) -> bool:
        """True if a Via sent-by (host, port) names one of our listeners (§16.3 step 4)."""
        return (normalize_host(host), port if port is not None else 5060) in self._addrs

    def is_local_domain(self, uri: SipUri) -> bool:
        """True if ``uri`` is in the served domain (the domain, an alias or our address)."""
        host = uri.bare_host.lower()
        cached = self._cache.get(host + ":" + str(uri.port))
        if cached is not None:
            return cached
        result = self.is_us(uri) or normalize_host(host) in self._names
        if len(self._cache) < 1024:
            self._cache[host + ":" + str(uri.port)] = result
        return result

    def record_route(self, local: TransportAddr) -> str:
        """Our Record-Route value for the listener ``local`` (RFC 3261 §16.6 step 4: a URI
        that resolves to us, with ``lr`` for loose routing)."""
        transport = "" if local.transport == "udp" else f";transport={local.transport}"
        scheme = "sips" if local.transport == "tls" else "sip"
        return f"<{scheme}:{local.hostport}{transport};lr>"
