"""A real plain SIP client meets the Participating Function's barring (OMA IM §6.1.2.1).

bob (a simpleim client) publishes ``incoming-personal-alert-barring active="true"`` after his
registration (C-REG-01, from his config); baresip 1.0 (dave, registered to ``simpleim
server`` with MD5) sends bob a text/plain MESSAGE: the server answers 403 with
``Warning: 399 example.test "127 Service not authorised"`` and bob never sees it.  Then bob
publishes ``vis-status active="false"`` (invisible, barring off): dave's MESSAGE is delivered
(invisibility hides, it does not bar).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent / "client"))

from client_interop import (  # noqa: E402
    BARESIP_CTRL,
    BARESIP_PORT,
    DOMAIN,
    Proc,
    account,
    account_config,
    baresip_config_dir,
    baresip_ctrl,
    ensure_free,
    require,
    simpleim_server,
    wait_registered,
)

from simpleim.client.events import MessageEvent  # noqa: E402
from simpleim.content.poc_settings import ServiceSettings  # noqa: E402

pytestmark = pytest.mark.interop


async def test_baresip_message_to_a_barred_user_gets_403(tmp_path: Path) -> None:
    binary = require("baresip", "baresip")
    ensure_free(("udp", BARESIP_PORT), ("tcp", BARESIP_PORT), ("tcp", BARESIP_CTRL))
    async with (
        simpleim_server(tmp_path) as (server, port),
        account(account_config("bob", f"udp:127.0.0.1:{port}", tmp_path,
                               bar_messages=True)) as bob,
    ):
        assert server.roles is not None
        assert server.roles.settings.settings_of(f"bob@{DOMAIN}", time.time()) \
            .incoming_pager_barring  # published after the registration (C-REG-01)
        bs = await Proc.start("baresip", [binary, "-f", str(baresip_config_dir(tmp_path, port))],
                              env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
        try:
            await bs.wait_for("200 OK", timeout=20)
            await wait_registered(server, "dave")
            await wait_until(lambda: baresip_ctrl("message", "are you there?"), 10,
                             what="baresip's ctrl_tcp to take the command", interval=0.25)
            line = await bs.wait_for("403", timeout=15)
            assert "403 Forbidden" in line, line
            # invisible but not barring: dave's message is delivered
            assert await bob.settings.publish(ServiceSettings(visible=False)) == 200
            assert await baresip_ctrl("message", "now you see me")
            # the second message is the sentinel: the barred one never came before it
            texts: list[str] = []
            async with asyncio.timeout(15):
                while "now you see me" not in texts:
                    ev = await bob.events.get()
                    if isinstance(ev, MessageEvent):
                        texts.append(ev.text)
                        assert ev.sender == f"sip:dave@{DOMAIN}"
            assert texts == ["now you see me"]
        finally:
            await bs.stop()
