"""simpleim's UA side (SipEndpoint + transaction layer + DigestClient) against Kamailio.

Kamailio (tests/interop/kamailio/kamailio.cfg, WITH_AUTH) is the registrar/proxy for
example.test; SIPp is the other user agent (flows in interop_flows.py):

* a simpleim UA registers bob (401 answered) and receives the CPIM MESSAGE SIPp alice sends;
* a simpleim UA sends a CPIM MESSAGE as alice (407 answered) to SIPp bob's UAS.
"""

from __future__ import annotations

import pytest
from interop_flows import ua_register_and_receive, ua_send_message
from interop_harness import KAMAILIO_PORT, PeerProcess, Sipp

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_simpleim_ua_registers_and_receives_message(
    sipp: Sipp, kamailio: PeerProcess, transport: str
) -> None:
    await ua_register_and_receive(sipp, KAMAILIO_PORT, transport=transport)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_simpleim_ua_sends_message_answering_407(
    sipp: Sipp, kamailio: PeerProcess, transport: str
) -> None:
    await ua_send_message(sipp, KAMAILIO_PORT, transport=transport)
