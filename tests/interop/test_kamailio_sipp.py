"""Kamailio + SIPp only (no simpleim code): proves the peer fixtures and the scenarios work.

If these fail, the interop *harness* (or a peer) is broken, not simpleim: the simpleim tests in
test_sipp_simpleim.py / test_kamailio_simpleim.py reuse exactly these fixtures, flows and
scenarios, with simpleim in place of Kamailio or of one SIPp side.
"""

from __future__ import annotations

import pytest
from interop_flows import invite_flow, message_flow, unreachable_flow
from interop_harness import KAMAILIO_PORT, PeerProcess, Sipp

pytestmark = pytest.mark.interop

KAM = f"127.0.0.1:{KAMAILIO_PORT}"


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_sipp_message_through_kamailio(sipp: Sipp, kamailio: PeerProcess, transport: str) -> None:
    alice, _ = message_flow(sipp, KAM, transport=transport)
    assert [m.status for m in alice.received()] == [407, 200, 407, 200]


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_sipp_invite_msrp_through_kamailio(
    sipp: Sipp, kamailio: PeerProcess, transport: str
) -> None:
    invite_flow(sipp, KAM, proxy=KAM, transport=transport)


def test_sipp_message_to_unregistered_user_through_kamailio(
    sipp: Sipp, kamailio: PeerProcess
) -> None:
    unreachable_flow(sipp, KAM, user="carol")  # Kamailio answers 404 for a lookup miss
