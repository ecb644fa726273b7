"""XDM documents over XCAP (RFC 4825): the IM XDMS and Shared Group XDMS of OMA SIMPLE IM
(§7.1.1.4, §12.1.2, §13.1.4, Appendix J, Q).

Other roles depend on :mod:`simpleim.server.xdm.api` only: the Controlling Function on
:class:`~simpleim.server.xdm.api.GroupDirectory`; the Deferred Messaging and Conversation
History Functions provide :class:`~simpleim.server.xdm.api.DeferredMetadata` /
:class:`~simpleim.server.xdm.api.HistoryMetadata`.
"""

from __future__ import annotations

from simpleim.server.xdm.api import (
    GLOBAL_OWNER,
    DeferredMetadata,
    DocumentRef,
    GroupActions,
    GroupDefinition,
    GroupDirectory,
    GroupMember,
    GroupRule,
    GroupUsage,
    HistoryEntry,
    HistoryMetadata,
    HistoryMode,
    NoHistory,
    SessionActivePolicy,
    XdmDocument,
    XdmDocuments,
    normalize_uri,
)
from simpleim.server.xdm.directory import StoredGroupDirectory, xui_of
from simpleim.server.xdm.documents import DocumentService
from simpleim.server.xdm.metadata import StoredDeferredMetadata, history_list
from simpleim.server.xdm.usages import USAGES, AppUsage

__all__ = [
    "GLOBAL_OWNER",
    "USAGES",
    "AppUsage",
    "DeferredMetadata",
    "DocumentRef",
    "DocumentService",
    "GroupActions",
    "GroupDefinition",
    "GroupDirectory",
    "GroupMember",
    "GroupRule",
    "GroupUsage",
    "HistoryEntry",
    "HistoryMetadata",
    "HistoryMode",
    "NoHistory",
    "SessionActivePolicy",
    "StoredDeferredMetadata",
    "StoredGroupDirectory",
    "XdmDocument",
    "XdmDocuments",
    "history_list",
    "normalize_uri",
    "xui_of",
]
