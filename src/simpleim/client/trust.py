"""Which sources may send SIP requests to the agent (issue 7 item 17).

An IM client sits behind its registrar/proxy (OMA SIMPLE IM §5, RFC 3261 §8.1.3): every
request for it arrives through the proxy, which authenticated the sender and asserted its
identity.  A request sent straight to the client's port bypasses all of that, so by default
only the proxy's flow is trusted:

* UDP: datagrams from the proxy's address and port;
* TCP/TLS: the connection we opened to the proxy, or one opened by the proxy's host.

``trusted_sources`` (client config) adds more: ``host`` (any port) or ``host:port``; ``*``
accepts every source (a client used without a proxy, peer to peer).  Responses are not
filtered (they only match our own client transactions).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterable

from simpleim.transport.sip_addr import TransportAddr

__all__ = ["SourceTrust"]

log = logging.getLogger("simpleim.client")


def _norm(host: str) -> str:
    host = host.strip("[]").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.rstrip(".")


class SourceTrust:
    """Decides whether a request from ``source`` is accepted."""

    def __init__(self, proxy: TransportAddr, extra: Iterable[str] = ()) -> None:
        self.proxy = proxy
        self.any = False
        self._hosts: set[str] = set()            # trusted from any port
        self._addrs: set[tuple[str, int]] = set()
        self._proxy_hosts = {_norm(proxy.host)}
        for item in extra:
            item = item.strip()
            if item == "*":
                self.any = True
                continue
            host, port = _split(item)
            if port is None:
                self._hosts.add(_norm(host))
            else:
                self._addrs.add((_norm(host), port))
        self.refused = 0

    async def resolve(self) -> None:
        """Add the proxy's addresses when it is configured by name."""
        host = self.proxy.host.strip("[]")
        try:
            ipaddress.ip_address(host)
            return
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, self.proxy.port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            log.warning("cannot resolve the proxy %s to trust its address: %s", host, exc)
            return
        for info in infos:
            self._proxy_hosts.add(_norm(str(info[4][0])))

    def allows(self, source: TransportAddr) -> bool:
        if self.any:
            return True
        host = _norm(source.host)
        if host in self._hosts or (host, source.port) in self._addrs:
            return True
        if host in self._proxy_hosts:
            if source.transport == "udp":
                return source.port == self.proxy.port
            return True
        return False

    def refuse(self, source: TransportAddr) -> None:
        self.refused += 1
        log.warning("refused a SIP request from %s: not our proxy (%s); add it to "
                    "trusted_sources to accept it", source, self.proxy)


def _split(item: str) -> tuple[str, int | None]:
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port.isdigit() else None
    if item.count(":") == 1:
        host, _, port = item.partition(":")
        return host, int(port) if port.isdigit() else None
    return item, None
