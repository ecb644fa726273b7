"""Two transaction layers talking in memory (bytes only, hand-driven time): INVITE/ACK/BYE,
MESSAGE and CANCEL over a lossy "UDP" and over "TCP"."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from simpleim.errors import LocalProtocolError
from simpleim.sip.dialog import Dialog, DialogSet, DialogState, DialogTable
from simpleim.sip.dialog_2xx import AckWait, AckWaitResult
from simpleim.sip.message import SipRequest, SipResponse, parse_message
from simpleim.sip.transaction import TxState
from simpleim.sip.transaction_build import cancel_request
from simpleim.sip.transaction_layer import (
    AckReceived,
    CancelReceived,
    Event,
    Outgoing,
    RequestReceived,
    ResponseReceived,
    TransactionLayer,
    TransactionTerminated,
)

A = ("192.0.2.1", 5060)  # UAC
B = ("192.0.2.2", 5060)  # UAS


def initial(method: str, proto: str, cseq: int = 1) -> SipRequest:
    text = (
        f"{method} sip:bob@192.0.2.2 SIP/2.0\r\n"
        f"Via: SIP/2.0/{proto} 192.0.2.1:5060\r\n"
        "Max-Forwards: 70\r\n"
        "From: Alice <sip:alice@example.com>;tag=a1\r\n"
        "To: Bob <sip:bob@example.com>\r\n"
        "Call-ID: e2e-1@192.0.2.1\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:alice@192.0.2.1:5060>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, SipRequest)
    return msg


@dataclass
class Net:
    """A link between a UAC layer at A and a UAS layer at B."""

    reliable: bool
    drop: Callable[[int, Outgoing], bool] = lambda i, out: False
    now: float = 0.0
    a: TransactionLayer = field(default_factory=lambda: TransactionLayer(rng=random.Random(1)))
    b: TransactionLayer = field(default_factory=lambda: TransactionLayer(rng=random.Random(2)))
    sent: list[tuple[str, str]] = field(default_factory=list)  # (direction, first line)
    a_events: list[Event] = field(default_factory=list)
    b_events: list[Event] = field(default_factory=list)
    on_a: Callable[[Net, Event], None] = lambda net, ev: None
    on_b: Callable[[Net, Event], None] = lambda net, ev: None
    # Extra TU timers: each returns its next deadline; on_time runs at every time step.
    clocks: list[Callable[[], float | None]] = field(default_factory=list)
    on_time: Callable[[Net], None] = lambda net: None

    def _move(self, src: TransactionLayer, dst: TransactionLayer, direction: str) -> bool:
        outs = src.datagrams_to_send()
        for out in outs:
            index = len(self.sent)
            self.sent.append((direction, out.data.split(b"\r\n", 1)[0].decode()))
            if self.drop(index, out):
                continue
            msg = parse_message(out.data)
            source = A if direction == "a->b" else B
            events = dst.receive(msg, source, self.now, self.reliable)
            self._dispatch(dst, events)
        return bool(outs)

    def _dispatch(self, layer: TransactionLayer, events: list[Event]) -> None:
        for ev in events:
            if layer is self.a:
                self.a_events.append(ev)
                self.on_a(self, ev)
            else:
                self.b_events.append(ev)
                self.on_b(self, ev)

    def run(self, until: float = 120.0) -> None:
        while True:
            while self._move(self.a, self.b, "a->b") | self._move(self.b, self.a, "b->a"):
                pass
            candidates = [self.a.next_deadline(), self.b.next_deadline()]
            candidates += [clock() for clock in self.clocks]
            deadlines = [d for d in candidates if d is not None]
            if not deadlines or min(deadlines) > until:
                return
            self.now = max(self.now, min(deadlines))
            self._dispatch(self.a, self.a.handle_timer(self.now))
            self._dispatch(self.b, self.b.handle_timer(self.now))
            self.on_time(self)

    def lines(self, direction: str) -> list[str]:
        return [line for d, line in self.sent if d == direction]


# -- a tiny UA core on both sides ------------------------------------------------------------


@dataclass
class Uas:
    proto: str
    dialogs: DialogTable = field(default_factory=DialogTable)
    ringing_only: bool = False
    pending: dict[str, SipRequest] = field(default_factory=dict)
    acks: int = 0
    waits: list[tuple[str, AckWait]] = field(default_factory=list)

    def next_deadline(self) -> float | None:
        return min((d for _, w in self.waits if (d := w.next_deadline()) is not None),
                   default=None)

    def tick(self, net: Net) -> None:
        # RFC 3261 §13.3.1.4 / RFC 6026: the UAS core retransmits its 2xx until the ACK.
        for tx_id, wait in self.waits:
            if wait.handle_timer(net.now) is AckWaitResult.RETRANSMIT:
                net.b.send_response(wait.response, net.now, tx_id)

    def __call__(self, net: Net, ev: Event) -> None:
        layer = net.b
        if isinstance(ev, RequestReceived):
            req = ev.request
            dialog = self.dialogs.match_request(req)
            if req.method == "INVITE" and dialog is None:
                ring = req.create_response(180, to_tag="b1")
                ring.headers.add("Contact", "<sip:bob@192.0.2.2:5060>")
                layer.send_response(ring, net.now)
                self.pending[ev.transaction_id] = req
                if self.ringing_only:
                    return
                ok = req.create_response(200, to_tag="b1")
                ok.headers.add("Contact", "<sip:bob@192.0.2.2:5060>")
                self.dialogs.add(Dialog.from_uas(req, ok))
                layer.send_response(ok, net.now)
                self.waits.append((ev.transaction_id, AckWait(ok, net.now)))
            else:
                layer.send_response(req.create_response(200, to_tag="b1"), net.now)
        elif isinstance(ev, CancelReceived):
            layer.send_response(ev.request.create_response(200, to_tag="b1"), net.now)
            if ev.invite_pending and ev.invite_transaction_id is not None:
                invite = self.pending[ev.invite_transaction_id]
                layer.send_response(invite.create_response(487, to_tag="b1"), net.now)
        elif isinstance(ev, AckReceived):
            self.acks += 1
            for _, wait in self.waits:
                if wait.matches(ev.request):
                    wait.ack_received()
            self.dialogs.match_request(ev.request)


@dataclass
class Uac:
    proto: str
    dset: DialogSet | None = None
    invite_cseq: int = 1
    bye_sent: bool = False
    finals: list[int] = field(default_factory=list)

    def __call__(self, net: Net, ev: Event) -> None:
        if not isinstance(ev, ResponseReceived):
            return
        resp = ev.response
        if resp.cseq.method == "INVITE" and self.dset is not None:
            dialog = self.dset.receive_response(resp)
            if resp.status >= 200:
                self.finals.append(resp.status)
            if dialog is not None and 200 <= resp.status < 300:
                # §13.2.2.4: the UA core ACKs every 2xx (retransmissions included).
                via = f"SIP/2.0/{self.proto} 192.0.2.1:5060;branch={net.a.new_branch()}"
                ack = dialog.create_ack(self.invite_cseq, via=via)
                net.a.send_stateless(ack, B, net.reliable)
                if not self.bye_sent:
                    self.bye_sent = True
                    bye = dialog.create_request("BYE", via=f"SIP/2.0/{self.proto} 192.0.2.1:5060")
                    net.a.send_request(bye, B, net.now, net.reliable)
        elif resp.status >= 200:
            self.finals.append(resp.status)


def call(
    reliable: bool, drop: Callable[[int, Outgoing], bool] | None = None
) -> tuple[Net, Uac, Uas]:
    proto = "TCP" if reliable else "UDP"
    uac, uas = Uac(proto), Uas(proto)
    net = Net(reliable=reliable, on_a=uac, on_b=uas, clocks=[uas.next_deadline],
              on_time=uas.tick)
    if drop is not None:
        net.drop = drop
    invite = initial("INVITE", proto)
    uac.dset = DialogSet(invite)
    net.a.send_request(invite, B, 0.0, reliable)
    net.run()
    return net, uac, uas


def test_invite_ack_bye_over_lossy_udp() -> None:
    net, uac, uas = call(reliable=False, drop=lambda i, out: i < 2)
    # The INVITE was lost twice: sent at 0, 0.5 (timer A = T1) and 1.5 (2*T1).
    assert net.lines("a->b")[:3] == ["INVITE sip:bob@192.0.2.2 SIP/2.0"] * 3
    assert [line.split()[1] for line in net.lines("b->a")[:2]] == ["180", "200"]
    assert "ACK sip:bob@192.0.2.2:5060 SIP/2.0" in net.lines("a->b")
    assert "BYE sip:bob@192.0.2.2:5060 SIP/2.0" in net.lines("a->b")
    assert uas.acks == 1 and uac.finals == [200, 200]  # INVITE 200 and BYE 200
    assert uac.dset is not None
    (dialog,) = list(uac.dset)
    assert dialog.state is DialogState.TERMINATED  # BYE sent (§15.1.1)
    (uas_dialog,) = list(uas.dialogs)
    assert uas_dialog.state is DialogState.TERMINATED  # BYE received (§15.1.2)
    assert uas_dialog.remote_seq == 2
    # Every transaction ended (timers M, K / L, J ran) and nothing is left scheduled.
    assert len(net.a) == 0 and len(net.b) == 0
    assert net.a.next_deadline() is None and net.b.next_deadline() is None
    assert sum(isinstance(e, TransactionTerminated) for e in net.a_events) == 2
    assert sum(isinstance(e, TransactionTerminated) for e in net.b_events) == 2


def test_invite_ack_bye_over_tcp_no_retransmission() -> None:
    net, uac, uas = call(reliable=True)
    assert net.lines("a->b") == [
        "INVITE sip:bob@192.0.2.2 SIP/2.0",
        "ACK sip:bob@192.0.2.2:5060 SIP/2.0",
        "BYE sip:bob@192.0.2.2:5060 SIP/2.0",
    ]
    assert [line.split()[1] for line in net.lines("b->a")] == ["180", "200", "200"]
    assert uas.acks == 1
    assert len(net.a) == 0 and len(net.b) == 0


def test_message_over_udp_request_lost_three_times() -> None:
    net = Net(reliable=False, drop=lambda i, out: i < 3)
    uas = Uas("UDP")
    net.on_b = uas
    net.a.send_request(initial("MESSAGE", "UDP"), B, 0.0)
    got: list[float] = []
    net.on_a = lambda n, ev: got.append(n.now) if isinstance(ev, ResponseReceived) else None
    net.run()
    # Sent at 0, 0.5, 1.5 (lost) and 3.5 (E = MIN(2E, T2)): answered at 3.5.
    assert got == [3.5]
    assert net.lines("a->b") == ["MESSAGE sip:bob@192.0.2.2 SIP/2.0"] * 4
    assert len(net.a) == 0 and len(net.b) == 0


def test_message_over_udp_response_lost_is_retransmitted_from_completed() -> None:
    # Datagram 1 is the 200 (datagram 0 the MESSAGE): the UAC retransmits the MESSAGE at
    # 0.5 and the UAS server transaction (Completed) answers it with the same 200.
    net = Net(reliable=False, drop=lambda i, out: i == 1)
    net.on_b = Uas("UDP")
    got: list[tuple[float, int]] = []

    def on_a(n: Net, ev: Event) -> None:
        if isinstance(ev, ResponseReceived):
            got.append((n.now, ev.response.status))

    net.on_a = on_a
    net.a.send_request(initial("MESSAGE", "UDP"), B, 0.0)
    net.run()
    assert got == [(0.5, 200)]
    assert net.lines("b->a") == ["SIP/2.0 200 OK", "SIP/2.0 200 OK"]
    assert sum(isinstance(e, RequestReceived) for e in net.b_events) == 1  # absorbed


def test_cancel_end_to_end() -> None:
    uac, uas = Uac("UDP"), Uas("UDP", ringing_only=True)
    net = Net(reliable=False, on_a=uac, on_b=uas)
    invite = initial("INVITE", "UDP")
    uac.dset = DialogSet(invite)
    tx = net.a.send_request(invite, B, 0.0)
    net.run(until=0.1)  # INVITE -> 180 (early dialog)
    assert uac.dset is not None and len(uac.dset) == 1
    cancel_id = net.a.cancel(tx.id, net.now)
    assert cancel_id is not None
    net.run()
    assert "CANCEL sip:bob@192.0.2.2 SIP/2.0" in net.lines("a->b")
    assert [line.split()[1] for line in net.lines("b->a")] == ["180", "200", "487"]
    # The UAC's INVITE transaction ACKed the 487 itself; the UAS absorbed it.
    assert "ACK sip:bob@192.0.2.2 SIP/2.0" in net.lines("a->b")
    assert uas.acks == 0
    assert uac.finals == [200, 487]
    assert all(d.state is DialogState.TERMINATED for d in uac.dset)
    assert len(net.a) == 0 and len(net.b) == 0


def test_cancel_request_builder_matches_rfc_9_1() -> None:
    invite = initial("INVITE", "UDP")
    invite.headers.set("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-c")
    invite.headers.add("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-lower")
    invite.headers.add("Route", "<sip:proxy.example.com;lr>")
    cancel = cancel_request(invite)
    assert cancel.method == "CANCEL" and cancel.uri == invite.uri
    assert [v.branch for v in cancel.via] == ["z9hG4bK-c"]
    assert cancel.headers.get("To") == invite.headers.get("To")
    assert cancel.headers.get("From") == invite.headers.get("From")
    assert (cancel.cseq.seq, cancel.cseq.method) == (1, "CANCEL")
    assert cancel.headers.get_all("Route") == ["<sip:proxy.example.com;lr>"]


@pytest.mark.parametrize("reliable", [False, True])
def test_uas_invite_transaction_states_after_call(reliable: bool) -> None:
    net, _, _ = call(reliable=reliable)
    # Reconstruct from the events: the UAS INVITE transaction went through Accepted.
    ids = [e.transaction_id for e in net.b_events if isinstance(e, RequestReceived)]
    assert len(ids) == 2
    assert all(net.b.get(i) is None for i in ids)
    assert TxState.ACCEPTED.value == "accepted"
    assert isinstance(net.b_events[0], RequestReceived)
    first = net.b_events[0].request
    assert isinstance(first, SipRequest) and first.method == "INVITE"
    assert not isinstance(first, SipResponse)


def test_lost_2xx_is_retransmitted_by_the_uas_core_and_acked_again() -> None:
    # Datagrams: 0 INVITE, 1 180, 2 200 (lost). The INVITE client is Proceeding: no
    # retransmission; the UAS core re-sends the 200 at T1 (RFC 6026 / §13.3.1.4).
    net, uac, uas = call(reliable=False, drop=lambda i, out: i == 2)
    assert [line.split()[1] for line in net.lines("b->a")][:3] == ["180", "200", "200"]
    assert uas.acks == 1
    ((_, wait),) = uas.waits
    assert wait.acked and wait.retransmissions == 1
    assert uac.finals[0] == 200
    assert len(net.a) == 0 and len(net.b) == 0


def test_ack_wait_schedule_and_timeout() -> None:
    invite = initial("INVITE", "UDP")
    ok = invite.create_response(200, to_tag="b1")
    wait = AckWait(ok, 10.0)
    times = []
    while (deadline := wait.next_deadline()) is not None:
        if wait.handle_timer(deadline) is AckWaitResult.RETRANSMIT:
            times.append(deadline - 10.0)
    assert times[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert times[-1] == 31.5 and wait.timed_out and not wait.acked
    assert wait.handle_timer(100.0) is AckWaitResult.NOTHING
    other = AckWait(ok, 0.0)
    assert other.handle_timer(0.1) is AckWaitResult.NOTHING
    ack = initial("ACK", "UDP")
    ack.headers.set("To", "Bob <sip:bob@example.com>;tag=b1")
    assert other.matches(ack)
    ack.headers.set("To", "Bob <sip:bob@example.com>;tag=zz")
    assert not other.matches(ack)
    with pytest.raises(LocalProtocolError):
        AckWait(invite.create_response(180, to_tag="b1"), 0.0)


def test_message_over_tcp_terminates_at_once() -> None:
    net = Net(reliable=True, on_b=Uas("TCP"))
    got: list[Event] = []
    net.on_a = lambda n, ev: got.append(ev)
    tx = net.a.send_request(initial("MESSAGE", "TCP"), B, 0.0, reliable=True)
    net.run()
    # One request, one answer; timers K and J are zero on reliable transports.
    assert net.lines("a->b") == ["MESSAGE sip:bob@192.0.2.2 SIP/2.0"]
    assert net.lines("b->a") == ["SIP/2.0 200 OK"]
    assert [type(e).__name__ for e in got] == ["ResponseReceived", "TransactionTerminated"]
    assert net.now == 0.0 and net.a.get(tx.id) is None and len(net.b) == 0
