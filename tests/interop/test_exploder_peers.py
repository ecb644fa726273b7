"""Real peers as members of a URI-list pager message (OMA IM §8.3, RFC 5365).

linphone-daemon 5.1 (carol) and baresip 1.0 (dave) register to an in-process simpleim
server next to a simpleim account (bob); alice (simpleim) sends one MESSAGE with the list
bob, carol, dave to ``sip:Exploder@example.test``.  Each gets a copy: bob and linphone the
CPIM message, baresip (which answers 415 to message/cpim) the text alone.  bob's delivery
IMDN goes back through the exploder (imdn.IMDN-Route), and alice's aggregated IMDN names
bob as delivered.
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
    DOMAIN,
    LINPHONE_PORT,
    Proc,
    account,
    account_config,
    baresip_config_dir,
    ensure_free,
    linphone_rc,
    require,
    simpleim_server,
    wait_registered,
)

from simpleim.client.events import ImdnEvent, MessageEvent  # noqa: E402

pytestmark = pytest.mark.interop


async def test_linphone_and_baresip_receive_a_list_message(tmp_path: Path) -> None:
    lp_bin = require("linphone-daemon", "linphone-cli")
    bs_bin = require("baresip", "baresip")
    ensure_free(("udp", LINPHONE_PORT), ("tcp", LINPHONE_PORT), ("udp", BARESIP_PORT),
                ("tcp", BARESIP_PORT), ("tcp", BARESIP_CTRL))
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    async with simpleim_server(tmp_path) as (server, port):
        lp = await Proc.start("linphone", [lp_bin, "--config", str(linphone_rc(tmp_path, port)),
                                           "--log", str(tmp_path / "linphone.log")], env=env)
        bs = await Proc.start("baresip", [bs_bin, "-f",
                                          str(baresip_config_dir(tmp_path, port))], env=env)
        try:
            await wait_registered(server, "carol")
            await wait_registered(server, "dave")
            proxy = f"udp:127.0.0.1:{port}"
            async with (
                account(account_config("bob", proxy, tmp_path)) as bob,
                account(account_config("alice", proxy, tmp_path)) as alice,
            ):
                text = "Hello group from simpleim"
                result = await alice.pager.send_list(["bob", "carol", "dave"], text)
                assert result.mode == "pager-list" and result.status == 202
                async with asyncio.timeout(15):
                    while True:
                        ev = await bob.events.get()
                        if isinstance(ev, MessageEvent):
                            assert ev.text == text and ev.sender == f"sip:alice@{DOMAIN}"
                            break
                await bs.wait_for(text, timeout=20)  # baresip: the text alone

                async def linphone_got_it() -> bool:
                    await lp.send("pop-event")
                    return text in lp.text() or text in (
                        tmp_path / "linphone.log").read_text(errors="replace")

                await wait_until(linphone_got_it, 15, what="linphone receiving the copy",
                                 interval=0.25)
                # bob's IMDN went through the exploder; the aggregated report (all three
                # answered or Ts2) names bob as delivered
                async with asyncio.timeout(60):
                    while True:
                        ev = await alice.events.get()
                        if isinstance(ev, ImdnEvent) and ev.peer == f"sip:bob@{DOMAIN}":
                            assert ev.message_id == result.message_id
                            assert ev.status == "delivered"
                            break
        finally:
            await lp.send("quit")
            await lp.stop()
            await bs.stop()
