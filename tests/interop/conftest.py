"""Fixtures for the interop tests: real SIPp / Kamailio / tshark / simpleim server processes.

* A peer whose binary is missing is *skipped* with the reason - except when the environment says
  the peers must be there (``CI`` or ``SIMPLEIM_REQUIRE_PEERS`` set: CI installs them), then the
  test fails.
* A peer that is installed but does not start is always a test failure.
* Every process is stopped by PID in the fixture teardown, also when the test failed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interop_harness import (  # noqa: E402
    PASSWORDS,
    PeerProcess,
    PeerSet,
    Sipp,
    find_binary,
    port_plan_lock,
    start_kamailio,
    start_simpleim_server,
)


def _peers_required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("SIMPLEIM_REQUIRE_PEERS"))


def require_binary(name: str, package: str) -> str:
    path = find_binary(name)
    if path is None:
        msg = f"{name} not installed (Debian package {package}; .ci/run installs it)"
        if _peers_required():
            pytest.fail(msg + " - required here because CI/SIMPLEIM_REQUIRE_PEERS is set")
        pytest.skip(msg)
    return path


def require_simpleim_server() -> None:
    """Skip (with the precise missing piece) until the colleagues' server modules exist."""
    missing = [
        mod
        for mod in ("simpleim.cli.main", "simpleim.server.app", "simpleim.cli.users")
        if importlib.util.find_spec(mod) is None
    ]
    if missing:
        pytest.skip(
            f"waiting for the simpleim server: module(s) {', '.join(missing)} not there yet"
        )


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[PeerSet]:
    """The processes of one test; all stopped by PID at teardown (even when the test failed).

    Holds the host-wide port-plan lock for the test, so that concurrent runs queue up."""
    workdir = tmp_path / "peers"
    workdir.mkdir()
    with port_plan_lock():
        peer_set = PeerSet(workdir)
        try:
            yield peer_set
        finally:
            problems = peer_set.stop_all()
            if problems:
                pytest.fail("; ".join(problems))


@pytest.fixture
def sipp(peers: PeerSet) -> Sipp:
    return Sipp(peers, require_binary("sipp", "sip-tester"))


@pytest.fixture
def kamailio(peers: PeerSet) -> PeerProcess:
    """Kamailio with digest auth (WITH_AUTH) on 127.0.0.1:5070 UDP+TCP, domain example.test."""
    return start_kamailio(peers, require_binary("kamailio", "kamailio"), auth=True)


@pytest.fixture
def tshark_bin() -> str:
    return require_binary("tshark", "tshark")


@pytest.fixture
def simpleim_server(peers: PeerSet) -> Callable[..., PeerProcess]:
    """Factory: start ``simpleim server`` (example.test, 127.0.0.1:5160 UDP+TCP, SQLite in tmp)
    after ``simpleim user add`` for alice/bob/carol/dave; waits for the ready line."""
    require_simpleim_server()

    def start(**kwargs: object) -> PeerProcess:
        kwargs.setdefault("users", PASSWORDS)
        return start_simpleim_server(peers, **kwargs)  # type: ignore[arg-type]

    return start
