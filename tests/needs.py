"""What a test needs from the machine, decided in one place.

A test that cannot run here because something outside the project is missing (a peer program,
root for packet capture, PostgreSQL, IPv6 on loopback) calls :func:`unavailable`.  On a developer
machine that *skips* with the reason; where the environment says everything must be there
(``CI`` or ``SIMPLEIM_REQUIRE_PEERS`` set - ``.ci/run`` installs the peers and starts
PostgreSQL), it *fails*, so a CI run can never turn green by skipping.

``unavailable(..., optional=True)`` is for what CI machines are not promised to have (IPv6 on
loopback inside some containers, a hash missing from an OpenSSL build); it always skips and the
reason says why it is allowed to.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest

__all__ = ["PG_BASE", "everything_required", "require_ipv6_loopback", "unavailable"]

#: PostgreSQL the tests use (user root, trust auth, database ``test``); every test works in its
#: own random schema.  ``SIMPLEIM_TEST_PG`` points elsewhere.
PG_BASE = os.environ.get("SIMPLEIM_TEST_PG", "postgresql://root@127.0.0.1:5432/test")


def everything_required() -> bool:
    """True where a missing peer / root / PostgreSQL is a failure (CI)."""
    return any(os.environ.get(name, "").lower() not in ("", "0", "false", "no")
               for name in ("CI", "SIMPLEIM_REQUIRE_PEERS"))


def unavailable(reason: str, *, optional: bool = False) -> NoReturn:
    """Skip this test because ``reason`` - or fail it when everything is required here."""
    if everything_required() and not optional:
        pytest.fail(f"{reason} - required here because CI/SIMPLEIM_REQUIRE_PEERS is set",
                    pytrace=False)
    pytest.skip(reason)


def require_ipv6_loopback() -> None:
    """Skip where ``::1`` cannot be bound (containers started with IPv6 disabled: allowed)."""
    if not socket.has_ipv6:
        unavailable("no IPv6 in this Python build", optional=True)
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        unavailable(f"no IPv6 loopback here ({exc})", optional=True)
