"""simpleim.client - the asyncio client library (see docs/client.md).

``Account`` registers and gives an event stream; its features - ``pager``, ``chats``,
``files``, ``images``, ``capabilities`` - are built on the narrow
:class:`~simpleim.client.context.ClientContext` the account implements.  ``ClientConfig`` /
``load_config`` configure it; the event classes are in :mod:`simpleim.client.events`.

This is the only module of the package that imports :mod:`simpleim.client.account`.
"""

from simpleim.client.account import Account, RegistrationError
from simpleim.client.capabilities import CapabilityResult
from simpleim.client.chats import Chats
from simpleim.client.config import ClientConfig, Policy, load_config
from simpleim.client.context import ClientContext, MessageSink, SessionRegistry
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
from simpleim.client.filetransfer import FileTransfers, TransferResult
from simpleim.client.imageshare import ImageShares
from simpleim.client.invites import InviteFacts, InviteRouter
from simpleim.client.messages import PagerMessages, SendResult
from simpleim.client.options import CapabilityQueries
from simpleim.client.session import ChatSession, Invitation, SessionFailed

__all__ = [
    "Account",
    "CapabilitiesEvent",
    "CapabilityQueries",
    "CapabilityResult",
    "ChatSession",
    "Chats",
    "ClientConfig",
    "ClientContext",
    "ComposingEvent",
    "ErrorEvent",
    "Event",
    "EventStream",
    "FileEvent",
    "FileTransfers",
    "ImageShares",
    "ImdnEvent",
    "Invitation",
    "InviteFacts",
    "InviteRouter",
    "MessageEvent",
    "MessageSink",
    "PagerMessages",
    "Policy",
    "ReadyEvent",
    "RegisteredEvent",
    "RegistrationError",
    "SendResult",
    "SessionEvent",
    "SessionFailed",
    "SessionRegistry",
    "TransferResult",
    "load_config",
]
