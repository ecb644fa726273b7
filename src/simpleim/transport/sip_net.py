"""Sockets for SIP: UDP datagrams and TCP/TLS byte streams (IPv4 and IPv6).

This module only moves bytes.  It knows nothing about SIP beyond framing on streams
(done by the SIP core's stream framer, see :mod:`simpleim.transport.sip_framing`).
Every complete message is handed to ``on_message(data, source, local)``;
:class:`simpleim.transport.sip.SipEndpoint` parses it.

Connections are indexed by the remote (transport, host, port) so that a response can be
sent back on the connection its request came in on (RFC 3261 §18.2.2), and a request to a
peer reuses an open connection to it (RFC 3261 §18.1.1, connection reuse).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from time import perf_counter
from typing import Any, cast

from simpleim.errors import ProtocolError, RemoteProtocolError
from simpleim.transport.sip_addr import RELIABLE, ListenSpec, TransportAddr, normalize_host
from simpleim.transport.sip_framing import StreamFramerAdapter

__all__ = [
    "ListenSpec",
    "connect_error_text",
    "TransportAddr",
    "SipNetwork",
    "MessageCallback",
    "ErrorCallback",
    "normalize_host",
    "RELIABLE",
]

log = logging.getLogger("simpleim.transport.sip")

# Requested UDP socket buffer size (the kernel caps it at net.core.[rw]mem_max).
UDP_BUFFER_BYTES = 4 * 1024 * 1024




MessageCallback = Callable[[bytes, TransportAddr, TransportAddr], None]
ErrorCallback = Callable[[TransportAddr, str, list[str]], None]


def _peer(transport: str, addr: tuple[object, ...]) -> TransportAddr:
    host = str(addr[0])
    port = addr[1]
    return TransportAddr(transport, normalize_host(host), port if isinstance(port, int) else 0)


class _UdpProtocol(asyncio.DatagramProtocol):
    """One UDP listener; every datagram is one message (RFC 3261 §18.3)."""

    def __init__(self, net: SipNetwork, local: TransportAddr) -> None:
        self._net = net
        self.local = local
        self.transport: asyncio.DatagramTransport | None = None
        # socket address -> TransportAddr (the same few peers send most datagrams)
        self._sources: dict[tuple[Any, ...], TransportAddr] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not every loop's UDP transport subclasses DatagramTransport (CPython 3.11 does not).
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if len(data) <= 4 and not data.strip():
            # RFC 5626 §3.5.1 / §4.4.1 keep-alives on UDP are STUN; bare CRLFs are ignored.
            return
        source = self._sources.get(addr)
        if source is None:
            source = TransportAddr("udp", normalize_host(addr[0]), addr[1])
            if len(self._sources) >= 4096:
                self._sources.clear()
            self._sources[addr] = source
        self._net.deliver(data, source, self.local)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable) on UDP: nothing to do, transactions time out.
        log.debug("udp error on %s: %s", self.local, exc)


class _StreamProtocol(asyncio.Protocol):
    """One TCP or TLS connection, framed by Content-Length (RFC 3261 §18.3)."""

    def __init__(self, net: SipNetwork, transport_name: str, local: TransportAddr | None,
                 *, inbound: bool = False) -> None:
        self._net = net
        self.inbound = inbound
        self._incomplete: asyncio.TimerHandle | None = None
        self.name = transport_name
        self.local = local
        self.peer: TransportAddr | None = None
        self.transport: asyncio.Transport | None = None
        self._framer = StreamFramerAdapter(net.max_message_size)
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self.connected: asyncio.Future[None] = self._loop.create_future()
        self.last_activity = self._loop.time()
        # when bytes last arrived (RFC 5626 flow liveness: what the peer sent, not we)
        self.last_received = self.last_activity

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peername = self.transport.get_extra_info("peername")
        sockname = self.transport.get_extra_info("sockname")
        if peername is not None:
            self.peer = _peer(self.name, tuple(peername))
        if self.local is None and sockname is not None:
            self.local = _peer(self.name, tuple(sockname))
        if self.inbound and self.peer is not None and not self._net.admit(self.peer):
            # issue 7 item 10: over the global or per-source cap (logged by admit)
            self.inbound = False  # not counted: nothing to release
            self.closed = True
            self.transport.abort()
            if not self.connected.done():
                self.connected.set_result(None)
            return
        if self.peer is not None:
            self._net.register_connection(self.peer, self)
        if not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_activity = self.last_received = self._loop.time()
        framer = self._framer
        pongs = framer.pongs
        try:
            messages, pong = framer.feed(data)
        except RemoteProtocolError as exc:
            # A framing error (e.g. negative or garbled Content-Length, RFC 4475 §3.1.2.3)
            # is unrecoverable on a stream: close this connection only.
            log.warning("closing %s: bad framing: %s", self.peer, exc.detail)
            self.close()
            return
        if pong and self.transport is not None:
            # RFC 5626 §3.5.1: answer a double-CRLF ping with a single CRLF pong.
            self.transport.write(b"\r\n")
        self._watch_incomplete()
        if framer.pongs != pongs and self.peer is not None:
            self._net.pong_received(self.peer)
        if self.peer is None or self.local is None:
            return
        for message in messages:
            self._net.deliver(message, self.peer, self.local)
            if self.closed:
                return

    def _watch_incomplete(self) -> None:
        """Issue 7 item 10 (slowloris): a message may stay incomplete for at most the
        network's ``incomplete_timeout``; then the connection is closed."""
        if self._framer.buffered == 0:
            if self._incomplete is not None:
                self._incomplete.cancel()
                self._incomplete = None
        elif self._incomplete is None and self._net.incomplete_timeout > 0:
            self._incomplete = self._loop.call_later(self._net.incomplete_timeout,
                                                     self._incomplete_expired)

    def _incomplete_expired(self) -> None:
        self._incomplete = None
        if not self.closed and self._framer.buffered:
            log.warning("closing %s: a message stayed incomplete for %.0f s (%d bytes)",
                        self.peer, self._net.incomplete_timeout, self._framer.buffered)
            self.close()

    def write(self, data: bytes) -> None:
        self.last_activity = self._loop.time()
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _release(self) -> None:
        if self._incomplete is not None:
            self._incomplete.cancel()
            self._incomplete = None
        # drop the partial message at once (not when the transport object goes)
        self._framer = StreamFramerAdapter(self._net.max_message_size)
        if self.inbound and self.peer is not None:
            self._net.release(self.peer)
            self.inbound = False

    def close(self) -> None:
        if not self.closed:
            self._release()
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            if self.peer is not None:
                self._net.unregister_connection(self.peer, self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        self.closed = True
        if self.peer is not None:
            self._net.unregister_connection(self.peer, self)
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(str(exc or "connection lost")))


