"""A real plain SIP client with CPIM gets its deferred messages on registration (issue 9 §7).

linphone-daemon 5.1 (carol: no ``+g.oma.sip-im``, no MSRP) is offline; a simpleim client sends
her two IMs asking for delivery notifications through ``simpleim server`` and gets 202 Accepted
for each (stored, OMA IM §12.2.2.3).  Then linphone starts and registers: the server re-sends
both as MESSAGE, in order (msilo-style), linphone shows them and answers each with its own
delivery IMDN, which reaches alice (§12.2.2.2, DM-09's positive side).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent / "client"))

from client_interop import (  # noqa: E402
    DOMAIN,
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

from simpleim.client.events import ImdnEvent  # noqa: E402

pytestmark = pytest.mark.interop




async def test_linphone_offline_receives_deferred_messages_on_registration(
        tmp_path: Path) -> None:
    binary = require("linphone-daemon", "linphone-cli")
    ensure_free(("udp", LINPHONE_PORT), ("tcp", LINPHONE_PORT))
    texts = ("first while you were away", "second while you were away")
    async with (
        simpleim_server(tmp_path) as (server, port),
        account(account_config("alice", f"udp:127.0.0.1:{port}", tmp_path)) as alice,
    ):
        sent = []
        for text in texts:
            result = await alice.pager.send("carol", text)
            assert result.status == 202          # deferred: carol is not registered
            sent.append(result.message_id)
        assert server.roles is not None
        assert server.roles.deferred.has_pending(f"carol@{DOMAIN}")
        lp = await Proc.start("linphone", [binary, "--config", str(linphone_rc(tmp_path, port)),
                                           "--log", str(tmp_path / "linphone.log")],
                              env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
        try:
            await wait_registered(server, "carol")

            async def shown() -> bool:
                await lp.send("pop-event")
                return all(text in lp.text() for text in texts)

            await wait_until(shown, 20, what="linphone showing both deferred messages",
                             interval=0.25)
            out = lp.text()
            assert out.index(texts[0]) < out.index(texts[1])      # in order
            await wait_until(lambda: not server.roles.deferred.has_pending(  # type: ignore[union-attr]
                f"carol@{DOMAIN}"), 20, what="the deferred store emptied")
            # linphone's delivery notifications for the re-sent messages reach alice
            delivered: set[str] = set()
            async with asyncio.timeout(20):
                while delivered != set(sent):
                    ev = await alice.events.get()
                    if isinstance(ev, ImdnEvent) and ev.status == "delivered":
                        delivered.add(ev.message_id)
        finally:
            await lp.send("quit")
            await lp.stop()
