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

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Final

from simpleim.errors import LocalProtocolError, TransactionError
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

# RFC 3261 §17.2.1: the INVITE server transaction MUST send 100 (Trying) unless the TU answers
# within 200 ms.
TRYING_DELAY: Final = 0.2


class TxKind(enum.Enum):
    """Which of the four machines (RFC 3261 §17.1.1, §17.1.2, §17.2.1, §17.2.2)."""

    INVITE_CLIENT = "invite-client"
    NON_INVITE_CLIENT = "non-invite-client"
    INVITE_SERVER = "invite-server"
    NON_INVITE_SERVER = "non-invite-server"

    # Members are singletons compared by identity: hash them by identity too (C-level;
    # Enum.__hash__ is Python code and these are hashed on every transition).
    __hash__ = object.__hash__

    @property
    def is_client(self) -> bool:
        return self in (TxKind.INVITE_CLIENT, TxKind.NON_INVITE_CLIENT)

    @property
    def is_invite(self) -> bool:
        return self in (TxKind.INVITE_CLIENT, TxKind.INVITE_SERVER)


class TxState(enum.Enum):
    """Transaction states.  ``INITIAL`` is the state before the creating input is handled."""

    INITIAL = "initial"
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"  # RFC 6026 §7.1 / §7.2
    TERMINATED = "terminated"

    # Members are singletons compared by identity: hash them by identity too (C-level;
    # Enum.__hash__ is Python code and these are hashed on every transition).
    __hash__ = object.__hash__


class Timer(enum.Enum):
    """RFC 3261 Table 4 timers, RFC 6026 Timers L/M, and the 200 ms 100-Trying timer."""

    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 - the RFC's name
    J = "J"
    K = "K"
    L = "L"
    M = "M"
    TRYING = "100"

    # Members are singletons compared by identity: hash them by identity too (C-level;
    # Enum.__hash__ is Python code and these are hashed on every transition).
    __hash__ = object.__hash__


class TxInput(enum.Enum):
    """What can happen to a transaction."""

    TU_REQUEST = "request from TU"  # client: the TU starts the transaction
    RECV_REQUEST = "request received"  # server: the request that creates the transaction
    RECV_RETRANSMISSION = "request retransmission received"
    RECV_ACK = "ACK received"
    RECV_1XX = "1xx received"
    RECV_2XX = "2xx received"
    RECV_3XX_6XX = "300-699 received"
    TU_1XX = "1xx from TU"
    TU_2XX = "2xx from TU"
    TU_3XX_6XX = "300-699 from TU"
    TRANSPORT_ERROR = "transport error"
    TIMER_A = "timer A fired"
    TIMER_B = "timer B fired"
    TIMER_D = "timer D fired"
    TIMER_E = "timer E fired"
    TIMER_F = "timer F fired"
    TIMER_G = "timer G fired"
    TIMER_H = "timer H fired"
    TIMER_I = "timer I fired"
    TIMER_J = "timer J fired"
    TIMER_K = "timer K fired"
    TIMER_L = "timer L fired"
    TIMER_M = "timer M fired"
    TIMER_TRYING = "200 ms without a TU response"

    # Members are singletons compared by identity: hash them by identity too (C-level;
    # Enum.__hash__ is Python code and these are hashed on every transition).
    __hash__ = object.__hash__


TIMER_INPUTS: Final[Mapping[Timer, TxInput]] = MappingProxyType(
    {timer: TxInput[f"TIMER_{timer.name}"] for timer in Timer}
)
_INPUT_TIMERS: Final[Mapping[TxInput, Timer]] = MappingProxyType(
    {inp: timer for timer, inp in TIMER_INPUTS.items()}
)
TU_INPUTS: Final = frozenset(
    {TxInput.TU_REQUEST, TxInput.TU_1XX, TxInput.TU_2XX, TxInput.TU_3XX_6XX}
)


