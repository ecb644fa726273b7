"""Extending a 1-1 session to an ad-hoc conference (OMA SIMPLE IM §7.1.1.6, Appendix L).

The client lists the peer of its 1-1 session in the recipient list with a ``Replaces`` URI
header naming that session's dialog (RFC 3891, RFC 5366 §4).  The focus invites that peer
with the ``Replaces`` header (and ``Require: replaces``), so that the peer's client swaps
its 1-1 session for the conference leg and BYEs the old one, and the others as usual.
When the server's PF bridged the 1-1 session as a B2BUA (PO-00), the dialog the requester
names is its own leg: :class:`DialogMap` gives the other leg's dialog as the peer's client
sees it (§7.2.1.7's "if the IM server acts as a B2BUA, include a dialog id that corresponds").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from simpleim.content.resource_lists import Entry
from simpleim.errors import SipParseError
from simpleim.sip.replaces import REPLACES_OPTION, Replaces, split_replaces_uri

__all__ = ["DialogMap", "replaces_headers", "split_recipients"]

log = logging.getLogger("simpleim.server.controlling")


class DialogMap(Protocol):
    """The server's own dialogs of bridged 1-1 sessions (the PF's B2BUA)."""

    def peer_dialog(self, replaces: Replaces, requester: str) -> Replaces | None:
        """The dialog of the other party of the requester's session ``replaces`` names, as
        that party sees it; None when the server does not bridge that session."""


def split_recipients(recipients: Sequence[Entry], dialogs: DialogMap | None,
                     requester: str) -> tuple[tuple[Entry, ...], dict[str, Replaces]]:
    """The recipients with plain URIs, and invitee URI -> the dialog its invitation
    replaces (translated through ``dialogs`` when the server bridges it).  The URIs were
    checked by :func:`.conference.parse_adhoc_invite`."""
    entries: list[Entry] = []
    replaces: dict[str, Replaces] = {}
    for entry in recipients:
        try:
            uri, found = split_replaces_uri(entry.uri)
        except SipParseError as exc:
            log.info("recipient %s invited without its Replaces: %s", entry.uri[:80], exc)
            uri, found = entry.uri.split("?", 1)[0], None
        if found is None:
            entries.append(entry if uri == entry.uri else Entry(uri, entry.display_name))
            continue
        if dialogs is not None:
            found = dialogs.peer_dialog(found, requester) or found
        entries.append(Entry(uri, entry.display_name))
        replaces[uri] = found
    return tuple(entries), replaces


def replaces_headers(replaces: Replaces | None) -> list[tuple[str, str]]:
    """The headers of an invitation that replaces ``replaces`` (RFC 3891 §4, Appendix L
    step 5); none for a plain invitation."""
    if replaces is None:
        return []
    return [("Replaces", str(replaces)), ("Require", REPLACES_OPTION)]
