"""The server's notifier (server/notifier.py, RFC 6665): one NOTIFY in flight per
subscription; changes made meanwhile are gathered into one partial NOTIFY naming all of them
(issue 10: "rate-limited NOTIFYs"; a burst of joins is not a NOTIFY per join per member)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from simpleim.server.notifier import Notifier
from simpleim.sip.message import SipRequest, SipResponse, parse_message
from simpleim.sip.subscription import Subscription
from simpleim.transport.sip_addr import TransportAddr
from waiting import wait_until

SUBSCRIBE = (
    b"SUBSCRIBE sip:conf~1@example.test SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bK-sub1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@example.test>;tag=a1\r\n"
    b"To: <sip:conf~1@example.test>\r\n"
    b"Call-ID: sub-1@127.0.0.1\r\n"
    b"CSeq: 1 SUBSCRIBE\r\n"
    b"Contact: <sip:alice@127.0.0.1:5099;transport=tcp>\r\n"
    b"Event: conference\r\n"
    b"Expires: 600\r\n"
    b"Content-Length: 0\r\n\r\n")
SOURCE = TransportAddr("tcp", "127.0.0.1", 5099)


class HeldEndpoint:
    """Sends nothing: records each NOTIFY and answers it 200 when the test says so."""

    def __init__(self) -> None:
        self.sent: list[SipRequest] = []
        self._answers: list[asyncio.Future[None]] = []

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def request(self, req: SipRequest, dest: TransportAddr) -> SipResponse:
        answer = asyncio.get_running_loop().create_future()
        self.sent.append(req)
        self._answers.append(answer)
        await answer
        return req.create_response(200)

    def answer_next(self) -> None:
        next(f for f in self._answers if not f.done()).set_result(None)


class FakeIncoming:
    def __init__(self, request: SipRequest) -> None:
        self.request = request
        self.source = SOURCE
        self.responses: list[SipResponse] = []

    def respond(self, resp: SipResponse) -> None:
        self.responses.append(resp)

    def reply(self, status: int, reason: str | None = None,
              headers: Sequence[tuple[str, str]] = (), **_: object) -> SipResponse:
        resp = self.request.create_response(status, reason)
        for name, value in headers:
            resp.headers.add(name, value)
        self.responses.append(resp)
        return resp


async def test_changes_during_a_notify_in_flight_go_in_one_partial_notify() -> None:
    endpoint = HeldEndpoint()
    notifier = Notifier(endpoint)  # type: ignore[arg-type]
    rendered: list[tuple[str, ...] | None] = []

    def render(sub: Subscription, keys: tuple[str, ...] | None) -> tuple[str, bytes]:
        rendered.append(keys)
        return "text/plain", f"v{sub.version} {keys}".encode()

    req = parse_message(SUBSCRIBE)
    assert isinstance(req, SipRequest)
    inc = FakeIncoming(req)
    resource = "sip:conf~1@example.test"
    watch = notifier.subscribe(inc, packages=("conference",), resource=resource,  # type: ignore[arg-type]
                               subscriber="sip:alice@example.test",
                               contact="<sip:conf~1@example.test>;isfocus", render=render)
    assert watch is not None and inc.responses[0].status == 200
    await wait_until(lambda: len(endpoint.sent) == 1, 5, what="the first NOTIFY")
    assert rendered == [None]                                   # full state first
    # three changes while the first NOTIFY waits for its 200: nothing more goes yet
    for key in ("sip:u1@example.test", "sip:u2@example.test", "sip:u3@example.test"):
        assert notifier.changed(resource, "conference", (key,)) == 1
    assert watch.queued == {"sip:u1@example.test", "sip:u2@example.test",
                            "sip:u3@example.test"}             # one NOTIFY gathers them
    assert len(endpoint.sent) == 1
    endpoint.answer_next()
    await wait_until(lambda: len(endpoint.sent) == 2, 5, what="the gathered NOTIFY")
    assert rendered[1] == ("sip:u1@example.test", "sip:u2@example.test",
                           "sip:u3@example.test")
    second = endpoint.sent[1]
    assert second.method == "NOTIFY" and second.headers.get("Event") == "conference"
    assert second.body.startswith(b"v2 ")                       # one version step (RFC 4575)
    # a change while nothing waits: its own NOTIFY, naming it alone
    endpoint.answer_next()
    await wait_until(lambda: watch.notified == 2, 5, what="second answered")
    notifier.changed(resource, "conference", ("sip:u4@example.test",))
    await wait_until(lambda: len(endpoint.sent) == 3, 5, what="the next NOTIFY")
    assert rendered[2] == ("sip:u4@example.test",) and endpoint.sent[2].body.startswith(b"v3 ")
    # a change the role does not name: the whole state
    endpoint.answer_next()
    notifier.changed(resource, "conference")
    await wait_until(lambda: len(endpoint.sent) == 4, 5, what="a full NOTIFY")
    assert rendered[3] is None
    endpoint.answer_next()
    await notifier.close()
