"""The pre-defined groups as the Controlling Function sees them: :class:`StoredGroupDirectory`
implements :class:`~simpleim.server.xdm.api.GroupDirectory` over the stored group documents
(``org.openmobilealliance.groups``) and the owners' Group Usage Lists (Appendix Q).

A lookup is two indexed reads (the document claiming the URI, the owner's usage list);
nothing is cached, so a group changed over XCAP is seen by the next request.
"""

from __future__ import annotations

import logging

from simpleim.errors import XcapError
from simpleim.server.xdm.api import (
    DocumentRef,
    GroupDefinition,
    GroupUsage,
    normalize_uri,
)
from simpleim.server.xdm.documents import DocumentService
from simpleim.server.xdm.groups import group_usage_map, parse_groups
from simpleim.server.xdm.usages import AUID_GROUP_USAGE, AUID_GROUPS

__all__ = ["StoredGroupDirectory", "xui_of"]

log = logging.getLogger("simpleim.server.xdm")

#: the document of a user's Group Usage List (OMA Shared List XDMS)
GROUP_USAGE_DOCUMENT = "index"


def xui_of(user: str) -> str:
    """The XUI (tree name) of ``alice@example.com`` / ``sip:alice@example.com``."""
    return normalize_uri(user)


class StoredGroupDirectory:
    """:class:`~simpleim.server.xdm.api.GroupDirectory` over a :class:`DocumentService`."""

    def __init__(self, documents: DocumentService) -> None:
        self._documents = documents

    async def _usages(self, owner: str) -> dict[str, GroupUsage]:
        doc = await self._documents.get(DocumentRef(AUID_GROUP_USAGE, owner,
                                                    GROUP_USAGE_DOCUMENT))
        if doc is None:
            return {}
        try:
            return group_usage_map(doc.content)
        except XcapError as exc:
            log.warning("group usage list of %s unreadable: %s", owner, exc.reason)
            return {}

    async def group(self, uri: str) -> GroupDefinition | None:
        key = normalize_uri(uri)
        doc = await self._documents.find(key)
        if doc is None:
            return None
        try:
            groups = parse_groups(doc.content, doc.ref.owner, doc.ref.name, doc.etag,
                                  await self._usages(doc.ref.owner))
        except XcapError as exc:
            log.warning("group document %s/%s unreadable: %s", doc.ref.owner, doc.ref.name,
                        exc.reason)
            return None
        return next((g for g in groups if g.uri == key), None)

    async def groups_of(self, owner: str) -> list[GroupDefinition]:
        xui = xui_of(owner)
        usages = await self._usages(xui)
        out: list[GroupDefinition] = []
        for doc in await self._documents.documents(AUID_GROUPS, xui):
            try:
                out += parse_groups(doc.content, xui, doc.ref.name, doc.etag, usages)
            except XcapError as exc:
                log.warning("group document %s/%s unreadable: %s", xui, doc.ref.name,
                            exc.reason)
        return out
