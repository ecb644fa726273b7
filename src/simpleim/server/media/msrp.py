"""The server's MSRP listener: one :class:`~simpleim.transport.msrp.MsrpEndpoint` shared by
every session the server is an endpoint of, each leg with its own MSRP URI (RFC 4975 §6:
the session-id in the path identifies the session).

The listener is passive by preference (RFC 6135: the server answers ``actpass`` offers with
``passive`` and offers ``actpass``), so clients connect to it; it connects out only when a
peer insists on ``passive``.  What a peer may make it hold in memory is bounded by
:class:`~simpleim.msrp.ReceiveLimits` (issue 7 item 4) and ``a=max-size`` (413).
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass

from simpleim.msrp import ReceiveLimits
from simpleim.sdp import LocalEndpoint
from simpleim.transport.msrp import EndpointSession, MsrpEndpoint
from simpleim.transport.msrp_sdp import local_endpoint

__all__ = ["MsrpListenConfig", "ServerMsrp"]

log = logging.getLogger("simpleim.server.media")


@dataclass(frozen=True, slots=True)
class MsrpListenConfig:
    """``host``/``port`` to listen on (``port`` 0: ephemeral; ``fallback_ephemeral``: when
    ``port`` is taken, listen on an ephemeral port instead of failing - the default
    "adjacent port" choice); ``advertise``: the address put in ``a=path`` / ``c=`` (None:
    ``host``); the per-message and per-session memory bounds and the session queue."""

    host: str = "127.0.0.1"
    port: int = 0
    fallback_ephemeral: bool = False
    advertise: str | None = None
    max_message: int = 16 * 1024 * 1024
    max_session_memory: int = 64 * 1024 * 1024
    chunk_size: int = 64 * 1024
    queue_size: int = 64


class ServerMsrp:
    """The MSRP endpoint of the server's user agent."""

    def __init__(self, config: MsrpListenConfig) -> None:
        self.config = config
        self.endpoint = MsrpEndpoint(config.host, config.port, advertise_host=config.advertise,
                                     queue_size=config.queue_size)

    @property
    def port(self) -> int:
        return self.endpoint.port

    @property
    def address(self) -> str:
        """``host:port`` of the listener (after :meth:`start`)."""
        host = self.endpoint.advertise_host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    async def start(self) -> None:
        try:
            await self.endpoint.start()
        except OSError as exc:
            if not (self.config.fallback_ephemeral and exc.errno == errno.EADDRINUSE):
                raise
            log.info("MSRP port %d is taken: listening on an ephemeral port",
                     self.config.port)
            self.endpoint.port = 0
            await self.endpoint.start()
        log.info("MSRP listener on %s", self.address)

    def new_leg(self, *, max_size: int | None = None) -> tuple[LocalEndpoint, EndpointSession]:
        """A new MSRP session (its own URI) and the SDP endpoint describing it."""
        cfg = self.config
        limits = ReceiveLimits(max_memory_message=min(cfg.max_message, max_size)
                               if max_size is not None else cfg.max_message,
                               max_memory=cfg.max_session_memory)
        stream = self.endpoint.new_session(chunk_size=cfg.chunk_size, receive_limits=limits,
                                           max_size=max_size)
        return local_endpoint(self.endpoint, stream), stream

    async def close(self) -> None:
        await self.endpoint.close()
