"""The users' access policies as the terminating Participating Function reads them:
:class:`StoredAccessPolicies` implements
:class:`~simpleim.server.xdm.api.AccessPolicyLookup` over the stored access-rules documents
(:mod:`simpleim.server.xdm.access`) and the resource-lists lists they name.

The PF answers from memory (no store read on the message path): every user's rules are
loaded at start and read again whenever this server writes or deletes one of that user's
access-rules or resource-lists documents - before the XCAP request is answered, so a block
set over XCAP holds for the next request.  Like the service settings, the copy is per
process: several server nodes on one store see another node's XCAP write at their next
start.
"""

from __future__ import annotations

import logging

from simpleim.errors import XcapError
from simpleim.server.xdm.access import (
    AUID_ACCESS_RULES,
    AccessRule,
    AccessRules,
    parse_access_rules,
    resource_lists_members,
)
from simpleim.server.xdm.api import GLOBAL_OWNER, DocumentRef, PolicyMedia, normalize_uri
from simpleim.server.xdm.documents import DocumentService
from simpleim.server.xdm.usages import AUID_RESOURCE_LISTS

__all__ = ["StoredAccessPolicies"]

log = logging.getLogger("simpleim.server.xdm")

#: the document of a user's lists that ``<external-list>`` anchors point into
RESOURCE_LISTS_DOCUMENT = "index"


class StoredAccessPolicies:
    def __init__(self, documents: DocumentService) -> None:
        self._documents = documents
        self._by_owner: dict[str, AccessRules] = {}

    async def load(self) -> int:
        """Read every user's rules; how many users have some."""
        for owner in await self._documents.owners(AUID_ACCESS_RULES):
            await self.refresh(owner)
        return len(self._by_owner)

    async def refresh(self, owner: str) -> None:
        rules: list[AccessRule] = []
        for doc in await self._documents.documents(AUID_ACCESS_RULES, owner):
            try:
                rules.extend(parse_access_rules(doc.content))
            except XcapError as exc:
                # written before a check existed, or by hand: it blocks nobody
                log.warning("access rules %s of %s unreadable: %s", doc.ref.name, owner,
                            exc.reason)
        if not rules:
            self._by_owner.pop(owner, None)
            return
        policy = AccessRules(tuple(rules))
        lists: dict[str, frozenset[str]] = {}
        if policy.list_names:
            own = await self._documents.get(DocumentRef(AUID_RESOURCE_LISTS, owner,
                                                        RESOURCE_LISTS_DOCUMENT))
            if own is not None:
                try:
                    lists = resource_lists_members(own.content, policy.list_names)
                except XcapError as exc:
                    log.warning("resource lists of %s unreadable: %s", owner, exc.reason)
        self._by_owner[owner] = AccessRules(policy.rules, lists)

    async def changed(self, ref: DocumentRef) -> None:
        """:meth:`DocumentService.observe` hook."""
        if ref.owner != GLOBAL_OWNER and ref.auid in (AUID_ACCESS_RULES, AUID_RESOURCE_LISTS):
            await self.refresh(ref.owner)

    def rejects(self, recipient: str, sender: str, media: PolicyMedia, *,
                anonymous: bool = False) -> bool:
        policy = self._by_owner.get(normalize_uri(recipient))
        return policy is not None and policy.rejects(sender, media, anonymous=anonymous)