class Op(enum.Enum):
    """What a transition asks for.  Timer ops are applied by the machine itself."""

    SEND_REQUEST = "send request"
    RETRANSMIT_REQUEST = "retransmit request"
    SEND_ACK = "send ACK"  # INVITE client, ACK for a non-2xx final (RFC 3261 §17.1.1.3)
    SEND_RESPONSE = "send response from TU"
    RETRANSMIT_RESPONSE = "retransmit last response"
    SEND_TRYING = "send 100 Trying"
    PASS_TO_TU = "pass to TU"
    START_TIMER = "start timer"
    BACKOFF_TIMER = "back off timer"  # A: 2x; E, G: min(2x, T2)
    RESET_TIMER_T2 = "reset timer to T2"
    CANCEL_TIMER = "cancel timer"
    INFORM_TIMEOUT = "inform TU: timeout (408)"
    INFORM_TRANSPORT_ERROR = "inform TU: transport error (503)"
    TERMINATE = "terminate"

    # Members are singletons compared by identity: hash them by identity too (C-level;
    # Enum.__hash__ is Python code and these are hashed on every transition).
    __hash__ = object.__hash__


_TIMER_OPS: Final = frozenset(
    {Op.START_TIMER, Op.BACKOFF_TIMER, Op.RESET_TIMER_T2, Op.CANCEL_TIMER}
)


@dataclass(frozen=True, slots=True)
class Action:
    """One action of a transition; ``timer`` is set for timer ops."""

    op: Op
    timer: Timer | None = None

    def __str__(self) -> str:
        return f"{self.op.value} {self.timer.value}" if self.timer else self.op.value


@dataclass(frozen=True, slots=True)
class Row:
    """The outcome of one ``(state, input)``: new state, actions in order, RFC citation."""

    new_state: TxState
    actions: tuple[Action, ...]
    cite: str


TransitionTable = Mapping[tuple[TxState, TxInput], Row]

# Short names to keep the tables readable.
_S = TxState
_I = TxInput
SEND = Action(Op.SEND_REQUEST)
RESEND = Action(Op.RETRANSMIT_REQUEST)
ACK = Action(Op.SEND_ACK)
RESPOND = Action(Op.SEND_RESPONSE)
RERESPOND = Action(Op.RETRANSMIT_RESPONSE)
TRYING = Action(Op.SEND_TRYING)
TU = Action(Op.PASS_TO_TU)
TIMEOUT = Action(Op.INFORM_TIMEOUT)
TERR = Action(Op.INFORM_TRANSPORT_ERROR)
END = Action(Op.TERMINATE)


def _start(timer: Timer) -> Action:
    return Action(Op.START_TIMER, timer)


def _backoff(timer: Timer) -> Action:
    return Action(Op.BACKOFF_TIMER, timer)


def _cancel(*timers: Timer) -> tuple[Action, ...]:
    return tuple(Action(Op.CANCEL_TIMER, t) for t in timers)


def _row(new_state: TxState, cite: str, *actions: Action | tuple[Action, ...]) -> Row:
    flat: list[Action] = []
    for item in actions:
        flat.extend(item if isinstance(item, tuple) else (item,))
    return Row(new_state, tuple(flat), cite)


_T = Timer
_C1 = "RFC 3261 §17.1.1.2"
_C2 = "RFC 3261 §17.1.2.2"
_S1 = "RFC 3261 §17.2.1"
_S2 = "RFC 3261 §17.2.2"

