"""server/media pieces: the RFC 4028 negotiation (sans-I/O), the room (copy, recorder,
max-size, a slow leg dropped, a leaving leg ending the room), and the UA's 481 for a dialog
it does not know."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from client_helpers import DOMAIN, running_server
from simpleim.sdp import MsrpMedia
from simpleim.server.media import (
    CONTACT_USER,
    Leg,
    MediaError,
    MediaMessage,
    MessageRefused,
    Overflow,
    Room,
    SessionEnded,
)
from simpleim.server.media.api import SessionEvent
from simpleim.sip.message import SipRequest, SipResponse, parse_message
from simpleim.sip.session_timer import retry_interval, uac_headers, uas_decision
from waiting import wait_until


def _invite(*headers: tuple[str, str]) -> SipRequest:
    lines = ["INVITE sip:bob@example.test SIP/2.0",
             "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1",
             "From: <sip:alice@example.test>;tag=a", "To: <sip:bob@example.test>",
             "Call-ID: c1", "CSeq: 1 INVITE", "Contact: <sip:alice@127.0.0.1:5070>",
             *[f"{k}: {v}" for k, v in headers], "Content-Length: 0", "", ""]
    msg = parse_message("\r\n".join(lines).encode())
    assert isinstance(msg, SipRequest)
    return msg


# ------------------------------------------------------------------ RFC 4028 (sans-I/O)

def test_uas_decision_422_below_min_se() -> None:
    d = uas_decision(_invite(("Session-Expires", "60")), min_se=90, default=1800)
    assert d.reject_min_se == 90                       # RFC 4028 §9: 422 + Min-SE


def test_uas_decision_keeps_interval_and_refresher() -> None:
    d = uas_decision(_invite(("Supported", "timer"), ("Session-Expires", "300;refresher=uac")),
                     min_se=90, default=1800)
    assert (d.interval, d.refresher, d.require) == (300, "uac", True)
    assert d.headers() == [("Session-Expires", "300;refresher=uac"), ("Require", "timer")]
    # no refresher named: the UAC refreshes when it supports timer, else we do (§9)
    d = uas_decision(_invite(("Supported", "timer"), ("Session-Expires", "300")),
                     min_se=90, default=None)
    assert d.refresher == "uac"
    d = uas_decision(_invite(("Session-Expires", "300")), min_se=90, default=None)
    assert (d.refresher, d.require) == ("uas", False)


def test_uas_decision_without_session_expires() -> None:
    d = uas_decision(_invite(("Min-SE", "600")), min_se=90, default=300)
    assert (d.interval, d.refresher) == (600, "uas")  # not below the request's Min-SE
    assert uas_decision(_invite(), min_se=90, default=None).headers() == []


def test_uac_headers_and_422_retry() -> None:
    assert ("Session-Expires", "1800;refresher=uac") in uac_headers(1800, 90)
    resp = _invite().create_response(422)
    resp.headers.add("Min-SE", "2000")
    assert retry_interval(resp, 1800) == 2000
    assert retry_interval(_invite().create_response(480), 1800) is None


# ------------------------------------------------------------------ the room

class FakeSession:
    """A ServerSession whose peer sends what the test puts in ``inbox``."""

    def __init__(self, name: str, *, stuck: bool = False, takes_posts: bool = False) -> None:
        self.takes_posts = takes_posts   # post() writes at once (no back-pressure)
        self.posted = 0
        self.peer = f"sip:{name}@{DOMAIN}"
        self.call_id = name
        self.inbox: asyncio.Queue[SessionEvent] = asyncio.Queue()
        self.sent: list[MediaMessage] = []
        self.closed = asyncio.Event()
        self.end_reason: str | None = None
        self.stuck = asyncio.Event() if stuck else None
        self.byes: list[str] = []
        self.acks: list[tuple[bytes, int]] = []   # acknowledge() calls (held answers)
        self.holding = False

    @property
    def local_media(self) -> MsrpMedia:  # pragma: no cover - not used by the room
        raise NotImplementedError

    remote_media = local_media
    request = local_media
    response = local_media

    async def send(self, body: bytes, content_type: str, *,
                   headers: Sequence[tuple[str, str]] = (),
                   success_report: bool = False, confirmed: bool = True) -> None:
        if self.closed.is_set():
            raise MediaError(481, "ended")
        if self.stuck is not None:
            await self.stuck.wait()      # a peer that never reads
        self.sent.append(MediaMessage(content_type, body))

    def post(self, body: bytes, content_type: str,
             on_failure: Callable[[MediaError], None]) -> bool:
        if not self.takes_posts or self.closed.is_set():
            return False
        self.posted += 1
        self.sent.append(MediaMessage(content_type, body))
        return True

    async def events(self) -> AsyncIterator[SessionEvent]:
        while True:
            ev = await self.inbox.get()
            if isinstance(ev, SessionEnded):
                self.closed.set()          # as a real session: closed, then the event
            yield ev
            if isinstance(ev, SessionEnded):
                return

    def acknowledge(self, message: MediaMessage, status: int = 200) -> None:
        self.acks.append((message.body, status))

    def hold_acknowledgements(self) -> None:
        self.holding = True

    async def bye(self, reason: str = "") -> None:
        self.byes.append(reason)
        self.end_reason = reason
        self.closed.set()


class ListRecorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []

    def recording(self, room: Room) -> bool:
        return True

    async def record(self, sender: Leg, message: MediaMessage, to: Sequence[Leg]) -> None:
        self.seen.append((sender.name, message.body))
        assert sender not in to and to


async def test_room_copies_to_the_others_and_records() -> None:
    rec = ListRecorder()
    room = Room(recorder=rec, max_size=10)
    a, b, c = FakeSession("a"), FakeSession("b"), FakeSession("c")
    for s, name in ((a, "a"), (b, "b"), (c, "c")):
        room.add(s, name)  # type: ignore[arg-type]
    a.inbox.put_nowait(MediaMessage("text/plain", b"hello"))
    a.inbox.put_nowait(MediaMessage("text/plain", b"far too large"))   # above max_size
    a.inbox.put_nowait(MediaMessage("text/plain", b"bye"))
    await wait_until(lambda: len(b.sent) == 2 and len(c.sent) == 2, 5, what="copies")
    assert [m.body for m in b.sent] == [b"hello", b"bye"] and not a.sent
    assert rec.seen == [("a", b"hello"), ("a", b"bye")]
    # a leaves: two remain, the room goes on; then b leaves: c alone -> the room ends (BYE)
    a.inbox.put_nowait(SessionEnded("BYE from peer", True))
    await wait_until(lambda: len(room.legs) == 2, 5, what="a removed")
    assert not room.ended.is_set()
    b.inbox.put_nowait(SessionEnded("BYE from peer", True))
    await asyncio.wait_for(room.wait(), 5)
    assert c.byes and "b left" in c.byes[0]


async def test_room_drops_a_slow_leg_without_stalling_the_others() -> None:
    room = Room(queue_limit=2, overflow=Overflow.DROP, min_legs=2)
    a, slow, c = FakeSession("a"), FakeSession("slow", stuck=True), FakeSession("c")
    for s, name in ((a, "a"), (slow, "slow"), (c, "c")):
        room.add(s, name)  # type: ignore[arg-type]
    for i in range(6):
        a.inbox.put_nowait(MediaMessage("text/plain", b"m%d" % i))
    await wait_until(lambda: len(c.sent) == 6, 5, what="c got everything")
    await wait_until(lambda: slow.byes, 5, what="the slow leg dropped")
    assert "too slow" in slow.byes[0]
    assert [leg.name for leg in room.legs] == ["a", "c"]


async def test_room_holding_acks_answers_after_the_policy() -> None:
    """``hold_acks``: every leg's acknowledgements are held; a routed message is answered
    200 after routing, one the policy refuses gets its status and goes nowhere."""

    class RefuseSecrets:
        def route(self, room: Room, sender: Leg, message: MediaMessage
                  ) -> list[tuple[Leg, MediaMessage]]:
            if message.body.startswith(b"secret"):
                raise MessageRefused("no secrets here", status=403)
            return [(leg, message) for leg in room.legs if leg is not sender]

    room = Room(queue_limit=4, overflow=Overflow.DROP, min_legs=2, hold_acks=True,
                policy=RefuseSecrets())
    a, b = FakeSession("a"), FakeSession("b")
    room.add(a, "a")  # type: ignore[arg-type]
    room.add(b, "b")  # type: ignore[arg-type]
    assert a.holding and b.holding
    for body in (b"hello", b"secret plan", b"bye"):
        a.inbox.put_nowait(MediaMessage("text/plain", body))
    await wait_until(lambda: len(a.acks) == 3, 5, what="three answers")
    assert a.acks == [(b"hello", 200), (b"secret plan", 403), (b"bye", 200)]
    await wait_until(lambda: len(b.sent) == 2, 5, what="two copies")
    assert [m.body for m in b.sent] == [b"hello", b"bye"]


async def test_room_wait_mode_holds_the_sender() -> None:
    room = Room(queue_limit=1, overflow=Overflow.WAIT)
    a, b = FakeSession("a"), FakeSession("b", stuck=True)
    room.add(a, "a")  # type: ignore[arg-type]
    room.add(b, "b")  # type: ignore[arg-type]
    for i in range(4):
        a.inbox.put_nowait(MediaMessage("text/plain", b"m%d" % i))
    # the sender's reader waits (one in flight, one queued): nothing dropped, nothing lost
    await wait_until(lambda: a.inbox.qsize() == 1, 5, what="the reader held back")
    assert not b.byes
    assert b.stuck is not None
    b.stuck.set()
    await wait_until(lambda: len(b.sent) == 4, 5, what="all four delivered")


# ------------------------------------------------------------------ 481

async def test_unknown_dialog_at_the_ua_contact_gets_481(tmp_path: Path) -> None:
    async with running_server(tmp_path) as (_server, port):
        loop = asyncio.get_running_loop()
        got: asyncio.Future[SipResponse] = loop.create_future()

        class Peer(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                msg = parse_message(data)
                if isinstance(msg, SipResponse) and not got.done():
                    got.set_result(msg)

        transport, _ = await loop.create_datagram_endpoint(
            Peer, local_addr=("127.0.0.1", 0))
        try:
            me = transport.get_extra_info("sockname")[1]
            bye = (f"BYE sip:{CONTACT_USER}@127.0.0.1:{port};transport=udp SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKbye1;rport\r\n"
                   f"From: <sip:alice@{DOMAIN}>;tag=x1\r\nTo: <sip:bob@{DOMAIN}>;tag=y1\r\n"
                   "Call-ID: nosuchdialog\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\n"
                   "Content-Length: 0\r\n\r\n")
            transport.sendto(bye.encode(), ("127.0.0.1", port))
            resp = await asyncio.wait_for(got, 5)
        finally:
            transport.close()
        assert resp.status == 481                  # RFC 3261 §12.2.2


@pytest.mark.parametrize("value", ["auto", "127.0.0.1:0"])
def test_msrp_listen_config(value: str) -> None:
    from simpleim.errors import ConfigError
    from simpleim.server.config import ServerConfig
    from simpleim.transport.sip_addr import ListenSpec

    cfg = ServerConfig(listen=(ListenSpec("tcp", "127.0.0.1", 5070),), msrp_listen=value)
    addr = cfg.msrp_address()
    assert addr is not None
    if value != "auto":
        assert addr == ("127.0.0.1", 0, False, "127.0.0.1")
    else:
        assert addr == ("127.0.0.1", 5071, True, "127.0.0.1")   # the adjacent port
    assert ServerConfig(msrp_listen="off").msrp_address() is None
    with pytest.raises(ConfigError):
        ServerConfig(msrp_listen="off", pf_media="b2bua").validate()
    with pytest.raises(ConfigError):
        ServerConfig(pf_media="relay").validate()


def test_msrp_endpoint_runs_on_uvloop() -> None:
    """The server runs on uvloop when it is installed, whose TCP transport is not an
    asyncio.Transport subclass: the MSRP endpoint must accept and carry a message there."""
    import uvloop

    from simpleim.msrp import MemorySink
    from simpleim.transport.msrp import MsrpEndpoint

    async def exchange() -> bytes:
        a, b = MsrpEndpoint(), MsrpEndpoint()
        await a.start()
        await b.start()
        try:
            sa, sb = a.new_session(), b.new_session()
            sa.set_remote_path(sb.local_path)
            sb.set_remote_path(sa.local_path)
            await a.connect(sa)                  # active side; b accepts the connection
            await sa.send(b"over uvloop", "text/plain")
            msg = await sb.receive(5)
            assert isinstance(msg.sink, MemorySink)
            return bytes(msg.sink.buffer)
        finally:
            await a.close()
            await b.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(exchange()) == b"over uvloop"


class FakeStream:
    def __init__(self) -> None:
        self.holds = 0
        self.aborted: list[str] = []
        self.woken = 0

    def hold_reading(self) -> bool:
        self.holds += 1
        return True

    def release_reading(self) -> None:
        self.holds -= 1

    def wake(self) -> None:
        self.woken += 1

    def abort(self, message_id: str) -> None:
        self.aborted.append(message_id)


async def test_switch_sink_order_backpressure_and_abort() -> None:
    from simpleim.msrp import OutgoingMessage, PipeSource
    from simpleim.server.media.switch import Outlet, SwitchSink

    src, dst = FakeStream(), FakeStream()
    pipe = PipeSource()
    out = OutgoingMessage("m1", "application/octet-stream", pipe, 100)
    sink = SwitchSink(src, 0, high=10)  # type: ignore[arg-type]
    sink.add([Outlet(dst, pipe, out)])  # type: ignore[arg-type]
    sink.write_at(5, b"fghij")          # early: kept until bytes 0-4 arrive
    assert pipe.available == 0
    sink.write_at(0, b"abcde")
    assert pipe.read(100) == b"abcdefghij"
    sink.write_at(8, b"ijKLMNOPQRSTU")  # overlaps what passed: only the new part
    assert pipe.available == 11 and src.holds == 1      # above high: the sender is held
    assert pipe.read(9) == b"KLMNOPQRS"                  # down to high/4: released
    assert src.holds == 0
    sink.abort()
    assert dst.aborted == ["m1"]
    await wait_until(lambda: dst.woken >= 2, 5, what="the deferred wake-ups")


async def test_room_posts_at_once_and_keeps_the_order_when_a_leg_pushes_back() -> None:
    """A copy goes straight to the stream (no task switch) while the leg takes it at once;
    when it pushes back, copies wait in the leg's queue, and a later copy queues behind
    them even once the leg would take it again - the leg receives every message in order."""
    room = Room()
    a, b = FakeSession("a"), FakeSession("b", stuck=True, takes_posts=True)
    room.add(a, "a")  # type: ignore[arg-type]
    room.add(b, "b")  # type: ignore[arg-type]
    for i in range(3):
        a.inbox.put_nowait(MediaMessage("text/plain", b"m%d" % i))
    await wait_until(lambda: len(b.sent) == 3, 5, what="three posted")
    assert b.posted == 3                              # no queue, no writer task involved
    b.takes_posts = False                             # b pushes back: m3 and m4 queue
    a.inbox.put_nowait(MediaMessage("text/plain", b"m3"))
    a.inbox.put_nowait(MediaMessage("text/plain", b"m4"))
    leg_b = next(leg for leg in room.legs if leg.name == "b")
    await wait_until(lambda: leg_b.queue.qsize() == 1, 5, what="m3 taken by the writer, m4 queued")
    b.takes_posts = True                              # b would take m5 at once, but m4 waits
    a.inbox.put_nowait(MediaMessage("text/plain", b"m5"))
    await wait_until(lambda: leg_b.queue.qsize() == 2, 5, what="m5 queued behind m4")
    assert b.stuck is not None
    b.stuck.set()
    await wait_until(lambda: len(b.sent) == 6, 5, what="all six")
    assert [m.body for m in b.sent] == [b"m%d" % i for i in range(6)]
    assert b.posted == 3 and leg_b.sent == 6
    room.end("done")
