"""The four RFC 3261 §17 / RFC 6026 transaction state machines, driven by hand (no clock)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simpleim.errors import LocalProtocolError, TransactionError
from simpleim.sip.transaction import (
    TABLES,
    TIMER_INPUTS,
    TU_INPUTS,
    Action,
    InviteClientMachine,
    InviteServerMachine,
    NonInviteClientMachine,
    NonInviteServerMachine,
    Op,
    Timer,
    TransactionMachine,
    TxInput,
    TxKind,
    TxState,
    machine_for,
    response_input,
)
from simpleim.timers import Timers

T = Timers()  # T1 = 0.5, T2 = 4, T4 = 5


def ops(actions: list[Action]) -> list[Op]:
    return [a.op for a in actions]


def retransmit_times(m: TransactionMachine, timer: Timer, until: float) -> list[float]:
    """Advance time to each deadline of ``timer``; record when a retransmission happened."""
    times: list[float] = []
    while True:
        deadline = m.deadlines.get(timer)
        if deadline is None or deadline > until:
            return times
        effects = m.fire_due(deadline)
        if {Op.RETRANSMIT_REQUEST, Op.RETRANSMIT_RESPONSE} & set(ops(effects)):
            times.append(round(deadline, 6))


# -- the tables themselves ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(TxKind))
def test_every_row_cites_an_rfc_section(kind: TxKind) -> None:
    for (state, inp), row in TABLES[kind].items():
        assert re.fullmatch(r"RFC (3261|6026) §\d+(\.\d+)*", row.cite), (state, inp, row)


@pytest.mark.parametrize("kind", list(TxKind))
def test_no_row_leaves_terminated_and_initial_only_creates(kind: TxKind) -> None:
    table = TABLES[kind]
    assert not [k for k in table if k[0] is TxState.TERMINATED]
    initial = [k for k in table if k[0] is TxState.INITIAL]
    assert len(initial) == 1
    creating = TxInput.TU_REQUEST if kind.is_client else TxInput.RECV_REQUEST
    assert initial[0][1] is creating
    for row in table.values():
        if row.new_state is TxState.TERMINATED:
            assert row.actions[-1].op is Op.TERMINATE


def test_response_input_classes() -> None:
    assert response_input(100, from_tu=False) is TxInput.RECV_1XX
    assert response_input(180, from_tu=True) is TxInput.TU_1XX
    assert response_input(202, from_tu=False) is TxInput.RECV_2XX
    assert response_input(699, from_tu=True) is TxInput.TU_3XX_6XX
    with pytest.raises(TransactionError):
        response_input(99, from_tu=False)
    with pytest.raises(LocalProtocolError):
        response_input(700, from_tu=True)


# -- INVITE client (§17.1.1 + RFC 6026 §7.2) ---------------------------------------------------


def test_invite_client_timer_a_doubles_until_timer_b_408() -> None:
    m = InviteClientMachine(reliable=False, timers=T)
    assert ops(m.handle(TxInput.TU_REQUEST, 0.0)) == [Op.SEND_REQUEST]
    assert m.state is TxState.CALLING
    assert m.deadlines == {Timer.A: 0.5, Timer.B: 32.0}
    # A fires at T1, 3T1, 7T1, ... (intervals T1, 2T1, 4T1, ...), RFC 3261 §17.1.1.2.
    assert retransmit_times(m, Timer.A, until=31.9) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    effects = m.fire_due(32.0)
    assert ops(effects) == [Op.INFORM_TIMEOUT, Op.TERMINATE]
    assert m.terminated and m.next_deadline() is None


def test_invite_client_reliable_has_no_timer_a() -> None:
    m = InviteClientMachine(reliable=True, timers=T)
    m.handle(TxInput.TU_REQUEST, 10.0)
    assert m.deadlines == {Timer.B: 42.0}
    with pytest.raises(TransactionError):
        m.handle(TxInput.TIMER_A, 11.0)


def test_invite_client_1xx_stops_retransmissions_then_3xx_acks_and_waits_d() -> None:
    m = InviteClientMachine(reliable=False, timers=T)
    m.handle(TxInput.TU_REQUEST, 0.0)
    m.fire_due(0.5)
    assert ops(m.handle(TxInput.RECV_1XX, 0.7)) == [Op.PASS_TO_TU]
    assert m.state is TxState.PROCEEDING and m.next_deadline() is None
    assert ops(m.handle(TxInput.RECV_1XX, 0.8)) == [Op.PASS_TO_TU]
    assert ops(m.handle(TxInput.RECV_3XX_6XX, 1.0)) == [Op.SEND_ACK, Op.PASS_TO_TU]
    assert m.state is TxState.COMPLETED
    assert m.deadlines == {Timer.D: 33.0}
    # Retransmitted final -> ACK again, not to the TU.
    assert ops(m.handle(TxInput.RECV_3XX_6XX, 2.0)) == [Op.SEND_ACK]
    assert m.fire_due(32.9) == []
    assert ops(m.fire_due(33.0)) == [Op.TERMINATE]


def test_invite_client_reliable_3xx_terminates_at_once() -> None:
    m = InviteClientMachine(reliable=True, timers=T)
    m.handle(TxInput.TU_REQUEST, 0.0)
    assert ops(m.handle(TxInput.RECV_3XX_6XX, 1.0)) == [Op.SEND_ACK, Op.PASS_TO_TU, Op.TERMINATE]
    assert m.terminated


def test_invite_client_accepted_absorbs_2xx_to_tu_until_m() -> None:
    m = InviteClientMachine(reliable=False, timers=T)
    m.handle(TxInput.TU_REQUEST, 0.0)
    assert ops(m.handle(TxInput.RECV_2XX, 0.2)) == [Op.PASS_TO_TU]
    assert m.state is TxState.ACCEPTED
    assert m.deadlines == {Timer.M: 32.2}
    # RFC 6026 §7.2: 2xx retransmissions (or forks) go to the TU; the machine stays Accepted.
    assert ops(m.handle(TxInput.RECV_2XX, 1.0)) == [Op.PASS_TO_TU]
    with pytest.raises(TransactionError):
        m.handle(TxInput.RECV_3XX_6XX, 2.0)
    assert m.state is TxState.ACCEPTED
    assert ops(m.fire_due(32.2)) == [Op.TERMINATE]


def test_invite_client_transport_error() -> None:
    m = InviteClientMachine(reliable=True, timers=T)
    m.handle(TxInput.TU_REQUEST, 0.0)
    assert ops(m.handle(TxInput.TRANSPORT_ERROR, 0.0)) == [
        Op.INFORM_TRANSPORT_ERROR, Op.TERMINATE]
    with pytest.raises(TransactionError):
        m.handle(TxInput.RECV_2XX, 1.0)


# -- non-INVITE client (§17.1.2) -----------------------------------------------------------------


def test_non_invite_client_timer_e_capped_at_t2_then_f_timeout() -> None:
    m = NonInviteClientMachine(reliable=False, timers=T)
    assert ops(m.handle(TxInput.TU_REQUEST, 0.0)) == [Op.SEND_REQUEST]
    # Intervals 0.5, 1, 2, 4, 4, 4 ... (MIN(2*E, T2)).
    times = retransmit_times(m, Timer.E, until=31.99)
    assert times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert all(b - a == pytest.approx(4.0) for a, b in zip(times[3:], times[4:], strict=False))
    assert ops(m.fire_due(32.0)) == [Op.INFORM_TIMEOUT, Op.TERMINATE]


def test_non_invite_client_proceeding_resets_e_to_t2() -> None:
    m = NonInviteClientMachine(reliable=False, timers=T)
    m.handle(TxInput.TU_REQUEST, 0.0)
    assert ops(m.handle(TxInput.RECV_1XX, 0.1)) == [Op.PASS_TO_TU]
    assert m.state is TxState.PROCEEDING
    assert m.deadlines[Timer.E] == 0.5  # E keeps running
    assert ops(m.fire_due(0.5)) == [Op.RETRANSMIT_REQUEST]
    assert m.deadlines[Timer.E] == 4.5  # reset to T2 in Proceeding
    assert ops(m.fire_due(4.5)) == [Op.RETRANSMIT_REQUEST]
    assert m.deadlines[Timer.E] == 8.5
    assert ops(m.handle(TxInput.RECV_2XX, 5.0)) == [Op.PASS_TO_TU]
    assert m.state is TxState.COMPLETED
    assert m.deadlines == {Timer.K: 10.0}  # T4
    # Completed absorbs retransmitted responses.
    assert m.handle(TxInput.RECV_2XX, 6.0) == []
    assert m.handle(TxInput.RECV_1XX, 6.0) == []
    assert ops(m.fire_due(10.0)) == [Op.TERMINATE]


def test_non_invite_client_proceeding_timeout() -> None:
    m = NonInviteClientMachine(reliable=False, timers=T)
    m.handle(TxInput.TU_REQUEST, 0.0)
    m.handle(TxInput.RECV_1XX, 0.1)
    effects = m.fire_due(40.0)
    assert ops(effects)[-2:] == [Op.INFORM_TIMEOUT, Op.TERMINATE]


def test_non_invite_client_reliable_final_terminates_at_once() -> None:
    m = NonInviteClientMachine(reliable=True, timers=T)
    m.handle(TxInput.TU_REQUEST, 0.0)
    assert m.deadlines == {Timer.F: 32.0}
    assert ops(m.handle(TxInput.RECV_3XX_6XX, 0.1)) == [Op.PASS_TO_TU, Op.TERMINATE]


# -- INVITE server (§17.2.1 + RFC 6026 §7.1) -----------------------------------------------------


def test_invite_server_100_trying_after_200ms() -> None:
    m = InviteServerMachine(reliable=False, timers=T)
    assert ops(m.handle(TxInput.RECV_REQUEST, 0.0)) == [Op.PASS_TO_TU]
    assert m.state is TxState.PROCEEDING
    assert m.deadlines == {Timer.TRYING: 0.2}
    assert m.fire_due(0.19) == []
    assert ops(m.fire_due(0.2)) == [Op.SEND_TRYING]
    assert ops(m.handle(TxInput.RECV_RETRANSMISSION, 0.5)) == [Op.RETRANSMIT_RESPONSE]


def test_invite_server_tu_answers_fast_no_trying() -> None:
    m = InviteServerMachine(reliable=False, timers=T)
    m.handle(TxInput.RECV_REQUEST, 0.0)
    assert ops(m.handle(TxInput.TU_1XX, 0.1)) == [Op.SEND_RESPONSE]
    assert m.next_deadline() is None


def test_invite_server_non2xx_g_backoff_h_timeout() -> None:
    m = InviteServerMachine(reliable=False, timers=T)
    m.handle(TxInput.RECV_REQUEST, 0.0)
    assert ops(m.handle(TxInput.TU_3XX_6XX, 0.1)) == [Op.SEND_RESPONSE]
    assert m.state is TxState.COMPLETED
    assert m.deadlines == {Timer.G: 0.6, Timer.H: 32.1}
    times = retransmit_times(m, Timer.G, until=32.0)
    assert times[:5] == [0.6, 1.6, 3.6, 7.6, 11.6]  # G = MIN(2G, T2)
    assert ops(m.handle(TxInput.RECV_RETRANSMISSION, 20.0)) == [Op.RETRANSMIT_RESPONSE]
    assert ops(m.fire_due(32.1)) == [Op.INFORM_TIMEOUT, Op.TERMINATE]


def test_invite_server_ack_confirmed_then_i() -> None:
    m = InviteServerMachine(reliable=False, timers=T)
    m.handle(TxInput.RECV_REQUEST, 0.0)
    m.handle(TxInput.TU_3XX_6XX, 0.0)
    assert m.handle(TxInput.RECV_ACK, 0.3) == []  # absorbed, not to the TU
    assert m.state is TxState.CONFIRMED
    assert m.deadlines == {Timer.I: 5.3}
    assert m.handle(TxInput.RECV_ACK, 1.0) == []
    with pytest.raises(TransactionError):
        m.handle(TxInput.RECV_RETRANSMISSION, 1.0)
    assert ops(m.fire_due(5.3)) == [Op.TERMINATE]


def test_invite_server_reliable_ack_terminates_at_once() -> None:
    m = InviteServerMachine(reliable=True, timers=T)
    m.handle(TxInput.RECV_REQUEST, 0.0)
    m.handle(TxInput.TU_3XX_6XX, 0.0)
    assert m.deadlines == {Timer.H: 32.0}  # no G on reliable transports
    assert ops(m.handle(TxInput.RECV_ACK, 0.1)) == [Op.TERMINATE]


def test_invite_server_accepted_rfc6026() -> None:
    m = InviteServerMachine(reliable=False, timers=T)
    m.handle(TxInput.RECV_REQUEST, 0.0)
    assert ops(m.handle(TxInput.TU_2XX, 0.1)) == [Op.SEND_RESPONSE]
    assert m.state is TxState.ACCEPTED
    assert m.deadlines == {Timer.L: 32.1}
    assert m.handle(TxInput.RECV_RETRANSMISSION, 0.6) == []  # absorbed
    assert ops(m.handle(TxInput.TU_2XX, 0.6)) == [Op.SEND_RESPONSE]  # TU retransmits 2xx
    assert ops(m.handle(TxInput.RECV_ACK, 0.7)) == [Op.PASS_TO_TU]
    assert ops(m.handle(TxInput.TRANSPORT_ERROR, 0.8)) == [Op.INFORM_TRANSPORT_ERROR]
    with pytest.raises(LocalProtocolError):
        m.handle(TxInput.TU_3XX_6XX, 1.0)
    assert ops(m.fire_due(32.1)) == [Op.TERMINATE]


# -- non-INVITE server (§17.2.2) -----------------------------------------------------------------


def test_non_invite_server_paths() -> None:
    m = NonInviteServerMachine(reliable=False, timers=T)
    assert ops(m.handle(TxInput.RECV_REQUEST, 0.0)) == [Op.PASS_TO_TU]
    assert m.state is TxState.TRYING
    assert m.handle(TxInput.RECV_RETRANSMISSION, 0.5) == []  # discarded in Trying
    assert ops(m.handle(TxInput.TU_1XX, 0.6)) == [Op.SEND_RESPONSE]
    assert m.state is TxState.PROCEEDING
    assert ops(m.handle(TxInput.RECV_RETRANSMISSION, 1.0)) == [Op.RETRANSMIT_RESPONSE]
    assert ops(m.handle(TxInput.TU_2XX, 1.1)) == [Op.SEND_RESPONSE]
    assert m.state is TxState.COMPLETED
    assert m.deadlines == {Timer.J: 33.1}
    assert ops(m.handle(TxInput.RECV_RETRANSMISSION, 2.0)) == [Op.RETRANSMIT_RESPONSE]
    with pytest.raises(LocalProtocolError):  # §17.2.2: other finals are not sent
        m.handle(TxInput.TU_3XX_6XX, 2.0)
    assert m.fire_due(33.0) == []
    assert ops(m.fire_due(33.1)) == [Op.TERMINATE]


def test_non_invite_server_reliable_j_zero() -> None:
    m = NonInviteServerMachine(reliable=True, timers=T)
    m.handle(TxInput.RECV_REQUEST, 0.0)
    assert ops(m.handle(TxInput.TU_3XX_6XX, 0.1)) == [Op.SEND_RESPONSE, Op.TERMINATE]


def test_non_invite_server_transport_error() -> None:
    m = NonInviteServerMachine(reliable=False, timers=T)
    m.handle(TxInput.RECV_REQUEST, 0.0)
    m.handle(TxInput.TU_2XX, 0.0)
    assert ops(m.handle(TxInput.TRANSPORT_ERROR, 0.1)) == [
        Op.INFORM_TRANSPORT_ERROR, Op.TERMINATE]
    assert m.next_deadline() is None


def test_errors_are_typed_and_state_is_kept() -> None:
    m = NonInviteServerMachine(reliable=False, timers=T)
    with pytest.raises(LocalProtocolError):
        m.handle(TxInput.TU_2XX, 0.0)  # nothing received yet
    with pytest.raises(TransactionError) as info:
        m.handle(TxInput.RECV_ACK, 0.0)
    assert info.value.status == 481
    assert m.state is TxState.INITIAL


# -- property: random inputs follow the table or raise the typed error ---------------------------


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(list(TxKind)),
    reliable=st.booleans(),
    steps=st.lists(
        st.tuples(st.sampled_from(list(TxInput)), st.floats(min_value=0.0, max_value=40.0)),
        max_size=30,
    ),
)
def test_random_inputs_follow_table_or_raise_typed_error(
    kind: TxKind, reliable: bool, steps: list[tuple[TxInput, float]]
) -> None:
    m = machine_for(kind, reliable=reliable, timers=T)
    table = TABLES[kind]
    now = 0.0
    for inp, dt in steps:
        now += dt
        before = m.state
        running = set(m.deadlines)
        row = table.get((before, inp))
        timer = next((t for t, i in TIMER_INPUTS.items() if i is inp), None)
        try:
            effects = m.handle(inp, now)
        except LocalProtocolError:
            assert row is None and inp in TU_INPUTS
            assert m.state is before
            continue
        except TransactionError:
            assert row is None or (timer is not None and timer not in running)
            assert m.state is before
            continue
        assert row is not None
        if timer is not None:
            assert timer in running
        expected = [a for a in row.actions if a.op in {
            Op.SEND_REQUEST, Op.RETRANSMIT_REQUEST, Op.SEND_ACK, Op.SEND_RESPONSE,
            Op.RETRANSMIT_RESPONSE, Op.SEND_TRYING, Op.PASS_TO_TU, Op.INFORM_TIMEOUT,
            Op.INFORM_TRANSPORT_ERROR, Op.TERMINATE}]
        assert effects[: len(expected)] == expected
        if m.state is not row.new_state:
            # Only a zero-valued timer (reliable transport) may move the machine further.
            assert reliable and m.state is TxState.TERMINATED
        if m.terminated:
            assert m.next_deadline() is None
        # fire_due never raises either.
        m.fire_due(now)


def test_compiled_steps_are_the_tables() -> None:
    """The machines run a compiled form of the tables (ints for timers, timer ops split from
    effects) generated at import: it must say exactly what the tables say, row by row."""
    from types import MappingProxyType

    from simpleim.sip import transaction as tx

    assert set(tx._MACHINES) == set(TABLES)
    for kind, table in TABLES.items():
        assert isinstance(table, MappingProxyType)
        steps = tx._MACHINES[kind]._STEPS
        assert isinstance(steps, MappingProxyType)
        assert set(steps) == set(table), kind
        for key, row in table.items():
            new_state, effects, timer_ops, hist, expiry = steps[key]
            assert new_state is row.new_state
            timer_actions = [a for a in row.actions if a.op in tx.TIMER_OPS]
            assert list(effects) == [a for a in row.actions if a.op not in tx.TIMER_OPS]
            codes = {v: k for k, v in tx._TIMER_CODES.items()}
            assert [Action(codes[c], tx._TIMER_LIST[t]) for c, t in timer_ops] == timer_actions
            state, inp = key
            assert [ord(c) for c in hist] == [tx._STATE_LIST.index(state),
                                              tx._INPUT_LIST.index(inp),
                                              tx._STATE_LIST.index(row.new_state)]
            timer = tx.INPUT_TIMERS.get(inp)
            assert (expiry is None) == (timer is None)
            assert timer is None or tx._TIMER_LIST[expiry] is timer  # type: ignore[index]
