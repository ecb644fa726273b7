"""Server media (not a role; the roles use it): the server's SIP user agent for INVITE
sessions with MSRP media, its MSRP listener, the N-leg MSRP copier and the back-to-back
relay of the Participating Function (PO-00).

* :mod:`.api`     what a role sees: :class:`MediaSessions`, :class:`ServerSession`, values
* :mod:`.ua`      :class:`ServerUserAgent` (UAS accept, UAC invite with forking, dialogs)
* :mod:`.session` :class:`MediaSession` (dialog + MSRP stream + RFC 4028 timer)
* :mod:`.msrp`    :class:`ServerMsrp`, the MSRP listener
* :mod:`.room`    :class:`Room`: N legs copying to each other, policy and recorder hooks
* :mod:`.b2bua`   :class:`BackToBack`: the PF in the media path
"""

from __future__ import annotations

from simpleim.server.media.api import (
    CHAT_TYPES,
    MediaError,
    MediaMessage,
    MediaPolicy,
    MediaSessions,
    MessageRefused,
    OfferParams,
    ServerSession,
    SessionEnded,
    SessionEvent,
    SessionRefused,
)
from simpleim.server.media.b2bua import B2buaConfig, BackToBack, msrp_offer
from simpleim.server.media.msrp import MsrpListenConfig, ServerMsrp
from simpleim.server.media.room import CopyToOthers, Leg, Overflow, Recorder, Room, RoomPolicy
from simpleim.server.media.session import MediaSession
from simpleim.server.media.ua import CONTACT_USER, ServerUserAgent, TargetSource, UaConfig

__all__ = [
    "B2buaConfig",
    "BackToBack",
    "CHAT_TYPES",
    "CONTACT_USER",
    "CopyToOthers",
    "Leg",
    "MediaError",
    "MediaMessage",
    "MediaPolicy",
    "MediaSession",
    "MediaSessions",
    "MessageRefused",
    "MsrpListenConfig",
    "OfferParams",
    "Overflow",
    "Recorder",
    "Room",
    "RoomPolicy",
    "ServerMsrp",
    "ServerSession",
    "ServerUserAgent",
    "SessionEnded",
    "SessionEvent",
    "SessionRefused",
    "TargetSource",
    "UaConfig",
    "msrp_offer",
]
