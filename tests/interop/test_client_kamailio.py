"""A whole client session and a file transfer with Kamailio as the proxy, captured with
tshark and checked like pcap_check.sh: SIP (5470 and the accounts' ports) with zero malformed
frames and no warnings; MSRP (the accounts' MSRP ports) as reassembled TCP streams, every
byte framed per RFC 4975 §9, plus tshark's MSRP dissection of whole messages.

Why MSRP is not judged per TCP segment: tshark 4.0's MSRP dissector reports a valid message
as "Malformed Packet (Exception occurred)" when a TCP segment ends inside its end-line, and
"Trailing stray characters" when a segment holds the start of a next message (reproduced
with hand-segmented streams).  Where segments end depends on the load (asyncio buffers
writes while the socket is full and flushes them at arbitrary offsets): the per-segment
verdict made this test flaky on a loaded machine."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent / "client"))

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
        pytest.skip("capturing on lo needs root (or dumpcap capabilities)")
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
            await asyncio.sleep(0.5)
            # 1-1 session through Kamailio (record-routed), MSRP peer to peer
            chat = await alice.start_chat("bob")
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
            results = await alice.send_files("bob", [img, blob])
            assert [r.status for r in results] == ["sent", "sent"]
            for _ in range(2):
                got = await _until(bob, lambda e: isinstance(e, FileEvent)
                                   and e.state == "received")
                assert isinstance(got, FileEvent) and got.hash_ok
            # pager through Kamailio as well
            await alice.send_message("bob", "pager via kamailio")
            await _until(bob, lambda e: isinstance(e, MessageEvent) and e.mode == "pager")
            await asyncio.sleep(0.5)
        finally:
            if cap.proc.returncode is None:
                os.killpg(cap.proc.pid, signal.SIGINT)
                async with asyncio.timeout(LONG):
                    await cap.proc.wait()
            await cap.stop()
        problems = await _check_capture(pcap, [alice.msrp.port, bob.msrp.port])
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
        chat = await alice.start_chat("bob")
        stream = next(iter(chat.streams.values()))
        assert str(stream.local_path[0]).startswith(f"msrp://127.0.0.1:{MSRP_RELAY_PORT}/")
        mid = await chat.send("through the relay")
        msg = await _until(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(msg, MessageEvent) and msg.text == "through the relay"
        imdn = await _until(alice, lambda e: isinstance(e, ImdnEvent))
        assert isinstance(imdn, ImdnEvent) and imdn.message_id == mid
        await chat.end()
        results = await alice.send_files("bob", [blob])
        assert results[0].status == "sent"
        got = await _until(bob, lambda e: isinstance(e, FileEvent) and e.state == "received")
        assert isinstance(got, FileEvent) and got.hash_ok


async def _tshark_fields(pcap: Path, decode: list[str], display: str) -> list[str]:
    proc = await asyncio.create_subprocess_exec(
        "tshark", "-r", str(pcap), *decode, "-Y", display, "-T", "fields", "-e",
        "frame.number", "-e", "_ws.col.Protocol", "-e", "_ws.expert.message", "-E",
        "separator=|", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    return [line for line in out.decode().splitlines() if line.strip()]


async def _check_capture(pcap: Path, msrp_ports: list[int]) -> dict[str, object]:
    """The checks of pcap_check.sh that apply here: malformed frames and expert warnings of
    everything but MSRP (SIP, TCP, ...) - except tshark's JPEG dissector flagging the CRLF
    that precedes the MSRP end-line as 'Trailing stray characters' after the image's EOI
    marker; MSRP: every reassembled TCP stream framed per RFC 4975 §9 (module docstring).
    (pcap_check.sh's 'undissected' check does not apply: tshark's MSRP dissector does not
    reassemble a 64 KiB file chunk spread over several TCP segments.)"""
    decode = [arg for p in msrp_ports for arg in ("-d", f"tcp.port=={p},msrp")]
    malformed = await _tshark_fields(pcap, decode, "_ws.malformed && !msrp")
    warnings = await _tshark_fields(
        pcap, decode, "_ws.expert.severity >= 6291456 && !(_ws.expert.group == 0x02000000)"
        " && !msrp && !(jfif && _ws.expert.message == \"Trailing stray characters\")")
    sip = await _tshark_fields(pcap, decode, "sip")
    msrp = await _tshark_fields(pcap, decode, "msrp")
    framing: list[str] = []
    messages = 0
    for stream in await _tcp_streams(pcap, msrp_ports):
        for direction, data in (await _follow_raw(pcap, stream)).items():
            count, errors = msrp_framing_errors(data)
            messages += count
            framing += [f"tcp.stream {stream} {direction}: {e}" for e in errors]
    return {"malformed": malformed, "warnings": warnings, "sip_frames": len(sip),
            "msrp_frames": len(msrp), "msrp_framing": framing, "msrp_messages": messages}


async def _run(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    async with asyncio.timeout(LONG):
        out, _ = await proc.communicate()
    return out.decode()


async def _tcp_streams(pcap: Path, ports: list[int]) -> list[int]:
    flt = " || ".join(f"tcp.port=={p}" for p in ports)
    out = await _run("tshark", "-r", str(pcap), "-Y", flt, "-T", "fields", "-e", "tcp.stream")
    return sorted({int(x) for x in out.split() if x.isdigit()})


async def _follow_raw(pcap: Path, stream: int) -> dict[str, bytes]:
    """The reassembled bytes of both directions of one TCP stream (tshark follow,raw: the
    second node's data lines are tab-indented)."""
    out = await _run("tshark", "-r", str(pcap), "-q", "-z", f"follow,tcp,raw,{stream}")
    data = {"0->1": bytearray(), "1->0": bytearray()}
    for line in out.splitlines():
        if not line.strip() or line.startswith(("Follow:", "Filter:", "Node ", "=")):
            continue
        key = "1->0" if line.startswith("\t") else "0->1"
        try:
            data[key] += bytes.fromhex(line.strip())
        except ValueError:
            continue
    return {k: bytes(v) for k, v in data.items() if v}


_START = re.compile(rb"MSRP ([A-Za-z0-9][A-Za-z0-9.\-+%=]{3,31}) "
                    rb"(?:[A-Z]+|[0-9]{3}(?: [^\r\n]*)?)\r\n")
_HEADER = re.compile(rb"[A-Za-z0-9!#$%&'*+.^_`|~-]+: [^\r\n]*\r\n")


def msrp_framing_errors(data: bytes) -> tuple[int, list[str]]:
    """RFC 4975 §9 framing of a byte stream: start line, header lines, optional CRLF + body,
    end-line ``-------<transact-id>[$+#]`` - every byte accounted for.  Returns (messages,
    problems)."""
    pos = 0
    count = 0
    while pos < len(data):
        m = _START.match(data, pos)
        if m is None:
            return count, [f"no MSRP start line at byte {pos}: {data[pos:pos + 60]!r}"]
        tid = m.group(1)
        end = re.compile(rb"\r\n-------" + re.escape(tid) + rb"[$+#]\r\n")
        hdr = m.end()
        names: set[bytes] = set()
        while True:
            h = _HEADER.match(data, hdr)
            if h is None:
                break
            names.add(h.group(0).split(b":", 1)[0].lower())
            hdr = h.end()
        if not {b"to-path", b"from-path"} <= names:
            return count, [f"message {tid!r} at byte {pos} without To-Path/From-Path"]
        if data.startswith(b"-------" + tid, hdr):              # no body
            e = end.match(data, hdr - 2)
        elif data.startswith(b"\r\n", hdr):                   # CRLF, body, end-line
            e = end.search(data, hdr)
            if e is not None and b"content-type" not in names and e.start() > hdr + 2:
                return count, [f"message {tid!r} has a body but no Content-Type"]
        else:
            e = None
        if e is None:
            return count, [f"message {tid!r} at byte {pos}: bad header or no end-line"]
        pos = e.end()
        count += 1
    return count, []
