"""Fixtures for the interop tests: real SIPp / Kamailio / tshark / simpleim server processes.

* A peer whose binary is missing is *skipped* with the reason - except when the environment says
  the peers must be there (``CI`` or ``SIMPLEIM_REQUIRE_PEERS`` set: CI installs them), then the
  test fails (``tests/needs.py``: the one place that decides).
* A peer that is installed but does not start is always a test failure.
* Every process is stopped by PID in the fixture teardown, also when the test failed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from needs import unavailable

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


def require_binary(name: str, package: str) -> str:
    path = find_binary(name)
    if path is None:
        unavailable(f"{name} not installed (Debian package {package}; .ci/run installs it)")
    return path


@pytest.fixture(autouse=True)
def _client_port_plan(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every interop test may use fixed ports (the peer plan of interop_harness.py and the
    client plan of client/client_interop.py: linphone 5092, baresip 5094 + control 4444,
    Kamailio 5470, MSRP relay 2965, SIPp 5480-5489): hold the host-wide port-plan lock for each,
    so that a concurrent run on the same host queues instead of failing on busy ports.  (The
    lock is re-entrant within the process: the ``peers`` fixture takes it again.)"""
    del request
    with port_plan_lock():
        yield


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
    def start(**kwargs: object) -> PeerProcess:
        kwargs.setdefault("users", PASSWORDS)
        return start_simpleim_server(peers, **kwargs)  # type: ignore[arg-type]

    return start
