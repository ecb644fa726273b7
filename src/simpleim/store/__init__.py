"""simpleim.store: persistence of the IM server (users with HA1 only, registrar bindings).

```python
store = await open_store("sqlite:///simpleim.db")      # or "sqlite://:memory:", "postgresql://..."
async with store:
    await store.add_user("alice", "example.com", "secret")
    ha1 = await store.get_ha1("alice", "example.com", "SHA-256")
```
"""

from __future__ import annotations

from simpleim.errors import ConfigError
from simpleim.store.base import (
    DEFAULT_STORE_URL,
    HA1_ALGORITHMS,
    Binding,
    Store,
    StoreConfig,
    User,
    make_user,
    validate_domain,
    validate_user_name,
)

__all__ = [
    "DEFAULT_STORE_URL",
    "HA1_ALGORITHMS",
    "Binding",
    "Store",
    "StoreConfig",
    "User",
    "make_user",
    "open_store",
    "store_scheme",
    "validate_domain",
    "validate_user_name",
]


def store_scheme(url: str) -> str:
    """``sqlite`` or ``postgresql`` for a store URL; ConfigError otherwise."""
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ConfigError(
            f"store URL {url!r} has no scheme: use sqlite:///PATH or postgresql://HOST/DB"
        )
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise ConfigError(f"unsupported store URL scheme {scheme!r} (use sqlite or postgresql)")


async def open_store(config: StoreConfig | str = DEFAULT_STORE_URL) -> Store:
    """Open (creating or migrating the schema) the store a URL or config names."""
    cfg = StoreConfig(config) if isinstance(config, str) else config
    if store_scheme(cfg.url) == "sqlite":
        from simpleim.store.sqlite import SqliteStore

        return await SqliteStore.open(cfg)
    from simpleim.store.postgres import PostgresStore

    return await PostgresStore.open(cfg)
