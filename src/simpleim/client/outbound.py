"""RFC 5626 outbound for the account's flow to its proxy (TCP/TLS only).

* REGISTER carries ``+sip.instance`` (a stable URN per device) and ``reg-id=1`` in Contact,
  ``;ob`` in the Contact URI and ``Supported: outbound`` (§4.2): the registrar binds the
  registration to this connection, drops it when the connection dies, and a re-registration
  over a new connection replaces it.
* Keep-alives (§4.4.1): a CRLFCRLF ping every 80-100 % of the registrar's Flow-Timer; no
  CRLF pong within 10 s, or the connection closing, means the flow failed.
* Recovery (§4.5): re-register at once over a new connection, then with backoff.

The timing decisions are the sans-I/O :class:`simpleim.sip.outbound.KeepAlive`; this module
only sleeps until its deadlines and does what it says.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable

from simpleim.errors import SimpleImError
from simpleim.sip.outbound import KaAction, KeepAlive, reconnect_delay
from simpleim.transport.sip import SipEndpoint
from simpleim.transport.sip_addr import RELIABLE, TransportAddr

__all__ = ["OutboundFlow", "new_instance_id", "outbound_contact_params"]

log = logging.getLogger("simpleim.client.outbound")


def new_instance_id() -> str:
    """A fresh ``urn:uuid:`` instance id (RFC 5626 §4.1)."""
    return f"urn:uuid:{uuid.uuid4()}"


def outbound_contact_params(instance_id: str, reg_id: int = 1) -> str:
    """``;+sip.instance="<urn:...>";reg-id=N`` for the REGISTER Contact (§4.2)."""
    return f';+sip.instance="<{instance_id}>";reg-id={reg_id}'


class OutboundFlow:
    """Keeps the flow to ``proxy`` alive and re-registers when it fails."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        proxy: TransportAddr,
        reregister: Callable[[], Awaitable[object]],
        *,
        rng: random.Random | None = None,
    ) -> None:
        if proxy.transport not in RELIABLE:
            raise ValueError("RFC 5626 CRLF keep-alives need a TCP/TLS flow")
        self._endpoint = endpoint
        self._proxy = proxy
        self._reregister = reregister
        self._rng = rng or random.Random()
        self._loop = asyncio.get_running_loop()
        self._ka = KeepAlive(self._loop.time(), self._rng.random())
        self._wake = asyncio.Event()
        self._failed = False
        self._task: asyncio.Task[None] | None = None
        self.failures = 0          # flows that failed so far (diagnostics, tests)
        self.pongs = 0             # CRLF pongs received (diagnostics, tests)

    def start(self) -> asyncio.Task[None]:
        net = self._endpoint.net
        net.on_pong = self._on_pong
        net.on_connection_closed = self._on_closed
        self._task = self._loop.create_task(self._run())
        return self._task

    def registered(self, flow_timer: int | None) -> None:
        """A 2xx to REGISTER came over the flow: (re)start the keep-alive schedule with its
        Flow-Timer (§4.4.1)."""
        self._ka.restart(self._loop.time(), self._rng.random(), flow_timer)
        self._wake.set()

    def stop(self) -> None:
        net = self._endpoint.net
        if net.on_pong == self._on_pong:
            net.on_pong = None
        if net.on_connection_closed == self._on_closed:
            net.on_connection_closed = None
        if self._task is not None:
            self._task.cancel()

    def _on_pong(self, peer: TransportAddr) -> None:
        if peer == self._proxy:
            self.pongs += 1
            self._ka.on_pong(self._loop.time(), self._rng.random())
            self._wake.set()

    def _on_closed(self, peer: TransportAddr) -> None:
        if peer == self._proxy:
            # §4.4.1: the connection closing is a flow failure as well
            self._failed = True
            self._wake.set()

    async def _run(self) -> None:
        while True:
            if self._failed:
                await self._recover()
                continue
            deadline = self._ka.deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._loop.time())
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            if self._failed:
                continue
            action = self._ka.on_deadline(self._loop.time(), self._rng.random())
            if action is KaAction.SEND_PING:
                if not self._endpoint.send_keepalive(self._proxy):
                    self._failed = True          # no connection any more
            elif action is KaAction.FLOW_FAILED:
                log.info("no CRLF pong from %s within 10 s: flow failed", self._proxy)
                self._endpoint.net.close_connection(self._proxy)
                self._failed = True

    async def _recover(self) -> None:
        """§4.5: form a new flow by registering again, with backoff between failures."""
        self.failures += 1
        attempts = 0
        while True:
            await asyncio.sleep(reconnect_delay(attempts, self._rng.random()))
            try:
                self._failed = False
                await self._reregister()
                return
            except (SimpleImError, OSError) as exc:
                attempts += 1
                log.info("re-registration over a new flow failed (%s); retrying", exc)
