"""The server store interface: users (HA1 only, never passwords) and registrar bindings.

All methods are ``async``.  Every write is committed (durably, for SQLite
``synchronous=FULL``) before the coroutine returns, so the registrar can await the
write and only then answer ``200 OK`` (RFC 3261 §10.3 step 7: bindings are updated
before the response).  Times are wall-clock seconds (``time.time()``) passed in by the
caller as ``now``; the store never reads a clock.

The binding record is :class:`simpleim.store.model.Binding` (re-exported by
:mod:`simpleim.server.location`), shared with the location service, so the store
satisfies its ``BindingStore`` protocol and the authenticator's ``UserDirectory``
protocol as is.  The store never imports :mod:`simpleim.server`.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from simpleim.errors import ConfigError
from simpleim.sip.auth import ha1
from simpleim.store.aggregations import AggregationRepository
from simpleim.store.conferences import ConferenceRepository
from simpleim.store.deferred import DeferredRepository
from simpleim.store.history import HistoryRepository
from simpleim.store.model import Binding
from simpleim.store.settings import SettingsRepository
from simpleim.store.system import SystemMessageRepository
from simpleim.store.xdm import XdmRepository

__all__ = [
    "DEFAULT_STORE_URL",
    "HA1_ALGORITHMS",
    "Binding",
    "Store",
    "StoreConfig",
    "User",
    "make_user",
    "validate_domain",
    "validate_user_name",
]

DEFAULT_STORE_URL = "sqlite:///simpleim.db"
#: The base digest algorithms whose HA1 is stored (RFC 7616 §3.4.2; -sess derive from them).
HA1_ALGORITHMS = ("MD5", "SHA-256")

# A conservative subset of the RFC 3261 §25.1 "user" rule (unreserved characters only), so
# names never need escaping in a SIP URI, a quoted-string or a shell.
_USER_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._~+-]{0,62})")
# RFC 3261 §25.1 hostname (labels of alphanum and '-'), an IPv4 address or a bracketed IPv6.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?|\[[0-9A-Fa-f:.]+\]")


def validate_user_name(name: str) -> str:
    """Return ``name`` if it is a valid user name, else raise :class:`ConfigError`."""
    if not isinstance(name, str) or not _USER_RE.fullmatch(name):
        raise ConfigError(
            f"invalid user name {name!r}: 1-63 characters among letters, digits and ._~+- "
            "starting with a letter or digit"
        )
    return name


def validate_domain(domain: str) -> str:
    """Return ``domain`` lower-cased if it is a host name or address, else ConfigError.

    RFC 3261 §19.1.4: host names compare case-insensitively, so they are stored lower-case.
    """
    if not isinstance(domain, str) or len(domain) > 253 or not _DOMAIN_RE.fullmatch(domain):
        raise ConfigError(f"invalid domain {domain!r}")
    return domain.lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """How to open a store.  ``url``: ``sqlite:///relative.db``, ``sqlite:////abs.db``,
    ``sqlite://:memory:`` or ``postgresql://user@host:port/db[?schema=NAME]``."""

    url: str = DEFAULT_STORE_URL
    # Seconds SQLite waits on a locked database / PostgreSQL waits to connect.
    timeout: float = 5.0
    # PostgreSQL connection pool bounds.
    pool_min: int = 1
    pool_max: int = 5


@dataclass(frozen=True, slots=True)
class User:
    """A user of one domain; ``realm`` is the digest realm its HA1 values were made for."""

    name: str
    domain: str
    realm: str
    ha1_md5: str
    ha1_sha256: str

    @property
    def aor(self) -> str:
        return f"{self.name}@{self.domain}"

    def ha1_for(self, algorithm: str) -> str | None:
        alg = algorithm.upper().removesuffix("-SESS")
        if alg == "MD5":
            return self.ha1_md5
        if alg == "SHA-256":
            return self.ha1_sha256
        return None


def make_user(name: str, domain: str, password: str, realm: str | None = None) -> User:
    """Validate and hash: the password is turned into HA1 values and then forgotten."""
    name = validate_user_name(name)
    domain = validate_domain(domain)
    if not password:
        raise ConfigError("the password must not be empty")
    realm = realm or domain
    return User(
        name=name, domain=domain, realm=realm,
        ha1_md5=ha1(name, realm, password, "MD5"),
        ha1_sha256=ha1(name, realm, password, "SHA-256"),
    )


