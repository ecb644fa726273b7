"""A real plain SIP client gets its deferred messages on registration (issue 9 §7).

baresip 1.0 (no ``+g.oma.sip-im``, text/plain only) is offline; a simpleim client sends it two
IMs through ``simpleim server`` and gets 202 Accepted for each (stored, OMA IM §12.2.2.3);
then baresip starts and registers, and the server re-sends both as MESSAGE, in order
(msilo-style).  baresip refuses message/cpim with 415, so the server re-sends the CPIM
content (text/plain) instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "client"))

from client_interop import (  # noqa: E402
    BARESIP_CTRL,
    BARESIP_PORT,
    DOMAIN,
    Proc,
    account,
    account_config,
    baresip_config_dir,
    ensure_free,
    require,
    simpleim_server,
)

from waiting import wait_until  # noqa: E402

pytestmark = pytest.mark.interop


async def test_baresip_offline_receives_deferred_messages_on_registration(
        tmp_path: Path) -> None:
    binary = require("baresip", "baresip")
    ensure_free(("udp", BARESIP_PORT), ("tcp", BARESIP_PORT), ("tcp", BARESIP_CTRL))
    texts = ("first while you were away", "second while you were away")
    async with (
        simpleim_server(tmp_path) as (server, port),
        account(account_config("alice", f"udp:127.0.0.1:{port}", tmp_path)) as alice,
    ):
        for text in texts:
            result = await alice.pager.send("dave", text)
            assert result.status == 202  # deferred: dave is not registered
        assert server.roles is not None and server.roles.deferred.has_pending(f"dave@{DOMAIN}")
        bs = await Proc.start("baresip", [binary, "-f", str(baresip_config_dir(tmp_path, port))],
                              env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
        try:
            await bs.wait_for("200 OK", timeout=20)
            for text in texts:
                await bs.wait_for(text, timeout=20)
            out = bs.text()
            assert out.index(texts[0]) < out.index(texts[1])  # in order
            # each is deleted after baresip's 200 (which may follow the print): wait for it
            await wait_until(lambda: not server.roles.deferred.has_pending(f"dave@{DOMAIN}"),
                             20, what="the deferred store emptied")
        finally:
            await bs.stop()
