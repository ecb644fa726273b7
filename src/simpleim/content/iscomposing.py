"""Message composition indication (RFC 3994, ``application/im-iscomposing+xml``).

The document (:class:`IsComposing`) and sans-I/O state machines for both ends,
written as ``(state, input) -> (state, action)`` tables that follow RFC 3994 §4:

* sender: ``idle`` -> ``active`` on the first keystroke (send an active
  indication, with ``refresh``); while active, re-send the active indication
  every refresh interval; back to ``idle`` after ``idle_timeout`` seconds without
  activity (send an idle indication) or when the message is sent (no indication:
  the message itself ends the composing state).
* receiver: ``active`` on an active indication; ``idle`` on an idle indication,
  on a content message, or when the refresh interval runs out (the default when
  the indication carries no ``refresh`` is :data:`DEFAULT_REFRESH`).

Time enters as ``now`` (seconds, any monotonic origin); deadlines leave through
``next_deadline()``.  The machines are frozen values: every step returns a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType

from simpleim.errors import ContentError

from .xml import XmlLimits, XmlNode, child_text, parse_xml, qname, text_node

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_REFRESH",
    "ISCOMPOSING_CONTENT_TYPE",
    "ISCOMPOSING_NS",
    "MIN_REFRESH",
    "RECEIVER_TABLE",
    "SENDER_TABLE",
    "ComposeReceiver",
    "ComposeSender",
    "ComposeState",
    "IsComposing",
    "ReceiverAction",
    "ReceiverInput",
    "SenderAction",
    "SenderInput",
    "parse_iscomposing",
]

ISCOMPOSING_NS = "urn:ietf:params:xml:ns:im-iscomposing"
ISCOMPOSING_CONTENT_TYPE = "application/im-iscomposing+xml"
#: RFC 3994 §4: idle timeout recommended value (seconds without activity -> idle).
DEFAULT_IDLE_TIMEOUT = 15.0
#: RFC 3994 §4: active-state refresh interval used when none is signalled (seconds).
DEFAULT_REFRESH = 120.0
#: RFC 3994 §4: refresh intervals below this are not to be used (seconds).
MIN_REFRESH = 60.0


class ComposeState(StrEnum):
    IDLE = "idle"
    ACTIVE = "active"


@dataclass(frozen=True)
class IsComposing:
    """The RFC 3994 §5 document: state, lastactive, contenttype, refresh."""

    state: ComposeState
    lastactive: str | None = None
    contenttype: str | None = None
    refresh: int | None = None

    def to_bytes(self) -> bytes:
        kids = [XmlNode("state", text=self.state.value)]
        kids += text_node("lastactive", self.lastactive)
        kids += text_node("contenttype", self.contenttype)
        kids += text_node("refresh", None if self.refresh is None else str(self.refresh))
        return XmlNode("isComposing", (("xmlns", ISCOMPOSING_NS),), tuple(kids)).to_bytes()


def parse_iscomposing(data: bytes | str,
                      limits: XmlLimits = XmlLimits()) -> IsComposing:  # noqa: B008
    root = parse_xml(data, limits, what="isComposing")
    ns = ISCOMPOSING_NS
    if root.tag != qname(ns, "isComposing"):
        raise ContentError(f"root element is {root.tag}, not isComposing", status=400,
                           where="isComposing")
    state_s = child_text(root, ns, "state")
    if state_s is None:
        raise ContentError("isComposing without state", status=400, where="isComposing/state")
    try:
        state = ComposeState(state_s.lower())
    except ValueError:
        raise ContentError(f"unknown composing state {state_s!r}", status=400,
                           where="isComposing/state") from None
    refresh_s = child_text(root, ns, "refresh")
    refresh: int | None = None
    if refresh_s is not None:
        if not refresh_s.isdigit() or not refresh_s.isascii() or int(refresh_s) == 0:
            raise ContentError("refresh must be a positive integer", status=400,
                               where="isComposing/refresh")
        refresh = int(refresh_s)
    return IsComposing(state, child_text(root, ns, "lastactive"),
                       child_text(root, ns, "contenttype"), refresh)


# ----------------------------------------------------------------------------- sender

class SenderInput(StrEnum):
    COMPOSING = "composing"          # user activity (keystroke, edit)
    CLEARED = "cleared"              # user erased everything they typed
    MESSAGE_SENT = "message-sent"    # the content message went out
    IDLE_TIMEOUT = "idle-timeout"    # idle_timeout passed without activity
    REFRESH_DUE = "refresh-due"      # the active indication needs refreshing


class SenderAction(StrEnum):
    NONE = "none"
    SEND_ACTIVE = "send-active"
    SEND_IDLE = "send-idle"


_I, _A = ComposeState.IDLE, ComposeState.ACTIVE
#: RFC 3994 §4 composer behaviour.
SENDER_TABLE: Mapping[tuple[ComposeState, SenderInput],
                      tuple[ComposeState, SenderAction]] = MappingProxyType({
    (_I, SenderInput.COMPOSING): (_A, SenderAction.SEND_ACTIVE),
    (_I, SenderInput.CLEARED): (_I, SenderAction.NONE),
    (_I, SenderInput.MESSAGE_SENT): (_I, SenderAction.NONE),
    (_I, SenderInput.IDLE_TIMEOUT): (_I, SenderAction.NONE),
    (_I, SenderInput.REFRESH_DUE): (_I, SenderAction.NONE),
    (_A, SenderInput.COMPOSING): (_A, SenderAction.NONE),
    (_A, SenderInput.CLEARED): (_I, SenderAction.SEND_IDLE),
    # The content message itself tells the receiver composing stopped: no idle message.
    (_A, SenderInput.MESSAGE_SENT): (_I, SenderAction.NONE),
    (_A, SenderInput.IDLE_TIMEOUT): (_I, SenderAction.SEND_IDLE),
    (_A, SenderInput.REFRESH_DUE): (_A, SenderAction.SEND_ACTIVE),
})


@dataclass(frozen=True)
class ComposeSender:
    """Composer side; ``step`` returns the next machine and what to send."""

    state: ComposeState = ComposeState.IDLE
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    refresh: float = DEFAULT_REFRESH
    last_activity: float | None = None
    last_active_sent: float | None = None

    def step(self, event: SenderInput, now: float) -> tuple[ComposeSender, SenderAction]:
        new_state, action = SENDER_TABLE[(self.state, event)]
        nxt = replace(self, state=new_state)
        if event is SenderInput.COMPOSING:
            nxt = replace(nxt, last_activity=now)
        if action is SenderAction.SEND_ACTIVE:
            nxt = replace(nxt, last_active_sent=now)
        if new_state is ComposeState.IDLE:
            nxt = replace(nxt, last_activity=None, last_active_sent=None)
        return nxt, action

    def composing(self, now: float) -> tuple[ComposeSender, SenderAction]:
        return self.step(SenderInput.COMPOSING, now)

    def message_sent(self, now: float) -> tuple[ComposeSender, SenderAction]:
        return self.step(SenderInput.MESSAGE_SENT, now)

    def next_deadline(self) -> float | None:
        if self.state is not ComposeState.ACTIVE or self.last_activity is None \
                or self.last_active_sent is None:
            return None
        return min(self.last_activity + self.idle_timeout,
                   self.last_active_sent + self.refresh)

    def handle_timer(self, now: float) -> tuple[ComposeSender, SenderAction]:
        """Fire whichever timer is due at ``now`` (idle timeout wins over refresh)."""
        if self.state is not ComposeState.ACTIVE or self.last_activity is None \
                or self.last_active_sent is None:
            return self, SenderAction.NONE
        if now >= self.last_activity + self.idle_timeout:
            return self.step(SenderInput.IDLE_TIMEOUT, now)
        if now >= self.last_active_sent + self.refresh:
            return self.step(SenderInput.REFRESH_DUE, now)
        return self, SenderAction.NONE

    def document(self, action: SenderAction, *, contenttype: str | None = "text/plain",
                 lastactive: str | None = None) -> IsComposing | None:
        """The body to send for ``action`` (``lastactive`` is wall-clock text from the caller)."""
        if action is SenderAction.SEND_ACTIVE:
            return IsComposing(ComposeState.ACTIVE, None, contenttype, int(self.refresh))
        if action is SenderAction.SEND_IDLE:
            return IsComposing(ComposeState.IDLE, lastactive, contenttype, None)
        return None


# ----------------------------------------------------------------------------- receiver

class ReceiverInput(StrEnum):
    ACTIVE_RECEIVED = "active-received"
    IDLE_RECEIVED = "idle-received"
    MESSAGE_RECEIVED = "message-received"
    TIMEOUT = "timeout"


class ReceiverAction(StrEnum):
    NONE = "none"
    SHOW_ACTIVE = "show-active"
    SHOW_IDLE = "show-idle"


#: RFC 3994 §4 receiver behaviour.
RECEIVER_TABLE: Mapping[tuple[ComposeState, ReceiverInput],
                        tuple[ComposeState, ReceiverAction]] = MappingProxyType({
    (_I, ReceiverInput.ACTIVE_RECEIVED): (_A, ReceiverAction.SHOW_ACTIVE),
    (_I, ReceiverInput.IDLE_RECEIVED): (_I, ReceiverAction.NONE),
    (_I, ReceiverInput.MESSAGE_RECEIVED): (_I, ReceiverAction.NONE),
    (_I, ReceiverInput.TIMEOUT): (_I, ReceiverAction.NONE),
    (_A, ReceiverInput.ACTIVE_RECEIVED): (_A, ReceiverAction.NONE),
    (_A, ReceiverInput.IDLE_RECEIVED): (_I, ReceiverAction.SHOW_IDLE),
    (_A, ReceiverInput.MESSAGE_RECEIVED): (_I, ReceiverAction.SHOW_IDLE),
    (_A, ReceiverInput.TIMEOUT): (_I, ReceiverAction.SHOW_IDLE),
})


@dataclass(frozen=True)
class ComposeReceiver:
    """Receiving side: tracks the peer's composing state with a refresh deadline."""

    state: ComposeState = ComposeState.IDLE
    default_refresh: float = DEFAULT_REFRESH
    deadline: float | None = None

    def step(self, event: ReceiverInput, now: float,
             refresh: float | None = None) -> tuple[ComposeReceiver, ReceiverAction]:
        new_state, action = RECEIVER_TABLE[(self.state, event)]
        deadline = None
        if new_state is ComposeState.ACTIVE:
            deadline = now + (refresh if refresh is not None else self.default_refresh)
        return replace(self, state=new_state, deadline=deadline), action

    def receive(self, doc: IsComposing, now: float) -> tuple[ComposeReceiver, ReceiverAction]:
        if doc.state is ComposeState.ACTIVE:
            return self.step(ReceiverInput.ACTIVE_RECEIVED, now,
                             None if doc.refresh is None else float(doc.refresh))
        return self.step(ReceiverInput.IDLE_RECEIVED, now)

    def message_received(self, now: float) -> tuple[ComposeReceiver, ReceiverAction]:
        return self.step(ReceiverInput.MESSAGE_RECEIVED, now)

    def next_deadline(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: float) -> tuple[ComposeReceiver, ReceiverAction]:
        if self.deadline is None or now < self.deadline:
            return self, ReceiverAction.NONE
        return self.step(ReceiverInput.TIMEOUT, now)
