"""Digest access authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616), sans-I/O.

Three layers:

* **Header values** (in :mod:`simpleim.sip.auth_headers`, re-exported here).
  :func:`parse_challenges` / :func:`parse_challenge` read a ``WWW-Authenticate`` /
  ``Proxy-Authenticate`` value, :func:`parse_credentials` an ``Authorization`` /
  ``Proxy-Authorization`` value.  Unknown schemes parse as opaque auth-params or token68
  (RFC 4475 §3.1.2.x ``NoOneKnowsThisScheme``).  Malformed input raises
  :class:`~simpleim.errors.SipParseError` (400).  ``str()`` serializes.
* **UAC.**  :func:`answer_challenge` computes the credentials for one challenge;
  :class:`DigestClient` remembers nonces per realm, counts ``nc`` and answers 401/407.
* **Server.**  :class:`DigestServer` issues stateless HMAC-signed nonces that embed their
  issue time and verifies credentials against a stored HA1 (never a plaintext password).

No clock is read: time enters as ``now`` (seconds, any monotonic origin).  Randomness is
injectable as ``random_bytes(n) -> bytes`` (default :func:`secrets.token_bytes`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from simpleim.errors import AuthError, LocalProtocolError, SipParseError
from simpleim.sip.auth_headers import (
    ALGORITHMS,
    HASH_NAMES,
    AuthParam,
    Challenge,
    Credentials,
    make_challenge,
    make_credentials,
    make_params,
    normalize_algorithm,
    parse_auth_params,
    parse_challenge,
    parse_challenges,
    parse_credentials,
    select_challenge,
)

__all__ = [
    "ALGORITHMS",
    "AuthParam",
    "AuthResult",
    "Challenge",
    "Credentials",
    "DigestClient",
    "DigestServer",
    "HA1Lookup",
    "RandomBytes",
    "answer_challenge",
    "authentication_info",
    "check_authentication_info",
    "base_algorithm",
    "digest_response",
    "ha1",
    "make_challenge",
    "make_credentials",
    "normalize_algorithm",
    "parse_auth_params",
    "parse_challenge",
    "parse_challenges",
    "parse_credentials",
    "select_challenge",
    "session_ha1",
    "userhash",
]

RandomBytes = Callable[[int], bytes]
#: ``ha1_lookup(username, realm, base_algorithm) -> HA1 hex or None`` (unknown user).
HA1Lookup = Callable[[str, str, str], str | None]


# --------------------------------------------------------------------------- digest math


def base_algorithm(algorithm: str) -> str:
    """``MD5`` for ``MD5``/``MD5-sess``, ``SHA-256`` for ``SHA-256``/``SHA-256-sess``."""
    alg = normalize_algorithm(algorithm)
    if alg not in ALGORITHMS:
        raise AuthError(f"unsupported digest algorithm {algorithm!r}", status=401)
    return alg.removesuffix("-sess")


def _h(algorithm: str, data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    name = HASH_NAMES[base_algorithm(algorithm)]
    return hashlib.new(name, raw, usedforsecurity=False).hexdigest()


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """RFC 7616 §3.4.2 A1 = username ":" realm ":" passwd; returns H(A1) in hex.

    This is what a server stores instead of the password; ``-sess`` variants share the
    base algorithm's HA1 (the session key is derived per nonce by :func:`session_ha1`).
    """
    return _h(algorithm, f"{username}:{realm}:{password}")


def session_ha1(ha1_hex: str, nonce: str, cnonce: str, algorithm: str) -> str:
    """RFC 7616 §3.4.2 / RFC 2617 §3.2.2.2: for ``-sess``, HA1' = H(HA1 ":" nonce ":" cnonce)."""
    if normalize_algorithm(algorithm).endswith("-sess"):
        return _h(algorithm, f"{ha1_hex}:{nonce}:{cnonce}")
    return ha1_hex


def userhash(username: str, realm: str, algorithm: str) -> str:
    """RFC 7616 §3.4.4: the hashed username H(username ":" realm)."""
    return _h(algorithm, f"{username}:{realm}")


