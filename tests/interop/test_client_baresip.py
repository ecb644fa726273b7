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
import sys
from pathlib import Path

import pytest

from waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent / "client"))

from client_interop import (  # noqa: E402
    BARESIP_CTRL,
    BARESIP_PORT,
    KAMAILIO_PORT,
    Proc,
    account,
    account_config,
    baresip_config_dir,
    baresip_ctrl,
    ensure_free,
    kamailio,
    require,
)

from simpleim.client.events import MessageEvent  # noqa: E402

pytestmark = pytest.mark.interop


async def test_baresip_text_plain_both_ways(tmp_path: Path) -> None:
    binary = require("baresip", "baresip")
    ensure_free(("udp", BARESIP_PORT), ("tcp", BARESIP_PORT), ("tcp", BARESIP_CTRL))
    async with kamailio(tmp_path):
        port = KAMAILIO_PORT
        bs = await Proc.start("baresip", [binary, "-f", str(baresip_config_dir(tmp_path, port))],
                              env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
        try:
            await bs.wait_for("200 OK", timeout=20)
            async with account(account_config("bob", f"udp:127.0.0.1:{port}",
                                              tmp_path)) as bob:
                result = await bob.pager.send("dave", "Hello baresip from simpleim")
                assert result.mode == "pager-plain" and result.status == 200
                await bs.wait_for("Hello baresip from simpleim")
                await wait_until(
                    lambda: baresip_ctrl("message", "Hello simpleim from baresip"), 10,
                    what="baresip's ctrl_tcp to take the command", interval=0.25)
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
