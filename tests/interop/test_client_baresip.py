"""simpleim client <-> baresip 1.0 (text/plain MESSAGE both ways) through Kamailio.

baresip 1.0.0 cannot register to the simpleim server (it fails with "Function not
implemented" on the server's pair of MD5 + SHA-256 digest challenges), so both register
to Kamailio (client/kamailio.cfg, 127.0.0.1:5470).

baresip answers 415 (Accept: text/plain) to message/cpim: the client then sends the bare
text.  baresip's ``message`` command (ctrl_tcp) sends text/plain to its current contact,
bob, which the simpleim Account accepts as a plain message.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent / "client"))

from client_interop import (  # noqa: E402
    BARESIP_CTRL,
    BARESIP_PORT,
    KAMAILIO_PORT,
    SHARED_PEERS,
    Proc,
    account,
    account_config,
    ensure_free,
    kamailio,
    require,
)

from simpleim.client.events import MessageEvent  # noqa: E402

pytestmark = pytest.mark.interop


def _config_dir(tmp: Path, port: int) -> Path:
    d = tmp / "dave"
    shutil.copytree(SHARED_PEERS / "baresip" / "dave", d)
    acc = (d / "accounts").read_text().replace("127.0.0.1:5070", f"127.0.0.1:{port}")
    (d / "accounts").write_text(acc)
    return d


async def _ctrl(command: str, params: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", BARESIP_CTRL)
    payload = json.dumps({"command": command, "params": params, "token": "t1"}).encode()
    writer.write(str(len(payload)).encode() + b":" + payload + b",")
    await writer.drain()
    try:
        async with asyncio.timeout(3):
            await reader.read(4096)
    except TimeoutError:
        pass
    writer.close()


async def test_baresip_text_plain_both_ways(tmp_path: Path) -> None:
    binary = require("baresip", "baresip")
    ensure_free(("udp", BARESIP_PORT), ("tcp", BARESIP_PORT), ("tcp", BARESIP_CTRL))
    async with kamailio(tmp_path):
        port = KAMAILIO_PORT
        bs = await Proc.start("baresip", [binary, "-f", str(_config_dir(tmp_path, port))],
                              env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
        try:
            await bs.wait_for("200 OK", timeout=20)
            async with account(account_config("bob", f"udp:127.0.0.1:{port}",
                                              tmp_path)) as bob:
                result = await bob.pager.send("dave", "Hello baresip from simpleim")
                assert result.mode == "pager-plain" and result.status == 200
                await bs.wait_for("Hello baresip from simpleim")
                async def ctrl_sent() -> bool:   # ctrl_tcp listens a moment after start
                    try:
                        await _ctrl("message", "Hello simpleim from baresip")
                    except OSError:
                        return False
                    return True

                await wait_until(ctrl_sent, 10, what="baresip's ctrl_tcp to take the command",
                                 interval=0.25)
                async with asyncio.timeout(15):
                    while True:
                        ev = await bob.events.get()
                        if isinstance(ev, MessageEvent):
                            break
                assert ev.text == "Hello simpleim from baresip"
                assert ev.content_type == "text/plain" and ev.mode == "pager"
                assert ev.sender == "sip:dave@example.test"
        finally:
            await bs.stop()
