"""The request handles of :class:`~simpleim.transport.sip.SipEndpoint`.

:class:`IncomingRequest` is a request the endpoint received (answered through its server
transaction), :class:`ClientRequest` a client transaction the endpoint started.  Both reach
the endpoint only through :class:`EndpointSide`, the few endpoint operations they need.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Protocol

from simpleim.errors import ProtocolError
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.transport.sip_addr import TransportAddr

__all__ = [
    "ClientRequest",
    "EndpointSide",
    "IncomingRequest",
    "RequestHandler",
    "ResponseCallback",
]

log = logging.getLogger("simpleim.transport.sip")

ResponseCallback = Callable[[SipResponse], None]
# RFC 3261 §12.1 / RFC 6665 / RFC 3515: requests whose responses can create a dialog.
_DIALOG_METHODS = frozenset({"INVITE", "SUBSCRIBE", "REFER"})


class EndpointSide(Protocol):
    """What a request handle needs of its endpoint (implemented by SipEndpoint)."""

    on_final: Callable[[IncomingRequest, SipResponse], None] | None
    _server: dict[str, IncomingRequest]

    def _send_response(self, inc: IncomingRequest, response: SipResponse) -> bool: ...

    def _answered(self, inc: IncomingRequest) -> None: ...

    def _note_rejected_invite(self, inc: IncomingRequest) -> None: ...

    def _cancel(self, client: ClientRequest) -> None: ...


class IncomingRequest:
    """A request received by the endpoint (server transaction ``transaction_id``).

    ACKs for 2xx have no transaction (``transaction_id`` None) and cannot be answered.
    """

    __slots__ = (
        "endpoint", "request", "source", "local", "transaction_id", "final_sent",
        "on_cancel", "cancelled", "received_at",
    )

    def __init__(
        self,
        endpoint: EndpointSide,
        request: SipRequest,
        source: TransportAddr,
        local: TransportAddr,
        transaction_id: str | None,
    ) -> None:
        self.endpoint = endpoint
        self.request = request
        self.source = source
        self.local = local
        self.transaction_id = transaction_id
        self.final_sent = False
        self.cancelled = False
        self.received_at = time.monotonic()
        # Called when a CANCEL for this (INVITE) request arrives; the default answers 487.
        self.on_cancel: Callable[[IncomingRequest], None] | None = None

    @property
    def method(self) -> str:
        return self.request.method

    def respond(self, response: SipResponse) -> None:
        """Send ``response`` through the server transaction (no-op after a final one).

        A final response is marked sent only once the transaction took it (issue 7 item 3:
        a response that could not be built or sent left the request marked answered while
        its transaction waited for ever); when it cannot be sent, a bare 500 is tried.
        """
        if self.transaction_id is None or self.final_sent:
            return
        endpoint = self.endpoint
        if response.status < 200:
            endpoint._send_response(self, response)
            return
        if not endpoint._send_response(self, response):
            if response.status == 500:
                return  # the fallback itself failed: the sweeper ends the transaction
            try:
                fallback = self.request.create_response(500)
            except ProtocolError as exc:
                log.warning("cannot answer %s from %s: %s", self.request.method, self.source,
                            exc.detail)
                return
            self.respond(fallback)
            return
        self.final_sent = True
        endpoint._answered(self)
        # A CANCEL after the final response changes nothing (§9.2): drop the handler,
        # which usually refers back to this request (proxy context <-> request cycle).
        self.on_cancel = None
        if self.request.method != "INVITE":
            # RFC 3261 §17.2.2: the non-INVITE server transaction now only answers
            # retransmissions itself (Completed, Timer J); CANCEL and ACK concern INVITE
            # only (§9.2, §17.2.1): the endpoint needs this request no more.
            endpoint._server.pop(self.transaction_id, None)
        elif response.status >= 300:
            endpoint._note_rejected_invite(self)
        if endpoint.on_final is not None:
            endpoint.on_final(self, response)

    def respond_again(self, response: SipResponse) -> None:
        """Send a further 2xx after the final one (forked INVITE 2xx pass through the
        Accepted state, RFC 6026 §7.1)."""
        if self.transaction_id is not None:
            self.endpoint._send_response(self, response)

    def reply(
        self,
        status: int,
        reason: str | None = None,
        headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
        *,
        to_tag: str | None = None,
    ) -> SipResponse:
        """Build a response (RFC 3261 §8.2.6), add ``headers`` and send it.

        RFC 3261 §12.1.1: a dialog-creating response copies the Record-Route values.
        """
        copy_rr = 100 < status < 300 and self.request.method in _DIALOG_METHODS
        if to_tag is None and status > 100 and self.request.to_addr.tag is None:
            # RFC 3261 §8.2.6.2 (and §16.7 for a response a proxy makes itself): every
            # response but 100 to a request without a To tag gets one.
            to_tag = secrets.token_hex(6)
        resp = self.request.create_response(status, reason, to_tag=to_tag,
                                            copy_record_route=copy_rr)
        for name, value in headers:
            resp.headers.add(name, value)
        self.respond(resp)
        return resp


RequestHandler = Callable[[IncomingRequest], None]


class ClientRequest:
    """A client transaction started by :meth:`SipEndpoint.send_request`."""

    __slots__ = ("endpoint", "request", "dest", "transaction_id", "on_response", "final")

    def __init__(
        self,
        endpoint: EndpointSide,
        request: SipRequest,
        dest: TransportAddr,
        transaction_id: str,
        on_response: ResponseCallback,
    ) -> None:
        self.endpoint = endpoint
        self.request = request
        self.dest = dest
        self.transaction_id = transaction_id
        self.on_response = on_response
        self.final: SipResponse | None = None

    def cancel(self) -> None:
        """Send CANCEL (RFC 3261 §9.1; held back until a provisional response arrived)."""
        self.endpoint._cancel(self)
