"""The operations HTTP endpoint: ``GET /healthz`` and Prometheus ``GET /metrics``.

Served by aiohttp on the server's own event loop (not prometheus-client's threaded
server): a ``/healthz`` answer therefore proves that the loop which handles SIP is
responsive, and the health check can ask the store.  Off unless ``--metrics HOST:PORT``.

``/healthz``: 200 ``{"status": "ok", ...}`` when the listeners are open and the store
answers within 2 s, else 503 with ``"status": "unavailable"`` and the reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from simpleim.errors import StorageError

__all__ = ["OpsHttpServer", "HealthCheck"]

log = logging.getLogger("simpleim.server.http")

# ``await check()`` -> None when healthy, else the reason it is not.
HealthCheck = Callable[[], Awaitable[str | None]]
_HEALTH_TIMEOUT = 2.0


class OpsHttpServer:
    """aiohttp application with /healthz and /metrics, bound to ``host:port``."""

    def __init__(self, registry: CollectorRegistry, health: HealthCheck) -> None:
        self._registry = registry
        self._health = health
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._app = app

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen; returns the bound (host, port) (port 0 picks a free one)."""
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        addr = runner.addresses[0]
        return str(addr[0]), int(addr[1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        try:
            reason = await asyncio.wait_for(self._health(), _HEALTH_TIMEOUT)
        except TimeoutError:
            reason = f"store did not answer within {_HEALTH_TIMEOUT:g} s"
        except StorageError as exc:
            reason = f"store failure: {exc}"
        if reason is None:
            body = {"status": "ok"}
            status = 200
        else:
            log.warning("health check failed: %s", reason)
            body = {"status": "unavailable", "reason": reason}
            status = 503
        return web.Response(status=status, text=json.dumps(body),
                            content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        payload = generate_latest(self._registry)
        # CONTENT_TYPE_LATEST carries its own charset parameter: set the raw header.
        return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})
