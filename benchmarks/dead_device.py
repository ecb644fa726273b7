"""How long a dead device swallows messages: time from ``kill -9`` of a registered
``simpleim agent`` until a MESSAGE to its user gets a final failure, and until its binding
is gone (issue 11 §5, RFC 5626 outbound).

Three agents in the same run, each killed the same way:

* ``tcp-outbound``: the agent over TCP with RFC 5626 outbound (the default): the server
  drops the flow-bound binding when the kernel closes the dead process's connection;
* ``tcp-plain``: the same agent with outbound off (``SIMPLEIM_OUTBOUND=false``): a plain
  RFC 3261 binding, reached at its Contact address after the connection is gone;
* ``udp``: the agent over UDP: nothing tells the server, the branch waits for Timer F
  (64*T1 = 32 s; ``--quick`` runs the server with T1 = 0.1 s, so Timer F = 6.4 s).

The server runs in-process (SQLite in a temp dir), the sender is an in-process account;
the agents are real ``python -m simpleim agent`` processes.  Last line: one JSON object.

    .venv/bin/python benchmarks/dead_device.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, machine  # noqa: E402

from simpleim.client.account import Account  # noqa: E402
from simpleim.client.config import ClientConfig  # noqa: E402
from simpleim.client.session import SessionFailed  # noqa: E402
from simpleim.server.app import ImServer  # noqa: E402
from simpleim.server.config import ServerConfig  # noqa: E402
from simpleim.store import open_store  # noqa: E402
from simpleim.timers import Timers  # noqa: E402
from simpleim.transport.sip_addr import ListenSpec  # noqa: E402

DOMAIN = "example.test"
USERS = {"alice": "alice-pw", "bob": "bob-pw"}
STEP_TIMEOUT = 120.0


def _free_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise OSError("no free port for UDP and TCP")


async def _start_agent(port: int, transport: str, home: str,
                       extra_env: dict[str, str]) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLEIM_")}
    env.update(HOME=home, SIMPLEIM_ACCOUNT=f"bob@{DOMAIN}", SIMPLEIM_PASSWORD=USERS["bob"],
               PYTHONUNBUFFERED="1", **extra_env)
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simpleim", "agent", "--json", "--proxy",
        f"{transport}:127.0.0.1:{port}", env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    assert agent.stdout is not None
    async with asyncio.timeout(STEP_TIMEOUT):
        while True:
            line = await agent.stdout.readline()
            if not line:
                raise RuntimeError("the agent exited before registering")
            if json.loads(line)["event"] == "registered":
                return agent


async def _case(name: str, transport: str, extra_env: dict[str, str], timers: Timers,
                tmp: Path) -> dict[str, Any]:
    port = _free_port()
    db = f"sqlite:///{tmp / (name + '.db')}"
    store = await open_store(db)
    for user, pw in USERS.items():
        await store.add_user(user, DOMAIN, pw)
    config = ServerConfig(domain=DOMAIN, listen=(ListenSpec("udp", "127.0.0.1", port),
                                                 ListenSpec("tcp", "127.0.0.1", port)),
                          db_url=db, log_level="warning", timers=timers)
    server = ImServer(config, store)  # type: ignore[arg-type]
    await server.start()
    alice = Account(ClientConfig(aor=f"alice@{DOMAIN}", password=USERS["alice"],
                                 proxy=f"udp:127.0.0.1:{port}", listen="udp:127.0.0.1:0",
                                 download_dir=str(tmp), timers=timers))
    await alice.start()
    agent = await _start_agent(port, transport, str(tmp), extra_env)
    bob = f"bob@{DOMAIN}"
    loop = asyncio.get_running_loop()
    try:
        t0 = loop.time()
        agent.kill()                                          # kill -9
        await agent.wait()
        gone: float | None = None

        async def watch_binding() -> None:
            nonlocal gone
            while server.location.lookup(bob):
                await asyncio.sleep(0.005)
            gone = loop.time() - t0

        watcher = asyncio.create_task(watch_binding())
        refused: float | None = None
        status: int | None = None
        swallowed = 0
        async with asyncio.timeout(STEP_TIMEOUT):
            while refused is None:
                try:
                    await alice.pager.send("bob", "are you there?")
                    swallowed += 1                            # acknowledged by a dead device?
                    await asyncio.sleep(0.05)
                except SessionFailed as exc:
                    refused = loop.time() - t0
                    status = exc.status
        if gone is None:
            await asyncio.sleep(0.2)
        watcher.cancel()
        return {"case": name, "refused_s": round(refused, 3), "status": status,
                "binding_gone_s": None if gone is None else round(gone, 3),
                "swallowed": swallowed}
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
        await alice.close()
        await server.close()
        await store.close()


async def run(quick: bool) -> dict[str, Any]:
    timers = Timers(t1=0.1) if quick else Timers()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="simpleim-dead-") as tmp:
        for name, transport, env in (("tcp-outbound", "tcp", {}),
                                     ("tcp-plain", "tcp", {"SIMPLEIM_OUTBOUND": "false"}),
                                     ("udp", "udp", {})):
            row = await _case(name, transport, env, timers, Path(tmp))
            print(f"{name:13s} refused after {row['refused_s']:7.3f} s "
                  f"(status {row['status']}), binding gone: {row['binding_gone_s']}",
                  flush=True)
            rows.append(row)
    by = {r["case"]: r for r in rows}
    out = by["tcp-outbound"]["refused_s"]
    return {
        "benchmark": "dead_device",
        "quick": quick,
        "timer_f_s": timers.timer_f,
        "cases": rows,
        "tcp_outbound_refused_s": out,
        "goal_s": 5.0,
        "goal_met": out < 5.0 and by["tcp-outbound"]["binding_gone_s"] is not None,
        "udp_over_tcp_outbound": round(by["udp"]["refused_s"] / max(out, 1e-3), 1),
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="T1 = 0.1 s (Timer F 6.4 s)")
    args = parser.parse_args(argv)
    emit(asyncio.run(run(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
