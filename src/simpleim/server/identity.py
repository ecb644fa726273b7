"""Who "we" are: the served domain, its aliases and the listening addresses.

Used to decide whether a URI names this server (Route / Record-Route / Request-URI,
RFC 3261 §16.4) or an address-of-record of the served domain (§10.3 step 1, §16.5).

Host names are compared in canonical form (issue 7 item 13, lookalike identities): lower
case, without the trailing dot of a fully qualified name (``example.test.`` is
``example.test``, RFC 1034 §3.1), IPv6 compressed, and an IP literal of one of our listeners
(whatever the port) or ``localhost`` means the served domain.  Otherwise
``bob@example.test.`` or ``bob@127.0.0.1`` would pass as foreign identities, unchallenged.
"""

from __future__ import annotations

from simpleim.sip.uri import SipUri
from simpleim.transport.sip_addr import TransportAddr, normalize_host

__all__ = ["LocalIdentity", "canonical_host"]


def canonical_host(host: str) -> str:
    """Lower case, IPv6 compressed, no brackets, no trailing dot (RFC 1034 §3.1)."""
    canon = normalize_host(host)
    while canon.endswith(".") and len(canon) > 1:
        canon = canon[:-1]
    return canon


class LocalIdentity:
    """The served domain, its aliases and the bound listeners."""

    def __init__(self, domain: str, aliases: tuple[str, ...] = ()) -> None:
        self.domain = domain.lower()
        self._names = {canonical_host(domain)} | {canonical_host(a) for a in aliases}
        self._addrs: set[tuple[str, int]] = set()
        # IP literals of our listeners: a URI with one of them as host is in our domain
        self._hosts: set[str] = set()
        self._ports: set[int] = set()
        self._cache: dict[str, bool] = {}

    def add_listener(self, local: TransportAddr) -> None:
        self._addrs.add((local.host, local.port))
        self._ports.add(local.port)
        if local.host in ("0.0.0.0", "::"):
            self._hosts.update({"127.0.0.1", "::1"})
        else:
            self._hosts.add(local.host)
        self._cache.clear()

    def _default_port(self, uri: SipUri) -> int:
        # RFC 3261 §19.1.2: 5061 for sips / transport=tls, else 5060.
        return 5061 if uri.secure or uri.transport == "tls" else 5060

    def is_us(self, uri: SipUri) -> bool:
        """True if ``uri`` addresses this server (an address we listen on, or the domain /
        an alias with no port or one of our ports)."""
        host = canonical_host(uri.maddr or uri.bare_host)
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
        canon = canonical_host(host)
        if canon == "localhost":
            canon = "127.0.0.1"
        result = self.is_us(uri) or canon in self._names or canon in self._hosts
        if len(self._cache) < 1024:
            self._cache[host + ":" + str(uri.port)] = result
        return result

    def names_domain(self, uri: SipUri) -> bool:
        """True if ``uri`` names the served domain by name (or addresses this server):
        for routing a remote target, where a UA's contact on our host is not our domain."""
        return canonical_host(uri.bare_host) in self._names or self.is_us(uri)

    def record_route(self, local: TransportAddr, stamp: str | None = None) -> str:
        """Our Record-Route value for the listener ``local`` (RFC 3261 §16.6 step 4: a URI
        that resolves to us, with ``lr`` for loose routing), with the dialog's route stamp
        (:class:`simpleim.server.trust.RouteStamp`) as ``rt`` parameter."""
        transport = "" if local.transport == "udp" else f";transport={local.transport}"
        scheme = "sips" if local.transport == "tls" else "sip"
        rt = f";rt={stamp}" if stamp else ""
        return f"<{scheme}:{local.hostport}{transport};lr{rt}>"
