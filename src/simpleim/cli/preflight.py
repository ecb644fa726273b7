"""Checks the client commands make before (and while) they touch the network.

* Local input first (issue 11 §4): a malformed address, a missing file, a non-image for
  ``share-image`` or an empty message is a one-line usage error (exit 2) before anything is
  sent - not a registration, a 32 s wait and a made-up ``400``.
* Network causes in words: the proxy's host name is resolved first ("cannot resolve"); a
  refused TCP/TLS connection is named; over UDP a probe socket connected to the proxy
  catches the ICMP port-unreachable a dead server causes, so the user does not wait the
  whole 32 s of RFC 3261 retransmissions without knowing why.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

from simpleim.client.thumbnails import guess_image_type
from simpleim.errors import ConfigError, SimpleImError
from simpleim.sip.uri import parse_uri
from simpleim.transport.sip_addr import TransportAddr

__all__ = [
    "check_address",
    "check_image",
    "check_readable_file",
    "check_text",
    "resolve_proxy",
    "UdpProbe",
    "proxy_text",
]


def check_address(to: str) -> str:
    """``user``, ``user@domain`` or a SIP/tel URI, checked with the SIP URI grammar (RFC 3261
    §25.1); returns it stripped, raises :class:`ConfigError` naming what is wrong."""
    text = to.strip()
    if not text:
        raise ConfigError("empty address: give user, user@domain or sip:user@domain")
    if text.lower().startswith(("sip:", "sips:", "tel:")):
        uri = text
    else:
        user, at, domain = text.partition("@")
        if not user:
            raise ConfigError(f"bad address {to!r}: empty user part")
        if at and not domain:
            raise ConfigError(f"bad address {to!r}: empty domain after '@'")
        if "@" in domain:
            raise ConfigError(f"bad address {to!r}: more than one '@'")
        uri = f"sip:{text}" if at else f"sip:{user}@localhost"
    try:
        parse_uri(uri)
    except SimpleImError as exc:
        detail = getattr(exc, "detail", str(exc))
        raise ConfigError(f"bad address {to!r}: {detail}") from exc
    return text


def check_readable_file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"no such file: {path}")
    if not p.is_file():
        raise ConfigError(f"not a regular file: {path}")
    try:
        with p.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return p


def check_image(path: str) -> Path:
    p = check_readable_file(path)
    if guess_image_type(p) is None:
        raise ConfigError(f"{path} is not a JPEG, GIF, PNG or BMP image (GSMA IR.79 §2.6)")
    return p


def check_text(text: str) -> str:
    if not text.strip():
        raise ConfigError("empty message: nothing to send")
    return text


def proxy_text(addr: TransportAddr) -> str:
    host = f"[{addr.host}]" if ":" in addr.host else addr.host
    return f"{addr.transport}:{host}:{addr.port}"


async def resolve_proxy(addr: TransportAddr) -> None:
    """Raise :class:`ConnectionError`-free, worded :class:`OSError` when the proxy's host
    name does not resolve (``cannot resolve HOST: reason``)."""
    loop = asyncio.get_running_loop()
    try:
        await loop.getaddrinfo(addr.host, addr.port, type=socket.SOCK_DGRAM
                               if addr.transport == "udp" else socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {addr.host}: {exc.strerror or exc}") from exc


class _ProbeProtocol(asyncio.DatagramProtocol):
    def __init__(self, refused: asyncio.Future[str]) -> None:
        self.refused = refused

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefusedError) and not self.refused.done():
            self.refused.set_result("port unreachable")


class UdpProbe:
    """A UDP socket *connected* to the proxy (only connected sockets get ICMP errors):
    it sends an empty keep-alive (a bare CRLF, ignored by SIP servers, RFC 5626 §3.5.1)
    now and then while the first request waits; :attr:`refused` completes when the
    proxy's host answers "port unreachable"."""

    def __init__(self, addr: TransportAddr) -> None:
        self.addr = addr
        self.refused: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, interval: float = 1.0) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _ProbeProtocol(self.refused),
                remote_addr=(self.addr.host, self.addr.port))
        except OSError:
            return                      # no probe: the request's own timeout still applies
        self._transport = transport
        self._task = loop.create_task(self._ping(interval))

    async def _ping(self, interval: float) -> None:
        while self._transport is not None and not self._transport.is_closing():
            with contextlib.suppress(OSError):
                self._transport.sendto(b"\r\n")
            await asyncio.sleep(interval)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
