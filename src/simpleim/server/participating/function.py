"""The Participating Function (OMA SIMPLE IM §6.1), originating and terminating side.

Pure decisions over a request and the user's settings; the core applies them:

* :meth:`ParticipatingFunction.originating` — PO-01 in the order of §6.1.1.1: step 1
  authenticated originator -> 403 + Warning 127; step 2 an answer to a System Message is
  overdue (Ts1 ran out, :mod:`simpleim.server.system`) -> 403 + Error-Info; step 3
  User-Agent policy -> 403 + Error-Info (+ a 399 Warning in words); step 4a pager content
  -> 415 with Accept listing what is supported, step 4b the SDP of a session, large-message
  or file-transfer INVITE -> 488 with the supported sizes and contents (399 Warning, and
  as SDP).  Then PO-09 step 2 (anonymity not allowed -> 403 + Warning 119); with
  ``Privacy: id`` the From becomes the anonymous identity (§5.1, RFC 3323 §4.1.1.3); step
  3: a MESSAGE whose Date + Expires has passed -> 408 (:func:`message_expired`).
* :meth:`ParticipatingFunction.terminating` — PT-01 step 1 (barring from the service
  settings: ``ipab`` for pager / large messages, ``isb`` for sessions and file transfer
  -> 403 + Warning 127), step 2 (the user's access policy rejects the authenticated
  originator for this medium -> 403 + Warning 122, Appendix S), step 3 (415 / 488 as
  above), step 4 (an expired MESSAGE -> 408, local policy); the P-Asserted-Identity of
  an anonymous sender is not passed to the user (RFC 3325 §7).  A MESSAGE carrying an
  extended group advertisement (PT-12, §6.1.2.6) is checked against the access policy's
  ``<group-advertisement>`` medium only (403 + Warning 122), then delivered.
* :meth:`ParticipatingFunction.hidden` — invisibility (Appendix E.1 ``vis-status``
  ``active="false"``): capability and presence queries of others (OPTIONS, SUBSCRIBE to
  presence) find the user as if not registered; messages and sessions are not affected
  (the setting controls visibility, not reachability; H.2: availability "closed").
* :meth:`ParticipatingFunction.session_timer` — RFC 4028 §8 as a proxy for the sessions
  the PF handles (422 + Min-SE, Session-Expires inserted), with the response side in
  :func:`simpleim.sip.session_timer_proxy.proxy_response`.
* Every answer of the PF carries ``Server: IM-serv/OMA1.0`` (added by the core, §6.1.1.1,
  Appendix F.1) and, to an INVITE, ``Allow`` with the supported methods (§6.1.1.1).
* :meth:`ParticipatingFunction.defer_unregistered` / :meth:`~.defer_after_failure` — PT-01
  step 5: a MESSAGE for a user who cannot receive it is handed to the Deferred Messaging
  Function (not registered; or every contact failed with 408/480/503, i.e. no answer
  before Timer F or unreachable).  is-composing indications are never deferred (RFC 3994
  §4: they are transient state, not messages).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import quote

from simpleim.errors import ProtocolError
from simpleim.server.participating.policy import SessionPolicy, UserAgentPolicy
from simpleim.server.roles import (
    ALLOW_METHODS,
    W_ANONYMITY_NOT_ALLOWED,
    W_FUNCTION_NOT_ALLOWED,
    W_SERVICE_NOT_AUTHORISED,
    Reply,
    im_warning,
)
from simpleim.server.xdm.api import AccessPolicyLookup, PolicyMedia
from simpleim.sip.message import SipRequest
from simpleim.sip.session_timer_proxy import (
    ProxyTimerDecision,
    ProxyTimerPolicy,
    proxy_request,
)
from simpleim.sip.uri import SipUri

__all__ = ["PfConfig", "ParticipatingFunction", "UserSettings", "UserSettingsLookup",
           "message_expired"]

ANONYMOUS_FROM = '"Anonymous" <sip:anonymous@anonymous.invalid>'
LARGE_MESSAGE_TAG = "+g.oma.sip-im.large-message"
COMPOSING = "application/im-iscomposing+xml"
#: the content of an extended group advertisement (§6.1.2.6, §8.2.1 step 3)
GROUP_ADVERTISEMENT = "application/vnd.poc.group-advertisement+xml"
#: Pager-mode content the operator policy accepts by default (PO-01 step 4a).
DEFAULT_PAGER_TYPES = ("text/plain", "message/cpim", "message/imdn+xml", COMPOSING,
                       "multipart/mixed", "multipart/related", "application/sdp",
                       "text/html", "message/sip", "message/sipfrag", GROUP_ADVERTISEMENT)
_UNREACHABLE = frozenset({408, 480, 503})


class UserSettings(Protocol):
    """The settings the PF applies (Appendix E: isb, ipab, vis-status)."""

    @property
    def incoming_session_barring(self) -> bool: ...

    @property
    def incoming_pager_barring(self) -> bool: ...

    @property
    def visible(self) -> bool: ...


class UserSettingsLookup(Protocol):
    def settings_of(self, aor: str, now: float) -> UserSettings: ...


class SystemAnswers(Protocol):
    """§6.1.1.1 step 2: whether a user's answer to a System Message is overdue (Ts1)."""

    def blocked(self, aor: str, now: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class PfConfig:
    host: str
    pager_content_types: tuple[str, ...] = DEFAULT_PAGER_TYPES
    allow_anonymity: bool = True
    user_agents: UserAgentPolicy = UserAgentPolicy()
    #: the Error-Info URI of a refused User-Agent (PO-01 step 3); None: a data: URI
    #: carrying the reason (RFC 2397)
    user_agent_error_info: str | None = None
    sessions: SessionPolicy = SessionPolicy()
    #: RFC 4028 §8 on the sessions the PF handles; None: Session-Expires left alone
    session_timer: ProxyTimerPolicy | None = ProxyTimerPolicy()


def _quoted(name: str) -> str:
    """A display name as the inside of a quoted-string (RFC 3261 §25.1)."""
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _anonymous(req: SipRequest) -> bool:
    try:
        return any(v.lower() in ("id", "header", "user") for v in req.privacy)
    except ProtocolError:
        return False


def _policy_media(req: SipRequest) -> PolicyMedia | None:
    """The Appendix S medium of an initial request (None: not one the policy governs; an
    is-composing MESSAGE is no message of its own but reveals the user: governed too).
    A MESSAGE carrying a group advertisement is the ``<group-advertisement>`` medium
    (§6.1.2.6 step 1), not a pager message."""
    if req.method == "MESSAGE" and req.content_type == GROUP_ADVERTISEMENT:
        return PolicyMedia.GROUP_ADVERTISEMENT
    if req.method == "MESSAGE" or (req.method == "INVITE" and _is_large_message(req)):
        return PolicyMedia.PAGER
    if req.method == "INVITE":
        # RFC 5547: a file transfer offer carries a=file-selector
        return PolicyMedia.FILE_TRANSFER if b"a=file-selector" in req.body \
            else PolicyMedia.SESSION
    return None


def _originator(req: SipRequest) -> str | None:
    """The authenticated originator's IM address: the identity the core asserted
    (P-Asserted-Identity), else the From URI (authentication off)."""
    try:
        for asserted in req.p_asserted_identity:
            return str(asserted.uri)
        return str(req.from_addr.uri)
    except ProtocolError:
        return None


def message_expired(req: SipRequest, now: float) -> bool:
    """PO-09 step 3 / PT-01 step 4: a pager MESSAGE whose ``Expires`` has run out.  RFC 3261
    §20.19: Expires is relative; the reference is the request's ``Date`` (§20.17) when it has
    one, else the moment it arrives (so a MESSAGE without Date is valid on receipt).  An
    unparsable Date or Expires does not expire anything."""
    if req.method != "MESSAGE" or "expires" not in req.headers:
        return False
    try:
        expires = req.expires
    except ProtocolError:
        return False
    date = req.headers.get("Date")
    if expires is None or date is None:
        return False
    try:
        sent = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return sent + expires < now


def _is_large_message(req: SipRequest) -> bool:
    return any(LARGE_MESSAGE_TAG in v.lower() for v in req.headers.get_all("Accept-Contact"))


class ParticipatingFunction:
    def __init__(self, config: PfConfig, settings: UserSettingsLookup,
                 system: SystemAnswers | None = None,
                 access: AccessPolicyLookup | None = None) -> None:
        self._config = config
        self._settings = settings
        self._system = system
        self._access = access

    def _reply(self, req: SipRequest, status: int, headers: tuple[tuple[str, str], ...],
               body: bytes = b"") -> Reply:
        if req.method == "INVITE":
            # §6.1.1.1: Allow with every supported method in answers to INVITE.
            headers = (*headers, ("Allow", ALLOW_METHODS))
        return Reply(status, headers=headers, body=body)

    def _forbidden(self, req: SipRequest, text: str) -> Reply:
        return self._reply(req, 403, (("Warning", im_warning(self._config.host, text)),))

    def _content_ok(self, req: SipRequest) -> Reply | None:
        cfg = self._config
        if req.method == "INVITE" and req.body \
                and (req.content_type or "").lower() == "application/sdp":
            problem = cfg.sessions.refusal(req.body)
            if problem is None:
                return None
            # PO-01 step 4b / PT-01 step 3b: 488 with the sizes and contents supported, in
            # words (§5.6: Warning 399) and as SDP (RFC 3261 §21.4.26).
            text = f"{problem}; {cfg.sessions.supported()}"
            return self._reply(req, 488, (("Warning", im_warning(cfg.host, text)),
                                          ("Content-Type", "application/sdp")),
                               cfg.sessions.capabilities(cfg.host))
        if req.method != "MESSAGE" or not req.body:
            return None
        ctype = req.content_type or "text/plain"
        if ctype in cfg.pager_content_types:
            return None
        # PO-01 step 4a / PT-01 step 3a: 415 with the supported media types (RFC 3261
        # §21.4.13: in Accept).
        return Reply(415, headers=(("Accept", ", ".join(cfg.pager_content_types)),))

    def _user_agent_ok(self, req: SipRequest) -> Reply | None:
        cfg = self._config
        problem = cfg.user_agents.refusal(req.headers.get("User-Agent"))
        if problem is None:
            return None
        # PO-01 step 3: 403 with Error-Info explaining why (RFC 3261 §20.18: a URI); the
        # same reason in a 399 Warning (§5.6.1).
        info = cfg.user_agent_error_info or "data:text/plain;charset=utf-8," + quote(problem)
        return self._reply(req, 403, (("Error-Info", f"<{info}>"),
                                      ("Warning", im_warning(cfg.host, problem))))

    # ------------------------------------------------------------------ originating

    def originating(self, req: SipRequest, authenticated: str | None,
                    now: float = 0.0) -> Reply | None:
        """PO-01 / PO-09 for a request of the served user; None: go on.  May rewrite
        From to the anonymous identity (Privacy: id)."""
        if authenticated is None:
            # PO-01 step 1 (§5.1): no authenticated originator -> 403 + Warning 127.
            return self._forbidden(req, W_SERVICE_NOT_AUTHORISED)
        if self._system is not None and self._system.blocked(authenticated, now):
            # PO-01 step 2: the answer to a System Message is missing and Ts1 ran out ->
            # 403, Error-Info explaining why (RFC 3261 §20.18).
            why = (f"an answer to a System Message is due: send it to sip:System@"
                   f"{self._config.host}")
            return self._reply(req, 403, (
                ("Error-Info", "<data:text/plain;charset=utf-8," + quote(why) + ">"),
                ("Warning", im_warning(self._config.host, why))))
        bad = self._user_agent_ok(req) or self._content_ok(req)
        if bad is not None:
            return bad
        if _anonymous(req):
            if not self._config.allow_anonymity:
                # PO-09 step 2 / §14.3: 403 + Warning 119.
                return self._forbidden(req, W_ANONYMITY_NOT_ALLOWED)
            # §5.1: the From carries an anonymous URI (RFC 3323 §4.1.1.3), tag kept; a
            # display name the user gave is kept: the chat alias of §7.1.1.15 (a client
            # that hides its name sends none, then "Anonymous")
            tag = req.from_addr.tag
            name = req.from_addr.display_name
            value = ANONYMOUS_FROM if not name else \
                f'"{_quoted(name)}" <sip:anonymous@anonymous.invalid>'
            req.headers.set("From", value + (f";tag={tag}" if tag else ""))
        return self._expired(req, now)

    def _expired(self, req: SipRequest, now: float) -> Reply | None:
        if not message_expired(req, now):
            return None
        # PO-09 step 3 / PT-01 step 4 (local policy): an expired pager message is not
        # delivered (nor deferred); RFC 3261 §21.4.9 408, the reason in a 399 Warning.
        return Reply(408, "Message Expired", headers=(
            ("Warning", im_warning(self._config.host, "message expired (Date + Expires)")),))

    # ------------------------------------------------------------------ terminating

    def terminating(self, req: SipRequest, recipient: str, now: float) -> Reply | None:
        """PT-01 steps 1 to 4 (PT-12 for a group advertisement) for a request to the
        served user ``recipient``."""
        settings = self._settings.settings_of(recipient, now)
        # (a group advertisement is governed by the access policy only, §6.1.2.6)
        media = _policy_media(req)
        if media is PolicyMedia.PAGER:
            if settings.incoming_pager_barring:
                return self._forbidden(req, W_SERVICE_NOT_AUTHORISED)
        elif media in (PolicyMedia.SESSION, PolicyMedia.FILE_TRANSFER) \
                and settings.incoming_session_barring:
            # isb-settings: IM sessions and file transfer (every other INVITE).
            return self._forbidden(req, W_SERVICE_NOT_AUTHORISED)
        if self._access is not None and media is not None:
            sender = _originator(req)
            if sender is not None and self._access.rejects(recipient, sender, media,
                                                           anonymous=_anonymous(req)):
                # step 2 d) / e), §6.1.2.6 step 1: a rule of the user's access policy
                # rejects the sender for this medium
                return self._forbidden(req, W_FUNCTION_NOT_ALLOWED)
        bad = self._content_ok(req)
        if bad is not None:
            return bad
        if _anonymous(req):
            # RFC 3325 §7 / DM-05: an anonymous sender's asserted identity is not passed on.
            req.headers.remove("P-Asserted-Identity")
        return self._expired(req, now)

    def hidden(self, req: SipRequest, recipient: str, now: float) -> bool:
        """Invisibility (Appendix E.1 vis-status): True when ``req`` is a capability or
        presence query of someone else to an invisible ``recipient`` — the core then
        answers it as for a user who is not registered."""
        if req.method == "OPTIONS":
            pass
        elif req.method == "SUBSCRIBE":
            event = (req.headers.get("Event") or "").split(";", 1)[0].strip().lower()
            if event not in ("presence", "presence.winfo"):
                return False
        else:
            return False
        if self._settings.settings_of(recipient, now).visible:
            return False
        sender = req.from_addr.uri
        if not isinstance(sender, SipUri):
            return True
        # the user's own devices still see each other
        return f"{sender.user_unescaped}@{sender.bare_host}".lower() != recipient.lower()

    def session_timer(self, req: SipRequest, *, initial: bool
                      ) -> Reply | ProxyTimerDecision | None:
        """RFC 4028 §8.1 for an INVITE / UPDATE of a session the PF handles: a 422 reply
        (Session-Expires below our minimum, with Min-SE), or what the response side needs
        (:func:`~simpleim.sip.session_timer_proxy.proxy_response`); None: turned off."""
        policy = self._config.session_timer
        if policy is None or req.method not in ("INVITE", "UPDATE"):
            return None
        decision = proxy_request(req, policy, initial=initial)
        if decision.reject_min_se is not None:
            return self._reply(req, 422, (("Min-SE", str(decision.reject_min_se)),))
        return decision

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
