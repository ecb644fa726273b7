"""The XDM role of one server: its stored documents, the group directory the Controlling
Function reads, and the metadata sources of the Deferred Messaging and Conversation History
Functions (made in :func:`simpleim.server.services.build_roles`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simpleim.server.xdm.api import DeferredMetadata, GroupDirectory, HistoryMetadata
from simpleim.server.xdm.directory import StoredGroupDirectory
from simpleim.server.xdm.documents import DocumentRepository, DocumentService
from simpleim.server.xdm.policies import StoredAccessPolicies
from simpleim.server.xdm.usages import USAGES

__all__ = ["XdmFunction", "build_xdm"]


@dataclass(frozen=True, slots=True)
class XdmFunction:
    documents: DocumentService
    groups: GroupDirectory
    deferred: DeferredMetadata
    history: HistoryMetadata
    #: the users' access policies (§6.1.2.1 step 2), kept current by the documents' writes
    access: StoredAccessPolicies


def build_xdm(repo: DocumentRepository, deferred: DeferredMetadata, history: HistoryMetadata,
              clock: Callable[[], float], *, max_document: int) -> XdmFunction:
    documents = DocumentService(repo, USAGES, clock, max_size=max_document)
    access = StoredAccessPolicies(documents)
    documents.observe(access.changed)
    return XdmFunction(documents, StoredGroupDirectory(documents), deferred, history, access)
