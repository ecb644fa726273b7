"""The read-only metadata documents (``urn:oma:xml:history-list``): deferred messages
(§12.1.2, Appendix J) and conversation history (§13.1.4, §13.3.2), produced on each GET from
what the Deferred Messaging Function and the Conversation History Function stored.

:class:`StoredDeferredMetadata` reads the DMF's repository (``store.deferred``) directly: the
XDM role never imports ``server/deferred``.  The document's entity tag is a hash of its
content, so a client's If-None-Match gets 304 while nothing changed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Protocol

from lxml import etree

from simpleim.server.xdm.api import HistoryEntry, HistoryMode
from simpleim.server.xdm.usages import HISTORY_LIST_NS
from simpleim.server.xdm.xmldoc import serialize
from simpleim.store.deferred import DeferredMessage

__all__ = ["DeferredSource", "StoredDeferredMetadata", "content_etag", "history_list"]


def _stamp(t: float) -> str:
    """RFC 3339 UTC with tenths, as in Appendix J (``2000-07-09T21:13:00.0Z``)."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return f"{whole}.{int((t % 1) * 10)}Z"


def history_list(entries: Sequence[HistoryEntry]) -> bytes:
    """The ``<history-list>`` document of Appendix J for ``entries``."""
    # the namespace as the default one (no prefix), as in Appendix J
    root = etree.fromstring(f'<history-list xmlns="{HISTORY_LIST_NS}"/>'.encode())
    for e in entries:
        h = etree.SubElement(root, f"{{{HISTORY_LIST_NS}}}history")
        h.set("date", time.strftime("%Y-%m-%d", time.gmtime(e.received)))
        h.set("history-reference", e.reference)
        etree.SubElement(h, f"{{{HISTORY_LIST_NS}}}size").text = str(e.size)
        if e.expiry is not None:
            etree.SubElement(h, f"{{{HISTORY_LIST_NS}}}expiry").text = _stamp(e.expiry)
        if e.subject:
            etree.SubElement(h, f"{{{HISTORY_LIST_NS}}}subject").text = e.subject
        mode = etree.SubElement(h, f"{{{HISTORY_LIST_NS}}}{e.mode.value}")
        etree.SubElement(mode, f"{{{HISTORY_LIST_NS}}}time-stamp").text = _stamp(e.received)
        etree.SubElement(mode, f"{{{HISTORY_LIST_NS}}}from").text = e.sender
        etree.SubElement(mode, f"{{{HISTORY_LIST_NS}}}to").text = e.recipient
    return serialize(root, declaration=True)


def content_etag(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:24]


class DeferredSource(Protocol):
    """What the metadata needs from :class:`simpleim.store.deferred.DeferredRepository`."""

    async def pending(self, recipient: str, ids: Sequence[str] | None = None,
                      limit: int = 1000) -> list[DeferredMessage]: ...


def _entry(m: DeferredMessage, host: str) -> HistoryEntry:
    large = m.request[:7].upper().startswith(b"INVITE")
    # <size>: the size of the message body (the stored request without its header)
    head, sep, body = m.request.partition(b"\r\n\r\n")
    return HistoryEntry(
        reference=f"{m.id}@{host}", received=m.received_at, size=len(body) if sep else m.size,
        sender=m.sender, recipient=m.recipient, subject=m.subject, expiry=m.expires_at,
        mode=HistoryMode.LARGE if large else HistoryMode.PAGER)


class StoredDeferredMetadata:
    """:class:`~simpleim.server.xdm.api.DeferredMetadata` over the DMF's stored messages;
    ``host``: the host of the Message-ID URIs (DM-05: ``sip:<id>@<host>``)."""

    def __init__(self, source: DeferredSource, host: str) -> None:
        self._source = source
        self._host = host

    async def deferred_entries(self, aor: str) -> Sequence[HistoryEntry]:
        return [_entry(m, self._host) for m in await self._source.pending(aor)]
