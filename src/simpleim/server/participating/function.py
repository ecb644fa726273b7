"""The Participating Function (OMA SIMPLE IM §6.1), originating and terminating side.

Pure decisions over a request and the user's settings; the core applies them:

* :meth:`ParticipatingFunction.originating` — PO-01 (in order: authenticated originator ->
  403 + Warning 127; content policy for pager mode -> 415 with Accept listing what is
  supported) and PO-09 step 2 (anonymity not allowed -> 403 + Warning 119); with
  ``Privacy: id`` the From becomes the anonymous identity (§5.1, RFC 3323 §4.1.1.3).
* :meth:`ParticipatingFunction.terminating` — PT-01 step 1 (barring from the service
  settings: ``ipab`` for pager / large messages, ``isb`` for sessions -> 403 + Warning 127),
  step 3 (content policy -> 415); the P-Asserted-Identity of an anonymous sender is not
  passed to the user (RFC 3325 §7).
* :meth:`ParticipatingFunction.defer_unregistered` / :meth:`~.defer_after_failure` — PT-01
  step 5: a MESSAGE for a user who cannot receive it is handed to the Deferred Messaging
  Function (not registered; or every contact failed with 408/480/503, i.e. no answer
  before Timer F or unreachable).  is-composing indications are never deferred (RFC 3994
  §4: they are transient state, not messages).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from simpleim.errors import ProtocolError
from simpleim.server.roles import (
    W_ANONYMITY_NOT_ALLOWED,
    W_SERVICE_NOT_AUTHORISED,
    Reply,
    im_warning,
)
from simpleim.sip.message import SipRequest

__all__ = ["PfConfig", "ParticipatingFunction", "UserSettings", "UserSettingsLookup"]

ANONYMOUS_FROM = '"Anonymous" <sip:anonymous@anonymous.invalid>'
LARGE_MESSAGE_TAG = "+g.oma.sip-im.large-message"
COMPOSING = "application/im-iscomposing+xml"
#: Pager-mode content the operator policy accepts by default (PO-01 step 4a).
DEFAULT_PAGER_TYPES = ("text/plain", "message/cpim", "message/imdn+xml", COMPOSING,
                       "multipart/mixed", "multipart/related", "application/sdp",
                       "text/html", "message/sip", "message/sipfrag")
_UNREACHABLE = frozenset({408, 480, 503})


class UserSettings(Protocol):
    """The settings the PF applies (Appendix E: isb, ipab)."""

    @property
    def incoming_session_barring(self) -> bool: ...

    @property
    def incoming_pager_barring(self) -> bool: ...


class UserSettingsLookup(Protocol):
    def settings_of(self, aor: str, now: float) -> UserSettings: ...


@dataclass(frozen=True, slots=True)
class PfConfig:
    host: str
    pager_content_types: tuple[str, ...] = DEFAULT_PAGER_TYPES
    allow_anonymity: bool = True


def _anonymous(req: SipRequest) -> bool:
    try:
        return any(v.lower() in ("id", "header", "user") for v in req.privacy)
    except ProtocolError:
        return False


def _is_large_message(req: SipRequest) -> bool:
    return any(LARGE_MESSAGE_TAG in v.lower() for v in req.headers.get_all("Accept-Contact"))


class ParticipatingFunction:
    def __init__(self, config: PfConfig, settings: UserSettingsLookup) -> None:
        self._config = config
        self._settings = settings

    def _forbidden(self, text: str) -> Reply:
        return Reply(403, "Forbidden", (("Warning", im_warning(self._config.host, text)),))

    def _content_ok(self, req: SipRequest) -> Reply | None:
        if req.method != "MESSAGE" or not req.body:
            return None
        ctype = req.content_type or "text/plain"
        if ctype in self._config.pager_content_types:
            return None
        # PO-01 step 4a / PT-01 step 3a: 415 with the supported media types (RFC 3261
        # §21.4.13: in Accept).
        return Reply(415, headers=(("Accept", ", ".join(self._config.pager_content_types)),))

    # ------------------------------------------------------------------ originating

    def originating(self, req: SipRequest, authenticated: str | None) -> Reply | None:
        """PO-01 / PO-09 for a request of the served user; None: go on.  May rewrite
        From to the anonymous identity (Privacy: id)."""
        if authenticated is None:
            # PO-01 step 1 (§5.1): no authenticated originator -> 403 + Warning 127.
            return self._forbidden(W_SERVICE_NOT_AUTHORISED)
        bad = self._content_ok(req)
        if bad is not None:
            return bad
        if _anonymous(req):
            if not self._config.allow_anonymity:
                # PO-09 step 2: 403 + Warning 119.
                return self._forbidden(W_ANONYMITY_NOT_ALLOWED)
            # §5.1: the From carries an anonymous URI (RFC 3323 §4.1.1.3), tag kept.
            tag = req.from_addr.tag
            req.headers.set("From", ANONYMOUS_FROM + (f";tag={tag}" if tag else ""))
        return None

    # ------------------------------------------------------------------ terminating

    def terminating(self, req: SipRequest, recipient: str, now: float) -> Reply | None:
        """PT-01 steps 1 and 3 for a request to the served user ``recipient``."""
        settings = self._settings.settings_of(recipient, now)
        if req.method == "MESSAGE" or (req.method == "INVITE" and _is_large_message(req)):
            if settings.incoming_pager_barring:
                return self._forbidden(W_SERVICE_NOT_AUTHORISED)
        elif req.method == "INVITE" and settings.incoming_session_barring:
            return self._forbidden(W_SERVICE_NOT_AUTHORISED)
        bad = self._content_ok(req)
        if bad is not None:
            return bad
        if _anonymous(req):
            # RFC 3325 §7 / DM-05: an anonymous sender's asserted identity is not passed on.
            req.headers.remove("P-Asserted-Identity")
        return None

    def deferrable(self, req: SipRequest) -> bool:
        """PT-01 step 5 applies to SIP MESSAGE (pager mode), not to is-composing."""
        return req.method == "MESSAGE" and (req.content_type or "") != COMPOSING

    def defer_unregistered(self, req: SipRequest, registered: bool, queued: bool) -> bool:
        """PT-01 step 5: not registered -> defer; messages already queued for the user ->
        defer too, so that they arrive in order."""
        return self.deferrable(req) and (not registered or queued)

    def defer_after_failure(self, req: SipRequest, statuses: Iterable[int]) -> bool:
        """PT-01 step 5 for a registered user whose every contact failed with 408 / 480 /
        503 (no answer before Timer F, temporarily unavailable, unreachable)."""
        got = list(statuses)
        return self.deferrable(req) and bool(got) and all(s in _UNREACHABLE for s in got)
