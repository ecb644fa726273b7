"""The sans-I/O RFC 5626 core: the UA keep-alive machine and the server's flow watch."""

from __future__ import annotations

import itertools

import pytest

from simpleim.errors import SipParseError
from simpleim.sip.outbound import (
    KEEPALIVE_TABLE,
    PONG_WAIT,
    FlowWatch,
    KaAction,
    KaInput,
    KaState,
    KeepAlive,
    flow_timer_of,
    is_outbound_contact,
    keepalive_interval,
)


def test_table_is_complete() -> None:
    assert set(KEEPALIVE_TABLE) == set(itertools.product(KaState, KaInput))


def test_interval_follows_flow_timer() -> None:
    # RFC 5626 §4.4.1: 80-100 % of Flow-Timer; 95-120 s without one (TCP)
    assert keepalive_interval(120, 0.0) == pytest.approx(96.0)
    assert keepalive_interval(120, 0.999) == pytest.approx(119.976)
    assert keepalive_interval(None, 0.0) == 95.0
    assert keepalive_interval(None, 0.5) == pytest.approx(107.5)
    with pytest.raises(ValueError):
        keepalive_interval(120, 1.0)


def test_ping_pong_cycle() -> None:
    ka = KeepAlive(now=0.0, jitter=0.0, flow_timer=100)
    assert ka.deadline() == 80.0
    assert ka.on_deadline(79.0, 0.0) is KaAction.NONE           # not due yet
    assert ka.on_deadline(80.0, 0.0) is KaAction.SEND_PING
    assert ka.state is KaState.PINGED and ka.deadline() == 80.0 + PONG_WAIT
    assert ka.on_traffic() is KaAction.NONE and ka.state is KaState.PINGED
    assert ka.on_pong(85.0, 0.5) is KaAction.NONE
    assert ka.state is KaState.WAITING and ka.deadline() == 85.0 + 90.0


def test_no_pong_within_10_s_fails_the_flow() -> None:
    ka = KeepAlive(now=0.0, jitter=0.0, flow_timer=10)
    assert ka.on_deadline(8.0, 0.0) is KaAction.SEND_PING
    assert ka.on_deadline(8.0 + PONG_WAIT - 0.1, 0.0) is KaAction.NONE
    assert ka.on_deadline(8.0 + PONG_WAIT, 0.0) is KaAction.FLOW_FAILED
    assert ka.state is KaState.FAILED and ka.deadline() is None
    assert ka.on_pong(30.0, 0.0) is KaAction.NONE and ka.state is KaState.FAILED
    # a new flow (re-registration, §4.5) starts over
    ka.restart(40.0, 0.0, flow_timer=20)
    assert ka.state is KaState.WAITING and ka.deadline() == 56.0


def test_unsolicited_pong_changes_nothing() -> None:
    ka = KeepAlive(now=0.0, jitter=0.0)
    assert ka.on_pong(1.0, 0.0) is KaAction.NONE
    assert ka.deadline() == 95.0


def test_flow_watch() -> None:
    watch = FlowWatch(flow_timer=120)
    flows = [("a", 0.0), ("b", 100.0)]
    assert watch.limit == 130.0
    assert watch.dead(flows, 130.0) == []
    assert watch.dead(flows, 130.5) == ["a"]
    assert watch.next_check(flows, 10.0) == 130.0
    assert watch.next_check([], 10.0) == 140.0
    assert watch.next_check(flows, 200.0) == 200.0         # overdue: check now


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("120", 120), (" 30 ", 30),
                                                 ("0", None)])
def test_flow_timer_header(value: str | None, expected: int | None) -> None:
    assert flow_timer_of(value) == expected


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "9999999999"])
def test_bad_flow_timer_header(value: str) -> None:
    with pytest.raises(SipParseError):
        flow_timer_of(value)


def test_outbound_contact_needs_instance_and_reg_id() -> None:
    assert is_outbound_contact('"<urn:uuid:1>"', 1)
    assert not is_outbound_contact(None, 1)
    assert not is_outbound_contact('"<urn:uuid:1>"', None)


def test_reconnect_backoff() -> None:
    from simpleim.sip.outbound import reconnect_delay

    # RFC 5626 §4.5: at once, then min(1800, 30 * 2^n) scaled into 50-100 %
    assert reconnect_delay(0, 0.9) == 0.0
    assert reconnect_delay(1, 0.0) == 30.0 and reconnect_delay(1, 0.999) < 60.0
    assert reconnect_delay(2, 0.0) == 60.0
    assert reconnect_delay(10, 0.0) == 900.0 and reconnect_delay(40, 0.0) == 900.0
