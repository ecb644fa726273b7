"""Stored XDM documents with entity tags: :class:`DocumentService` implements
:class:`~simpleim.server.xdm.api.XdmDocuments` over the store's XDM repository.

Every write is read–modify–write under optimistic concurrency: the current document is
read, the HTTP preconditions are checked against its entity tag (RFC 9110 §13.1: 412 when
one fails), the new content is built and checked by its application usage (RFC 4825 §8.2:
409 with the §11 condition), and the store writes it only if the entity tag is still the one
read.  When another writer came in between, a request that named an entity tag gets 412
(it is stale now); one without preconditions is redone on the new state (bounded).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from simpleim.errors import SimpleImError, XcapError
from simpleim.server.xdm.api import DocumentRef, XdmDocument
from simpleim.server.xdm.usages import AppUsage
from simpleim.server.xdm.xmldoc import parse_document
from simpleim.store.xdm import XdmRecord

__all__ = ["DocumentRepository", "DocumentService", "Observer", "Transform",
           "check_preconditions", "parse_etags"]

_RETRIES = 5


class DocumentRepository(Protocol):
    """What the XDM role needs from :class:`simpleim.store.xdm.XdmRepository`."""

    async def get(self, auid: str, owner: str, name: str) -> XdmRecord | None: ...

    async def write(self, record: XdmRecord, *, expect: str | None,
                    uris: Sequence[str] = ()) -> bool: ...

    async def delete(self, auid: str, owner: str, name: str, *, expect: str) -> bool: ...

    async def claimed_by(self, uri: str) -> tuple[str, str, str] | None: ...

    async def find(self, uri: str) -> XdmRecord | None: ...

    async def documents(self, auid: str, owner: str) -> list[XdmRecord]: ...

    async def owners(self, auid: str) -> list[str]: ...


#: told of every document this service wrote or deleted, after the write committed
Observer = Callable[[DocumentRef], Awaitable[None]]
log = logging.getLogger("simpleim.server.xdm")

#: current document (None: none) -> new content (None: delete the document)
Transform = Callable[[XdmDocument | None], bytes | None]


def parse_etags(value: str) -> list[str] | None:
    """An If-Match / If-None-Match value → its entity tags without quotes (weak ones with
    ``W/`` dropped); None for ``*``."""
    if value.strip() == "*":
        return None
    tags = []
    for item in value.split(","):
        tag = item.strip().removeprefix("W/").strip()
        if len(tag) >= 2 and tag[0] == tag[-1] == '"':
            tag = tag[1:-1]
        if tag:
            tags.append(tag)
    return tags


def check_preconditions(current: str | None, if_match: str | None,
                        if_none_match: str | None, *, read: bool = False) -> int | None:
    """RFC 9110 §13.2.2 for a document whose entity tag is ``current`` (None: absent):
    None when the request may proceed, else the status (412, or 304 for a read whose
    If-None-Match matched)."""
    if if_match is not None:
        tags = parse_etags(if_match)
        if current is None or (tags is not None and current not in tags):
            return 412
    if if_none_match is not None:
        tags = parse_etags(if_none_match)
        if current is not None and (tags is None or current in tags):
            return 304 if read else 412
    return None


def _to_doc(record: XdmRecord) -> XdmDocument:
    return XdmDocument(DocumentRef(record.auid, record.owner, record.name), record.etag,
                       record.content.encode("utf-8"), record.updated)


class DocumentService:
    """:class:`~simpleim.server.xdm.api.XdmDocuments` over a :class:`DocumentRepository`."""

    def __init__(self, repo: DocumentRepository, usages: Mapping[str, AppUsage],
                 clock: Callable[[], float], *, max_size: int = 1024 * 1024) -> None:
        self._repo = repo
        self._usages = usages
        self._clock = clock
        self.max_size = max_size
        self._observers: list[Observer] = []

    def observe(self, observer: Observer) -> None:
        """Call ``observer`` with the reference of each document written or deleted here
        (after the store committed it, before the writer is answered)."""
        self._observers.append(observer)

    async def _changed(self, ref: DocumentRef) -> None:
        for observer in self._observers:
            try:
                await observer(ref)
            except SimpleImError as exc:
                # the write is committed: the writer gets its 200/201 all the same
                log.error("after the write of %s/%s/%s: %s", ref.auid, ref.owner, ref.name,
                          exc)

    async def owners(self, auid: str) -> list[str]:
        """The owners of at least one document of ``auid``."""
        return await self._repo.owners(auid)

    async def get(self, ref: DocumentRef) -> XdmDocument | None:
        record = await self._repo.get(ref.auid, ref.owner, ref.name)
        return None if record is None else _to_doc(record)

    async def documents(self, auid: str, owner: str) -> list[XdmDocument]:
        return [_to_doc(r) for r in await self._repo.documents(auid, owner)]

    async def find(self, uri: str) -> XdmDocument | None:
        """The document that claims ``uri`` (a group URI)."""
        record = await self._repo.find(uri)
        return None if record is None else _to_doc(record)

    async def put(self, ref: DocumentRef, content: bytes, *, if_match: str | None = None,
                  if_none_match: str | None = None) -> tuple[XdmDocument, bool]:
        doc, created = await self.update(ref, lambda _current: content, if_match=if_match,
                                         if_none_match=if_none_match)
        if doc is None:
            raise XcapError("nothing stored", status=500)
        return doc, created

    async def delete(self, ref: DocumentRef, *, if_match: str | None = None) -> bool:
        current = await self.get(ref)
        if current is None:
            return False
        await self.update(ref, lambda _current: None, if_match=if_match)
        return True

    def _usage(self, ref: DocumentRef) -> AppUsage:
        usage = self._usages.get(ref.auid)
        if usage is None:
            raise XcapError(f"no application usage {ref.auid!r}", status=404)
        if not usage.writable:
            raise XcapError(f"{ref.auid} documents are written by the server only",
                            status=405)
        return usage

    async def _claims(self, ref: DocumentRef, usage: AppUsage, content: bytes) -> list[str]:
        """Check ``content`` as ``usage`` says; the server-wide URIs it claims, each free
        or already this document's (else 409 uniqueness-failure with a free alt-value)."""
        if len(content) > self.max_size:
            raise XcapError(f"the document would exceed {self.max_size} bytes", status=413)
        root = parse_document(content)
        uris = usage.check(root) if usage.check is not None else []
        mine = (ref.auid, ref.owner, ref.name)
        for uri in uris:
            holder = await self._repo.claimed_by(uri)
            if holder is not None and holder != mine:
                raise XcapError(f"{uri} is already defined", condition="uniqueness-failure",
                                field="group/list-service/@uri",
                                alt_values=(await self._free_alternative(uri),))
        return uris

    async def _free_alternative(self, uri: str) -> str:
        scheme_user, at, host = uri.rpartition("@")
        for n in range(2, 100):
            alt = f"{scheme_user}-{n}@{host}" if at else f"{uri}-{n}"
            if await self._repo.claimed_by(alt) is None:
                return alt
        return f"{scheme_user}-{secrets.token_hex(4)}@{host}" if at else uri

    async def update(self, ref: DocumentRef, transform: Transform, *,
                     if_match: str | None = None,
                     if_none_match: str | None = None) -> tuple[XdmDocument | None, bool]:
        """Read, check preconditions, ``transform``, check, write if unchanged meanwhile.
        (the stored document or None when deleted, whether it was created)."""
        usage = self._usage(ref)
        for _ in range(_RETRIES):
            current = await self.get(ref)
            status = check_preconditions(current.etag if current else None, if_match,
                                         if_none_match)
            if status is not None:
                raise XcapError("precondition failed", status=status)
            content = transform(current)
            if content is None:
                if current is None:
                    raise XcapError("no such document", status=404)
                if await self._repo.delete(ref.auid, ref.owner, ref.name,
                                           expect=current.etag):
                    await self._changed(ref)
                    return None, False
            else:
                uris = await self._claims(ref, usage, content)
                record = XdmRecord(ref.auid, ref.owner, ref.name, secrets.token_hex(12),
                                   content.decode("utf-8"), self._clock())
                if await self._repo.write(record, expect=current.etag if current else None,
                                          uris=uris):
                    await self._changed(ref)
                    return _to_doc(record), current is None
            if if_match is not None or if_none_match is not None:
                raise XcapError("the document changed meanwhile", status=412)
        raise XcapError("the document kept changing; try again", status=409,
                        condition="constraint-failure")
