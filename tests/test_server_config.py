"""Server configuration and the location service index."""

from __future__ import annotations

import pytest

from simpleim.errors import ConfigError
from simpleim.server.config import ServerConfig, parse_listen
from simpleim.server.location import Binding, LocationService, aor_key
from simpleim.transport.sip_addr import ListenSpec


def test_parse_listen_default_udp_tcp() -> None:
    assert parse_listen("127.0.0.1:5070") == [
        ListenSpec("udp", "127.0.0.1", 5070),
        ListenSpec("tcp", "127.0.0.1", 5070),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("udp:127.0.0.1:5070", ListenSpec("udp", "127.0.0.1", 5070)),
        ("tcp:[::1]:5080", ListenSpec("tcp", "::1", 5080)),
        ("tls:127.0.0.1", ListenSpec("tls", "127.0.0.1", 5061)),
        ("TLS:[::1]", ListenSpec("tls", "::1", 5061)),
        ("udp:localhost:0", ListenSpec("udp", "127.0.0.1", 0)),
    ],
)
def test_parse_listen_prefixed(text: str, expected: ListenSpec) -> None:
    assert parse_listen(text) == [expected]


@pytest.mark.parametrize("text", ["udp:127.0.0.1:99999", "[::1", "example.com:5060", "tcp::5060",
                                  "127.0.0.1:abc"])
def test_parse_listen_bad(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_listen(text)


def test_listen_spec_str() -> None:
    assert str(ListenSpec("tcp", "::1", 5060)) == "tcp:[::1]:5060"


def test_config_validate() -> None:
    ServerConfig().validate()
    with pytest.raises(ConfigError):
        ServerConfig(listen=(ListenSpec("tls", "127.0.0.1", 0),)).validate()
    with pytest.raises(ConfigError):
        ServerConfig(min_expires=100, max_expires=10).validate()
    assert ServerConfig(domain="example.test").auth_realm == "example.test"
    assert ServerConfig(domain="example.test", realm="r").auth_realm == "r"


class _MemStore:
    def __init__(self) -> None:
        self.saved: dict[str, list[Binding]] = {}

    async def load_bindings(self) -> list[Binding]:
        return [b for bs in self.saved.values() for b in bs]

    async def replace_bindings(self, aor: str, bindings: list[Binding]) -> None:
        self.saved[aor] = list(bindings)

    async def purge_expired(self, now: float) -> int:
        return 0


async def test_location_write_through_and_expiry() -> None:
    now = [1000.0]
    store = _MemStore()
    loc = LocationService(store, clock=lambda: now[0])
    aor = aor_key("bob", "Example.TEST")
    assert aor == "bob@example.test"
    await loc.replace(aor, [
        Binding(aor, "sip:bob@127.0.0.1:5080", 1060.0, q=0.5),
        Binding(aor, "sip:bob@127.0.0.1:5082;transport=tcp", 2000.0, q=1.0),
    ])
    assert len(store.saved[aor]) == 2
    assert [b.q for b in loc.lookup(aor)] == [1.0, 0.5]
    now[0] = 1100.0
    assert [b.contact for b in loc.lookup(aor)] == ["sip:bob@127.0.0.1:5082;transport=tcp"]
    # a fresh service loads only the live bindings
    loc2 = LocationService(store, clock=lambda: now[0])
    assert await loc2.load() == 1
    await loc2.replace(aor, [])
    assert loc2.lookup(aor) == [] and store.saved[aor] == []


def test_parse_auth_algorithms() -> None:
    from simpleim.server.config import DEFAULT_AUTH_ALGORITHMS, parse_auth_algorithms

    assert DEFAULT_AUTH_ALGORITHMS == ("MD5",)
    assert ServerConfig().auth_algorithms == ("MD5",)
    assert parse_auth_algorithms("md5,sha-256") == ("MD5", "SHA-256")
    assert parse_auth_algorithms(" SHA-256 , md5-sess") == ("SHA-256", "MD5-sess")
    assert parse_auth_algorithms(["sha-256"]) == ("SHA-256",)
    for bad in ("", "sha-1", "md5,md5", "sha-512-256"):
        with pytest.raises(ConfigError):
            parse_auth_algorithms(bad)
    ServerConfig(auth_algorithms=("SHA-256", "MD5")).validate()
    with pytest.raises(ConfigError):
        ServerConfig(auth_algorithms=("sha-256",)).validate()
    with pytest.raises(ConfigError):
        ServerConfig(auth_algorithms=()).validate()
