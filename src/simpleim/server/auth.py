"""Digest authentication of requests reaching the server (RFC 3261 §22).

The registrar challenges with 401 + WWW-Authenticate (§22.2 / §10.3 step 3), the proxy
with 407 + Proxy-Authenticate (§22.3).  HA1 values come from the user directory (the
store); the digest arithmetic and the stateless nonces are the SIP core's
:class:`~simpleim.sip.auth.DigestServer`.

Unknown users are challenged exactly like known users with a wrong password, so the
responses never reveal whether an account exists (RFC 3261 §26.3.2.4 spirit; the
DigestServer also spends one hash on unknown users against timing oracles).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from simpleim.errors import SipParseError
from simpleim.sip.auth import DigestServer, base_algorithm

__all__ = ["UserDirectory", "AuthDecision", "Authenticator"]


class UserDirectory(Protocol):
    """What authentication needs from the user store."""

    async def get_ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        """HA1 hex for ``algorithm`` (``MD5`` or ``SHA-256``) or None for an unknown user."""
        ...

    async def user_exists(self, username: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class AuthDecision:
    """``ok`` -> let the request through as ``username``; else answer ``status`` with
    ``headers`` (the challenges)."""

    ok: bool
    status: int = 200
    reason: str = ""
    username: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    # Credentials were given and were wrong (not merely missing or stale): a failure that
    # counts towards a lockout (issue 7 item 6).
    failed: bool = False


class Authenticator:
    """One DigestServer for 401 (registrar) and one for 407 (proxy), sharing a secret."""

    def __init__(
        self,
        realm: str,
        users: UserDirectory,
        *,
        secret: bytes | None = None,
        algorithms: Sequence[str] = ("MD5",),
        clock: Callable[[], float] = time.monotonic,
        ha1_cache_ttl: float = 30.0,
    ) -> None:
        key = secret if secret is not None else secrets.token_bytes(32)
        self.realm = realm
        self._users = users
        self._clock = clock
        self._www = DigestServer(realm, key, algorithms=algorithms, proxy=False)
        self._proxy = DigestServer(realm, key, algorithms=algorithms, proxy=True)
        # A short-lived HA1 cache keeps the per-request path free of database reads when a
        # client authenticates every request (RFC 3261 §22.3 allows preemptive credentials).
        self._cache: dict[tuple[str, str], tuple[float, str | None]] = {}
        self._ttl = ha1_cache_ttl

    async def _ha1(self, username: str, algorithm: str, *, fresh: bool = False) -> str | None:
        """The stored HA1 (None: no such user).  Known users' HA1 values are cached for
        ``ha1_cache_ttl`` seconds; ``fresh`` reads the store again.  Unknown names are not
        cached: a user added while the server runs (``simpleim user add`` on the same
        database) can register at once."""
        now = self._clock()
        key = (username, algorithm)
        hit = None if fresh else self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await self._users.get_ha1(username, self.realm, algorithm)
        if value is None:
            self._cache.pop(key, None)
            return None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now + self._ttl, value)
        return value

    def forget(self, username: str | None = None) -> None:
        if username is None:
            self._cache.clear()
        else:
            for key in [k for k in self._cache if k[0] == username]:
                del self._cache[key]

    async def check(
        self,
        method: str,
        credential_values: Sequence[str],
        *,
        proxy: bool,
        body: bytes = b"",
    ) -> AuthDecision:
        """Verify the Authorization (or Proxy-Authorization) values of one request."""
        server = self._proxy if proxy else self._www
        now = self._clock()
        try:
            creds = server.find_credentials(list(credential_values))
        except SipParseError as exc:
            return AuthDecision(False, 400, f"bad credentials: {exc.detail}")
        if creds is None:
            result = server.verify(None, method, lambda u, r, a: None, now)
        else:
            username = creds.username
            ha1: str | None = None
            algorithm = base_algorithm(creds.algorithm)
            known = username is not None and creds.algorithm in server.algorithms
            if known and username is not None:
                ha1 = await self._ha1(username, algorithm)
            # RFC 3261 §22.4: the digest uri of SIP clients is not always the Request-URI
            # (SIPp uses the next hop), so it is not compared with it here.
            result = server.verify_ha1(creds, method, ha1, now, body=body)
            if not result.ok and ha1 is not None and username is not None:
                # The password may have changed since the HA1 was cached (``user add
                # --update``): one fresh read before refusing.
                fresh = await self._ha1(username, algorithm, fresh=True)
                if fresh != ha1:
                    result = server.verify_ha1(creds, method, fresh, now, body=body)
        if result.ok:
            return AuthDecision(True, 200, "ok", result.username)
        if result.status == 400:
            return AuthDecision(False, 400, result.reason, failed=creds is not None)
        reason = "Proxy Authentication Required" if proxy else "Unauthorized"
        return AuthDecision(
            False,
            result.status,
            reason,
            result.username,
            tuple((result.header, value) for value in result.challenges),
            failed=creds is not None and not result.stale,
        )
