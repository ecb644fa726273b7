"""Location service: address-of-record -> current contact bindings.

RFC 3261 §10.3 / §16.5: the registrar writes bindings, the proxy reads them.  The proxy
must never hit the database per request, so this module keeps an in-memory index,
loaded from the persistent store at start and written *through* it (the store is
written first, then the index, so a 200 OK is only sent for a durable binding).

Times are wall-clock seconds (``time.time()``), because bindings outlive a restart.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

# The record type lives in the store (storage must not depend on the server role);
# re-exported here for compatibility.
from simpleim.store.model import Binding, binding_key
from simpleim.transport.sip_addr import RELIABLE, TransportAddr

__all__ = [
    "Binding",
    "BindingChange",
    "BindingStore",
    "LocationService",
    "RegistrationEvent",
    "RegistrationListener",
    "aor_key",
    "binding_key",
    "flow_of",
]

log = logging.getLogger("simpleim.server.location")


def aor_key(user: str | None, host: str) -> str:
    """Canonical index key of an AOR: ``user@host`` with the host lower-cased.

    RFC 3261 §19.1.4: the user part is case-sensitive, the host is not.
    """
    return f"{user or ''}@{host.lower()}"


def flow_of(b: Binding) -> TransportAddr | None:
    """The flow a binding is bound to (RFC 5626 §5.2), or None.

    A registration with ``+sip.instance`` and ``reg-id`` (§6) that reached us directly (no
    Path: an edge proxy would own the flow, §5.1) over TCP/TLS is reachable only over
    that connection: when it dies the binding is useless.
    """
    src = b.source
    if (b.instance is None or b.reg_id is None or b.path or src is None
            or src[0] not in RELIABLE):
        return None
    return TransportAddr(src[0], src[1], src[2])


class BindingChange(enum.Enum):
    ADDED = "added"              # a new contact for the AOR (RFC 3261 §10.3 step 7)
    REFRESHED = "refreshed"      # an existing binding re-registered (new expiry, flow)
    REMOVED = "removed"          # de-registered (Expires 0, Contact: *)
    EXPIRED = "expired"          # its expiry passed (§10.3)
    FLOW_FAILED = "flow-failed"  # its RFC 5626 flow died (connection closed / no keep-alive)


@dataclass(frozen=True, slots=True)
class RegistrationEvent:
    """One change of the location service, told to every :class:`RegistrationListener`
    after the store has it."""

    change: BindingChange
    binding: Binding


# Told about every binding change (e.g. deliver stored messages when a user registers).
RegistrationListener = Callable[[RegistrationEvent], None]


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
        # RFC 5626 flow -> AORs with a binding on it (may hold stale AORs: checked on use)
        self._flows: dict[TransportAddr, set[str]] = {}
        self.listeners: list[RegistrationListener] = []

    def _tell(self, change: BindingChange, binding: Binding) -> None:
        for listener in list(self.listeners):
            try:
                listener(RegistrationEvent(change, binding))
            except Exception:  # noqa: BLE001 - one listener's bug must not stop REGISTER
                log.exception("registration listener failed on %s", change.value)

    def _index_flow(self, b: Binding) -> None:
        flow = flow_of(b)
        if flow is not None:
            self._flows.setdefault(flow, set()).add(b.aor)

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
                self._index_flow(b)
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
                    self._tell(BindingChange.EXPIRED, b)
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
        old = self._index.get(aor, {})
        if keyed:
            self._index[aor] = {b.key: b for b in keyed}
        else:
            self._index.pop(aor, None)
        for b in keyed:
            self._index_flow(b)
        if self.listeners:
            for key, b in old.items():
                if key not in self._index.get(aor, {}):
                    self._tell(BindingChange.REMOVED if b.expires_at > now
                               else BindingChange.EXPIRED, b)
            for b in keyed:
                self._tell(BindingChange.REFRESHED if b.key in old else BindingChange.ADDED, b)
        return sorted(keyed, key=lambda b: -b.q)

    def aors_on_flow(self, flow: TransportAddr) -> list[str]:
        """AORs that may have a binding bound to ``flow`` (RFC 5626 §5.2)."""
        return sorted(self._flows.get(flow, ()))

    async def drop_flow(self, aor: str, flow: TransportAddr) -> list[Binding]:
        """Remove the bindings of ``aor`` bound to ``flow`` because the flow died (store
        first, then the index); returns them.  The caller serialises per AOR."""
        aors = self._flows.get(flow)
        if aors is not None:
            aors.discard(aor)
            if not aors:
                del self._flows[flow]
        entries = self._index.get(aor, {})
        dead = [b for b in entries.values() if flow_of(b) == flow]
        if not dead:
            return []
        keep = [b for b in entries.values() if flow_of(b) != flow]
        if self._store is not None:
            await self._store.replace_bindings(aor, keep)
        if keep:
            self._index[aor] = {b.key: b for b in keep}
        else:
            self._index.pop(aor, None)
        for b in dead:
            self._tell(BindingChange.FLOW_FAILED, b)
        return dead

    def flows(self) -> list[TransportAddr]:
        """Every flow some binding is bound to."""
        return list(self._flows)

    def purge_expired(self) -> int:
        now = self._clock()
        removed = 0
        for aor in list(self._index):
            before = len(self._index[aor])
            removed += before - len(self.lookup(aor, now))
        for flow in [f for f, aors in self._flows.items()
                     if not any(flow_of(b) == f for a in aors
                                for b in self._index.get(a, {}).values())]:
            del self._flows[flow]
        return removed

    def aors(self) -> list[str]:
        return list(self._index)

    def aor_count(self) -> int:
        """How many AORs have bindings in the index (expired ones until purged)."""
        return len(self._index)

    def binding_count(self) -> int:
        """How many bindings the index holds (expired ones until purged)."""
        return sum(len(entries) for entries in self._index.values())
