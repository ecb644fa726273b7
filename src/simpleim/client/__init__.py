"""simpleim.client - the asyncio client library (see docs/client.md).

``Account`` registers and gives an event stream; ``ClientConfig`` / ``load_config`` configure
it; the event classes are in :mod:`simpleim.client.events`.
"""

from simpleim.client.account import Account, RegistrationError, SendResult
from simpleim.client.config import ClientConfig, Policy, load_config
from simpleim.client.events import (
    CapabilitiesEvent,
    ComposingEvent,
    ErrorEvent,
    Event,
    EventStream,
    FileEvent,
    ImdnEvent,
    MessageEvent,
    ReadyEvent,
    RegisteredEvent,
    SessionEvent,
)
from simpleim.client.filetransfer import TransferResult, share_file
from simpleim.client.session import ChatSession, Invitation, SessionFailed

__all__ = [
    "Account",
    "CapabilitiesEvent",
    "ChatSession",
    "ClientConfig",
    "ComposingEvent",
    "ErrorEvent",
    "Event",
    "EventStream",
    "FileEvent",
    "ImdnEvent",
    "Invitation",
    "MessageEvent",
    "Policy",
    "ReadyEvent",
    "RegisteredEvent",
    "RegistrationError",
    "SendResult",
    "SessionEvent",
    "SessionFailed",
    "TransferResult",
    "load_config",
    "share_file",
]
