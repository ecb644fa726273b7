"""RFC 4976 relays, client side: AUTH with digest, Use-Path, Expires.

::

    auth = RelayAuth(relay_uri, local_uri, "bob", "bobpw")
    conn.send_request(auth.start(), now)               # AUTH without credentials (§5.1)
    ... ResponseReceived(resp) ...
    nxt = auth.handle_response(resp)                    # 401 -> AUTH with Authorization
    if isinstance(nxt, MsrpRequest): conn.send_request(nxt, now)
    else: nxt.use_path, nxt.expires                     # 200: the relay path to advertise

The digest computation is :func:`simpleim.sip.auth.answer_challenge` (RFC 2617/7616, qop=auth)
with method ``AUTH`` and the relay's URI as ``uri`` (RFC 4976 §5.1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from simpleim.errors import AuthError, MsrpParseError, SipParseError
from simpleim.msrp.message import MsrpRequest, MsrpResponse, make_request
from simpleim.msrp.session import new_ident
from simpleim.msrp.uri import MsrpUri
from simpleim.sip.auth import answer_challenge

__all__ = ["RelayAuth", "RelayGrant", "AuthState"]


class AuthState(Enum):
    IDLE = "idle"
    SENT = "sent"                      # AUTH without credentials sent
    SENT_CREDENTIALS = "credentials"   # AUTH with Authorization sent
    DONE = "done"
    FAILED = "failed"


# (state, response class) -> (state, action); anything else is an error (RFC 4976 §5.1).
_TABLE: dict[tuple[AuthState, str], tuple[AuthState, str]] = {
    (AuthState.IDLE, "start"): (AuthState.SENT, "send_auth"),
    (AuthState.DONE, "start"): (AuthState.SENT, "send_auth"),           # refresh before Expires
    (AuthState.SENT, "401"): (AuthState.SENT_CREDENTIALS, "send_credentials"),
    (AuthState.SENT_CREDENTIALS, "401"): (AuthState.SENT_CREDENTIALS, "retry_if_stale"),
    (AuthState.SENT, "200"): (AuthState.DONE, "granted"),
    (AuthState.SENT_CREDENTIALS, "200"): (AuthState.DONE, "granted"),
    (AuthState.SENT, "423"): (AuthState.SENT, "adjust_expires"),
    (AuthState.SENT_CREDENTIALS, "423"): (AuthState.SENT_CREDENTIALS, "adjust_expires"),
    (AuthState.SENT, "error"): (AuthState.FAILED, "fail"),
    (AuthState.SENT_CREDENTIALS, "error"): (AuthState.FAILED, "fail"),
}


@dataclass(frozen=True, slots=True)
class RelayGrant:
    """A 200 to AUTH: ``use_path`` to put before our URI in ``a=path`` (§5.2) for ``expires`` s."""

    use_path: list[MsrpUri]
    expires: int | None


class RelayAuth:
    """Authenticates at one relay (RFC 4976 §5)."""

    def __init__(
        self,
        relay_uri: MsrpUri,
        local_uri: MsrpUri,
        username: str,
        password: str,
        *,
        expires: int | None = None,
        id_factory: Callable[[], str] = new_ident,
    ) -> None:
        self.relay_uri = relay_uri
        self.local_uri = local_uri
        self.username = username
        self._password = password
        self.expires = expires
        self._new_id = id_factory
        self.state = AuthState.IDLE
        self._challenge: str | None = None
        self._nc = 0
        self.grant: RelayGrant | None = None

    def _step(self, event: str) -> str:
        try:
            self.state, action = _TABLE[(self.state, event)]
        except KeyError:
            raise AuthError(f"AUTH: {event} not expected in state {self.state.value}",
                            protocol="msrp") from None
        return action

    def _request(self, authorization: str | None) -> MsrpRequest:
        headers: list[tuple[str, str]] = []
        if authorization is not None:
            headers.append(("Authorization", authorization))
        if self.expires is not None:
            headers.append(("Expires", str(self.expires)))
        return make_request(self._new_id(), "AUTH", [self.relay_uri], [self.local_uri], headers)

    def start(self) -> MsrpRequest:
        """The first AUTH, without credentials (RFC 4976 §5.1)."""
        self._step("start")
        self._nc = 0
        return self._request(None)

    def _credentials(self) -> MsrpRequest:
        if self._challenge is None:  # pragma: no cover - set before use
            raise AuthError("no challenge", protocol="msrp")
        self._nc += 1
        try:
            cred = answer_challenge(self._challenge, method="AUTH", uri=str(self.relay_uri),
                                    username=self.username, password=self._password,
                                    cnonce=self._new_id(), nc=self._nc)
        except SipParseError as exc:
            raise MsrpParseError(f"bad WWW-Authenticate: {exc.reason}", status=400,
                                 where="WWW-Authenticate") from exc
        return self._request(str(cred))

    def handle_response(self, resp: MsrpResponse) -> MsrpRequest | RelayGrant:
        """Next AUTH to send, or the grant.  Raises ``AuthError`` when refused."""
        code = resp.status_code
        key = str(code) if code in (200, 401, 423) else "error"
        action = self._step(key)
        if action in ("send_credentials", "retry_if_stale"):
            challenge = resp.headers.get("WWW-Authenticate")
            if challenge is None:
                self.state = AuthState.FAILED
                raise AuthError("401 without WWW-Authenticate", status=401, protocol="msrp")
            stale = "stale=true" in challenge.replace(" ", "").lower()
            if action == "retry_if_stale" and not stale:
                self.state = AuthState.FAILED
                raise AuthError("credentials refused by the relay", status=401,
                                protocol="msrp")
            self._challenge = challenge
            return self._credentials()
        if action == "adjust_expires":
            # §5.1 / §6: 423 Interval-Out-Of-Bounds carries Min-Expires or Max-Expires.
            lo, hi = resp.headers.get("Min-Expires"), resp.headers.get("Max-Expires")
            value = lo if lo is not None else hi
            if value is None or not value.strip().isdigit():
                self.state = AuthState.FAILED
                raise AuthError("423 without usable Min-/Max-Expires", status=423,
                                protocol="msrp")
            self.expires = int(value.strip())
            if self._challenge is not None:
                return self._credentials()
            return self._request(None)
        if action == "fail":
            raise AuthError(f"relay refused AUTH: {code} {resp.comment or ''}".strip(),
                            status=code, protocol="msrp")
        use_path = resp.use_path
        if not use_path:
            self.state = AuthState.FAILED
            raise MsrpParseError("200 to AUTH without Use-Path (RFC 4976 §5.1)",
                                 where="Use-Path")
        self.grant = RelayGrant(use_path, resp.expires)
        return self.grant
