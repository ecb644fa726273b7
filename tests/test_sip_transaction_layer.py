"""TransactionLayer: matching (§17.1.3, §17.2.3 + RFC 2543), ACK, CANCEL, timers, bounds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simpleim.errors import LocalProtocolError, TransactionError
from simpleim.sip.message import SipRequest, SipResponse, parse_message
from simpleim.sip.transaction import Timer, TxKind, TxState
from simpleim.sip.transaction_build import ack_for_non2xx, cancel_request, response_destination
from simpleim.sip.transaction_layer import (
    MAGIC_COOKIE,
    AckReceived,
    CancelReceived,
    ClientTransaction,
    Event,
    Outgoing,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    ServerTransaction,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailure,
)
from simpleim.timers import Timers

UAC = ("192.0.2.1", 5060)
UAS = ("192.0.2.2", 5060)


def make_request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bK-1",
    cseq: int = 1,
    to_tag: str | None = None,
    from_tag: str = "ftag",
    call_id: str = "call-1@uac",
    uri: str = "sip:bob@192.0.2.2",
    via_host: str = "192.0.2.1:5060",
    routes: tuple[str, ...] = (),
    extra: str = "",
) -> SipRequest:
    via = f"SIP/2.0/UDP {via_host}" + (f";branch={branch}" if branch else "")
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: {via}",
        "Max-Forwards: 70",
        *[f"Route: {r}" for r in routes],
        f"From: <sip:alice@example.com>;tag={from_tag}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:alice@192.0.2.1:5060>",
    ]
    if extra:
        lines.append(extra)
    text = "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n"
    msg = parse_message(text.encode())
    assert isinstance(msg, SipRequest)
    return msg


def wire(out: Outgoing) -> SipRequest | SipResponse:
    """What the peer parses from a datagram."""
    return parse_message(out.data)


def statuses(outs: list[Outgoing]) -> list[int | str]:
    res: list[int | str] = []
    for o in outs:
        m = wire(o)
        res.append(m.status if isinstance(m, SipResponse) else m.method)
    return res


def kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


# -- client side -----------------------------------------------------------------------------


def test_send_request_queues_datagram_and_retransmits_on_timer_a() -> None:
    layer = TransactionLayer(timers=Timers())
    tx = layer.send_request(make_request(), UAS, now=0.0)
    assert isinstance(tx, ClientTransaction) and tx.kind is TxKind.INVITE_CLIENT
    out = layer.datagrams_to_send()
    assert [o.dest for o in out] == [UAS] and out[0].transaction_id == tx.id
    assert layer.next_deadline() == 0.5
    assert layer.handle_timer(0.49) == [] and layer.datagrams_to_send() == []
    layer.handle_timer(0.5)
    again = layer.datagrams_to_send()
    assert [o.data for o in again] == [out[0].data]
    assert layer.next_deadline() == 1.5


def test_branch_is_added_and_injectable() -> None:
    layer = TransactionLayer(rng=random.Random(1))
    other = TransactionLayer(rng=random.Random(1))
    assert layer.new_branch() == other.new_branch()
    assert layer.new_branch().startswith(MAGIC_COOKIE)
    fixed = TransactionLayer(branch_factory=lambda: "abc")
    assert fixed.new_branch() == "z9hG4bKabc"
    tx = fixed.send_request(make_request("MESSAGE", branch=None), UAS, 0.0)
    assert tx.request.top_via.branch == "z9hG4bKabc"
    assert wire(fixed.datagrams_to_send()[0]).top_via.branch == "z9hG4bKabc"


def test_send_request_errors() -> None:
    layer = TransactionLayer()
    with pytest.raises(LocalProtocolError):
        layer.send_request(make_request("ACK"), UAS, 0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(make_request(branch="old-style"), UAS, 0.0)
    layer.send_request(make_request(), UAS, 0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(make_request(), UAS, 0.0)  # same branch + method


def test_response_matching_by_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    req = make_request("INVITE")
    tx = layer.send_request(req, UAS, 0.0)
    # Same branch, other CSeq method (e.g. the 200 to a CANCEL) does not match the INVITE.
    cancel_resp = cancel_request(req).create_response(200)
    events = layer.receive(cancel_resp, UAS, 0.1)
    assert events == [ResponseReceived(None, cancel_resp, UAS)]
    assert tx.state is TxState.CALLING
    ringing = req.create_response(180, to_tag="t1")
    events = layer.receive(ringing, UAS, 0.2)
    assert events == [ResponseReceived(tx.id, ringing, UAS)]
    assert tx.state is TxState.PROCEEDING
    other_branch = make_request(branch="z9hG4bK-other").create_response(200)
    assert layer.receive(other_branch, UAS, 0.3)[0] == ResponseReceived(None, other_branch, UAS)


def test_invite_non2xx_ack_built_by_transaction() -> None:
    layer = TransactionLayer()
    req = make_request(routes=("<sip:p1.example.com;lr>",))
    tx = layer.send_request(req, UAS, 0.0)
    layer.datagrams_to_send()
    busy = req.create_response(486, to_tag="t9")
    events = layer.receive(busy, UAS, 0.2)
    assert kinds(events) == ["ResponseReceived"]
    (ack_out,) = layer.datagrams_to_send()
    ack = wire(ack_out)
    assert isinstance(ack, SipRequest) and ack.method == "ACK"
    assert ack.uri == req.uri and ack.call_id == req.call_id
    assert ack.top_via.branch == req.top_via.branch and len(ack.via) == 1
    assert ack.to_addr.tag == "t9" and ack.from_addr.tag == "ftag"
    assert (ack.cseq.seq, ack.cseq.method) == (1, "ACK")
    assert [str(r.uri) for r in ack.route] == ["sip:p1.example.com;lr"]
    # Retransmitted 486: the same ACK again, not passed to the TU.
    assert layer.receive(busy, UAS, 1.0) == []
    assert [o.data for o in layer.datagrams_to_send()] == [ack_out.data]
    assert tx.state is TxState.COMPLETED
    assert layer.next_deadline() == pytest.approx(32.2)
    events = layer.handle_timer(32.2)
    assert events == [TransactionTerminated(tx.id, TxKind.INVITE_CLIENT)]
    assert len(layer) == 0


def test_ack_for_non2xx_refuses_2xx() -> None:
    with pytest.raises(LocalProtocolError):
        ack_for_non2xx(make_request(), make_request().create_response(200))


def test_invite_2xx_accepted_then_stray_after_m() -> None:
    layer = TransactionLayer()
    req = make_request()
    tx = layer.send_request(req, UAS, 0.0)
    ok = req.create_response(200, to_tag="t1")
    assert layer.receive(ok, UAS, 0.1) == [ResponseReceived(tx.id, ok, UAS)]
    assert tx.state is TxState.ACCEPTED
    layer.datagrams_to_send()
    # RFC 6026: retransmitted 2xx still goes to the TU (which re-sends its ACK); no auto ACK.
    assert layer.receive(ok, UAS, 1.0) == [ResponseReceived(tx.id, ok, UAS)]
    assert layer.datagrams_to_send() == []
    assert kinds(layer.handle_timer(32.1)) == ["TransactionTerminated"]
    # §18.1.2: after the transaction is gone the 2xx is passed to the core with no id.
    assert layer.receive(ok, UAS, 40.0) == [ResponseReceived(None, ok, UAS)]


def test_non_invite_timeout_event_408() -> None:
    layer = TransactionLayer()
    req = make_request("MESSAGE")
    tx = layer.send_request(req, UAS, 0.0)
    layer.datagrams_to_send()
    sent = 0
    events: list[Event] = []
    while (deadline := layer.next_deadline()) is not None:
        events += layer.handle_timer(deadline)
        sent += len(layer.datagrams_to_send())
    assert sent == 10  # retransmissions at 0.5, 1.5, 3.5, 7.5, 11.5 ... 31.5
    assert events[-2:] == [TransactionTimeout(tx.id, req), TransactionTerminated(
        tx.id, TxKind.NON_INVITE_CLIENT)]
    assert events[-2].status == 408  # type: ignore[union-attr]


def test_reliable_client_no_retransmissions() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(make_request("MESSAGE"), UAS, 0.0, reliable=True)
    layer.datagrams_to_send()
    assert layer.next_deadline() == 32.0
    resp = tx.request.create_response(200, to_tag="x")
    events = layer.receive(resp, UAS, 1.0)
    assert kinds(events) == ["ResponseReceived", "TransactionTerminated"]
    assert layer.next_deadline() is None and len(layer) == 0


def test_transport_error_503() -> None:
    layer = TransactionLayer()
    req = make_request("MESSAGE")
    tx = layer.send_request(req, UAS, 0.0, reliable=True)
    events = layer.transport_error(tx.id, 0.0)
    assert events[0] == TransportFailure(tx.id, req) and events[0].status == 503
    assert layer.transport_error(tx.id, 0.1) == []  # already gone


def test_stray_1xx_after_final_is_dropped() -> None:
    layer = TransactionLayer()
    req = make_request("MESSAGE")
    layer.send_request(req, UAS, 0.0)
    layer.receive(req.create_response(200, to_tag="a"), UAS, 0.1)
    assert layer.receive(req.create_response(180, to_tag="a"), UAS, 0.2) == []


# -- server side -----------------------------------------------------------------------------


def test_server_invite_retransmission_absorbed_and_100_trying() -> None:
    layer = TransactionLayer()
    req = make_request()
    events = layer.receive(req, UAC, 0.0)
    assert kinds(events) == ["RequestReceived"]
    assert isinstance(events[0], RequestReceived)
    tx_id = events[0].transaction_id
    stx = layer.get(tx_id)
    assert isinstance(stx, ServerTransaction) and stx.kind is TxKind.INVITE_SERVER
    assert layer.next_deadline() == pytest.approx(0.2)
    layer.handle_timer(0.2)
    (trying,) = layer.datagrams_to_send()
    assert trying.dest == UAC and statuses([trying]) == [100]
    assert wire(trying).to_addr.tag is None  # §17.2.1: no To tag on 100
    # Retransmitted INVITE: absorbed, the 100 is re-sent.
    assert layer.receive(parse_message(req.to_bytes()), UAC, 0.5) == []
    assert statuses(layer.datagrams_to_send()) == [100]


def test_server_non2xx_ack_absorbed_and_2xx_ack_to_tu() -> None:
    layer = TransactionLayer()
    req = make_request()
    (ev,) = layer.receive(req, UAC, 0.0)
    assert isinstance(ev, RequestReceived)
    layer.send_response(req.create_response(486, to_tag="s1"), 0.05)
    assert statuses(layer.datagrams_to_send()) == [486]
    # Timer G retransmits the 486 until the ACK arrives.
    layer.handle_timer(0.55)
    assert statuses(layer.datagrams_to_send()) == [486]
    ack = ack_for_non2xx(req, req.create_response(486, to_tag="s1"))
    assert layer.receive(ack, UAC, 0.6) == []  # absorbed by the transaction
    stx = layer.get(ev.transaction_id)
    assert stx is not None and stx.state is TxState.CONFIRMED
    assert layer.next_deadline() == pytest.approx(5.6)  # timer I = T4
    # An ACK with a new branch (ACK for a 2xx) goes to the TU.
    ack2 = make_request("ACK", branch="z9hG4bK-ack2", to_tag="s1")
    assert layer.receive(ack2, UAC, 0.7) == [AckReceived(ack2, UAC, None)]


def test_server_2xx_accepted_absorbs_invite_and_sends_tu_retransmissions() -> None:
    layer = TransactionLayer()
    req = make_request()
    (ev,) = layer.receive(req, UAC, 0.0)
    ok = req.create_response(200, to_tag="s1")
    stx = layer.send_response(ok, 0.1)
    assert stx.state is TxState.ACCEPTED
    assert statuses(layer.datagrams_to_send()) == [200]
    assert layer.receive(parse_message(req.to_bytes()), UAC, 0.5) == []
    assert layer.datagrams_to_send() == []  # RFC 6026: the transaction does not retransmit 2xx
    layer.send_response(ok, 0.6)  # the TU does (§13.3.1.4)
    assert statuses(layer.datagrams_to_send()) == [200]
    # An ACK that matches the transaction in Accepted is passed to the TU.
    same_branch_ack = make_request("ACK", to_tag="s1")
    assert layer.receive(same_branch_ack, UAC, 0.7) == [
        AckReceived(same_branch_ack, UAC, ev.transaction_id)]  # type: ignore[union-attr]
    assert kinds(layer.handle_timer(32.1)) == ["TransactionTerminated"]
    with pytest.raises(LocalProtocolError):
        layer.send_response(ok, 33.0)


def test_server_matching_sent_by_and_method() -> None:
    layer = TransactionLayer()
    a = make_request("MESSAGE", branch="z9hG4bK-same")
    b = make_request("MESSAGE", branch="z9hG4bK-same", via_host="198.51.100.7:5060")
    c = make_request("OPTIONS", branch="z9hG4bK-same")
    assert kinds(layer.receive(a, UAC, 0.0)) == ["RequestReceived"]
    assert kinds(layer.receive(b, UAC, 0.0)) == ["RequestReceived"]  # other sent-by
    assert kinds(layer.receive(c, UAC, 0.0)) == ["RequestReceived"]  # other method
    assert layer.receive(a, UAC, 0.1) == []  # retransmission
    assert len(layer) == 3


def test_server_non_invite_final_retransmitted_on_request_retransmission() -> None:
    layer = TransactionLayer()
    req = make_request("MESSAGE")
    (ev,) = layer.receive(req, UAC, 0.0)
    assert layer.receive(req, UAC, 0.4) == []  # Trying: discarded
    layer.send_response(req.create_response(200, to_tag="m"), 0.5)
    assert statuses(layer.datagrams_to_send()) == [200]
    assert layer.receive(req, UAC, 1.0) == []
    assert statuses(layer.datagrams_to_send()) == [200]
    assert layer.next_deadline() == pytest.approx(32.5)  # timer J
    assert kinds(layer.handle_timer(32.5)) == ["TransactionTerminated"]


def test_rfc2543_fallback_matching() -> None:
    layer = TransactionLayer()
    inv = make_request(branch=None)
    (ev,) = layer.receive(inv, UAC, 0.0)
    assert isinstance(ev, RequestReceived)
    assert layer.receive(make_request(branch=None), UAC, 0.5) == []  # retransmission
    # Other Call-ID / other From tag / other Request-URI: new transactions.
    assert kinds(layer.receive(make_request(branch=None, call_id="x"), UAC, 0.5)) == [
        "RequestReceived"]
    assert kinds(layer.receive(make_request(branch=None, from_tag="o"), UAC, 0.5)) == [
        "RequestReceived"]
    assert kinds(layer.receive(make_request(branch=None, uri="sip:carol@h"), UAC, 0.5)) == [
        "RequestReceived"]
    # The TU answers by transaction id or by Via/CSeq match.
    layer.send_response(inv.create_response(404, to_tag="u1"), 0.6)
    assert statuses(layer.datagrams_to_send()) == [404]
    # ACK with the To tag of our response matches; with another tag it does not.
    wrong = make_request("ACK", branch=None, to_tag="other")
    assert layer.receive(wrong, UAC, 0.7) == [AckReceived(wrong, UAC, None)]
    right = make_request("ACK", branch=None, to_tag="u1")
    assert layer.receive(right, UAC, 0.7) == []
    stx = layer.get(ev.transaction_id)
    assert stx is not None and stx.state is TxState.CONFIRMED


def test_cancel_server_side() -> None:
    layer = TransactionLayer()
    inv = make_request()
    (ev,) = layer.receive(inv, UAC, 0.0)
    cancel = cancel_request(inv)
    (cev,) = layer.receive(cancel, UAC, 0.3)
    assert isinstance(cev, CancelReceived) and isinstance(ev, RequestReceived)
    assert cev.invite_transaction_id == ev.transaction_id and cev.invite_pending
    assert cev.transaction_id != ev.transaction_id  # §9.2: its own transaction
    # The TU answers 200 to the CANCEL and 487 to the INVITE.
    layer.send_response(cancel.create_response(200, to_tag="s"), 0.31)
    layer.send_response(inv.create_response(487, to_tag="s"), 0.31)
    assert statuses(layer.datagrams_to_send()) == [200, 487]  # TU answered within 200 ms
    # A CANCEL for an unknown INVITE: the TU must answer 481.
    lone = cancel_request(make_request(branch="z9hG4bK-nope"))
    (lev,) = layer.receive(lone, UAC, 0.4)
    assert isinstance(lev, CancelReceived) and lev.invite_transaction_id is None


def test_cancel_rfc2543_matches_invite() -> None:
    layer = TransactionLayer()
    inv = make_request(branch=None)
    (ev,) = layer.receive(inv, UAC, 0.0)
    (cev,) = layer.receive(cancel_request(inv), UAC, 0.1)
    assert isinstance(cev, CancelReceived) and isinstance(ev, RequestReceived)
    assert cev.invite_transaction_id == ev.transaction_id


def test_cancel_client_waits_for_provisional() -> None:
    layer = TransactionLayer()
    inv = make_request()
    tx = layer.send_request(inv, UAS, 0.0)
    layer.datagrams_to_send()
    assert layer.cancel(tx.id, 0.1) is None  # §9.1: held until a 1xx arrives
    assert layer.datagrams_to_send() == []
    layer.receive(inv.create_response(180, to_tag="t"), UAS, 0.2)
    (out,) = layer.datagrams_to_send()
    cancel = wire(out)
    assert isinstance(cancel, SipRequest) and cancel.method == "CANCEL"
    assert cancel.top_via.branch == inv.top_via.branch
    assert (cancel.cseq.seq, cancel.cseq.method) == (1, "CANCEL")
    assert cancel.to_addr.tag is None  # same To as the INVITE
    assert tx.cancel_id is not None and layer.cancel(tx.id, 0.3) == tx.cancel_id
    # The 200 to the CANCEL matches the CANCEL transaction, the 487 the INVITE one.
    ev1 = layer.receive(cancel.create_response(200, to_tag="t"), UAS, 0.4)
    assert isinstance(ev1[0], ResponseReceived) and ev1[0].transaction_id == tx.cancel_id
    ev2 = layer.receive(inv.create_response(487, to_tag="t"), UAS, 0.5)
    assert isinstance(ev2[0], ResponseReceived) and ev2[0].transaction_id == tx.id


def test_cancel_after_final_is_noop_and_type_checked() -> None:
    layer = TransactionLayer()
    inv = make_request()
    tx = layer.send_request(inv, UAS, 0.0)
    layer.receive(inv.create_response(180, to_tag="t"), UAS, 0.1)
    layer.receive(inv.create_response(200, to_tag="t"), UAS, 0.2)
    assert layer.cancel(tx.id, 0.3) is None
    msg = layer.send_request(make_request("MESSAGE", branch="z9hG4bK-m"), UAS, 0.0)
    with pytest.raises(LocalProtocolError):
        layer.cancel(msg.id, 0.3)
    with pytest.raises(LocalProtocolError):
        cancel_request(make_request("ACK"))


def test_bounded_transactions_503() -> None:
    layer = TransactionLayer(max_transactions=2)
    layer.receive(make_request("MESSAGE", branch="z9hG4bK-1"), UAC, 0.0)
    layer.receive(make_request("MESSAGE", branch="z9hG4bK-2"), UAC, 0.0)
    req = make_request("MESSAGE", branch="z9hG4bK-3")
    events = layer.receive(req, UAC, 0.0)
    assert events == [RequestRejected(req, UAC, 503)]
    (out,) = layer.datagrams_to_send()
    rejected = wire(out)
    assert isinstance(rejected, SipResponse) and rejected.status == 503
    assert rejected.headers.get("Retry-After") == "5"
    with pytest.raises(TransactionError) as info:
        layer.send_request(make_request("MESSAGE", branch="z9hG4bK-4"), UAS, 0.0)
    assert info.value.status == 503
    with pytest.raises(LocalProtocolError):
        TransactionLayer(max_transactions=0)


def test_response_destination_rules() -> None:
    plain = make_request(via_host="192.0.2.1:5070")
    assert response_destination(plain, ("203.0.113.9", 40000), False) == ("203.0.113.9", 5070)
    assert response_destination(plain, "conn-7", True) == "conn-7"
    rport = make_request(extra="X: y")
    rport.headers.set("Via", "SIP/2.0/UDP 192.0.2.1;rport;branch=z9hG4bK-r")
    assert response_destination(rport, ("203.0.113.9", 40000), False) == ("203.0.113.9", 40000)
    maddr = make_request()
    maddr.headers.set("Via", "SIP/2.0/UDP 192.0.2.1;maddr=239.1.1.1;branch=z9hG4bK-q")
    assert response_destination(maddr, ("203.0.113.9", 4), False) == ("239.1.1.1", 5060)


def test_timer_heap_handles_many_transactions_in_order() -> None:
    layer = TransactionLayer()
    for i in range(20):
        layer.send_request(make_request("MESSAGE", branch=f"z9hG4bK-{i}"), UAS, now=i * 0.01)
    layer.datagrams_to_send()
    assert layer.next_deadline() == pytest.approx(0.5)
    layer.handle_timer(0.505)
    assert len(layer.datagrams_to_send()) == 1
    # Answer half: their timers are cancelled; next deadline still correct.
    for i in range(10):
        req = layer.get(f"c{i + 1}")
        assert req is not None
        layer.receive(req.request.create_response(200, to_tag="x"), UAS, 0.6)
    assert layer.next_deadline() == pytest.approx(0.6)  # the 0.6 send of tx c11 (E)
    events: list[Event] = []
    while (deadline := layer.next_deadline()) is not None:
        events += layer.handle_timer(deadline)
    assert sum(isinstance(e, TransactionTimeout) for e in events) == 10
    assert sum(isinstance(e, TransactionTerminated) for e in events) == 20  # 10 after K
    assert len(layer) == 0


def test_machine_timer_values_visible() -> None:
    layer = TransactionLayer(timers=Timers(t1=0.1, t2=0.4, t4=1.0))
    tx = layer.send_request(make_request(), UAS, 0.0)
    assert tx.machine.deadlines == {Timer.A: 0.1, Timer.B: pytest.approx(6.4)}


# -- property: the layer only ever raises the typed errors ----------------------------------------

_METHODS = ("INVITE", "MESSAGE", "ACK", "CANCEL", "BYE")
_STATUSES = (100, 180, 200, 202, 302, 404, 487, 503)


@settings(max_examples=200, deadline=None)
@given(
    reliable=st.booleans(),
    steps=st.lists(
        st.tuples(
            st.sampled_from(["recv_req", "recv_resp", "send_req", "send_resp", "timer",
                             "cancel", "terr"]),
            st.sampled_from(_METHODS),
            st.sampled_from(_STATUSES),
            st.sampled_from(["z9hG4bK-1", "z9hG4bK-2", None]),
            st.sampled_from([None, "t1", "t2"]),
            st.floats(min_value=0.0, max_value=20.0),
        ),
        max_size=25,
    ),
)
def test_layer_random_traffic_raises_only_typed_errors(
    reliable: bool,
    steps: list[tuple[str, str, int, str | None, str | None, float]],
) -> None:
    layer = TransactionLayer(max_transactions=4)
    now = 0.0
    for action, method, status, branch, to_tag, dt in steps:
        now += dt
        req = make_request(method, branch=branch, to_tag=to_tag)
        try:
            if action == "recv_req":
                layer.receive(req, UAC, now, reliable)
            elif action == "recv_resp":
                if method != "ACK":
                    layer.receive(req.create_response(status, to_tag=to_tag), UAS, now)
            elif action == "send_req":
                layer.send_request(req, UAS, now, reliable)
            elif action == "send_resp":
                if method != "ACK":
                    layer.send_response(req.create_response(status, to_tag="s"), now)
            elif action == "timer":
                layer.handle_timer(now)
            elif action == "cancel":
                for tx in layer.transactions():
                    layer.cancel(tx.id, now)
            else:
                for tx in layer.transactions():
                    layer.transport_error(tx.id, now)
        except (TransactionError, LocalProtocolError):
            pass
        deadline = layer.next_deadline()
        assert deadline is None or deadline >= 0
        layer.datagrams_to_send()
    # Time always drains every transaction.
    for _ in range(200):
        deadline = layer.next_deadline()
        if deadline is None:
            break
        layer.handle_timer(max(deadline, now))
        now = max(deadline, now)
    # What is left waits on a TU (server Trying/Proceeding) or on the peer (INVITE client in
    # Proceeding: no timer at a UA, RFC 3261 §17.1.1.2); nothing else survives.
    waiting = [
        tx for tx in layer.transactions()
        if tx.state is TxState.PROCEEDING
        or (tx.state is TxState.TRYING and isinstance(tx, ServerTransaction))
    ]
    assert len(layer) == len(waiting)