# INVITE client transaction: RFC 3261 §17.1.1.2 Figure 5, as updated by RFC 6026 §7.2 Figure 4.
INVITE_CLIENT_TABLE: Final[TransitionTable] = MappingProxyType({
    # §17.1.1.2: enter Calling, send the INVITE, start A (unreliable only) and B.
    (_S.INITIAL, _I.TU_REQUEST): _row(_S.CALLING, _C1, SEND, _start(_T.A), _start(_T.B)),
    # §17.1.1.2: timer A fires -> retransmit, reset A to twice its value.
    (_S.CALLING, _I.TIMER_A): _row(_S.CALLING, _C1, RESEND, _backoff(_T.A)),
    # §17.1.1.2: timer B fires in Calling -> inform the TU of the timeout (408), terminate.
    (_S.CALLING, _I.TIMER_B): _row(_S.TERMINATED, _C1, _cancel(_T.A), TIMEOUT, END),
    # §17.1.4 / Figure 5: transport error -> inform the TU (503), terminate.
    (_S.CALLING, _I.TRANSPORT_ERROR): _row(
        _S.TERMINATED, "RFC 3261 §17.1.4", _cancel(_T.A, _T.B), TERR, END),
    # §17.1.1.2: a provisional response -> Proceeding, pass it to the TU; no more retransmits.
    (_S.CALLING, _I.RECV_1XX): _row(_S.PROCEEDING, _C1, _cancel(_T.A, _T.B), TU),
    # RFC 6026 §7.2 (updates §17.1.1.2): a 2xx -> Accepted, pass to the TU, start timer M.
    (_S.CALLING, _I.RECV_2XX): _row(
        _S.ACCEPTED, "RFC 6026 §7.2", _cancel(_T.A, _T.B), TU, _start(_T.M)),
    # §17.1.1.2: 300-699 -> Completed, ACK it, pass it to the TU, start timer D.
    (_S.CALLING, _I.RECV_3XX_6XX): _row(
        _S.COMPLETED, _C1, _cancel(_T.A, _T.B), ACK, TU, _start(_T.D)),
    # §17.1.1.2: further provisional responses are passed to the TU.
    (_S.PROCEEDING, _I.RECV_1XX): _row(_S.PROCEEDING, _C1, TU),
    # RFC 6026 §7.2: a 2xx in Proceeding -> Accepted, pass to TU, start timer M.
    (_S.PROCEEDING, _I.RECV_2XX): _row(_S.ACCEPTED, "RFC 6026 §7.2", TU, _start(_T.M)),
    # §17.1.1.2: 300-699 in Proceeding -> Completed, ACK, pass to TU, start D.
    (_S.PROCEEDING, _I.RECV_3XX_6XX): _row(_S.COMPLETED, _C1, ACK, TU, _start(_T.D)),
    # §17.1.1.2: retransmitted final responses in Completed -> re-send the ACK, not to the TU.
    (_S.COMPLETED, _I.RECV_3XX_6XX): _row(_S.COMPLETED, _C1, ACK),
    # §17.1.1.2 Figure 5: transport error while sending the ACK -> inform the TU, terminate.
    (_S.COMPLETED, _I.TRANSPORT_ERROR): _row(_S.TERMINATED, _C1, _cancel(_T.D), TERR, END),
    # §17.1.1.2: timer D fires -> Terminated (zero on reliable transports).
    (_S.COMPLETED, _I.TIMER_D): _row(_S.TERMINATED, _C1, END),
    # RFC 6026 §7.2: 2xx retransmissions (or forked 2xx) in Accepted are passed to the TU.
    (_S.ACCEPTED, _I.RECV_2XX): _row(_S.ACCEPTED, "RFC 6026 §7.2", TU),
    # RFC 6026 §7.2: timer M fires -> Terminated.
    (_S.ACCEPTED, _I.TIMER_M): _row(_S.TERMINATED, "RFC 6026 §7.2", END),
})

