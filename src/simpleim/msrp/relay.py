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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Final

from simpleim.errors import AuthError, MsrpParseError, SipParseError
from simpleim.msrp.fsm import Row
from simpleim.msrp.message import MsrpRequest, MsrpResponse, make_request
from simpleim.msrp.session import new_ident
from simpleim.msrp.uri import MsrpUri
from simpleim.sip.auth import answer_challenge

__all__ = ["RelayAuth", "RelayGrant", "AuthState", "AuthInput", "AuthAction", "AUTH_TABLE"]


class AuthState(Enum):
    IDLE = "idle"
    SENT = "sent"                      # AUTH without credentials sent
    SENT_CREDENTIALS = "credentials"   # AUTH with Authorization sent
    DONE = "done"
    FAILED = "failed"


class AuthInput(Enum):
    START = "start"              # authenticate (again: refresh before Expires)
    RESP_200 = "200"
    RESP_401 = "401"
    RESP_423 = "423"
    RESP_ERROR = "error"         # any other final response


class AuthAction(Enum):
    SEND_AUTH = "send AUTH"
    SEND_CREDENTIALS = "send AUTH with credentials"
    RETRY_IF_STALE = "retry if the nonce was stale, else fail"
    GRANTED = "granted"
    ADJUST_EXPIRES = "adjust Expires and resend"
    FAIL = "fail"


_S, _I, _A = AuthState, AuthInput, AuthAction
#: (state, response class) -> Row; anything else is an error (RFC 4976 §5.1).
AUTH_TABLE: Final[Mapping[tuple[AuthState, AuthInput], Row[AuthState, AuthAction]]] = \
    MappingProxyType({
        (_S.IDLE, _I.START): Row(_S.SENT, _A.SEND_AUTH, "RFC 4976 §5.1: AUTH, no credentials"),
        (_S.DONE, _I.START): Row(_S.SENT, _A.SEND_AUTH, "RFC 4976 §5.1: refresh before Expires"),
        (_S.SENT, _I.RESP_401): Row(_S.SENT_CREDENTIALS, _A.SEND_CREDENTIALS,
                                    "RFC 4976 §5.1: answer the digest challenge"),
        (_S.SENT_CREDENTIALS, _I.RESP_401): Row(_S.SENT_CREDENTIALS, _A.RETRY_IF_STALE,
                                                "RFC 4976 §5.1, RFC 2617 §3.2.1 stale"),
        (_S.SENT, _I.RESP_200): Row(_S.DONE, _A.GRANTED, "RFC 4976 §5.1 (Use-Path, Expires)"),
        (_S.SENT_CREDENTIALS, _I.RESP_200): Row(_S.DONE, _A.GRANTED, "RFC 4976 §5.1"),
        (_S.SENT, _I.RESP_423): Row(_S.SENT, _A.ADJUST_EXPIRES, "RFC 4976 §5.1 / §6: 423"),
        (_S.SENT_CREDENTIALS, _I.RESP_423): Row(_S.SENT_CREDENTIALS, _A.ADJUST_EXPIRES,
                                                "RFC 4976 §5.1 / §6: 423"),
        (_S.SENT, _I.RESP_ERROR): Row(_S.FAILED, _A.FAIL, "RFC 4976 §5.1"),
        (_S.SENT_CREDENTIALS, _I.RESP_ERROR): Row(_S.FAILED, _A.FAIL, "RFC 4976 §5.1"),
    })
_RESPONSE_INPUTS: Final = MappingProxyType(
    {200: AuthInput.RESP_200, 401: AuthInput.RESP_401, 423: AuthInput.RESP_423})


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

    def _step(self, event: AuthInput) -> AuthAction:
        try:
            row = AUTH_TABLE[(self.state, event)]
        except KeyError:
            raise AuthError(f"AUTH: {event.value} not expected in state {self.state.value}",
                            protocol="msrp") from None
        self.state = row.new_state
        return row.action

    def _request(self, authorization: str | None) -> MsrpRequest:
        headers: list[tuple[str, str]] = []
        if authorization is not None:
            headers.append(("Authorization", authorization))
        if self.expires is not None:
            headers.append(("Expires", str(self.expires)))
        return make_request(self._new_id(), "AUTH", [self.relay_uri], [self.local_uri], headers)

    def start(self) -> MsrpRequest:
        """The first AUTH, without credentials (RFC 4976 §5.1)."""
        self._step(AuthInput.START)
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
        action = self._step(_RESPONSE_INPUTS.get(code, AuthInput.RESP_ERROR))
        if action is AuthAction.SEND_CREDENTIALS or action is AuthAction.RETRY_IF_STALE:
            challenge = resp.headers.get("WWW-Authenticate")
            if challenge is None:
                self.state = AuthState.FAILED
                raise AuthError("401 without WWW-Authenticate", status=401, protocol="msrp")
            stale = "stale=true" in challenge.replace(" ", "").lower()
            if action is AuthAction.RETRY_IF_STALE and not stale:
                self.state = AuthState.FAILED
                raise AuthError("credentials refused by the relay", status=401,
                                protocol="msrp")
            self._challenge = challenge
            return self._credentials()
        if action is AuthAction.ADJUST_EXPIRES:
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
        if action is AuthAction.FAIL:
            raise AuthError(f"relay refused AUTH: {code} {resp.comment or ''}".strip(),
                            status=code, protocol="msrp")
        use_path = resp.use_path
        if not use_path:
            self.state = AuthState.FAILED
            raise MsrpParseError("200 to AUTH without Use-Path (RFC 4976 §5.1)",
                                 where="Use-Path")
        self.grant = RelayGrant(use_path, resp.expires)
        return self.grant
