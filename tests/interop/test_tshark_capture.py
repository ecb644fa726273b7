"""Capture a whole interop run on loopback with tshark and check it with pcap_check.sh.

pcap_check.sh (own copy, see README) reports frames tshark marks malformed, expert items of
severity >= warning (except TCP sequence analysis) and SIP/MSRP-port payload no dissector claimed.
All three counts must be zero.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from interop_flows import invite_flow, message_flow, ua_register_and_receive, ua_send_message
from interop_harness import (
    KAMAILIO_PORT,
    SIMPLEIM_PORT,
    PeerProcess,
    PeerSet,
    Sipp,
    pcap_check,
    start_capture,
    stop_capture,
)

pytestmark = pytest.mark.interop

SIPP_PORTS = list(range(5077, 5090))


def _check(pcap: Path) -> None:
    rc, out = pcap_check(pcap)
    assert "pcap_check: malformed=0 experts=0 undissected=0" in out and rc == 0, out
    assert pcap.stat().st_size > 1000, "capture is (nearly) empty"


def test_tshark_checker_flags_bad_frames(
    peers: PeerSet, tshark_bin: str, tmp_path: Path
) -> None:
    """Negative control: pcap_check.sh must *find* broken SIP, or a clean verdict means nothing
    (e.g. a renamed tshark field would silently count 0)."""
    pcap = tmp_path / "bad.pcapng"
    cap = start_capture(peers, tshark_bin, pcap, [5083, 5084])
    bad_header = (
        b"MESSAGE sip:bob@example.test SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5083;branch=z9hG4bK-bad-1\r\n"
        b"This header line has no colon\r\n"
        b"From: <sip:alice@example.test>;tag=1\r\nTo: <sip:bob@example.test>\r\n"
        b"Call-ID: bad-1@127.0.0.1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    )
    bad_status = b"SIP/2.0 2000 OK\r\nCall-ID: bad-2@127.0.0.1\r\nContent-Length: 0\r\n\r\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(
        socket.AF_INET, socket.SOCK_DGRAM
    ) as tx:
        rx.bind(("127.0.0.1", 5084))
        tx.bind(("127.0.0.1", 5083))
        tx.sendto(bad_header, ("127.0.0.1", 5084))
        tx.sendto(bad_status, ("127.0.0.1", 5084))
    stop_capture(cap)
    rc, out = pcap_check(pcap)
    m = re.search(r"pcap_check: malformed=(\d+) experts=(\d+) undissected=(\d+)", out)
    assert m is not None, out
    malformed, experts, undissected = (int(x) for x in m.groups())
    assert rc == 1, out
    assert malformed + experts >= 1, f"header without colon not flagged:\n{out}"
    assert undissected >= 1, f"bad status line not flagged:\n{out}"


def test_tshark_kamailio_run_is_clean(
    peers: PeerSet, sipp: Sipp, kamailio: PeerProcess, tshark_bin: str, tmp_path: Path
) -> None:
    """Baseline: SIPp <-> Kamailio traffic must pass the checker (validates the checker setup)."""
    pcap = tmp_path / "kamailio.pcapng"
    cap = start_capture(peers, tshark_bin, pcap, [KAMAILIO_PORT, *SIPP_PORTS])
    kam = f"127.0.0.1:{KAMAILIO_PORT}"
    message_flow(sipp, kam, transport="u1")
    message_flow(sipp, kam, transport="t1")
    invite_flow(sipp, kam, proxy=kam)
    stop_capture(cap)
    _check(pcap)


async def test_tshark_simpleim_ua_via_kamailio_is_clean(
    peers: PeerSet, sipp: Sipp, kamailio: PeerProcess, tshark_bin: str, tmp_path: Path
) -> None:
    """What simpleim's SipEndpoint sends (REGISTER/MESSAGE with digest answers, 200 to MESSAGE,
    UDP and TCP) and what Kamailio relays to it is well-formed for Wireshark. The UA's ports are
    ephemeral: the capture takes everything to/from Kamailio's port."""
    pcap = tmp_path / "simpleim-ua.pcapng"
    cap = start_capture(peers, tshark_bin, pcap, [KAMAILIO_PORT, *SIPP_PORTS])
    for transport in ("udp", "tcp"):
        await ua_register_and_receive(sipp, KAMAILIO_PORT, transport=transport)
        await ua_send_message(sipp, KAMAILIO_PORT, transport=transport)
    stop_capture(cap)
    _check(pcap)


def test_tshark_simpleim_run_is_clean(
    peers: PeerSet,
    sipp: Sipp,
    simpleim_server: Callable[..., PeerProcess],
    tshark_bin: str,
    tmp_path: Path,
) -> None:
    """Every frame simpleim server sends or relays in a full run (REGISTER + digest, MESSAGE over
    UDP and TCP with 407, INVITE/ACK/BYE with MSRP SDP) is well-formed for Wireshark."""
    pcap = tmp_path / "simpleim.pcapng"
    cap = start_capture(peers, tshark_bin, pcap, [SIMPLEIM_PORT, *SIPP_PORTS])
    simpleim_server()
    server = f"127.0.0.1:{SIMPLEIM_PORT}"
    message_flow(sipp, server, transport="u1")
    message_flow(sipp, server, transport="t1")
    invite_flow(sipp, server, proxy=server)
    stop_capture(cap)
    _check(pcap)
