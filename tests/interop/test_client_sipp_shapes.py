"""SIPp UAC sends the seed 002 (CPM session), GSMA IR.79 and Mercuro image share INVITE
shapes straight to a simpleim Account (no proxy); the 200's SDP answer is checked field by
field (RFC 3264 / RFC 4975 / RFC 5547 / IR.79 §2.4), then ACK and BYE."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "client"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from client_interop import HERE, Proc, account, account_config, ensure_free, require  # noqa: E402
from interop_harness import parse_sipp_message_log  # noqa: E402

from simpleim.client.events import FileEvent, SessionEvent  # noqa: E402
from simpleim.sdp import FileDescription, MsrpMedia, parse_sdp  # noqa: E402
from simpleim.sip.headers import Address  # noqa: E402

pytestmark = pytest.mark.interop


async def _run(tmp: Path, scenario: str, port: int) -> tuple[dict[str, object], list[object]]:
    sipp = require("sipp", "sip-tester")
    ensure_free(("udp", port))
    cfg = account_config("bob", f"udp:127.0.0.1:{port}", tmp, listen="udp:127.0.0.1:0")
    async with account(cfg, register=False) as bob:
        assert bob.local is not None
        log = tmp / f"{scenario}.log"
        proc = await Proc.start("sipp", [
            sipp, f"127.0.0.1:{bob.local.port}", "-sf", str(HERE / scenario), "-s", "bob",
            "-i", "127.0.0.1", "-p", str(port), "-m", "1", "-nostdin", "-timeout", "20s",
            "-timeout_error", "-trace_msg", "-message_file", str(log)])
        try:
            async with asyncio.timeout(30):
                rc = await proc.proc.wait()
        finally:
            await proc.stop()
        # Every scenario ends with BYE: bob's "ended" is the last event (no quiet-period guess).
        events: list[object] = []
        while not (events and isinstance(events[-1], SessionEvent)
                   and events[-1].state == "ended"):
            events.append(await bob.events.get(timeout=15))
        msgs = parse_sipp_message_log(log.read_text())
        ok = [m for m in msgs if m.is_response and m.status == 200
              and "INVITE" in " ".join(m.header("CSeq"))]
        assert rc == 0, proc.text()[-3000:]
        assert ok, log.read_text()[-3000:]
        return {"msg": ok[0], "sdp": parse_sdp(ok[0].body.encode())}, events


async def test_seed002_cpm_session_answer(tmp_path: Path) -> None:
    res, events = await _run(tmp_path, "uac_seed002_session.xml", 5480)
    msg, sdp = res["msg"], res["sdp"]
    assert len(sdp.media) == 1                                       # RFC 3264 §6
    m = MsrpMedia.from_media(sdp.media[0], sdp)
    assert m.proto == "TCP/MSRP" and m.port > 0
    assert "message/cpim" in m.accept_types                          # OMA §7.1.2.2
    assert "application/im-iscomposing+xml" in m.accept_types
    assert {"text/plain", "message/imdn+xml"} <= set(m.accept_wrapped_types)
    assert m.setup is not None and m.setup.value == "passive"       # RFC 6135: offer active
    assert m.direction.value == "sendrecv"
    assert len(m.path) == 1 and m.path[0].startswith("msrp://127.0.0.1:")
    assert m.path[0].endswith(";tcp")
    assert sdp.connection is not None and sdp.connection.address == "127.0.0.1"
    contact = Address.parse(msg.header("Contact")[0])
    assert "+g.oma.sip-im" in contact.params                        # OMA §7.1.2.1
    assert msg.header("Session-Expires")[0].startswith("3600;refresher=uac")  # RFC 4028 §9
    assert "timer" in msg.header("Require")[0]
    assert msg.header("Conversation-ID") == ["750192017fe0025714ed411b84364ae39a12447d"]
    assert any(isinstance(e, SessionEvent) and e.state == "ended" for e in events)


async def test_ir79_image_share_answer(tmp_path: Path) -> None:
    res, events = await _run(tmp_path, "uac_ir79_image_share.xml", 5481)
    msg, sdp = res["msg"], res["sdp"]
    m = MsrpMedia.from_media(sdp.media[0], sdp)
    assert m.direction.value == "recvonly"                           # IR.79 §2.4
    assert m.accept_types and m.path
    f = m.file
    assert isinstance(f, FileDescription)
    assert f.selector.type == "image/jpeg" and f.selector.size == 32349   # echoed selector
    assert f.selector.name == "My cool picture.jpg"
    assert f.transfer_id == "vBnG916bdberum2fF"                      # RFC 5547 §8.2.2
    contact = msg.header("Contact")[0]
    assert "+g.3gpp.cs-voice" in contact and "gsma-is" in contact  # IR.79 §2.4 200 OK
    offered = [e for e in events if isinstance(e, FileEvent) and e.state == "offered"]
    assert offered and offered[0].kind == "image"


async def test_mercuro_image_share_answer(tmp_path: Path) -> None:
    res, events = await _run(tmp_path, "uac_mercuro_image_share.xml", 5482)
    sdp = res["sdp"]
    m = MsrpMedia.from_media(sdp.media[0], sdp)
    assert m.direction.value == "recvonly"
    f = m.file
    assert isinstance(f, FileDescription)
    assert f.selector.name == "Image 18.png" and f.selector.type == "image/png"
    assert f.selector.size == 78169 and f.selector.hash is not None
    assert f.transfer_id == "prepggxrpnrvystmwcysyycqpevikeff"
    offered = [e for e in events if isinstance(e, FileEvent) and e.state == "offered"]
    assert offered and offered[0].kind == "image"
    assert offered[0].reason is not None and "icon" in offered[0].reason   # base64 icon read
