"""The four SIP transaction state machines (RFC 3261 §17, updated by RFC 6026).

Each machine is an explicit transition table ``(state, input) -> Row(new_state, actions,
cite)``.  Anything that is not in the table is a protocol error: an input coming from the
network or from a timer raises :class:`~simpleim.errors.TransactionError`, an input coming from
our own transaction user (TU) raises :class:`~simpleim.errors.LocalProtocolError`.  Each row
names the RFC section it implements (``Row.cite``) and ``tests`` check that every row does.

The machines know nothing about messages, sockets or clocks: they take an input and the
current time ``now`` and return the *effects* the transaction layer must perform (send the
request, retransmit the last response, pass a message to the TU, inform the TU of a timeout...).
Timer actions (start / back off / cancel) are applied inside the machine, which keeps one
deadline per running timer; :meth:`TransactionMachine.next_deadline` and
:meth:`TransactionMachine.fire_due` let the caller drive time.

Reliable vs unreliable transport (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2): the
retransmission timers A, E and G are only started on unreliable transports; the wait timers D,
I, J and K are zero on reliable transports, in which case the machine fires them at once
(the transaction moves straight to Terminated).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar, Final

from simpleim.errors import LocalProtocolError, TransactionError
from simpleim.sip.transaction_tables import (
    INPUT_TIMERS,
    INVITE_CLIENT_TABLE,
    INVITE_SERVER_TABLE,
    NON_INVITE_CLIENT_TABLE,
    NON_INVITE_SERVER_TABLE,
    TABLES,
    TIMER_INPUTS,
    TIMER_OPS,
    TRYING_DELAY,
    TU_INPUTS,
    Action,
    Op,
    Row,
    Timer,
    TransitionTable,
    TxInput,
    TxKind,
    TxState,
    response_input,
)
from simpleim.timers import DEFAULT_TIMERS, Timers

__all__ = [
    "TxKind",
    "TxState",
    "TxInput",
    "Timer",
    "Op",
    "Action",
    "Row",
    "TransitionTable",
    "TRYING_DELAY",
    "INVITE_CLIENT_TABLE",
    "NON_INVITE_CLIENT_TABLE",
    "INVITE_SERVER_TABLE",
    "NON_INVITE_SERVER_TABLE",
    "TABLES",
    "TU_INPUTS",
    "PARKABLE_KINDS",
    "PARKED_TIMER",
    "PARKED_TIMER_INPUT",
    "completed_step",
    "TIMER_INPUTS",
    "TransactionMachine",
    "InviteClientMachine",
    "NonInviteClientMachine",
    "InviteServerMachine",
    "NonInviteServerMachine",
    "machine_for",
    "response_input",
]

# -- compiled form of the tables (same rows, split for the hot path) ------------------------------
# Internally timers, states and inputs are small integers (their definition order): the
# per-transaction dicts then hold only ints and floats, which the cyclic garbage collector
# does not track (a busy proxy keeps tens of thousands of transactions alive).
_TIMER_LIST: Final = tuple(Timer)
_TIMER_INDEX: Final[Mapping[Timer, int]] = MappingProxyType(
    {t: i for i, t in enumerate(_TIMER_LIST)})
_TIMER_VALUES: Final = tuple(t.value for t in _TIMER_LIST)
_TIMER_A: Final = _TIMER_INDEX[Timer.A]
_STATE_LIST: Final = tuple(TxState)
_INPUT_LIST: Final = tuple(TxInput)
_STATE_INDEX: Final[Mapping[TxState, int]] = MappingProxyType(
    {st: i for i, st in enumerate(_STATE_LIST)})
_INPUT_INDEX: Final[Mapping[TxInput, int]] = MappingProxyType(
    {inp: i for i, inp in enumerate(_INPUT_LIST)})
# the input that is the expiry of each timer, by timer index
_TIMER_INPUT_BY_INDEX: Final = tuple(TIMER_INPUTS[t] for t in _TIMER_LIST)

# Timer op codes: a transition's timer actions become (code, timer index) pairs, in order.
_CANCEL, _START, _BACKOFF, _RESET_T2 = 0, 1, 2, 3
_TIMER_CODES: Final[Mapping[Op, int]] = MappingProxyType({
    Op.CANCEL_TIMER: _CANCEL, Op.START_TIMER: _START, Op.BACKOFF_TIMER: _BACKOFF,
    Op.RESET_TIMER_T2: _RESET_T2,
})
_TERMINATED: Final = TxState.TERMINATED
# (new state, effects (non-timer actions, in order), timer ops (code, timer index) in order,
#  the step as recorded in the history: three characters (state, input, new state),
#  the index of the timer whose expiry the input is, or None)
_Step = tuple[TxState, tuple[Action, ...], tuple[tuple[int, int], ...], str, int | None]


def _compile(table: TransitionTable) -> Mapping[tuple[TxState, TxInput], _Step]:
    """Split every row of ``table`` into its effects and its timer operations (both kept in
    the row's order).  The table stays the one reference (it carries the citations); this
    form is generated from it at import and checked against it by
    tests/test_sip_transaction.py::test_compiled_steps_are_the_tables."""
    steps: dict[tuple[TxState, TxInput], _Step] = {}
    for (state, inp), row in table.items():
        effects = tuple(a for a in row.actions if a.op not in TIMER_OPS)
        timer_ops: list[tuple[int, int]] = []
        for a in row.actions:
            if a.op in TIMER_OPS:
                if a.timer is None:
                    raise LocalProtocolError(f"timer op {a.op.value} without a timer")
                timer_ops.append((_TIMER_CODES[a.op], _TIMER_INDEX[a.timer]))
        hist = (chr(_STATE_INDEX[state]) + chr(_INPUT_INDEX[inp])
                + chr(_STATE_INDEX[row.new_state]))
        expiry = INPUT_TIMERS.get(inp)
        steps[(state, inp)] = (row.new_state, effects, tuple(timer_ops), hist,
                               None if expiry is None else _TIMER_INDEX[expiry])
    return MappingProxyType(steps)


# How many steps TransactionMachine.history keeps.
_HISTORY: Final = 32

_DURATIONS: dict[tuple[int, bool, float], tuple[Timers, tuple[float | None, ...]]] = {}


def _durations(timers: Timers, reliable: bool, trying_delay: float) -> tuple[float | None, ...]:
    """Start values of every timer (by timer index) for a timer set and transport kind
    (cached: built once, not on every timer start); ``None`` when the timer is not used on
    this transport."""
    key = (id(timers), reliable, trying_delay)
    hit = _DURATIONS.get(key)
    if hit is not None and hit[0] is timers:
        return hit[1]
    t = timers
    unreliable = not reliable
    durations: dict[Timer, float | None] = {
        # §17.1.1.2 / §17.1.2.2 / §17.2.1: A, E, G start at T1, unreliable transports only.
        Timer.A: t.t1 if unreliable else None,
        Timer.E: t.t1 if unreliable else None,
        Timer.G: t.t1 if unreliable else None,
        Timer.B: t.timer_b,  # §17.1.1.2: 64*T1
        Timer.F: t.timer_f,  # §17.1.2.2: 64*T1
        Timer.H: t.timer_h,  # §17.2.1: 64*T1
        Timer.L: t.timer_l,  # RFC 6026 §8.7: 64*T1
        Timer.M: t.timer_m,  # RFC 6026 §8.4: 64*T1
        # §17.1.1.2: D > 32 s for unreliable, zero for reliable transports.
        Timer.D: t.timer_d_unreliable if unreliable else 0.0,
        # §17.1.2.2 / §17.2.1: K and I are T4 for unreliable, zero for reliable.
        Timer.K: t.t4 if unreliable else 0.0,
        Timer.I: t.t4 if unreliable else 0.0,
        # §17.2.2: J is 64*T1 for unreliable, zero for reliable.
        Timer.J: t.timer_j_unreliable if unreliable else 0.0,
        Timer.TRYING: trying_delay,  # §17.2.1: 200 ms
    }
    by_index = tuple(durations[timer] for timer in _TIMER_LIST)
    if len(_DURATIONS) > 256:
        _DURATIONS.clear()
    _DURATIONS[key] = (timers, by_index)
    return by_index


class TransactionMachine:
    """One transaction's state and timers, driven by :meth:`handle` and :meth:`fire_due`.

    :meth:`handle` returns the *effects* for the caller to perform, in order: every action
    of the applied rows except the timer ops (``SEND_REQUEST``, ``SEND_ACK``,
    ``PASS_TO_TU``, ``INFORM_TIMEOUT``, ``TERMINATE`` ...).
    """

    KIND: ClassVar[TxKind]
    TABLE: ClassVar[TransitionTable]

    # Tens of thousands live at once on a busy proxy (Timer J keeps each non-INVITE server
    # transaction for 64*T1): no per-instance __dict__.
    __slots__ = ("reliable", "timers", "trying_delay", "state", "_durations", "_deadlines",
                 "_intervals", "_history")

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "TABLE" in cls.__dict__:
            cls._STEPS = _compile(cls.TABLE)

    _STEPS: ClassVar[Mapping[tuple[TxState, TxInput], _Step]] = MappingProxyType({})

    def __init__(
        self,
        *,
        reliable: bool,
        timers: Timers = DEFAULT_TIMERS,
        trying_delay: float = TRYING_DELAY,
    ) -> None:
        self.reliable = reliable
        self.timers = timers
        self.trying_delay = trying_delay
        self.state = TxState.INITIAL
        self._durations = _durations(timers, reliable, trying_delay)
        # running timers: timer index -> absolute deadline; current interval per timer
        self._deadlines: dict[int, float] = {}
        self._intervals: dict[int, float] = {}
        # the steps taken, three characters each (see history)
        self._history = ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state.value} timers={self.deadlines}>"

    @property
    def history(self) -> list[tuple[TxState, TxInput, TxState]]:
        """The last steps the machine took (at most 32), as (state, input, new state), for
        debugging."""
        h = self._history
        return [(_STATE_LIST[ord(h[i])], _INPUT_LIST[ord(h[i + 1])], _STATE_LIST[ord(h[i + 2])])
                for i in range(0, len(h), 3)]

    # -- timers ---------------------------------------------------------------------------

    @property
    def deadlines(self) -> dict[Timer, float]:
        """A copy of the running timers and their absolute deadlines."""
        return {_TIMER_LIST[i]: d for i, d in self._deadlines.items()}

    def interval(self, timer: Timer) -> float | None:
        """The current interval of a running timer (the retransmit interval for A/E/G)."""
        i = _TIMER_INDEX[timer]
        return self._intervals.get(i) if i in self._deadlines else None

    def next_deadline(self) -> float | None:
        deadlines = self._deadlines
        if not deadlines:
            return None
        return min(deadlines.values())

    def sole_deadline(self, timer: Timer) -> float | None:
        """The deadline of ``timer`` when it is the only running timer, else ``None``."""
        deadlines = self._deadlines
        if len(deadlines) != 1:
            return None
        return deadlines.get(_TIMER_INDEX[timer])

    def _initial_duration(self, timer: Timer) -> float | None:
        """Start value of ``timer``; ``None`` when it is not used on this transport
        (precomputed once per timer set and transport kind, see :func:`_durations`)."""
        return self._durations[_TIMER_INDEX[timer]]

    def _apply_timer(self, action: Action, now: float, zero: list[Timer]) -> None:
        timer = action.timer
        if timer is None:  # pragma: no cover - the tables always name the timer
            raise LocalProtocolError(f"timer op {action.op.value} without a timer")
        fired: list[int] = []
        self._timer_step(_TIMER_CODES[action.op], _TIMER_INDEX[timer], now, fired)
        zero.extend(_TIMER_LIST[i] for i in fired)

    def _timer_step(self, code: int, timer: int, now: float, zero: list[int]) -> None:
        if code == _CANCEL:
            self._deadlines.pop(timer, None)
            return
        if code == _START:
            duration = self._durations[timer]
            if duration is None:
                return
        elif code == _RESET_T2:
            # §17.1.2.2: timer E in Proceeding is reset to T2.
            duration = self.timers.t2
        else:  # _BACKOFF
            previous = self._intervals.get(timer, self.timers.t1)
            if timer == _TIMER_A:
                # §17.1.1.2: A doubles each time (T1, 2*T1, 4*T1, ...); B bounds it.
                duration = 2 * previous
            else:
                # §17.1.2.2 (E) / §17.2.1 (G): MIN(2*previous, T2).
                duration = min(2 * previous, self.timers.t2)
        self._intervals[timer] = duration
        if duration <= 0:
            zero.append(timer)
            self._deadlines.pop(timer, None)
        else:
            self._deadlines[timer] = now + duration

    # -- inputs -----------------------------------------------------------------------------

    def row_for(self, inp: TxInput) -> Row:
        """The row for ``inp`` in the current state, or the typed error."""
        row = self.TABLE.get((self.state, inp))
        if row is None:
            text = f"{self.KIND.value} transaction: {inp.value} in state {self.state.value}"
            if inp in TU_INPUTS:
                raise LocalProtocolError(text, where=self.state.value)
            raise TransactionError(text, where=self.state.value)
        return row

    def handle(self, inp: TxInput, now: float) -> list[Action]:
        """Apply ``inp`` at time ``now``; return the effects, in order.

        A timer input is only accepted while that timer runs (use :meth:`fire_due` to let
        the machine pick expired timers).
        """
        deadlines = self._deadlines
        old = self.state
        step = self._STEPS.get((old, inp))
        if step is None:
            self.row_for(inp)  # raises the typed error
            raise TransactionError(f"no transition for {inp.value}", where=old.value)
        new_state, effects, timer_ops, hist, timer = step
        if timer is not None:
            if timer not in deadlines:
                raise TransactionError(f"timer {_TIMER_VALUES[timer]} is not running",
                                       where=old.value)
            del deadlines[timer]
        self.state = new_state
        history = self._history + hist
        self._history = history if len(history) <= 3 * _HISTORY else history[3:]
        zero: list[int] = []
        for code, t in timer_ops:
            self._timer_step(code, t, now, zero)
        out = list(effects)
        if new_state is _TERMINATED:
            deadlines.clear()
            return out
        # Zero-valued timers (D, I, J, K on reliable transports) fire at once: the RFC says
        # the transaction then moves "immediately" to Terminated.
        for t in zero:
            deadlines[t] = now
            out.extend(self.handle(_TIMER_INPUT_BY_INDEX[t], now))
        return out

    def fire_due(self, now: float) -> list[Action]:
        """Fire every timer whose deadline is ``<= now`` (earliest first)."""
        effects: list[Action] = []
        while self.state is not _TERMINATED:
            due = [(d, _TIMER_VALUES[i], i) for i, d in self._deadlines.items() if d <= now]
            if not due:
                break
            _, _, timer = min(due) if len(due) > 1 else due[0]
            effects.extend(self.handle(_TIMER_INPUT_BY_INDEX[timer], now))
        return effects

    @property
    def terminated(self) -> bool:
        return self.state is TxState.TERMINATED


class InviteClientMachine(TransactionMachine):
    """RFC 3261 §17.1.1 + RFC 6026 §7.2 (Calling/Proceeding/Completed/Accepted)."""

    __slots__ = ()
    KIND = TxKind.INVITE_CLIENT
    TABLE = INVITE_CLIENT_TABLE


class NonInviteClientMachine(TransactionMachine):
    """RFC 3261 §17.1.2 (Trying/Proceeding/Completed)."""

    __slots__ = ()
    KIND = TxKind.NON_INVITE_CLIENT
    TABLE = NON_INVITE_CLIENT_TABLE


class InviteServerMachine(TransactionMachine):
    """RFC 3261 §17.2.1 + RFC 6026 §7.1 (Proceeding/Completed/Confirmed/Accepted)."""

    __slots__ = ()
    KIND = TxKind.INVITE_SERVER
    TABLE = INVITE_SERVER_TABLE


class NonInviteServerMachine(TransactionMachine):
    """RFC 3261 §17.2.2 (Trying/Proceeding/Completed)."""

    __slots__ = ()
    KIND = TxKind.NON_INVITE_SERVER
    TABLE = NON_INVITE_SERVER_TABLE


_MACHINES: Final[Mapping[TxKind, type[TransactionMachine]]] = MappingProxyType({
    TxKind.INVITE_CLIENT: InviteClientMachine,
    TxKind.NON_INVITE_CLIENT: NonInviteClientMachine,
    TxKind.INVITE_SERVER: InviteServerMachine,
    TxKind.NON_INVITE_SERVER: NonInviteServerMachine,
})


def machine_for(
    kind: TxKind,
    *,
    reliable: bool,
    timers: Timers = DEFAULT_TIMERS,
    trying_delay: float = TRYING_DELAY,
) -> TransactionMachine:
    """A fresh machine of ``kind`` in state ``INITIAL``."""
    return _MACHINES[kind](reliable=reliable, timers=timers, trying_delay=trying_delay)


# -- Completed non-INVITE transactions, kept as compact records --------------------------------
#
# A non-INVITE transaction in Completed over an unreliable transport only waits for Timer J
# (server, 64*T1 = 32 s, §17.2.2) or K (client, T4 = 5 s, §17.1.2.2), absorbing or answering
# retransmissions meanwhile.  A busy proxy holds tens of thousands of them: the transaction
# layer then drops the machine and keeps a compact record (key, last response bytes,
# deadline); inputs for such a record are still decided by the rows of the tables above,
# looked up here.  Only rows that stay in Completed without timer changes, or end the
# transaction, can be applied to a record (checked below at import time).

PARKABLE_KINDS: Final = frozenset({TxKind.NON_INVITE_SERVER, TxKind.NON_INVITE_CLIENT})
# the timer a record waits for, per kind
PARKED_TIMER: Final[Mapping[TxKind, Timer]] = MappingProxyType({
    TxKind.NON_INVITE_SERVER: Timer.J,
    TxKind.NON_INVITE_CLIENT: Timer.K,
})
PARKED_TIMER_INPUT: Final[Mapping[TxKind, TxInput]] = MappingProxyType({
    TxKind.NON_INVITE_SERVER: TxInput.TIMER_J,
    TxKind.NON_INVITE_CLIENT: TxInput.TIMER_K,
})
# the effects a record can perform (anything else needs the full machine)
PARKED_OPS: Final = frozenset({
    Op.RETRANSMIT_RESPONSE, Op.TERMINATE, Op.INFORM_TRANSPORT_ERROR})


def completed_step(kind: TxKind, inp: TxInput) -> tuple[TxState, tuple[Action, ...]]:
    """The row for ``inp`` in state Completed of a non-INVITE ``kind``, as (new state,
    effects) -- the effects without the timer operations, in row order.  Raises the same
    typed errors as :meth:`TransactionMachine.row_for` when the table has no such row."""
    step = _MACHINES[kind]._STEPS.get((TxState.COMPLETED, inp))
    if step is None:
        text = f"{kind.value} transaction: {inp.value} in state {TxState.COMPLETED.value}"
        if inp in TU_INPUTS:
            raise LocalProtocolError(text, where=TxState.COMPLETED.value)
        raise TransactionError(text, where=TxState.COMPLETED.value)
    return step[0], step[1]


def _check_parkable() -> None:
    for kind in PARKABLE_KINDS:
        for (state, _inp), (new_state, effects, timer_ops, _h, _t) in \
                _MACHINES[kind]._STEPS.items():
            if state is not TxState.COMPLETED:
                continue
            staying = new_state is TxState.COMPLETED and not timer_ops
            ending = new_state is TxState.TERMINATED
            if not (staying or ending) or any(a.op not in PARKED_OPS for a in effects):
                raise LocalProtocolError(  # pragma: no cover - a table edit broke the records
                    f"{kind.value} Completed row for {_inp.value} cannot apply to a record")


_check_parkable()
