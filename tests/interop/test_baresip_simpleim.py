"""baresip 1.0.0 registers directly to ``simpleim server`` (digest MD5).

The server offers only MD5 by default (``--auth-algorithms``).  baresip 1.0.0 gives up
with "Function not implemented" as soon as a 401 carries a SHA-256 challenge, whatever
the order, which is why SHA-256 is opt-in.  Ports: server 5660, baresip 5694 and its
ctrl_tcp 4794 (outside the port plan of the other interop tests).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "client"))

from client_interop import PEERS, Proc, ensure_free, require  # noqa: E402
from interop_harness import PeerProcess  # noqa: E402

pytestmark = pytest.mark.interop

SERVER_PORT = 5660
BARESIP_SIP = 5694
BARESIP_CTRL = 4794


def _config_dir(tmp: Path) -> Path:
    d = tmp / "dave"
    shutil.copytree(PEERS / "baresip" / "dave", d)
    cfg = (d / "config").read_text()
    cfg = cfg.replace("127.0.0.1:5094", f"127.0.0.1:{BARESIP_SIP}")
    (d / "config").write_text(cfg.replace("127.0.0.1:4444", f"127.0.0.1:{BARESIP_CTRL}"))
    acc = (d / "accounts").read_text().replace("127.0.0.1:5070", f"127.0.0.1:{SERVER_PORT}")
    (d / "accounts").write_text(acc)
    return d


async def _run_baresip(tmp: Path, needle: str) -> str:
    binary = require("baresip", "baresip")
    ensure_free(("udp", BARESIP_SIP), ("tcp", BARESIP_SIP), ("tcp", BARESIP_CTRL))
    bs = await Proc.start("baresip", [binary, "-f", str(_config_dir(tmp))],
                          env={"HOME": str(tmp), "PATH": "/usr/bin:/bin"})
    try:
        return await bs.wait_for(needle, timeout=20)
    finally:
        await bs.stop()


async def test_baresip_registers_with_md5_default(
    tmp_path: Path, simpleim_server: Callable[..., PeerProcess]
) -> None:
    server = simpleim_server(port=SERVER_PORT)
    line = await _run_baresip(tmp_path, "dave@example.test")
    assert "200 OK" in line, line
    log = server.log_text()
    assert "REGISTER from=sip:dave@example.test" in log and "status=200" in log


async def test_baresip_cannot_answer_sha256_challenges(
    tmp_path: Path, simpleim_server: Callable[..., PeerProcess]
) -> None:
    # Documents the peer limitation behind the MD5-only default (docs/server.md).
    simpleim_server(port=SERVER_PORT, extra=["--auth-algorithms", "md5,sha-256"])
    line = await _run_baresip(tmp_path, "Register:")
    assert "Function not implemented" in line, line
