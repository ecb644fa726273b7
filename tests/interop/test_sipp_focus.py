"""SIPp drives the conference focus of ``simpleim server`` (OMA SIMPLE IM §7.2), under a
tshark capture checked by pcap_check.sh.

SIPp alice sends the ad-hoc group INVITE (RFC 5366 recipient list naming bob) to
``sip:Conference-Factory@example.test``; bob is a simpleim account that accepts; the focus
answers SIPp with ``isfocus`` and connects to SIPp's (passive) MSRP port, where the test holds
the TCP connection.  A second SIPp alice subscribes to the conference event package (full
state NOTIFY, then ``Expires: 0`` and the terminating NOTIFY).  SIPp's BYE (the initiator
leaves) ends the group chat for bob.  Every frame of the run - SIP on UDP and TCP, the MSRP
connections of the focus - is well-formed for Wireshark.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from interop_harness import (
    DOMAIN,
    PASSWORDS,
    SIMPLEIM_PORT,
    PeerProcess,
    PeerSet,
    Sipp,
    pcap_check,
    start_capture,
    stop_capture,
)

from waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent / "client"))

from client_interop import account, account_config  # noqa: E402

from simpleim.client.events import SessionEvent  # noqa: E402
from simpleim.client.groupchat import GroupChat  # noqa: E402

pytestmark = pytest.mark.interop

SERVER = f"127.0.0.1:{SIMPLEIM_PORT}"
SIPP_INVITE_PORT, SIPP_SUB_PORT, SIPP_MSRP_PORT = 5081, 5082, 5088
LONG = 30.0


async def test_sipp_group_invite_and_conference_subscription(
    peers: PeerSet, sipp: Sipp, simpleim_server: Callable[..., PeerProcess],
    tshark_bin: str, tmp_path: Path,
) -> None:
    msrp_port = SIMPLEIM_PORT + 1                 # the server's MSRP listener ("auto")
    pcap = tmp_path / "focus.pcapng"
    cap = await asyncio.to_thread(start_capture, peers, tshark_bin, pcap, [
        SIMPLEIM_PORT, msrp_port, SIPP_INVITE_PORT, SIPP_SUB_PORT, SIPP_MSRP_PORT])
    await asyncio.to_thread(simpleim_server)
    held: list[asyncio.StreamWriter] = []

    async def hold(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)                            # SIPp's MSRP side: the focus connects here

    msrp = await asyncio.start_server(hold, "127.0.0.1", SIPP_MSRP_PORT)
    try:
        async with account(account_config("bob", f"tcp:{SERVER}", tmp_path)) as bob:
            creator = sipp.start(
                "alice-conference", "uac_conference_factory.xml", remote=SERVER,
                port=SIPP_INVITE_PORT, keys={"domain": DOMAIN, "from": "alice",
                                             "member": "bob", "msrp_port": SIPP_MSRP_PORT,
                                             },
                auth=("alice", PASSWORDS["alice"]), auth_uri=DOMAIN)
            async with asyncio.timeout(LONG):
                while True:
                    ev = await bob.events.get()
                    if isinstance(ev, SessionEvent) and ev.state == "established" \
                            and ev.kind == "group":
                        chat = bob.sessions[ev.session_id]
                        break
            assert isinstance(chat, GroupChat)
            conference = chat.conference.removeprefix("sip:").split("@", 1)[0]
            assert conference.startswith("conf~")
            await wait_until(lambda: bool(held), LONG, what="the focus connecting to SIPp")
            sub = await asyncio.to_thread(
                sipp.run, "alice-subscribe", "uac_subscribe_conference.xml", remote=SERVER,
                port=SIPP_SUB_PORT, keys={"domain": DOMAIN, "from": "alice",
                                          "conference": conference},
                auth=("alice", PASSWORDS["alice"]), auth_uri=f"{conference}@{DOMAIN}",
                rate=None, extra=())
            sub.expect_success(1)
            notifies = sub.received("NOTIFY")
            assert len(notifies) == 2, sub.diagnostics()
            first = notifies[0]
            assert first.header("Event") == ["conference"]
            assert "application/conference-info+xml" in " ".join(first.header("Content-Type"))
            assert 'entity="sip:alice@example.test"' in first.body
            assert 'entity="sip:bob@example.test"' in first.body
            assert "yourown" in first.body
            assert notifies[1].header("Subscription-State")[0].startswith("terminated")
            result = await asyncio.to_thread(sipp.finish, creator, LONG)
            result.expect_success(1)
            ok = [m for m in result.received() if m.status == 200 and "INVITE" in
                  " ".join(m.header("CSeq"))][0]
            contact = " ".join(ok.header("Contact"))
            assert "isfocus" in contact and f"sip:{conference}@" in contact
            # the initiator's BYE released the conference: bob's session ends too
            async with asyncio.timeout(LONG):
                while True:
                    ev = await bob.events.get()
                    if isinstance(ev, SessionEvent) and ev.state == "ended" \
                            and ev.session_id == chat.session_id:
                        break
    finally:
        for w in held:
            w.close()
        msrp.close()
        await msrp.wait_closed()
        await asyncio.to_thread(stop_capture, cap)
    rc, out = await asyncio.to_thread(pcap_check, pcap, [msrp_port, SIPP_MSRP_PORT])
    assert "pcap_check: malformed=0 experts=0 undissected=0" in out and rc == 0, out
    assert pcap.stat().st_size > 1000
