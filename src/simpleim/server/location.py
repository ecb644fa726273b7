"""Location service: address-of-record -> current contact bindings.

RFC 3261 §10.3 / §16.5: the registrar writes bindings, the proxy reads them.  The proxy
must never hit the database per request, so this module keeps an in-memory index,
loaded from the persistent store at start and written *through* it (the store is
written first, then the index, so a 200 OK is only sent for a durable binding).

Times are wall-clock seconds (``time.time()``), because bindings outlive a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

# The record type lives in the store (storage must not depend on the server role);
# re-exported here for compatibility.
from simpleim.store.model import Binding, binding_key

__all__ = [
    "Binding",
    "BindingStore",
    "LocationService",
    "aor_key",
    "binding_key",
]

log = logging.getLogger("simpleim.server.location")


def aor_key(user: str | None, host: str) -> str:
    """Canonical index key of an AOR: ``user@host`` with the host lower-cased.

    RFC 3261 §19.1.4: the user part is case-sensitive, the host is not.
    """
    return f"{user or ''}@{host.lower()}"


class BindingStore(Protocol):
    """What the location service needs from the persistent store."""

    async def load_bindings(self) -> list[Binding]: ...

    async def replace_bindings(self, aor: str, bindings: list[Binding]) -> None: ...

    async def purge_expired(self, now: float) -> int: ...


class LocationService:
    """In-memory index of bindings with write-through to a :class:`BindingStore`."""

    def __init__(
        self,
        store: BindingStore | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._clock = clock
        self._index: dict[str, dict[str, Binding]] = {}

    async def load(self) -> int:
        """Load every unexpired binding from the store; returns how many."""
        if self._store is None:
            return 0
        now = self._clock()
        count = 0
        for b in await self._store.load_bindings():
            if b.expires_at > now:
                b = b.with_key()
                self._index.setdefault(b.aor, {})[b.key] = b
                count += 1
        return count

    def now(self) -> float:
        return self._clock()

    def lookup(self, aor: str, now: float | None = None) -> list[Binding]:
        """Current bindings of ``aor``, best q first (RFC 3261 §16.6: q orders targets)."""
        entries = self._index.get(aor)
        if not entries:
            return []
        if now is None:
            now = self._clock()
        live = [b for b in entries.values() if b.expires_at > now]
        if len(live) != len(entries):
            for b in list(entries.values()):
                if b.expires_at <= now:
                    del entries[b.key]
            if not entries:
                del self._index[aor]
        live.sort(key=lambda b: -b.q)
        return live

    def has_bindings(self, aor: str) -> bool:
        return bool(self.lookup(aor))

    async def replace(self, aor: str, bindings: Iterable[Binding]) -> list[Binding]:
        """Set the complete binding list of ``aor`` (store first, then the index)."""
        now = self._clock()
        keyed = [b.with_key() for b in bindings if b.expires_at > now]
        if self._store is not None:
            # RFC 3261 §10.3 step 7: the binding must be stored before the 200 is sent.
            await self._store.replace_bindings(aor, keyed)
        if keyed:
            self._index[aor] = {b.key: b for b in keyed}
        else:
            self._index.pop(aor, None)
        return sorted(keyed, key=lambda b: -b.q)

    def purge_expired(self) -> int:
        now = self._clock()
        removed = 0
        for aor in list(self._index):
            before = len(self._index[aor])
            removed += before - len(self.lookup(aor, now))
        return removed

    def aors(self) -> list[str]:
        return list(self._index)

    def aor_count(self) -> int:
        """How many AORs have bindings in the index (expired ones until purged)."""
        return len(self._index)

    def binding_count(self) -> int:
        """How many bindings the index holds (expired ones until purged)."""
        return sum(len(entries) for entries in self._index.values())
