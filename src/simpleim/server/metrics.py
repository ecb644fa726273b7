"""Server metrics in Prometheus form (prometheus-client), on a per-server registry.

Nothing is global: :class:`ServerMetrics` registers its collectors in the
:class:`prometheus_client.CollectorRegistry` it is given (a fresh one per server by
default), so two servers in one process (tests) never share counters.  The metric names
are documented in docs/server.md "Metrics".

* ``simpleim_sip_transactions_total{method,status}`` — server transactions by final status
* ``simpleim_registered_bindings`` / ``simpleim_registered_aors`` — the location service now
* ``simpleim_sessions_active`` — INVITE sessions (2xx seen, no BYE yet, not expired)
* ``simpleim_msrp_bytes_total{direction}`` — MSRP bytes handled by server roles
* ``simpleim_store_seconds{operation}`` — store call latency (histogram)
* ``simpleim_flows_dropped_total`` — bindings dropped because their connection died
  (RFC 5626 §5.2 flow failure)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from simpleim.server.auth import UserDirectory
from simpleim.server.location import BindingStore
from simpleim.store.model import Binding

__all__ = ["ServerMetrics", "SessionTracker", "TimedStore", "MetricsStore"]

# Store calls are milliseconds on SQLite/PostgreSQL; the buckets span 0.1 ms .. 2.5 s.
_STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                  0.25, 0.5, 1.0, 2.5)


class SessionTracker:
    """Call-IDs of INVITE sessions relayed by the proxy: added on a 2xx to INVITE, removed
    on BYE, dropped at their deadline (a lost BYE must not count for ever).  Bounded."""

    __slots__ = ("_deadlines", "_limit")

    def __init__(self, limit: int = 100_000) -> None:
        self._deadlines: dict[str, float] = {}
        self._limit = limit

    def established(self, call_id: str, now: float, lifetime: float) -> None:
        if call_id not in self._deadlines and len(self._deadlines) >= self._limit:
            self.expire(now)
            if len(self._deadlines) >= self._limit:
                return
        self._deadlines[call_id] = now + lifetime

    def ended(self, call_id: str) -> None:
        self._deadlines.pop(call_id, None)

    def expire(self, now: float) -> None:
        for call_id in [c for c, d in self._deadlines.items() if d <= now]:
            del self._deadlines[call_id]

    def count(self, now: float) -> int:
        self.expire(now)
        return len(self._deadlines)


class ServerMetrics:
    """The collectors of one server, registered in ``registry``."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._clock = clock
        self.sessions = SessionTracker()
        r = self.registry
        self.transactions = Counter(
            "simpleim_sip_transactions", "SIP server transactions by method and final status",
            ["method", "status"], registry=r)
        self.bindings = Gauge(
            "simpleim_registered_bindings", "Contact bindings in the location service",
            registry=r)
        self.aors = Gauge(
            "simpleim_registered_aors", "Addresses of record with at least one binding",
            registry=r)
        self.sessions_active = Gauge(
            "simpleim_sessions_active",
            "INVITE sessions relayed by the proxy (2xx seen, no BYE yet, not expired)",
            registry=r)
        self.sessions_active.set_function(lambda: self.sessions.count(self._clock()))
        self.msrp_bytes = Counter(
            "simpleim_msrp_bytes", "MSRP bytes handled by the server's roles by direction",
            ["direction"], registry=r)
        self.store_seconds = Histogram(
            "simpleim_store_seconds", "Latency of store calls by operation",
            ["operation"], buckets=_STORE_BUCKETS, registry=r)
        self.flows_dropped = Counter(
            "simpleim_flows_dropped",
            "Bindings removed because their flow (TCP/TLS connection) died, RFC 5626 §5.2",
            registry=r)

    def watch_location(self, bindings: Callable[[], int], aors: Callable[[], int]) -> None:
        """Read the location service's sizes at each scrape."""
        self.bindings.set_function(lambda: float(bindings()))
        self.aors.set_function(lambda: float(aors()))

    def transaction(self, method: str, status: int) -> None:
        self.transactions.labels(method, str(status)).inc()

    def session_established(self, call_id: str, lifetime: float) -> None:
        self.sessions.established(call_id, self._clock(), lifetime)

    def session_ended(self, call_id: str) -> None:
        self.sessions.ended(call_id)

    def msrp(self, direction: str, size: int) -> None:
        """Count ``size`` MSRP bytes ``direction`` ("in" / "out") through a server role."""
        self.msrp_bytes.labels(direction).inc(size)

    def observe_store(self, operation: str, seconds: float) -> None:
        self.store_seconds.labels(operation).observe(seconds)


class MetricsStore(UserDirectory, BindingStore, Protocol):
    """What :class:`TimedStore` wraps: the server store's user and binding calls."""


class TimedStore:
    """A store whose calls are timed into ``simpleim_store_seconds``."""

    def __init__(self, inner: MetricsStore, metrics: ServerMetrics) -> None:
        self._inner = inner
        self._observe = metrics.observe_store

    async def get_ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        start = time.perf_counter()
        try:
            return await self._inner.get_ha1(username, realm, algorithm)
        finally:
            self._observe("get_ha1", time.perf_counter() - start)

    async def user_exists(self, username: str) -> bool:
        start = time.perf_counter()
        try:
            return await self._inner.user_exists(username)
        finally:
            self._observe("user_exists", time.perf_counter() - start)

    async def load_bindings(self) -> list[Binding]:
        start = time.perf_counter()
        try:
            return await self._inner.load_bindings()
        finally:
            self._observe("load_bindings", time.perf_counter() - start)

    async def replace_bindings(self, aor: str, bindings: list[Binding]) -> None:
        start = time.perf_counter()
        try:
            await self._inner.replace_bindings(aor, bindings)
        finally:
            self._observe("replace_bindings", time.perf_counter() - start)

    async def purge_expired(self, now: float) -> int:
        start = time.perf_counter()
        try:
            return await self._inner.purge_expired(now)
        finally:
            self._observe("purge_expired", time.perf_counter() - start)
