"""Data types of the store shared with the server roles: the registrar binding record.

This module depends on nothing above the standard library, so the storage layer never
imports the server (layering: ``server/`` -> ``store/``, never the other way round).
:mod:`simpleim.server.location` re-exports :class:`Binding` and :func:`binding_key`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = ["Binding", "binding_key"]


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of an AOR (RFC 3261 §10.3, RFC 3327, RFC 5626, RFC 3840)."""

    aor: str  # simpleim.server.location.aor_key(): "user@host", host lower-cased
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
