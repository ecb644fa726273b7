"""Trust decisions of the proxy: which route sets are ours, and asserted identities.

* :class:`RouteStamp` (issue 7 items 1-2): every Record-Route URI we insert carries a keyed
  hash of the dialog's Call-ID (``rt`` parameter).  RFC 3261 §12.1.1: the UAs copy the
  Record-Route URIs verbatim into their route set, so an in-dialog request that really
  follows a route set we recorded brings the stamp back in its Route (or, behind a strict
  router, in its Request-URI, §16.4).  A Route naming us without a valid stamp is forged:
  the request does not skip authentication for it (Kamailio answers such requests 404).
* RFC 3325 (issue 7 item 12): the P-Asserted-Identity and P-Preferred-Identity a client sends
  are removed at the trust boundary (§5: a proxy only trusts them from a trusted node, and
  we trust none); the identity we authenticated is asserted in a P-Asserted-Identity we add
  ourselves (§4, §9.1).  Everything our registered users receive through us is therefore
  either without PAI or with the one we put there.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from simpleim.sip.message import SipRequest
from simpleim.sip.uri import SipUri

__all__ = ["RouteStamp", "ROUTE_STAMP_PARAM", "strip_identity", "assert_identity"]

# The Record-Route URI parameter holding the stamp (a URI parameter: UAs must keep it,
# RFC 3261 §12.1.1 / §19.1.1).
ROUTE_STAMP_PARAM = "rt"
_IDENTITY_HEADERS = ("P-Asserted-Identity", "P-Preferred-Identity")


class RouteStamp:
    """Keyed stamps for the Record-Route URIs of one server (or of several sharing a key)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key else secrets.token_bytes(32)

    def stamp(self, call_id: str) -> str:
        """The stamp of the dialog with ``call_id`` (16 hex digits)."""
        return hashlib.blake2s(call_id.encode("utf-8", "surrogateescape"), key=self._key[:32],
                               digest_size=8).hexdigest()

    def valid(self, uri: SipUri, call_id: str) -> bool:
        """True if ``uri`` (one of our Route entries) carries the stamp of ``call_id``."""
        value = uri.params.get(ROUTE_STAMP_PARAM)
        if not value:
            return False
        return hmac.compare_digest(value.lower(), self.stamp(call_id))


def strip_identity(req: SipRequest) -> bool:
    """RFC 3325 §5 / §9.1: remove client-supplied P-Asserted-Identity and
    P-Preferred-Identity; returns True if any was present."""
    h = req.headers
    found = False
    for name in _IDENTITY_HEADERS:
        if name in h:
            h.remove(name)
            found = True
    return found


def assert_identity(req: SipRequest, user: str, domain: str) -> None:
    """RFC 3325 §9.1: assert the authenticated identity ``user@domain``."""
    req.headers.add("P-Asserted-Identity", f"<sip:{user}@{domain}>")
