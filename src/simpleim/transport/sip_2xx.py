"""The UAS side of a 2xx to an INVITE over an unreliable transport (RFC 3261 §13.3.1.4):
resend it (T1, 2*T1 ... T2) until the ACK arrives, give up after 64*T1.  The decisions are
the sans-I/O :class:`~simpleim.sip.dialog_2xx.AckWait`; this is the asyncio loop around it,
shared by the client's and the server's user agents."""

from __future__ import annotations

import asyncio
import contextlib

from simpleim.sip.dialog_2xx import AckWait, AckWaitResult
from simpleim.sip.message import SipResponse
from simpleim.transport.sip import SipEndpoint
from simpleim.transport.sip_addr import TransportAddr

__all__ = ["resend_2xx"]


async def resend_2xx(endpoint: SipEndpoint, response: SipResponse, dest: TransportAddr,
                     acked: asyncio.Event) -> bool:
    """Resend ``response`` to ``dest`` until ``acked`` is set; False when no ACK came
    within 64*T1 (the caller then ends the dialog with BYE, §13.3.1.4)."""
    wait = AckWait(response, endpoint.now(), endpoint.layer.timers)
    while not wait.done:
        deadline = wait.next_deadline()
        if deadline is None:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - endpoint.now())):
                await acked.wait()
        if acked.is_set():
            wait.ack_received()
            return True
        result = wait.handle_timer(endpoint.now())
        if result is AckWaitResult.RETRANSMIT:
            endpoint.send_stateless(wait.response, dest)
        elif result is AckWaitResult.TIMEOUT:
            return False
    return True

