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
from dataclasses import dataclass, field, replace
from typing import Protocol

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


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of an AOR (RFC 3261 §10.3, RFC 3327, RFC 5626, RFC 3840)."""

    aor: str  # aor_key()
    contact: str  # the contact URI as registered (no angle brackets)
    expires_at: float  # wall-clock
    q: float = 1.0
    call_id: str = ""
    cseq: int = 0
    # RFC 5626 §4.2: +sip.instance and reg-id identify a flow-bound binding.
    instance: str | None = None
    reg_id: int | None = None
    # RFC 3840 §9: contact parameters (feature tags) kept verbatim, lower-case names.
    params: tuple[tuple[str, str | None], ...] = ()
    # RFC 3327 §5.3: the Path header values to put in front of requests to this contact.
    path: tuple[str, ...] = ()
    # Where the REGISTER came from: (transport, host, port); used to reach the UA over
    # the same connection (RFC 5626 §5.3 / connection reuse) when it is still open.
    source: tuple[str, str, int] | None = None
    key: str = field(default="")

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))

    def with_key(self) -> Binding:
        return self if self.key else replace(self, key=binding_key(self))


def binding_key(b: Binding) -> str:
    """Identity of a binding within its AOR.

    RFC 5626 §6: (instance, reg-id) when both are present, else the contact URI
    (RFC 3261 §10.3 step 7 compares URIs with §19.1.4 rules; we use the registered text
    with scheme and host lower-cased).
    """
    if b.instance is not None and b.reg_id is not None:
        return f"instance:{b.instance}:{b.reg_id}"
    return "uri:" + _normalize_uri_text(b.contact)


def _normalize_uri_text(uri: str) -> str:
    scheme, sep, rest = uri.partition(":")
    if not sep:
        return uri
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        hostpart, userinfo = rest, ""
    host, semi, params = hostpart.partition(";")
    out = scheme.lower() + ":" + (userinfo + "@" if at else "") + host.lower()
    return out + (semi + params if semi else "")


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