# Non-INVITE client transaction: RFC 3261 §17.1.2.2 Figure 6.
NON_INVITE_CLIENT_TABLE: Final[TransitionTable] = MappingProxyType({
    # §17.1.2.2: enter Trying, send the request, start E (unreliable only) and F.
    (_S.INITIAL, _I.TU_REQUEST): _row(_S.TRYING, _C2, SEND, _start(_T.E), _start(_T.F)),
    # §17.1.2.2: E fires in Trying -> retransmit, E = MIN(2*E, T2).
    (_S.TRYING, _I.TIMER_E): _row(_S.TRYING, _C2, RESEND, _backoff(_T.E)),
    # §17.1.2.2: F fires -> inform the TU of the timeout (408), terminate.
    (_S.TRYING, _I.TIMER_F): _row(_S.TERMINATED, _C2, _cancel(_T.E), TIMEOUT, END),
    # §17.1.4 / Figure 6: transport error -> inform the TU (503), terminate.
    (_S.TRYING, _I.TRANSPORT_ERROR): _row(
        _S.TERMINATED, "RFC 3261 §17.1.4", _cancel(_T.E, _T.F), TERR, END),
    # §17.1.2.2: provisional -> Proceeding, pass to TU (E keeps running).
    (_S.TRYING, _I.RECV_1XX): _row(_S.PROCEEDING, _C2, TU),
    # §17.1.2.2: final (200-699) -> Completed, pass to TU, start K.
    (_S.TRYING, _I.RECV_2XX): _row(_S.COMPLETED, _C2, _cancel(_T.E, _T.F), TU, _start(_T.K)),
    (_S.TRYING, _I.RECV_3XX_6XX): _row(
        _S.COMPLETED, _C2, _cancel(_T.E, _T.F), TU, _start(_T.K)),
    # §17.1.2.2: E fires in Proceeding -> retransmit, E = T2.
    (_S.PROCEEDING, _I.TIMER_E): _row(
        _S.PROCEEDING, _C2, RESEND, Action(Op.RESET_TIMER_T2, _T.E)),
    # §17.1.2.2: F fires in Proceeding -> timeout (408), terminate.
    (_S.PROCEEDING, _I.TIMER_F): _row(_S.TERMINATED, _C2, _cancel(_T.E), TIMEOUT, END),
    # §17.1.4 / Figure 6: transport error -> inform the TU (503), terminate.
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): _row(
        _S.TERMINATED, "RFC 3261 §17.1.4", _cancel(_T.E, _T.F), TERR, END),
    # §17.1.2.2: further provisionals are passed to the TU.
    (_S.PROCEEDING, _I.RECV_1XX): _row(_S.PROCEEDING, _C2, TU),
    # §17.1.2.2: final -> Completed, pass to TU, start K.
    (_S.PROCEEDING, _I.RECV_2XX): _row(
        _S.COMPLETED, _C2, _cancel(_T.E, _T.F), TU, _start(_T.K)),
    (_S.PROCEEDING, _I.RECV_3XX_6XX): _row(
        _S.COMPLETED, _C2, _cancel(_T.E, _T.F), TU, _start(_T.K)),
    # §17.1.2.2: Completed buffers response retransmissions (absorbed, not passed to the TU).
    (_S.COMPLETED, _I.RECV_1XX): _row(_S.COMPLETED, _C2),
    (_S.COMPLETED, _I.RECV_2XX): _row(_S.COMPLETED, _C2),
    (_S.COMPLETED, _I.RECV_3XX_6XX): _row(_S.COMPLETED, _C2),
    # §17.1.2.2: K fires -> Terminated (zero on reliable transports).
    (_S.COMPLETED, _I.TIMER_K): _row(_S.TERMINATED, _C2, END),
})

