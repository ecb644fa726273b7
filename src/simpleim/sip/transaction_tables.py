"""The four SIP transaction state tables (RFC 3261 §17, updated by RFC 6026), as data.

``(state, input) -> Row(new_state, actions, cite)``, one read-only mapping per machine; every
row names the RFC section it implements.  :mod:`simpleim.sip.transaction` runs them (and
re-exports everything here).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from simpleim.errors import LocalProtocolError, TransactionError

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
    "TIMER_INPUTS",
    "INPUT_TIMERS",
    "TIMER_OPS",
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
INPUT_TIMERS: Final[Mapping[TxInput, Timer]] = MappingProxyType(
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


TIMER_OPS: Final = frozenset(
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
