"""A whole client session and a file transfer with Kamailio as the proxy, captured with
tshark and checked like pcap_check.sh: SIP (5470 and the accounts' ports) with zero malformed
frames and no warnings; MSRP (the accounts' MSRP ports) as reassembled TCP streams, every
byte framed per RFC 4975 §9, plus tshark's MSRP dissection of whole messages.

Why MSRP is not judged per TCP segment: see tests/interop/capture.py (reproduced with
hand-segmented streams: tshark 4.0 misjudges valid MSRP split at unlucky segment borders)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from PIL import Image

from needs import unavailable

sys.path.insert(0, str(Path(__file__).resolve().parent / "client"))

from capture import check_msrp_capture, wait_capture_live  # noqa: E402
from client_interop import (  # noqa: E402
    KAMAILIO_PORT,
    MSRP_RELAY_PORT,
    Proc,
    account,
    account_config,
    kamailio,
    require,
)

from simpleim.client.events import FileEvent, ImdnEvent, MessageEvent, SessionEvent  # noqa: E402

pytestmark = pytest.mark.interop


#: bound for one awaited event / peer start: generous for a loaded 2-core CI box
LONG = 60.0


async def _until(acc: object, pred: object, timeout: float = LONG) -> object:
    async with asyncio.timeout(timeout):
        while True:
            ev = await acc.events.get()  # type: ignore[attr-defined]
            if ev is None or pred(ev):  # type: ignore[operator]
                return ev


async def test_session_and_file_transfer_via_kamailio_clean_capture(tmp_path: Path) -> None:
    tshark = require("tshark", "tshark")
    if os.geteuid() != 0:
        unavailable("capturing on lo needs root (or dumpcap capabilities)")
    img = tmp_path / "pic.jpg"
    Image.new("RGB", (300, 200), (50, 100, 150)).save(img, "JPEG")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(700_000))
    proxy = f"udp:127.0.0.1:{KAMAILIO_PORT}"
    async with kamailio(tmp_path), \
            account(account_config("alice", proxy, tmp_path)) as alice, \
            account(account_config("bob", proxy, tmp_path)) as bob:
        ports = {KAMAILIO_PORT, alice.msrp.port, bob.msrp.port}
        for acc in (alice, bob):
            assert acc.local is not None
            ports.add(acc.local.port)
        pcap = tmp_path / "client.pcapng"
        flt = " or ".join(f"port {p}" for p in sorted(ports))
        # -B 64: a 64 MiB kernel capture buffer, so that a starved dumpcap drops nothing
        cap = await Proc.start("tshark", [tshark, "-i", "lo", "-B", "64", "-f", flt,
                                          "-w", str(pcap)])
        try:
            await cap.wait_for("Capturing on", timeout=LONG)
            await asyncio.to_thread(wait_capture_live, pcap, alice.msrp.port)
            # 1-1 session through Kamailio (record-routed), MSRP peer to peer
            chat = await alice.chats.start("bob")
            await chat.composing(True)
            mid = await chat.send("hello via kamailio")
            msg = await _until(bob, lambda e: isinstance(e, MessageEvent))
            assert isinstance(msg, MessageEvent) and msg.text == "hello via kamailio"
            imdn = await _until(alice, lambda e: isinstance(e, ImdnEvent))
            assert isinstance(imdn, ImdnEvent) and imdn.message_id == mid
            await chat.refresh()            # re-INVITE (OMA §7.1.1.8) along the route set
            await chat.end()
            await _until(bob, lambda e: isinstance(e, SessionEvent) and e.state == "ended")
            # file transfer: two m-lines, thumbnail in multipart, hash checked
            results = await alice.files.send("bob", [img, blob])
            assert [r.status for r in results] == ["sent", "sent"]
            for _ in range(2):
                got = await _until(bob, lambda e: isinstance(e, FileEvent)
                                   and e.state == "received")
                assert isinstance(got, FileEvent) and got.hash_ok
            # pager through Kamailio as well
            await alice.pager.send("bob", "pager via kamailio")
            await _until(bob, lambda e: isinstance(e, MessageEvent) and e.mode == "pager")
            # a probe after the last frames: once the capture file holds it, it holds them too
            await asyncio.to_thread(wait_capture_live, pcap, alice.msrp.port)
        finally:
            if cap.proc.returncode is None:
                os.killpg(cap.proc.pid, signal.SIGINT)
                async with asyncio.timeout(LONG):
                    await cap.proc.wait()
            await cap.stop()
        problems = await asyncio.to_thread(check_msrp_capture, pcap,
                                     [alice.msrp.port, bob.msrp.port])
        assert problems["malformed"] == [], problems
        assert problems["warnings"] == [], problems
        assert problems["msrp_framing"] == [], problems
        assert problems["sip_frames"] > 10 and problems["msrp_frames"] > 5, problems
        assert problems["msrp_messages"] > 20, problems


async def test_session_and_file_transfer_through_kamailio_msrp_relay(tmp_path: Path) -> None:
    """RFC 4976: both accounts AUTH at Kamailio's MSRP relay (digest), put its Use-Path in
    a=path and send through it; chat both ways with IMDN, then a file with hash check."""
    relay = f"msrp://127.0.0.1:{MSRP_RELAY_PORT};tcp"
    proxy = f"udp:127.0.0.1:{KAMAILIO_PORT}"
    blob = tmp_path / "via-relay.bin"
    blob.write_bytes(os.urandom(120_000))
    async with kamailio(tmp_path), \
            account(account_config("alice", proxy, tmp_path, msrp_relay=relay)) as alice, \
            account(account_config("bob", proxy, tmp_path, msrp_relay=relay)) as bob:
        chat = await alice.chats.start("bob")
        stream = next(iter(chat.streams.values()))
        assert str(stream.local_path[0]).startswith(f"msrp://127.0.0.1:{MSRP_RELAY_PORT}/")
        mid = await chat.send("through the relay")
        msg = await _until(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(msg, MessageEvent) and msg.text == "through the relay"
        imdn = await _until(alice, lambda e: isinstance(e, ImdnEvent))
        assert isinstance(imdn, ImdnEvent) and imdn.message_id == mid
        await chat.end()
        results = await alice.files.send("bob", [blob])
        assert results[0].status == "sent"
        got = await _until(bob, lambda e: isinstance(e, FileEvent) and e.state == "received")
        assert isinstance(got, FileEvent) and got.hash_ok
