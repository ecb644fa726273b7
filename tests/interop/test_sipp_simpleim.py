"""SIPp against ``simpleim server`` (registrar + stateful proxy with digest auth).

The server runs as a subprocess (``simpleim server --domain example.test --listen
127.0.0.1:5160 --db sqlite:///<tmp>/...``) after ``simpleim user add`` for alice/bob/carol/dave.
The same flows pass against Kamailio in test_kamailio_sipp.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from interop_flows import UDP_PORTS, invite_flow, message_flow, register, unreachable_flow
from interop_harness import DOMAIN, PASSWORDS, SIMPLEIM_PORT, PeerProcess, Sipp

pytestmark = pytest.mark.interop

SERVER = f"127.0.0.1:{SIMPLEIM_PORT}"


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_register_digest(
    sipp: Sipp, simpleim_server: Callable[..., PeerProcess], transport: str
) -> None:
    """REGISTER -> 401 (Digest) -> REGISTER with Authorization -> 200 listing the contact."""
    simpleim_server()
    res = register(sipp, SERVER, user="alice", contact_port=5086, port=5085, transport=transport)
    ok = [m for m in res.received() if m.status == 200][0]
    contact = " ".join(ok.header("Contact"))
    assert "expires=" in contact or ok.header("Expires"), f"no expiry in the 200: {ok.text}"


def test_register_wrong_password_is_refused(
    sipp: Sipp, simpleim_server: Callable[..., PeerProcess]
) -> None:
    simpleim_server()
    res = sipp.run(
        "alice-register-badpw", "uac_register.xml", remote=SERVER, port=5085, service="alice",
        keys={"domain": DOMAIN, "contact_port": 5086, "expires": 300},
        auth=("alice", "not-the-password"), auth_uri=DOMAIN,
        timeout=3,  # SIPp keeps the call open after the unexpected 2nd 401: end it early
    )
    assert res.rc != 0 and res.successful == 0, res.diagnostics()
    finals = [m.status for m in res.received() if m.is_response and m.status != 100]
    assert finals[0] == 401 and len(finals) >= 2 and finals[1] in (401, 403), finals


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_message_relayed_between_sipp_users(
    sipp: Sipp, simpleim_server: Callable[..., PeerProcess], transport: str
) -> None:
    """SIPp bob registers; SIPp alice's CPIM MESSAGE is challenged (407) and then relayed."""
    simpleim_server()
    alice, uas = message_flow(sipp, SERVER, transport=transport)
    challenges = [m for m in alice.received() if m.status in (401, 407)]
    assert challenges, "MESSAGE was not challenged"
    for c in challenges:
        hdr = "Proxy-Authenticate" if c.status == 407 else "WWW-Authenticate"
        assert c.header(hdr) and c.header(hdr)[0].lower().startswith("digest "), c.text


def test_message_to_unreachable_users(
    sipp: Sipp, simpleim_server: Callable[..., PeerProcess]
) -> None:
    """A known user without binding (carol) -> the MESSAGE is deferred: 202 Accepted (OMA IM
    §6.1.2.1 step 5, §12.2.2.3); an unknown user -> 404 (or 480), after alice authenticated."""
    simpleim_server()
    carol = sipp.run(
        "alice-to-carol", "uac_message_cpim.xml", remote=SERVER, port=UDP_PORTS.uac,
        service="carol", keys={"domain": DOMAIN, "from": "alice"},
        auth=("alice", PASSWORDS["alice"]), auth_uri=f"carol@{DOMAIN}",
    )
    carol.expect_success(1)
    finals = [m.status for m in carol.received() if m.status not in (100, 401, 407)]
    assert finals == [202], f"MESSAGE to carol (no binding) answered {finals}, expected [202]"
    nobody = unreachable_flow(sipp, SERVER, user="nobody")
    finals = [m.status for m in nobody.received() if m.status not in (100, 401, 407)]
    assert finals in ([404], [480]), f"MESSAGE to an unknown user answered {finals}"


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_invite_msrp_sdp_with_record_route(
    sipp: Sipp, simpleim_server: Callable[..., PeerProcess], transport: str
) -> None:
    """INVITE (MSRP SDP offer) / 200 (answer) / ACK / BYE; the server Record-Routes and the UAC's
    ACK and BYE carry the Route to it."""
    simpleim_server()
    invite_flow(sipp, SERVER, proxy=SERVER, transport=transport)