def digest_response(
    *,
    algorithm: str,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` directive (RFC 7616 §3.4.1; RFC 2617 §3.2.2.1) from a base HA1."""
    qop_l = qop.lower() if qop is not None else None
    if qop_l == "auth-int":
        # RFC 7616 §3.4.3: A2 = Method ":" request-uri ":" H(entity-body)
        ha2 = _h(algorithm, f"{method}:{uri}:{_h(algorithm, body)}")
    elif qop_l in (None, "auth"):
        ha2 = _h(algorithm, f"{method}:{uri}")  # RFC 7616 §3.4.3: A2 = Method ":" request-uri
    else:
        raise AuthError(f"unsupported qop {qop!r}", status=400)
    if qop_l is None:
        if normalize_algorithm(algorithm).endswith("-sess"):
            raise AuthError("-sess algorithms need a qop (RFC 7616 §3.3)", status=400)
        # RFC 2617 §3.2.2.1: RFC 2069 compatibility, request-digest = KD(H(A1), nonce:H(A2))
        return _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    if nc is None or cnonce is None:
        raise AuthError("qop requires nc and cnonce (RFC 7616 §3.4)", status=400)
    key = session_ha1(ha1, nonce, cnonce, algorithm)
    return _h(algorithm, f"{key}:{nonce}:{nc}:{cnonce}:{qop_l}:{ha2}")


def authentication_info(
    *,
    algorithm: str,
    ha1: str,
    nonce: str,
    uri: str,
    qop: str,
    nc: str,
    cnonce: str,
    body: bytes = b"",
) -> str:
    """An ``Authentication-Info`` value proving the server knows HA1 (RFC 7616 §3.5,
    RFC 3261 §20.6): ``rspauth`` is the response computed with an empty method, i.e.
    A2 = ":" uri (or ":" uri ":" H(body) for auth-int)."""
    rspauth = digest_response(algorithm=algorithm, ha1=ha1, nonce=nonce, method="", uri=uri,
                              qop=qop, nc=nc, cnonce=cnonce, body=body)
    return ", ".join(str(p) for p in make_params([
        ("qop", qop), ("rspauth", rspauth), ("cnonce", cnonce), ("nc", nc),
    ], frozenset({"rspauth", "cnonce"})))


def check_authentication_info(
    value: str,
    *,
    algorithm: str,
    ha1: str,
    credentials: Credentials,
    body: bytes = b"",
) -> bool:
    """Whether an ``Authentication-Info`` value answers ``credentials`` (mutual auth,
    RFC 7616 §3.5).  Raises SipParseError if the value is malformed."""
    params = {p.name: p.value for p in parse_auth_params(value, "Authentication-Info")}
    nonce, uri, cnonce = credentials.nonce, credentials.uri, credentials.cnonce
    qop, nc, got = credentials.qop, credentials.nc, params.get("rspauth")
    if nonce is None or uri is None or cnonce is None or qop is None or nc is None:
        return False
    if got is None or params.get("cnonce", cnonce) != cnonce or params.get("nc", nc) != nc:
        return False
    rspauth = digest_response(algorithm=algorithm, ha1=ha1, nonce=nonce, method="", uri=uri,
                              qop=qop, nc=nc, cnonce=cnonce, body=body)
    return hmac.compare_digest(got.lower(), rspauth)


# --------------------------------------------------------------------------- UAC


def _new_cnonce(random_bytes: RandomBytes) -> str:
    # RFC 7616 §3.4: cnonce is an opaque quoted string chosen by the client.
    return base64.urlsafe_b64encode(random_bytes(16)).decode("ascii").rstrip("=")


def answer_challenge(
    challenge: Challenge | str,
    *,
    method: str,
    uri: str,
    username: str,
    password: str | None = None,
    ha1_hex: str | None = None,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> Credentials:
    """Credentials answering ``challenge`` for a request ``method uri`` (RFC 3261 §22.2).

    Give either ``password`` or a precomputed base ``ha1_hex`` for the challenge's realm.
    The qop is ``auth`` when offered, else ``auth-int`` (computed over ``body``).
    Raises :class:`AuthError` when the challenge cannot be answered.
    """
    ch = parse_challenge(challenge) if isinstance(challenge, str) else challenge
    if not ch.is_digest:
        raise AuthError(f"unsupported auth scheme {ch.scheme!r}", status=401)
    algorithm = ch.algorithm
    if algorithm not in ALGORITHMS:
        raise AuthError(f"unsupported digest algorithm {algorithm!r}", status=401)
    realm, nonce = ch.realm, ch.nonce
    if realm is None or nonce is None:
        # RFC 7616 §3.3: realm and nonce are required in a challenge.
        raise AuthError("challenge without realm or nonce", status=401)
    qops = ch.qop_options
    qop: str | None
    if not qops:
        qop = None
    elif "auth" in qops:
        qop = "auth"
    elif "auth-int" in qops:
        qop = "auth-int"
    else:
        raise AuthError(f"no supported qop in {qops!r}", status=401)
    if not 1 <= nc <= 0xFFFFFFFF:
        raise LocalProtocolError("nonce count out of range")
    if ha1_hex is None:
        if password is None:
            raise LocalProtocolError("answer_challenge needs a password or an HA1")
        ha1_hex = ha1(username, realm, password, algorithm)
    nc_text = f"{nc:08x}" if qop else None  # RFC 7616 §3.4: nc = 8LHEX
    response = digest_response(
        algorithm=algorithm, ha1=ha1_hex, nonce=nonce, method=method, uri=uri,
        qop=qop, nc=nc_text, cnonce=cnonce if qop else None, body=body,
    )
    # RFC 7616 §3.4.4: if the challenge has userhash=true the client MUST hash the username.
    hashed = ch.userhash
    return make_credentials(
        username=userhash(username, realm, algorithm) if hashed else username,
        realm=realm, nonce=nonce, uri=uri, response=response,
        # RFC 2617 §3.2.2: echo the algorithm; omitted only if the challenge omitted it.
        algorithm=algorithm if ch.get("algorithm") is not None else None,
        cnonce=cnonce if qop else None,
        opaque=ch.opaque,  # RFC 7616 §3.4: opaque MUST be returned unchanged
        qop=qop, nc=nc_text, userhash=hashed,
    )


@dataclass(slots=True)
class _RealmState:
    challenge: Challenge
    header: str
    nc: int
    attempted: bool


class DigestClient:
    """Answers 401/407 challenges for one account and remembers nonces per realm.

    ``respond()`` returns ``(header name, value)`` pairs to add to the retried request:
    challenges from ``WWW-Authenticate`` are answered in ``Authorization``, those from
    ``Proxy-Authenticate`` in ``Proxy-Authorization`` (RFC 3261 §22.2, §22.3).  A response
    merged by a forking proxy may carry challenges of several realms; each realm is
    answered once with its strongest supported challenge.

    Credentials that keep failing are detected: a non-stale challenge for a realm already
    answered since the last :meth:`accepted` raises :class:`AuthError` (403) instead of
    retrying with the same password (RFC 3261 §22.2: a UAC SHOULD NOT re-attempt
    requests with credentials that have just been rejected).
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        random_bytes: RandomBytes = secrets.token_bytes,
    ) -> None:
        self.username = username
        self._password = password
        self._random_bytes = random_bytes
        self._realms: dict[str, _RealmState] = {}

    def respond(
        self,
        *,
        method: str,
        uri: str,
        www_authenticate: Sequence[str] = (),
        proxy_authenticate: Sequence[str] = (),
        body: bytes = b"",
    ) -> list[tuple[str, str]]:
        """Credentials for every realm challenged in a 401/407 response."""
        groups: dict[str, tuple[str, list[Challenge]]] = {}
        for values, header in ((www_authenticate, "Authorization"),
                               (proxy_authenticate, "Proxy-Authorization")):
            for value in values:
                for ch in parse_challenges(value):
                    if ch.is_digest and ch.realm is not None:
                        groups.setdefault(ch.realm, (header, []))[1].append(ch)
        out: list[tuple[str, str]] = []
        for realm, (header, chs) in groups.items():
            best = select_challenge(chs)
            if best is None:
                continue
            state = self._realms.get(realm)
            if state is not None and state.attempted and not best.stale:
                # RFC 7616 §3.3: stale=false after our answer means the credentials are wrong.
                raise AuthError(f"credentials rejected for realm {realm!r}", status=403)
            creds = answer_challenge(
                best, method=method, uri=uri, username=self.username, password=self._password,
                cnonce=_new_cnonce(self._random_bytes), nc=1, body=body,
            )
            self._realms[realm] = _RealmState(best, header, 1, True)
            out.append((header, str(creds)))
        if not out:
            raise AuthError("no supported Digest challenge in the response", status=401)
        return out

    def authorize(self, *, method: str, uri: str, body: bytes = b"") -> list[tuple[str, str]]:
        """Preemptive credentials for a new request from cached nonces (nc incremented,
        RFC 7616 §3.4: nc counts the requests sent with one nonce).  Only nonces used
        with a qop are reused (without qop there is no nonce count)."""
        out: list[tuple[str, str]] = []
        for state in self._realms.values():
            if not state.challenge.qop_options:
                continue
            state.nc += 1
            creds = answer_challenge(
                state.challenge, method=method, uri=uri, username=self.username,
                password=self._password, cnonce=_new_cnonce(self._random_bytes),
                nc=state.nc, body=body,
            )
            out.append((state.header, str(creds)))
        return out

    def accepted(self) -> None:
        """The last authenticated request succeeded: clear the failure detection."""
        for state in self._realms.values():
            state.attempted = False

    def forget(self, realm: str | None = None) -> None:
        """Drop the cached nonce of ``realm`` (all realms if None)."""
        if realm is None:
            self._realms.clear()
        else:
            self._realms.pop(realm, None)

    def realms(self) -> list[str]:
        return list(self._realms)


# --------------------------------------------------------------------------- server

_NONCE_LABEL = b"simpleim digest nonce v1\x00"
_OPAQUE_LABEL = b"simpleim digest opaque v1\x00"
_TS = struct.Struct(">q")
_BOOT_LEN = 4
_RAND_LEN = 8
_MAC_LEN = 16
_NONCE_LEN = _TS.size + _BOOT_LEN + _RAND_LEN + _MAC_LEN
_FUTURE_SLACK = 5.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Outcome of :meth:`DigestServer.verify`.

    ``ok`` → let the request through as ``username``.  Otherwise answer ``status``:
    401/407 with one ``header`` (``WWW-Authenticate``/``Proxy-Authenticate``) per
    value of ``challenges``; 400 for malformed credentials.  ``reason`` is for logs.
    """

    ok: bool
    status: int
    reason: str
    header: str
    username: str | None = None
    challenges: tuple[str, ...] = ()
    stale: bool = False
    #: On success, an ``Authentication-Info`` value (RFC 7616 §3.5) the server MAY add.
    authentication_info: str | None = None


@dataclass(slots=True)
class _NonceUse:
    issued: float
    last_nc: int


@dataclass(slots=True)
class _NcTable:
    """Highest nonce-count seen per nonce, bounded (oldest first use evicted first)."""

    limit: int
    entries: OrderedDict[str, _NonceUse] = field(default_factory=OrderedDict)
    # Issue times at or below this floor can no longer be checked for replay.
    floor: float = float("-inf")

    def purge(self, now: float, ttl: float) -> None:
        while self.entries:
            first = next(iter(self.entries.values()))
            if first.issued + ttl >= now:
                break
            self.entries.popitem(last=False)

    def add(self, nonce: str, issued: float, nc: int) -> None:
        self.entries[nonce] = _NonceUse(issued, nc)
        while len(self.entries) > self.limit:
            _, old = self.entries.popitem(last=False)
            self.floor = max(self.floor, old.issued)


class DigestServer:
    """Server side of Digest (UAS/registrar: 401 + ``WWW-Authenticate``; proxy: 407 +
    ``Proxy-Authenticate``, RFC 3261 §22.3).

    Nonces are stateless: ``base64url(issue-time ‖ instance ‖ random ‖ HMAC-SHA256(secret))``.
    Only a bounded table of nonce counts is kept for replay protection; when it overflows,
    nonces issued before the evicted ones are answered with ``stale=true`` so the client
    simply retries with a fresh nonce.  Nonces from an earlier instance (another
    ``DigestServer`` with the same secret, e.g. before a restart) are also stale.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        nonce_ttl: float = 300.0,
        *,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        qop: Sequence[str] = ("auth",),
        proxy: bool = False,
        max_nonces: int = 10_000,
        random_bytes: RandomBytes = secrets.token_bytes,
    ) -> None:
        if len(secret) < 16:
            raise LocalProtocolError("the nonce secret must have at least 16 bytes")
        if nonce_ttl <= 0 or max_nonces < 1:
            raise LocalProtocolError("nonce_ttl and max_nonces must be positive")
        algs = tuple(normalize_algorithm(a) for a in algorithms)
        if not algs or any(a not in ALGORITHMS for a in algs):
            raise LocalProtocolError(f"unsupported algorithms {algorithms!r}")
        qops = tuple(q.lower() for q in qop)
        if not qops or any(q not in ("auth", "auth-int") for q in qops):
            # RFC 7616 §3.3: servers MUST send qop (RFC 2069 mode is not offered).
            raise LocalProtocolError(f"qop must be 'auth' and/or 'auth-int', not {qop!r}")
        self.realm = realm
        self.nonce_ttl = nonce_ttl
        self.algorithms = algs
        self.qop = qops
        self.proxy = proxy
        self._secret = secret
        self._random_bytes = random_bytes
        self._instance = random_bytes(_BOOT_LEN)
        self._nc = _NcTable(max_nonces)

    @property
    def challenge_header(self) -> str:
        return "Proxy-Authenticate" if self.proxy else "WWW-Authenticate"

    @property
    def credentials_header(self) -> str:
        return "Proxy-Authorization" if self.proxy else "Authorization"

    @property
    def challenge_status(self) -> int:
        return 407 if self.proxy else 401

    # -- nonces

    def _mac(self, data: bytes) -> bytes:
        msg = _NONCE_LABEL + self.realm.encode("utf-8") + b"\x00" + data
        return hmac.new(self._secret, msg, hashlib.sha256).digest()[:_MAC_LEN]

    def _new_nonce(self, now: float) -> str:
        data = _TS.pack(int(now * 1000)) + self._instance + self._random_bytes(_RAND_LEN)
        return _b64(data + self._mac(data))

    def _opaque(self, nonce: str) -> str:
        msg = _OPAQUE_LABEL + nonce.encode("ascii", "replace")
        return _b64(hmac.new(self._secret, msg, hashlib.sha256).digest()[:12])

    def _decode_nonce(self, nonce: str) -> tuple[float, bytes] | None:
        """(issue time, instance) of a nonce we signed, or None if forged/garbled."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _NONCE_LEN:
            return None
        data, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
        if not hmac.compare_digest(mac, self._mac(data)):
            return None
        ts = _TS.unpack(data[: _TS.size])[0] / 1000.0
        return ts, data[_TS.size: _TS.size + _BOOT_LEN]

    # -- challenges

    def challenge(self, now: float, stale: bool = False, algorithm: str | None = None) -> str:
        """One challenge value with a fresh nonce (``algorithm`` defaults to the first)."""
        alg = normalize_algorithm(algorithm) if algorithm else self.algorithms[0]
        if alg not in ALGORITHMS:
            raise LocalProtocolError(f"unsupported algorithm {algorithm!r}")
        nonce = self._new_nonce(now)
        return str(make_challenge(
            realm=self.realm, nonce=nonce, algorithm=alg, qop=self.qop,
            opaque=self._opaque(nonce), stale=stale,
        ))

    def challenges(self, now: float, stale: bool = False) -> list[str]:
        """One challenge per configured algorithm, preferred first (RFC 7616 §3.7)."""
        return [self.challenge(now, stale, a) for a in self.algorithms]

    def _fail(self, now: float, reason: str, *, stale: bool = False,
              username: str | None = None) -> AuthResult:
        return AuthResult(False, self.challenge_status, reason, self.challenge_header,
                          username, tuple(self.challenges(now, stale)), stale)

    def _bad(self, reason: str) -> AuthResult:
        return AuthResult(False, 400, reason, self.challenge_header)

    # -- verification

    def find_credentials(self, values: Sequence[str] | str | None) -> Credentials | None:
        """Our Digest credentials (matching realm) among header values (RFC 3261 §22.3:
        a request may carry credentials for several realms).  Raises SipParseError."""
        if values is None:
            return None
        for value in [values] if isinstance(values, str) else values:
            creds = parse_credentials(value)
            if creds.is_digest and creds.realm == self.realm:
                return creds
        return None

    def verify(
        self,
        credentials: Credentials | Sequence[str] | str | None,
        method: str,
        ha1_lookup: HA1Lookup,
        now: float,
        *,
        body: bytes = b"",
        request_uri: str | None = None,
    ) -> AuthResult:
        """Check the credentials of a request; ``ha1_lookup(user, realm, base_alg)``
        returns the stored HA1 hex or None.  Never raises for peer input."""
        try:
            creds = (credentials if isinstance(credentials, Credentials)
                     else self.find_credentials(credentials))
        except SipParseError as exc:
            return self._bad(exc.detail)
        if creds is None or not creds.is_digest or creds.realm != self.realm:
            # RFC 3261 §22.1 / §22.3: no credentials for our realm -> challenge.
            return self._fail(now, "no credentials for this realm")
        username = creds.username
        return self.verify_ha1(
            creds, method,
            ha1_lookup(username, self.realm, base_algorithm(creds.algorithm))
            if username is not None and creds.algorithm in self.algorithms else None,
            now, body=body, request_uri=request_uri,
        )

    def verify_ha1(
        self,
        creds: Credentials,
        method: str,
        ha1_hex: str | None,
        now: float,
        *,
        body: bytes = b"",
        request_uri: str | None = None,
    ) -> AuthResult:
        """Like :meth:`verify` with the HA1 already looked up (e.g. awaited from a store:
        look up ``creds.username`` for ``base_algorithm(creds.algorithm)``); ``None`` means
        unknown user."""
        if not creds.is_digest or creds.realm != self.realm:
            return self._fail(now, "no credentials for this realm")
        username, nonce, uri, response = creds.username, creds.nonce, creds.uri, creds.response
        if username is None or nonce is None or uri is None or response is None:
            # RFC 7616 §3.4: username, realm, nonce, uri and response are required.
            return self._bad("credentials lack a required directive")
        algorithm = creds.algorithm
        if algorithm not in self.algorithms:
            return self._fail(now, f"algorithm {algorithm!r} not offered", username=username)
        if creds.userhash:
            return self._fail(now, "userhash not offered", username=username)
        qop = creds.qop
        if qop not in self.qop:
            # RFC 7616 §3.4: qop MUST be one of the alternatives the server supports.
            return self._bad(f"qop {qop!r} not offered")
        nc_value = creds.nc_value
        if nc_value is None or not creds.cnonce:
            # RFC 7616 §3.4: with qop, cnonce and nc (8LHEX) MUST be present.
            return self._bad("nc (8 hex digits) and cnonce are required with qop")
        if request_uri is not None and uri != request_uri:
            # RFC 2617 §3.2.2.5: the server SHOULD check that the uri directive names the
            # Request-URI, and answer 400 Bad Request if not.
            return self._bad("digest uri does not match the Request-URI")
        decoded = self._decode_nonce(nonce)
        if decoded is None:
            return self._fail(now, "invalid nonce", username=username)
        if creds.opaque != self._opaque(nonce):
            # RFC 7616 §3.3: opaque SHOULD be returned unchanged by the client.
            return self._fail(now, "opaque mismatch", username=username)
        issued, instance = decoded
        known = ha1_hex is not None
        # Unknown users still cost one digest, to avoid a timing oracle on user names.
        stored = ha1_hex if ha1_hex is not None else _h(algorithm, _b64(self._secret))
        try:
            expected = digest_response(
                algorithm=algorithm, ha1=stored.lower(), nonce=nonce, method=method, uri=uri,
                qop=qop, nc=creds.nc, cnonce=creds.cnonce, body=body,
            )
        except AuthError as exc:
            return self._bad(exc.reason)
        if not (known and hmac.compare_digest(expected, response.lower())):
            return self._fail(now, "wrong credentials", username=username)
        # The digest is valid: any further nonce problem only asks for a retry with a new
        # nonce.  RFC 7616 §3.3: stale=true when the nonce is invalid but the digest valid.
        self._nc.purge(now, self.nonce_ttl)
        if instance != self._instance:
            return self._fail(now, "nonce from an earlier instance", stale=True, username=username)
        if now - issued > self.nonce_ttl or issued > now + _FUTURE_SLACK:
            return self._fail(now, "nonce expired", stale=True, username=username)
        use = self._nc.entries.get(nonce)
        if use is None:
            if issued <= self._nc.floor:
                return self._fail(now, "nonce no longer tracked", stale=True, username=username)
            self._nc.add(nonce, issued, nc_value)
        elif nc_value <= use.last_nc:
            # RFC 7616 §3.4 / RFC 2617 §3.2.2: the server checks that nc grows, to detect
            # replays.  The request is refused; stale=true lets an honest client (reordered
            # datagrams) retry with a fresh nonce without re-prompting for a password.
            return self._fail(now, "replayed nonce count", stale=True, username=username)
        else:
            use.last_nc = nc_value
            self._nc.entries.move_to_end(nonce)
        info = authentication_info(
            algorithm=algorithm, ha1=stored.lower(), nonce=nonce, uri=uri, qop=qop,
            nc=creds.nc or "", cnonce=creds.cnonce, body=body,
        )
        return AuthResult(True, 200, "ok", self.challenge_header, username,
                          authentication_info=info)

    @property
    def tracked_nonces(self) -> int:
        """How many nonces the replay table currently holds (bounded by ``max_nonces``)."""
        return len(self._nc.entries)
