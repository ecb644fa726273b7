"""Two simpleim MSRP endpoints on loopback under a tshark capture: tshark's dissectors (and the
strict per-stream framing check of capture.py) find nothing wrong with what we send."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from capture import check_msrp_capture, wait_capture_live

from needs import unavailable
from simpleim.transport.msrp import MsrpEndpoint

pytestmark = [
    pytest.mark.interop,
]

LONG = 60.0


async def test_tshark_sees_no_malformed_msrp(tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        unavailable("tshark not installed (Debian package tshark; .ci/run installs it)")
    if os.geteuid() != 0:
        unavailable("capturing on lo needs root (or dumpcap capabilities)")
    a, b = MsrpEndpoint(), MsrpEndpoint()
    await a.start()
    await b.start()
    pcap = tmp_path / "msrp.pcapng"
    proc = await asyncio.create_subprocess_exec(
        "tshark", "-i", "lo", "-B", "64", "-f", f"tcp port {b.port}", "-w", str(pcap), "-q",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True)
    try:
        await asyncio.to_thread(wait_capture_live, pcap, b.port)
        sb = b.new_session()
        sa = a.new_session(sb.local_path, chunk_size=10 * 1024)
        sb.set_remote_path(sa.local_path)
        await a.connect(sa)
        payload = os.urandom(400_000)
        sent = await sa.send(payload, "application/octet-stream", success_report=True)
        await sa.send("héllo wörld".encode(), "text/plain; charset=utf-8")
        await sa.wait_delivered(sent)
        got = await sb.receive(timeout=LONG)
        assert got.sink.data in (payload, "héllo wörld".encode())  # type: ignore[attr-defined]
    finally:
        await a.close()
        await b.close()
        if proc.returncode is None:
            await asyncio.to_thread(wait_capture_live, pcap, b.port)
            os.killpg(proc.pid, signal.SIGINT)
            try:
                async with asyncio.timeout(LONG):
                    await proc.wait()
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
    problems = await asyncio.to_thread(check_msrp_capture, pcap, [b.port])
    assert problems["malformed"] == [], problems
    assert problems["warnings"] == [], problems
    assert problems["msrp_framing"] == [], problems
    # 40 chunks + the text message + their 200s + the success REPORT, all framed per RFC 4975 §9
    assert isinstance(problems["msrp_messages"], int) and problems["msrp_messages"] >= 80, problems
    report = subprocess.run(["tshark", "-r", str(pcap), "-Y", 'frame contains " REPORT\r\n"',
                             "-T", "fields", "-e", "frame.number"],
                            capture_output=True, text=True, timeout=LONG).stdout.split()
    assert report, "the success REPORT is not on the wire"
