"""Completed non-INVITE transactions kept as compact records (RFC 3261 §17.1.2.2, §17.2.2,
§17.2.4): same wire output, events and timers as the full transactions they replace."""

from __future__ import annotations

import gc

import pytest

from simpleim.errors import LocalProtocolError, TransactionError
from simpleim.sip.message import SipResponse, parse_message
from simpleim.sip.transaction import (
    PARKABLE_KINDS,
    TxInput,
    TxKind,
    TxState,
    completed_step,
)
from simpleim.sip.transaction_layer import (
    RequestReceived,
    ResponseReceived,
    TransactionLayer,
    TransactionTerminated,
    TransportFailure,
)
from test_sip_transaction_layer import UAC, UAS, make_request


def test_server_record_resends_the_same_bytes_and_ends_on_timer_j() -> None:
    layer = TransactionLayer()
    req = make_request("MESSAGE")
    (ev,) = layer.receive(req, UAC, 0.0)
    assert isinstance(ev, RequestReceived)
    ok = req.create_response(200, to_tag="m")
    stx = layer.send_response(ok, 0.5)
    (first,) = layer.datagrams_to_send()
    assert stx.state is TxState.COMPLETED
    # kept as a record: counted, not a live transaction object any more
    assert len(layer) == 1 and layer.completed_records() == 1
    assert layer.get(ev.transaction_id) is None and layer.transactions() == []
    for t in (1.0, 2.0, 30.0):
        assert layer.receive(req, UAC, t) == []
        (again,) = layer.datagrams_to_send()
        assert again.data == first.data and again.dest == first.dest
        assert again.transaction_id == ev.transaction_id and not again.reliable
        assert isinstance(again.message, SipResponse) and again.message.status == 200
    assert layer.next_deadline() == pytest.approx(32.5)
    assert layer.earliest_scheduled() is not None
    assert layer.handle_timer(32.4) == []
    assert layer.handle_timer(32.5) == [
        TransactionTerminated(ev.transaction_id, TxKind.NON_INVITE_SERVER)]
    assert len(layer) == 0 and layer.next_deadline() is None
    # after Timer J a retransmission is a new request (§17.2.3)
    assert isinstance(layer.receive(req, UAC, 40.0)[0], RequestReceived)


def test_server_record_holds_no_collectable_objects() -> None:
    layer = TransactionLayer()
    for i in range(50):
        req = make_request("MESSAGE", branch=f"z9hG4bK-{i}")
        layer.receive(req, UAC, 0.0)
        layer.send_response(req.create_response(200, to_tag="m"), 0.1)
    layer.datagrams_to_send()
    assert layer.completed_records() == 50
    gc.collect()
    assert not any(gc.is_tracked(rec[3]) for rec in layer._parked.values())


def test_server_record_transport_error_reports_the_request() -> None:
    layer = TransactionLayer()
    req = make_request("MESSAGE")
    (ev,) = layer.receive(req, UAC, 0.0)
    layer.send_response(req.create_response(404), 0.1)
    layer.datagrams_to_send()
    events = layer.transport_error(ev.transaction_id, 0.2)
    assert len(events) == 2
    failure, ended = events
    assert isinstance(failure, TransportFailure) and failure.status == 503
    assert failure.transaction_id == ev.transaction_id
    assert failure.request == req and failure.request.to_bytes() == req.to_bytes()
    assert ended == TransactionTerminated(ev.transaction_id, TxKind.NON_INVITE_SERVER)
    assert len(layer) == 0 and layer.next_deadline() is None
    assert layer.transport_error(ev.transaction_id, 0.3) == []


def test_server_record_refuses_a_further_response_from_the_tu() -> None:
    layer = TransactionLayer()
    req = make_request("MESSAGE")
    (ev,) = layer.receive(req, UAC, 0.0)
    layer.send_response(req.create_response(200, to_tag="m"), 0.1)
    with pytest.raises(LocalProtocolError):
        layer.send_response(req.create_response(200, to_tag="m"), 0.2, ev.transaction_id)
    with pytest.raises(LocalProtocolError):
        layer.send_response(req.create_response(200, to_tag="m"), 0.2)


