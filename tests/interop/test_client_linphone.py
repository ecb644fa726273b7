"""simpleim client <-> linphone-daemon 5.1 (CPIM + IMDN, deflate) through a simpleim server.

linphone (carol) registers to an in-process simpleim server; a simpleim Account (alice)
sends her a CPIM message asking for IMDN and gets linphone's deflate-encoded delivery
notification; linphone sends alice a CPIM message and alice's IMDN makes it 'Delivered'.
CPIM DateTime is a fixed June date (liblinphone rejects January dates, test-peers.md §3).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent / "client"))

from client_interop import (  # noqa: E402
    LINPHONE_PORT,
    Proc,
    account,
    account_config,
    ensure_free,
    linphone_rc,
    require,
    simpleim_server,
    wait_registered,
)

from simpleim.client.events import ImdnEvent, MessageEvent  # noqa: E402

pytestmark = pytest.mark.interop




async def _event(acc: object, pred: object, timeout: float = 15.0) -> object:
    async with asyncio.timeout(timeout):
        while True:
            ev = await acc.events.get()  # type: ignore[attr-defined]
            if ev is None or pred(ev):  # type: ignore[operator]
                return ev


async def test_linphone_cpim_imdn_both_ways(tmp_path: Path) -> None:
    binary = require("linphone-daemon", "linphone-cli")
    ensure_free(("udp", LINPHONE_PORT), ("tcp", LINPHONE_PORT))
    async with simpleim_server(tmp_path) as (server, port):
        lp = await Proc.start("linphone", [binary, "--config", str(linphone_rc(tmp_path, port)),
                                           "--log", str(tmp_path / "linphone.log")],
                              env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
        try:
            await wait_registered(server, "carol")
            async with account(account_config("alice", f"udp:127.0.0.1:{port}",
                                              tmp_path)) as alice:
                # simpleim -> linphone: CPIM + IMDN request; linphone answers a deflate IMDN.
                result = await alice.pager.send("carol", "Hello linphone from simpleim")
                assert result.mode == "pager" and result.status == 200
                imdn = await _event(alice, lambda e: isinstance(e, ImdnEvent))
                assert isinstance(imdn, ImdnEvent)
                assert imdn.message_id == result.message_id and imdn.status == "delivered"
                # linphone -> simpleim: CPIM with imdn headers
                await lp.send("message sip:alice@example.test Hello simpleim from linphone")
                msg = await _event(alice, lambda e: isinstance(e, MessageEvent))
                assert isinstance(msg, MessageEvent)
                assert msg.text == "Hello simpleim from linphone"
                assert msg.content_type == "text/plain" and msg.message_id
                assert "positive-delivery" in msg.imdn
                # our delivery IMDN makes linphone report the message Delivered
                async def delivered() -> bool:
                    await lp.send("pop-event")
                    return "Delivered" in lp.text()

                await wait_until(delivered, 10, what="linphone reporting Delivered",
                                 interval=0.25)
        finally:
            await lp.send("quit")
            await lp.stop()
