"""System messages from an IM conference (OMA SIMPLE IM §7.2.3.5), as data: one CPIM
message per participant, ``To`` = the participant's authenticated address, ``From`` = the
conference's address with the service type as its display name (``SysAdmin``,
``Announcement``, ``Advertisement``, per operator policy).  The focus sends each in the
participant's MSRP session (:meth:`ConferenceFocus.announce`)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from simpleim.content.cpim import CpimAddress, CpimDateTime, build_cpim

__all__ = ["SERVICE_TYPES", "system_message_copies"]

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