def test_client_record_absorbs_retransmitted_finals_until_timer_k() -> None:
    layer = TransactionLayer()
    req = make_request("MESSAGE")
    tx = layer.send_request(req, UAS, 0.0)
    layer.datagrams_to_send()
    ok = req.create_response(200, to_tag="x")
    events = layer.receive(ok, UAS, 0.1)
    assert events == [ResponseReceived(tx.id, ok, UAS)]
    assert tx.state is TxState.COMPLETED and layer.completed_records() == 1
    assert layer.receive(ok, UAS, 1.0) == []  # §17.1.2.2: absorbed
    assert layer.receive(req.create_response(180), UAS, 1.0) == []
    assert layer.datagrams_to_send() == []
    assert layer.transport_error(tx.id, 1.0) == []  # nothing is sent in Completed
    assert layer.next_deadline() == pytest.approx(5.1)  # timer K = T4
    assert layer.handle_timer(5.1) == [TransactionTerminated(tx.id, TxKind.NON_INVITE_CLIENT)]
    # §18.1.2: afterwards the response matches nothing
    assert layer.receive(ok, UAS, 6.0) == [ResponseReceived(None, ok, UAS)]


def test_records_fire_in_deadline_order_with_other_timers() -> None:
    layer = TransactionLayer()
    srv = make_request("OPTIONS", branch="z9hG4bK-s")
    (ev,) = layer.receive(srv, UAC, 0.0)
    layer.send_response(srv.create_response(200, to_tag="o"), 0.0)  # J at 32.0
    cli = make_request("MESSAGE", branch="z9hG4bK-c")
    ctx = layer.send_request(cli, UAS, 0.0)
    layer.receive(cli.create_response(200, to_tag="c"), UAS, 1.0)  # K at 6.0
    inv = layer.send_request(make_request("INVITE", branch="z9hG4bK-i"), UAS, 0.0)
    layer.datagrams_to_send()
    assert layer.next_deadline() == pytest.approx(0.5)  # timer A of the INVITE
    events = layer.handle_timer(40.0)
    terminated = [e.transaction_id for e in events if isinstance(e, TransactionTerminated)]
    # the INVITE's entry (A at 0.5) fires all its due timers (B: terminated), then K, J
    assert terminated == [inv.id, ctx.id, ev.transaction_id]
    assert len(layer) == 0


def test_clock_going_backwards_keeps_the_record_queue_ordered() -> None:
    layer = TransactionLayer()
    for i, t in enumerate((10.0, 5.0, 7.0)):
        req = make_request("MESSAGE", branch=f"z9hG4bK-{i}")
        layer.receive(req, UAC, t)
        layer.send_response(req.create_response(200, to_tag="m"), t)
    assert layer.next_deadline() == pytest.approx(37.0)
    assert len(layer.handle_timer(39.0)) == 2
    assert layer.next_deadline() == pytest.approx(42.0)


def test_reliable_transactions_are_not_recorded() -> None:
    layer = TransactionLayer()
    req = make_request("MESSAGE")
    layer.receive(req, UAC, 0.0, reliable=True)
    events = layer.send_response(req.create_response(200, to_tag="m"), 0.1)
    assert events.state is TxState.TERMINATED
    assert len(layer) == 0 and layer.completed_records() == 0


def test_rfc2543_transactions_stay_full_objects() -> None:
    layer = TransactionLayer()
    req = make_request("MESSAGE", branch=None)
    (ev,) = layer.receive(req, UAC, 0.0)
    layer.send_response(req.create_response(200, to_tag="m"), 0.1)
    assert layer.completed_records() == 0 and layer.get(ev.transaction_id) is not None


def test_max_transactions_counts_records() -> None:
    layer = TransactionLayer(max_transactions=1)
    req = make_request("MESSAGE")
    layer.receive(req, UAC, 0.0)
    layer.send_response(req.create_response(200, to_tag="m"), 0.1)
    with pytest.raises(TransactionError):
        layer.send_request(make_request("MESSAGE", branch="z9hG4bK-2"), UAS, 0.2)
    events = layer.receive(make_request("MESSAGE", branch="z9hG4bK-3"), UAC, 0.2)
    assert [type(e).__name__ for e in events] == ["RequestRejected"]


def test_completed_step_follows_the_tables() -> None:
    for kind in PARKABLE_KINDS:
        with pytest.raises(TransactionError):
            completed_step(kind, TxInput.RECV_REQUEST)
    with pytest.raises(LocalProtocolError):
        completed_step(TxKind.NON_INVITE_SERVER, TxInput.TU_2XX)
    state, effects = completed_step(TxKind.NON_INVITE_SERVER, TxInput.TIMER_J)
    assert state is TxState.TERMINATED and effects


def test_outgoing_message_parsed_lazily() -> None:
    req = make_request("MESSAGE")
    data = req.create_response(200, to_tag="m").to_bytes()
    from simpleim.sip.transaction_layer import Outgoing

    out = Outgoing(data, UAC, False, None, "s1")
    assert out.message == parse_message(data) and out.message is out.message
    assert out == Outgoing(data, UAC, False, parse_message(data), "s1")
    assert "s1" in repr(out)