# INVITE server transaction: RFC 3261 §17.2.1 Figure 7, as updated by RFC 6026 §7.1 Figure 5.
INVITE_SERVER_TABLE: Final[TransitionTable] = MappingProxyType({
    # §17.2.1: enter Proceeding, pass the INVITE to the TU; 100 Trying if the TU is silent
    # for 200 ms.
    (_S.INITIAL, _I.RECV_REQUEST): _row(_S.PROCEEDING, _S1, TU, _start(_T.TRYING)),
    # §17.2.1: the TU did not answer within 200 ms -> the transaction sends 100 (Trying).
    (_S.PROCEEDING, _I.TIMER_TRYING): _row(_S.PROCEEDING, _S1, TRYING),
    # §17.2.1: request retransmission in Proceeding -> resend the latest provisional response.
    (_S.PROCEEDING, _I.RECV_RETRANSMISSION): _row(_S.PROCEEDING, _S1, RERESPOND),
    # §17.2.1: provisional responses from the TU are sent (not retransmitted by us).
    (_S.PROCEEDING, _I.TU_1XX): _row(_S.PROCEEDING, _S1, _cancel(_T.TRYING), RESPOND),
    # RFC 6026 §7.1 (updates §17.2.1): 2xx from TU -> send it, Accepted, start timer L.
    (_S.PROCEEDING, _I.TU_2XX): _row(
        _S.ACCEPTED, "RFC 6026 §7.1", _cancel(_T.TRYING), RESPOND, _start(_T.L)),
    # §17.2.1: 300-699 from TU -> send it, Completed, start G (unreliable only) and H.
    (_S.PROCEEDING, _I.TU_3XX_6XX): _row(
        _S.COMPLETED, _S1, _cancel(_T.TRYING), RESPOND, _start(_T.G), _start(_T.H)),
    # §17.2.4 / Figure 7: transport error -> inform the TU, terminate.
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): _row(
        _S.TERMINATED, "RFC 3261 §17.2.4", _cancel(_T.TRYING), TERR, END),
    # §17.2.1: request retransmission in Completed -> resend the final response.
    (_S.COMPLETED, _I.RECV_RETRANSMISSION): _row(_S.COMPLETED, _S1, RERESPOND),
    # §17.2.1: G fires -> resend the final response, G = MIN(2*G, T2).
    (_S.COMPLETED, _I.TIMER_G): _row(_S.COMPLETED, _S1, RERESPOND, _backoff(_T.G)),
    # §17.2.1: H fires (no ACK) -> inform the TU (timeout), terminate.
    (_S.COMPLETED, _I.TIMER_H): _row(_S.TERMINATED, _S1, _cancel(_T.G), TIMEOUT, END),
    # §17.2.4 / Figure 7: transport error while sending the final -> inform the TU, terminate.
    (_S.COMPLETED, _I.TRANSPORT_ERROR): _row(
        _S.TERMINATED, "RFC 3261 §17.2.4", _cancel(_T.G, _T.H), TERR, END),
    # §17.2.1: the ACK for the non-2xx -> Confirmed (absorbed, not passed to the TU), start I.
    (_S.COMPLETED, _I.RECV_ACK): _row(_S.CONFIRMED, _S1, _cancel(_T.G, _T.H), _start(_T.I)),
    # §17.2.1: further ACKs in Confirmed are absorbed.
    (_S.CONFIRMED, _I.RECV_ACK): _row(_S.CONFIRMED, _S1),
    # §17.2.1: I fires -> Terminated (zero on reliable transports).
    (_S.CONFIRMED, _I.TIMER_I): _row(_S.TERMINATED, _S1, END),
    # RFC 6026 §7.1: INVITE retransmissions in Accepted are absorbed (not passed to the TU).
    (_S.ACCEPTED, _I.RECV_RETRANSMISSION): _row(_S.ACCEPTED, "RFC 6026 §7.1"),
    # RFC 6026 §7.1: 2xx retransmissions from the TU in Accepted are sent.
    (_S.ACCEPTED, _I.TU_2XX): _row(_S.ACCEPTED, "RFC 6026 §7.1", RESPOND),
    # RFC 6026 §7.1: an ACK matching the transaction in Accepted is passed to the TU.
    (_S.ACCEPTED, _I.RECV_ACK): _row(_S.ACCEPTED, "RFC 6026 §7.1", TU),
    # RFC 6026 §7.1 Figure 5: a transport error in Accepted is reported to the TU.
    (_S.ACCEPTED, _I.TRANSPORT_ERROR): _row(_S.ACCEPTED, "RFC 6026 §7.1", TERR),
    # RFC 6026 §7.1: L fires -> Terminated.
    (_S.ACCEPTED, _I.TIMER_L): _row(_S.TERMINATED, "RFC 6026 §7.1", END),
})

