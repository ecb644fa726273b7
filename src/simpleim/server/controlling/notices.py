"""System messages from an IM conference (OMA SIMPLE IM §7.2.3.5), as data: one CPIM
message per participant, ``To`` = the participant's authenticated address, ``From`` = the
conference's address with the service type as its display name (``SysAdmin``,
``Announcement``, ``Advertisement``, per operator policy).  The focus sends each in the
participant's MSRP session (:class:`RoomNotices`, the System Message role's
``ConferenceNotices``)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from simpleim.content.cpim import CpimAddress, CpimDateTime, build_cpim
from simpleim.server.media import Leg, MediaMessage, Room

__all__ = ["SERVICE_TYPES", "ConferenceRooms", "RoomNotices", "system_message_copies"]

#: the display names §7.2.3.5 gives as examples (others are the operator's choice)
SERVICE_TYPES = ("SysAdmin", "Announcement", "Advertisement")


def system_message_copies(conference: str, participants: Sequence[str], body: bytes,
                          content_type: str, service_type: str, now: float
                          ) -> list[tuple[str, bytes]]:
    """``(participant, message/cpim bytes)`` for each of ``participants``."""
    when = CpimDateTime.from_datetime(datetime.fromtimestamp(int(now), UTC))
    sender = CpimAddress(conference, service_type)
    return [(who, build_cpim(from_addr=sender, to=[CpimAddress(who)], body=body,
                             content_type=content_type, date_time=when,
                             message_id=secrets.token_hex(8)).to_bytes())
            for who in participants]


class ConferenceRooms(Protocol):
    """What :class:`RoomNotices` asks of the focus."""

    def running_room(self, uri: str) -> tuple[str, Room, Mapping[str, Leg]] | None: ...


class RoomNotices:
    """§7.2.3.5 into the focus's rooms (implements the System Message role's
    ``ConferenceNotices``)."""

    def __init__(self, rooms: ConferenceRooms, clock: Callable[[], float]) -> None:
        self._rooms = rooms
        self._clock = clock

    def announce(self, uri: str, body: bytes, content_type: str, service_type: str) -> int:
        """One MSRP SEND per connected participant of the running conference ``uri``; how
        many were sent (-1: no such conference here)."""
        found = self._rooms.running_room(uri)
        if found is None:
            return -1
        conference, room, legs = found
        live = [(who, leg) for who, leg in legs.items() if leg.left is None]
        copies = system_message_copies(conference, [who for who, _ in live], body,
                                       content_type, service_type, self._clock())
        for (_who, leg), (_to, cpim) in zip(live, copies, strict=True):
            room.deliver(leg, MediaMessage("message/cpim", cpim))
        return len(copies)
