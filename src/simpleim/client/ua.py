"""The client's SIP user agent plumbing over :class:`~simpleim.transport.sip.SipEndpoint`.

* out-of-dialog requests through the outbound proxy, with one digest retry (RFC 3261 §22.2);
* INVITE client side: provisional callback, CANCEL (§9.1), ACK for the 2xx (§13.2.2.4),
  dialog creation (§12.1.2);
* in-dialog requests (§12.2.1.1) and the UAS side of INVITE (§13.3.1.4: 2xx retransmission
  over UDP until the ACK arrives, with :class:`~simpleim.sip.AckWait`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from simpleim.errors import AuthError, LocalProtocolError
from simpleim.sip.auth import DigestClient
from simpleim.sip.dialog import Dialog
from simpleim.sip.headers import Address
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.sip.uri import SipUri
from simpleim.transport.sip import ClientRequest, IncomingRequest, SipEndpoint
from simpleim.transport.sip_2xx import resend_2xx
from simpleim.transport.sip_addr import ListenSpec, TransportAddr

from .features import USER_AGENT
from .trust import SourceTrust

__all__ = ["UserAgent", "InviteAttempt", "InviteResult", "ClientEndpoint", "with_user_agent"]

log = logging.getLogger("simpleim.client")


def with_user_agent(msg: SipRequest | SipResponse) -> SipRequest | SipResponse:
    """OMA SIMPLE IM §5.x (C-LM-06): every request and every response but 100 Trying that the
    IM client sends carries a User-Agent ``IM-client/OMA1.0 <product>``."""
    if isinstance(msg, SipResponse) and msg.status == 100:
        return msg
    if "user-agent" not in msg.headers:
        msg.headers.add("User-Agent", USER_AGENT)
    return msg


class ClientEndpoint(SipEndpoint):
    """The client's :class:`SipEndpoint`: adds the User-Agent (C-LM-06) to what it sends -
    responses through the server transactions, requests through the client transactions and
    the ACKs / 2xx retransmissions sent outside transactions.

    ``trust``: when given, requests from other sources than the proxy flow (or the configured
    trusted sources) are refused - dropped with a log line (issue 7 item 17)."""

    trust: SourceTrust | None = None

    async def listen(self, spec: ListenSpec) -> TransportAddr:
        if self.trust is not None:
            await self.trust.resolve()
        return await super().listen(spec)

    def _receive(self, data: bytes, source: TransportAddr, local: TransportAddr) -> None:
        trust = self.trust
        if (trust is not None and not data.startswith(b"SIP/") and data.strip(b"\r\n")
                and not trust.allows(source)):
            trust.refuse(source)
            return
        super()._receive(data, source, local)

    def _send_response(self, inc: IncomingRequest, response: SipResponse) -> bool:
        with_user_agent(response)
        if log.isEnabledFor(logging.INFO):
            # `simpleim -v`: one line per answer we give, the whole message with -vv
            log.info("<- %s from %s, answered %d %s", inc.request.method, inc.source,
                     response.status, response.reason)
            log.debug("sent to %s:\n%s", inc.source, _text(response))
        return super()._send_response(inc, response)

    def send_request(self, request: SipRequest, dest: TransportAddr,
                     on_response: Callable[[SipResponse], None], *,
                     add_via: bool = True) -> ClientRequest:
        with_user_agent(request)
        if log.isEnabledFor(logging.INFO):
            log.info("-> %s %s via %s", request.method, request.uri, dest)
            method = request.method
            inner = on_response

            def on_response(resp: SipResponse) -> None:
                log.info("<- %d %s for %s", resp.status, resp.reason, method)
                log.debug("received:\n%s", _text(resp))
                inner(resp)

        client = super().send_request(request, dest, on_response, add_via=add_via)
        log.debug("sent to %s:\n%s", dest, _text(request))
        return client

    def send_stateless(self, message: SipRequest | SipResponse, dest: TransportAddr) -> None:
        with_user_agent(message)
        super().send_stateless(message, dest)


def _text(msg: SipRequest | SipResponse) -> str:
    return msg.to_bytes().decode("utf-8", "replace")


class InviteResult:
    """Final outcome of an INVITE: the final response and, for a 2xx, the dialog."""

    def __init__(self, response: SipResponse, dialog: Dialog | None, request: SipRequest) -> None:
        self.response = response
        self.dialog = dialog
        self.request = request

    @property
    def status(self) -> int:
        return self.response.status


class InviteAttempt:
    """An INVITE in progress; :meth:`cancel` sends CANCEL (RFC 3261 §9.1)."""

    def __init__(self) -> None:
        self.client: ClientRequest | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.client is not None:
            self.client.cancel()


class UserAgent:
    """SIP plumbing of one account."""

    def __init__(self, endpoint: SipEndpoint, proxy: TransportAddr, auth: DigestClient,
                 *, username: str = "", password: str = "") -> None:
        self.endpoint = endpoint
        self.proxy = proxy
        self.auth = auth
        self._username = username or auth.username
        self._password = password
        self._tasks: set[asyncio.Task[None]] = set()

    def new_auth(self) -> DigestClient:
        """Adapter: one DigestClient per request.  A shared one takes the second of two
        concurrent challenges for a rejected password (its 'answered since accepted()'
        check) and gives up with the 407; per-request clients still answer each challenge
        only once (RFC 3261 §22.2)."""
        if not self._password:
            return self.auth
        return DigestClient(self._username, self._password)

    # ------------------------------------------------------------------ out of dialog
    async def request(self, req: SipRequest, dest: TransportAddr | None = None) -> SipResponse:
        """Send through the outbound proxy (or ``dest``) with one digest retry."""
        auth = self.new_auth()
        resp = await self.endpoint.request(req, dest or self.proxy, auth=auth)
        self._settle_auth(resp, auth)
        return resp

    def _settle_auth(self, resp: SipResponse, auth: DigestClient | None = None) -> None:
        # Adapter: SipEndpoint.request() calls DigestClient.accepted() only on a 2xx, so a
        # 404/480 after good credentials made the *next* challenge look like a rejected
        # password (AuthError -> 407 returned).  Any final answer that is not 401/407 means
        # the credentials passed (RFC 3261 §22.2).
        if resp.status not in (401, 407):
            (auth or self.auth).accepted()

    async def invite(
        self,
        req: SipRequest,
        *,
        dest: TransportAddr | None = None,
        attempt: InviteAttempt | None = None,
        on_provisional: Callable[[SipResponse], None] | None = None,
        local_contact: Address | None = None,
    ) -> InviteResult:
        """Send an INVITE; answer one 401/407; ACK a 2xx and return the dialog."""
        dest = dest or self.proxy
        attempt = attempt or InviteAttempt()
        auth = self.new_auth()
        resp = await self._invite_once(req, dest, attempt, on_provisional)
        if resp.status in (401, 407) and not attempt.cancelled:
            try:
                creds = auth.respond(
                    method="INVITE", uri=str(req.uri),
                    www_authenticate=resp.headers.get_all("WWW-Authenticate"),
                    proxy_authenticate=resp.headers.get_all("Proxy-Authenticate"),
                    body=req.body)
            except AuthError as exc:
                log.info("cannot answer the INVITE challenge: %s", exc.detail)
                return InviteResult(resp, None, req)
            retry = req.copy()
            # RFC 3261 §22.2 / §8.1.3.5: new transaction: new branch and CSeq + 1.
            retry.headers.remove("Via")
            cseq = retry.cseq
            retry.headers.set("CSeq", f"{cseq.seq + 1} INVITE")
            for name, value in creds:
                retry.headers.remove(name)
                retry.headers.add(name, value)
            req = retry
            resp = await self._invite_once(req, dest, attempt, on_provisional)
        self._settle_auth(resp, auth)
        if 200 <= resp.status < 300:
            dialog = Dialog.from_uac(req, resp, local_contact=local_contact)
            self.send_ack(dialog, req.cseq.seq, req)
            return InviteResult(resp, dialog, req)
        return InviteResult(resp, None, req)

    async def _invite_once(self, req: SipRequest, dest: TransportAddr, attempt: InviteAttempt,
                           on_provisional: Callable[[SipResponse], None] | None) -> SipResponse:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[SipResponse] = loop.create_future()

        def on_response(resp: SipResponse) -> None:
            if resp.status < 200:
                if on_provisional is not None:
                    on_provisional(resp)
                if attempt.cancelled and attempt.client is not None:
                    attempt.client.cancel()
            elif not done.done():
                done.set_result(resp)

        attempt.client = self.endpoint.send_request(req, dest, on_response)
        if attempt.cancelled:
            attempt.client.cancel()
        return await done

    def send_ack(self, dialog: Dialog, cseq: int, invite: SipRequest) -> None:
        """ACK for a 2xx, outside any transaction (RFC 3261 §13.2.2.4)."""
        dest = self.dialog_dest(dialog)
        via = self.endpoint.via_for(dest, self.endpoint.new_branch())
        headers: list[tuple[str, object]] = []
        for name in ("Authorization", "Proxy-Authorization"):
            # §13.2.2.4: the ACK carries the same credentials as the INVITE.
            for value in invite.headers.get_all(name):
                headers.append((name, value))
        ack = dialog.create_ack(cseq, via=via, headers=headers)
        self.endpoint.send_stateless(ack, dest)

    # ------------------------------------------------------------------ in dialog
    def dialog_dest(self, dialog: Dialog) -> TransportAddr:
        """Next hop of an in-dialog request: first Route, else the remote target (§12.2.1.1)."""
        target = dialog.route_set[0].uri if dialog.route_set else dialog.remote_target
        if not isinstance(target, SipUri):
            raise LocalProtocolError(f"cannot send to {target}")
        dest = self.endpoint.resolve(target)
        if target.transport is None and self.proxy.transport != "udp" \
                and self.endpoint.local_for(dest) is None:
            dest = TransportAddr(self.proxy.transport, dest.host, dest.port)
        return dest

    async def in_dialog(self, dialog: Dialog, method: str, *,
                        headers: Iterable[tuple[str, object]] = (), body: bytes = b"",
                        content_type: str | None = None) -> SipResponse:
        """Send ``method`` within ``dialog`` and wait for the final response (§12.2.1.1)."""
        hdrs = [("User-Agent", USER_AGENT), *headers]
        req = dialog.create_request(method, headers=hdrs, body=body, content_type=content_type)
        dest = self.dialog_dest(dialog)
        auth = self.new_auth()
        resp = await self.endpoint.request(req, dest, auth=auth)
        self._settle_auth(resp, auth)
        if method != "BYE":
            dialog.receive_response(req, resp)
        if method == "INVITE" and 200 <= resp.status < 300:
            self.send_ack(dialog, req.cseq.seq, req)
        return resp

    # ------------------------------------------------------------------ UAS
    def answer_2xx(self, inc: IncomingRequest, resp: SipResponse,
                   acked: asyncio.Event, on_timeout: Callable[[], None]) -> None:
        """Send a 2xx to an INVITE and, over UDP, retransmit it until the ACK (§13.3.1.4)."""
        inc.respond(resp)
        if inc.source.transport != "udp":
            return
        task = asyncio.get_running_loop().create_task(
            self._retransmit(inc, resp, acked, on_timeout))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _retransmit(self, inc: IncomingRequest, resp: SipResponse, acked: asyncio.Event,
                          on_timeout: Callable[[], None]) -> None:
        if not await resend_2xx(self.endpoint, resp, inc.source, acked):
            on_timeout()

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