# Non-INVITE server transaction: RFC 3261 §17.2.2 Figure 8.
NON_INVITE_SERVER_TABLE: Final[TransitionTable] = MappingProxyType({
    # §17.2.2: enter Trying, pass the request to the TU.
    (_S.INITIAL, _I.RECV_REQUEST): _row(_S.TRYING, _S2, TU),
    # §17.2.2: request retransmissions in Trying are discarded.
    (_S.TRYING, _I.RECV_RETRANSMISSION): _row(_S.TRYING, _S2),
    # §17.2.2: a provisional from the TU -> send, Proceeding.
    (_S.TRYING, _I.TU_1XX): _row(_S.PROCEEDING, _S2, RESPOND),
    # §17.2.2: a final from the TU -> send, Completed, start J (zero on reliable).
    (_S.TRYING, _I.TU_2XX): _row(_S.COMPLETED, _S2, RESPOND, _start(_T.J)),
    (_S.TRYING, _I.TU_3XX_6XX): _row(_S.COMPLETED, _S2, RESPOND, _start(_T.J)),
    # §17.2.2: more provisionals from the TU are sent.
    (_S.PROCEEDING, _I.TU_1XX): _row(_S.PROCEEDING, _S2, RESPOND),
    # §17.2.2: retransmission in Proceeding -> resend the most recent provisional.
    (_S.PROCEEDING, _I.RECV_RETRANSMISSION): _row(_S.PROCEEDING, _S2, RERESPOND),
    # §17.2.2: a final from the TU -> send, Completed, start J.
    (_S.PROCEEDING, _I.TU_2XX): _row(_S.COMPLETED, _S2, RESPOND, _start(_T.J)),
    (_S.PROCEEDING, _I.TU_3XX_6XX): _row(_S.COMPLETED, _S2, RESPOND, _start(_T.J)),
    # §17.2.4 / Figure 8: transport error -> inform the TU, terminate.
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): _row(_S.TERMINATED, "RFC 3261 §17.2.4", TERR, END),
    # §17.2.2: retransmission in Completed -> resend the final response.
    (_S.COMPLETED, _I.RECV_RETRANSMISSION): _row(_S.COMPLETED, _S2, RERESPOND),
    # §17.2.4 / Figure 8: transport error -> inform the TU, terminate.
    (_S.COMPLETED, _I.TRANSPORT_ERROR): _row(
        _S.TERMINATED, "RFC 3261 §17.2.4", _cancel(_T.J), TERR, END),
    # §17.2.2: J fires -> Terminated.
    (_S.COMPLETED, _I.TIMER_J): _row(_S.TERMINATED, _S2, END),
})

TABLES: Final[Mapping[TxKind, TransitionTable]] = MappingProxyType({
    TxKind.INVITE_CLIENT: INVITE_CLIENT_TABLE,
    TxKind.NON_INVITE_CLIENT: NON_INVITE_CLIENT_TABLE,
    TxKind.INVITE_SERVER: INVITE_SERVER_TABLE,
    TxKind.NON_INVITE_SERVER: NON_INVITE_SERVER_TABLE,
})


def response_input(status: int, *, from_tu: bool) -> TxInput:
    """The input for a response with ``status`` (received, or passed down by the TU)."""
    if not 100 <= status <= 699:
        if from_tu:
            raise LocalProtocolError(f"status {status} out of range")
        raise TransactionError(f"status {status} out of range", status=400)
    if status < 200:
        return TxInput.TU_1XX if from_tu else TxInput.RECV_1XX
    if status < 300:
        return TxInput.TU_2XX if from_tu else TxInput.RECV_2XX
    return TxInput.TU_3XX_6XX if from_tu else TxInput.RECV_3XX_6XX