class Store(abc.ABC):
    """Persistent users and registrar bindings.  Use as ``async with await open_store(url)``
    or call :meth:`close`.  Failures raise :class:`~simpleim.errors.StorageError`."""

    # ---- users

    async def add_user(
        self,
        name: str,
        domain: str,
        password: str,
        *,
        realm: str | None = None,
        replace: bool = False,
    ) -> User:
        """Create a user (``replace=True``: or set its password).  The password is only
        kept as HA1 for MD5 and SHA-256 in ``realm`` (default: the domain).  Raises
        ConfigError for a bad name/domain, StorageError if the user exists."""
        user = make_user(name, domain, password, realm)
        await self._put_user(user, replace=replace)
        return user

    @abc.abstractmethod
    async def _put_user(self, user: User, *, replace: bool) -> None: ...

    @abc.abstractmethod
    async def get_user(self, name: str, domain: str) -> User | None: ...

    @abc.abstractmethod
    async def remove_user(self, name: str, domain: str) -> bool:
        """Delete a user; True if it existed."""

    @abc.abstractmethod
    async def list_users(self, domain: str | None = None) -> list[User]:
        """Users sorted by domain then name, optionally of one domain."""

    @abc.abstractmethod
    async def get_ha1(self, name: str, realm: str, algorithm: str) -> str | None:
        """HA1 hex of ``name`` in ``realm`` for ``MD5``/``SHA-256`` (``-sess`` accepted),
        None if unknown (user, realm or algorithm)."""

    @abc.abstractmethod
    async def user_exists(self, name: str) -> bool:
        """Whether ``name`` is a user of any domain."""

    # ---- bindings

    @abc.abstractmethod
    async def save_binding(self, binding: Binding) -> None:
        """Insert or update one binding; identity is (AOR, binding key) — the RFC 5626
        (instance, reg-id) pair when present, else the contact URI."""

    @abc.abstractmethod
    async def replace_bindings(self, aor: str, bindings: Sequence[Binding]) -> None:
        """Atomically make ``bindings`` the complete binding set of ``aor``."""

    @abc.abstractmethod
    async def remove_binding(self, aor: str, contact: str) -> bool:
        """Delete the binding of ``aor`` whose contact URI (or key) is ``contact``."""

    @abc.abstractmethod
    async def remove_all_bindings(self, aor: str) -> int:
        """Delete every binding of ``aor`` (REGISTER with ``Contact: *``); how many."""

    @abc.abstractmethod
    async def get_bindings(self, aor: str, now: float) -> list[Binding]:
        """Unexpired bindings of ``aor``, highest q first."""

    @abc.abstractmethod
    async def load_bindings(self, now: float | None = None) -> list[Binding]:
        """Every binding (unexpired at ``now`` when given), for the location service."""

    @abc.abstractmethod
    async def purge_expired(self, now: float) -> int:
        """Delete bindings expired at ``now``; how many."""

    # ---- per-role repositories (schema version 2)

    @property
    @abc.abstractmethod
    def deferred(self) -> DeferredRepository:
        """The Deferred Messaging Function's messages (OMA SIMPLE IM §12.2.2.3)."""

    @property
    @abc.abstractmethod
    def settings(self) -> SettingsRepository:
        """The IM service settings per user (OMA SIMPLE IM Appendix E)."""

    @property
    @abc.abstractmethod
    def system_messages(self) -> SystemMessageRepository:
        """System Messages of the IM server and their Ts1 deadlines (§5.4, schema v3)."""

    @property
    @abc.abstractmethod
    def aggregations(self) -> AggregationRepository:
        """The exploder's pending IMDN aggregations (OMA SIMPLE IM §8.3.1.2, Ts2)."""

    @property
    @abc.abstractmethod
    def xdm(self) -> XdmRepository:
        """XDM documents served over XCAP (RFC 4825) and the URIs they claim (schema v5)."""

    @property
    @abc.abstractmethod
    def history(self) -> HistoryRepository:
        """Conversation history: stored histories and items (OMA SIMPLE IM §13.2.3, v6)."""

    @property
    @abc.abstractmethod
    def conferences(self) -> ConferenceRepository:
        """The focus's conferences (OMA SIMPLE IM §7.2, schema v7)."""

    # ---- lifecycle

    @abc.abstractmethod
    async def schema_version(self) -> int: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