class SipNetwork:
    """Listeners and connections of one SIP element."""

    def __init__(
        self,
        on_message: MessageCallback,
        *,
        on_error: ErrorCallback | None = None,
        ssl_server: ssl.SSLContext | None = None,
        ssl_client: ssl.SSLContext | None = None,
        max_message_size: int = 65535,
        connect_timeout: float = 10.0,
        idle_timeout: float = 3605.0,
        max_connections: int = 4096,
        max_per_source: int = 64,
        incomplete_timeout: float = 10.0,
    ) -> None:
        self._on_message = on_message
        self._on_error = on_error
        self._ssl_server = ssl_server
        self._ssl_client = ssl_client
        self.max_message_size = max_message_size
        self._connect_timeout = connect_timeout
        # Connections without traffic for this long are closed (a registered UA keeps its
        # flow alive with CRLF pings, RFC 5626 §4.4.1, or re-registers before then).
        self.idle_timeout = idle_timeout
        # Issue 7 item 10: caps on accepted connections (all, per source host) and the
        # time a message may stay incomplete on a stream.
        self.max_connections = max_connections
        self.max_per_source = max_per_source
        self.incomplete_timeout = incomplete_timeout
        self._inbound = 0
        self.busy = 0.0
        self._per_source: dict[str, int] = {}
        self._reaper: asyncio.TimerHandle | None = None
        self._udp: list[_UdpProtocol] = []
        self._udp_by_family: dict[bool, asyncio.DatagramTransport] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._conns: dict[TransportAddr, _StreamProtocol] = {}
        self._pending: dict[TransportAddr, list[tuple[bytes, str | None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._udp_out: list[tuple[asyncio.DatagramTransport, bytes, tuple[str, int]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.listeners: list[TransportAddr] = []
        # bumped whenever the listener list changes (lets callers cache what they derive)
        self.generation = 0
        # RFC 5626 flows: told when a TCP/TLS connection to/from a peer is gone, and when
        # a CRLF pong arrives on one (set by the element that cares: registrar, UA).
        self.on_connection_closed: Callable[[TransportAddr], None] | None = None
        self.on_pong: Callable[[TransportAddr], None] | None = None

    # ------------------------------------------------------------------ listening

    async def listen(self, spec: ListenSpec) -> TransportAddr:
        """Open one listener; returns its bound address (port 0 is resolved)."""
        loop = self._loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
        if spec.transport == "udp":
            local = TransportAddr("udp", normalize_host(spec.host), spec.port)
            proto = _UdpProtocol(self, local)
            transport, _ = await loop.create_datagram_endpoint(
                lambda: proto, local_addr=(spec.host, spec.port), family=family
            )
            sockname = transport.get_extra_info("sockname")
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Absorb bursts: a datagram dropped by a full buffer costs a retransmission
                # 500 ms later (RFC 3261 §17.1.2.2 timer E), i.e. more load, not less.
                for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, option, UDP_BUFFER_BYTES)
            proto.local = _peer("udp", tuple(sockname))
            self._udp.append(proto)
            # the first UDP listener of each address family sends our UDP messages
            self._udp_by_family.setdefault(":" in proto.local.host, transport)
            self.listeners.append(proto.local)
            self.generation += 1
            return proto.local
        if spec.transport in RELIABLE:
            ssl_ctx: ssl.SSLContext | None = None
            if spec.transport == "tls":
                if self._ssl_server is None:
                    raise OSError("tls listener without a server certificate")
                ssl_ctx = self._ssl_server
            name = spec.transport
            server = await loop.create_server(
                lambda: _StreamProtocol(self, name, None, inbound=True),
                host=spec.host,
                port=spec.port,
                family=family,
                ssl=ssl_ctx,
                reuse_address=True,
            )
            sockname = server.sockets[0].getsockname()
            local = _peer(name, tuple(sockname))
            self._servers.append(server)
            self.listeners.append(local)
            self.generation += 1
            return local
        raise OSError(f"unknown transport {spec.transport!r}")

    def local_for(self, transport: str, family_host: str) -> TransportAddr | None:
        """The listener to advertise (Via sent-by, Record-Route) for a destination."""
        v6 = ":" in family_host
        best: TransportAddr | None = None
        for local in self.listeners:
            if (":" in local.host) != v6:
                continue
            if local.transport == transport:
                return local
            if best is None:
                best = local
        return best or (self.listeners[0] if self.listeners else None)

    # ------------------------------------------------------------------ delivery

    def deliver(self, data: bytes, source: TransportAddr, local: TransportAddr) -> None:
        # The outermost boundary for received bytes: a bug while handling one message must
        # not kill the listener or the connection, so log it with its traceback and go on.
        start = perf_counter()
        try:
            self._on_message(data, source, local)
        except ProtocolError as exc:
            # Issue 7 item 3: a protocol error is one line, never a traceback per datagram.
            log.info("protocol error on a message from %s: %s", source, exc)
        except Exception:  # noqa: BLE001 - outermost receive boundary, see comment above
            log.exception("error while handling a message from %s", source)
        finally:
            # seconds spent handling received messages (the load monitor's utilisation)
            self.busy += perf_counter() - start

    def admit(self, peer: TransportAddr) -> bool:
        """Count an accepted connection; False (logged) when it is over a cap."""
        count = self._per_source.get(peer.host, 0)
        if self._inbound >= self.max_connections:
            log.warning("refusing a connection from %s: %d connections open (the limit)",
                        peer, self._inbound)
            return False
        if count >= self.max_per_source:
            log.warning("refusing a connection from %s: %d connections open from %s "
                        "(the per-source limit)", peer, count, peer.host)
            return False
        self._inbound += 1
        self._per_source[peer.host] = count + 1
        return True

    def release(self, peer: TransportAddr) -> None:
        self._inbound -= 1
        count = self._per_source.get(peer.host, 0) - 1
        if count > 0:
            self._per_source[peer.host] = count
        else:
            self._per_source.pop(peer.host, None)

    def register_connection(self, peer: TransportAddr, proto: _StreamProtocol) -> None:
        self._conns[peer] = proto
        if self._reaper is None:
            self._schedule_reaper()

    def _schedule_reaper(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        loop = asyncio.get_running_loop()
        self._reaper = loop.call_later(min(60.0, self.idle_timeout / 2), self._reap_idle)

    def _reap_idle(self) -> None:
        self._reaper = None
        limit = asyncio.get_running_loop().time() - self.idle_timeout
        for conn in list(self._conns.values()):
            if conn.last_activity < limit:
                log.info("closing idle connection %s", conn.peer)
                conn.close()
        if self._conns:
            self._schedule_reaper()

    def unregister_connection(self, peer: TransportAddr, proto: _StreamProtocol) -> None:
        if self._conns.get(peer) is proto:
            del self._conns[peer]
            callback = self.on_connection_closed
            if callback is not None:
                try:
                    callback(peer)
                except Exception:  # noqa: BLE001 - a callback bug must not break the close
                    log.exception("connection-closed handler failed for %s", peer)

    def pong_received(self, peer: TransportAddr) -> None:
        callback = self.on_pong
        if callback is not None:
            callback(peer)

    def has_connection(self, peer: TransportAddr) -> bool:
        conn = self._conns.get(peer)
        return conn is not None and not conn.closed

    def last_received(self, peer: TransportAddr) -> float | None:
        """Loop time when bytes last arrived on the open connection to ``peer``."""
        conn = self._conns.get(peer)
        return None if conn is None or conn.closed else conn.last_received

    def close_connection(self, peer: TransportAddr) -> bool:
        """Close the connection to ``peer`` (RFC 5626 §5.4: a flow found dead)."""
        conn = self._conns.get(peer)
        if conn is None:
            return False
        conn.close()
        return True

    # ------------------------------------------------------------------ sending

    def send(self, data: bytes, dest: TransportAddr, tag: str | None = None) -> None:
        """Send one message; a stream connection is opened on demand.

        ``tag`` (a transaction id) is reported back to ``on_error`` if the send fails.
        """
        if dest.transport == "udp":
            self._send_udp(data, dest, tag)
            return
        conn = self._conns.get(dest)
        if conn is not None and not conn.closed:
            conn.write(data)
            return
        pending = self._pending.get(dest)
        if pending is not None:
            pending.append((data, tag))
            return
        self._pending[dest] = [(data, tag)]
        task = asyncio.get_running_loop().create_task(self._connect(dest))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send_udp(self, data: bytes, dest: TransportAddr, tag: str | None) -> None:
        transport = self._udp_by_family.get(":" in dest.host)
        if transport is None:
            self._fail(dest, "no UDP listener for this address family", [tag] if tag else [])
            return
        # Datagrams are queued and sent once per event-loop iteration, after every datagram
        # read in that iteration was handled: the peers are woken once per batch instead of
        # once per message (on a loaded host each wake-up costs a context switch).
        queue = self._udp_out
        queue.append((transport, data, (dest.host, dest.port)))
        if len(queue) == 1:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self._flush_udp)

    def _flush_udp(self) -> None:
        """Send the queued UDP datagrams, in order."""
        queue, self._udp_out = self._udp_out, []
        for transport, data, addr in queue:
            if transport.is_closing():
                continue
            try:
                transport.sendto(data, addr)
            except Exception:  # noqa: BLE001 - one bad datagram must not drop the batch
                log.exception("cannot send a UDP datagram to %s", addr)

    async def _connect(self, dest: TransportAddr) -> None:
        loop = asyncio.get_running_loop()
        ssl_ctx: ssl.SSLContext | None = None
        if dest.transport == "tls":
            ssl_ctx = self._ssl_client or ssl.create_default_context()
        proto: _StreamProtocol | None = None

        def factory() -> _StreamProtocol:
            nonlocal proto
            proto = _StreamProtocol(self, dest.transport, None)
            return proto

        try:
            await asyncio.wait_for(
                loop.create_connection(
                    factory,
                    host=dest.host,
                    port=dest.port,
                    ssl=ssl_ctx,
                    server_hostname=dest.host if ssl_ctx is not None else None,
                ),
                self._connect_timeout,
            )
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            failed = self._pending.pop(dest, [])
            self._fail(dest, connect_error_text(exc), [tag for _, tag in failed if tag])
            return
        queued = self._pending.pop(dest, [])
        if proto is None:
            return
        # The peer's address as we dialled it is the key (its getpeername may differ in form).
        self._conns[dest] = proto
        for data, _ in queued:
            proto.write(data)

    def _fail(self, dest: TransportAddr, reason: str, tags: list[str]) -> None:
        log.info("transport error towards %s: %s", dest, reason)
        if self._on_error is not None:
            self._on_error(dest, reason, tags)

    # ------------------------------------------------------------------ shutdown

    async def close(self) -> None:
        # shutting down is not a flow failure: nobody is told about these closes
        self.on_connection_closed = None
        self.on_pong = None
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        if self._udp_out:
            self._flush_udp()  # what was sent before close() leaves first
        for proto in self._udp:
            if proto.transport is not None:
                proto.transport.close()
        self._udp.clear()
        self._udp_by_family.clear()
        for server in self._servers:
            server.close()
        for conn in list(self._conns.values()):
            conn.close()
        self._conns.clear()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        for task in list(self._tasks):
            task.cancel()
        self.listeners.clear()
        self.generation += 1


def connect_error_text(exc: BaseException) -> str:
    """A failed connect in words: ``connection refused``, ``connection timed out``,
    ``TLS handshake failed: ...``, else the OS error text."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot connect: {exc.strerror.lower()}"
    return f"cannot connect: {exc}"