# -- compiled form of the tables (same rows, split for the hot path) ------------------------------
# Internally timers, states and inputs are small integers (their definition order): the
# per-transaction dicts then hold only ints and floats, which the cyclic garbage collector
# does not track (a busy proxy keeps tens of thousands of transactions alive).
_TIMER_LIST: Final = tuple(Timer)
_TIMER_INDEX: Final[dict[Timer, int]] = {t: i for i, t in enumerate(_TIMER_LIST)}
_TIMER_VALUES: Final = tuple(t.value for t in _TIMER_LIST)
_TIMER_A: Final = _TIMER_INDEX[Timer.A]
_STATE_LIST: Final = tuple(TxState)
_INPUT_LIST: Final = tuple(TxInput)
_STATE_INDEX: Final[dict[TxState, int]] = {st: i for i, st in enumerate(_STATE_LIST)}
_INPUT_INDEX: Final[dict[TxInput, int]] = {inp: i for i, inp in enumerate(_INPUT_LIST)}
# the input that is the expiry of each timer, by timer index
_TIMER_INPUT_BY_INDEX: Final = tuple(TIMER_INPUTS[t] for t in _TIMER_LIST)
# TxInput -> index of the timer it is the expiry of (looked up on every input)
_INPUT_TIMER: Final[dict[TxInput, int]] = {
    inp: _TIMER_INDEX[t] for inp, t in _INPUT_TIMERS.items()}

# Timer op codes: a transition's timer actions become (code, timer index) pairs, in order.
_CANCEL, _START, _BACKOFF, _RESET_T2 = 0, 1, 2, 3
_TIMER_CODES: Final[Mapping[Op, int]] = MappingProxyType({
    Op.CANCEL_TIMER: _CANCEL, Op.START_TIMER: _START, Op.BACKOFF_TIMER: _BACKOFF,
    Op.RESET_TIMER_T2: _RESET_T2,
})
_TERMINATED: Final = TxState.TERMINATED
# (new state, effects (non-timer actions, in order), timer ops (code, timer index) in order,
#  the step as recorded in the history: three characters (state, input, new state))
_Step = tuple[TxState, tuple[Action, ...], tuple[tuple[int, int], ...], str]


def _compile(table: TransitionTable) -> dict[tuple[TxState, TxInput], _Step]:
    """Split every row of ``table`` into its effects and its timer operations (both kept in
    the row's order); the table itself stays the reference (and carries the citations)."""
    steps: dict[tuple[TxState, TxInput], _Step] = {}
    for (state, inp), row in table.items():
        effects = tuple(a for a in row.actions if a.op not in _TIMER_OPS)
        timer_ops: list[tuple[int, int]] = []
        for a in row.actions:
            if a.op in _TIMER_OPS:
                if a.timer is None:
                    raise LocalProtocolError(f"timer op {a.op.value} without a timer")
                timer_ops.append((_TIMER_CODES[a.op], _TIMER_INDEX[a.timer]))
        hist = (chr(_STATE_INDEX[state]) + chr(_INPUT_INDEX[inp])
                + chr(_STATE_INDEX[row.new_state]))
        steps[(state, inp)] = (row.new_state, effects, tuple(timer_ops), hist)
    return steps


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

    _STEPS: ClassVar[dict[tuple[TxState, TxInput], _Step]] = {}

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
        timer = _INPUT_TIMER.get(inp)
        if timer is not None and timer not in deadlines:
            raise TransactionError(f"timer {_TIMER_VALUES[timer]} is not running",
                                   where=self.state.value)
        old = self.state
        step = self._STEPS.get((old, inp))
        if step is None:
            self.row_for(inp)  # raises the typed error
            raise TransactionError(f"no transition for {inp.value}", where=old.value)
        if timer is not None:
            del deadlines[timer]
        new_state, effects, timer_ops, hist = step
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
        for (state, _inp), (new_state, effects, timer_ops, _h) in _MACHINES[kind]._STEPS.items():
            if state is not TxState.COMPLETED:
                continue
            staying = new_state is TxState.COMPLETED and not timer_ops
            ending = new_state is TxState.TERMINATED
            if not (staying or ending) or any(a.op not in PARKED_OPS for a in effects):
                raise LocalProtocolError(  # pragma: no cover - a table edit broke the records
                    f"{kind.value} Completed row for {_inp.value} cannot apply to a record")


_check_parkable()
