"""A conference of this process as the focus runs it (OMA SIMPLE IM §7.2): its state, room,
legs and pending invitations - shared by :mod:`.focus` and :mod:`.refer`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from simpleim.server.media import Leg, Room
from simpleim.server.xdm.api import GroupDefinition
from simpleim.sip.replaces import Replaces

from .conference import Conference
from .groupft import FtSupport

__all__ = ["Running", "sip_aor"]


def sip_aor(aor: str) -> str:
    """``user@domain`` as a SIP URI (unchanged when it is one)."""
    return aor if aor.startswith(("sip:", "sips:")) else f"sip:{aor}"


@dataclass(eq=False)
class Running:
    """A conference of this process: its state, room, legs and pending invitations."""

    conf: Conference
    room: Room
    contact: str                               # our Contact (the conference URI + isfocus)
    legs: dict[str, Leg] = field(default_factory=dict)           # participant URI -> leg
    pending: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: until the initiator has its answer: the release policy waits (§7.2.1.2)
    accepting: bool = True
    #: final statuses of the initial invitations, while the initiator waits
    report: Callable[[int], None] | None = None
    #: referred user -> the participant whose REFER waits for its outcome (RFC 3515)
    referrers: dict[str, str] = field(default_factory=dict)
    #: participant URI -> file transfer capability from its Contact (CR Change 1)
    ft: dict[str, FtSupport] = field(default_factory=dict)
    #: the pre-defined group's definition as last read (its policy for the MSRP switch:
    #: <allow-private-message>, §7.2.3.4); None: ad hoc, or not read since a restart
    group: GroupDefinition | None = None
    #: participant URI -> its INVITE / 200 named an OMA IM release (Appendix F: an
    #: ``IM-client/OMA1.0`` or ``IM-serv/OMA1.0`` product), §7.2.3.4 b)
    im_nodes: dict[str, bool] = field(default_factory=dict)
    #: invitee URI -> the 1-1 dialog its invitation replaces (§7.1.1.6, RFC 3891)
    replaces: dict[str, Replaces] = field(default_factory=dict)
