"""RFC 5626 outbound end to end (issue 11 §5): a real ``simpleim agent`` over TCP is killed
with SIGKILL - the next MESSAGE to it is deferred at once (202, not a 408 after Timer F) and
its binding is gone; an in-process account pings its flow, and re-registers over a new flow
when the server closes the old one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from client_helpers import DOMAIN, PASSWORDS, client_config, free_port
from simpleim.client.account import Account
from simpleim.server.app import ImServer
from simpleim.server.config import ServerConfig
from simpleim.store import open_store
from simpleim.transport.sip_addr import ListenSpec
from test_server_helpers import eventually

#: bound for one awaited step: generous for a loaded 2-core CI box
LONG = 60.0


@contextlib.asynccontextmanager
async def _server(tmp: Path, **cfg: object) -> AsyncIterator[tuple[ImServer, int]]:
    port = free_port()
    store = await open_store(f"sqlite:///{tmp / 'server.db'}")
    for name, pw in PASSWORDS.items():
        await store.add_user(name, DOMAIN, pw)
    config = ServerConfig(domain=DOMAIN, listen=(ListenSpec("udp", "127.0.0.1", port),
                                                 ListenSpec("tcp", "127.0.0.1", port)),
                          db_url=f"sqlite:///{tmp / 'server.db'}", log_level="warning",
                          **cfg)  # type: ignore[arg-type]
    server = ImServer(config, store)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server, port
    finally:
        await server.close()
        await store.close()


async def test_kill_9_agent_message_refused_at_once_and_binding_gone(tmp_path: Path) -> None:
    bob_aor = f"bob@{DOMAIN}"
    async with _server(tmp_path) as (server, port):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLEIM_")}
        env.update(HOME=str(tmp_path), SIMPLEIM_ACCOUNT=bob_aor,
                   SIMPLEIM_PASSWORD=PASSWORDS["bob"], PYTHONUNBUFFERED="1")
        agent = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simpleim", "agent", "--json", "--proxy",
            f"tcp:127.0.0.1:{port}", env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        try:
            assert agent.stdout is not None
            async with asyncio.timeout(LONG):
                while True:
                    line = await agent.stdout.readline()
                    assert line, "the agent exited before registering"
                    if json.loads(line)["event"] == "registered":
                        break
            [binding] = server.location.lookup(bob_aor)
            # RFC 5626 §6: the agent registered as an outbound flow over TCP
            assert binding.instance and binding.reg_id == 1
            assert server.location.flows() and ";ob" in binding.contact
            agent.kill()                                     # kill -9
            await agent.wait()
        finally:
            if agent.returncode is None:
                agent.kill()
                await agent.wait()
        alice = Account(client_config("alice", port, tmp_path))
        await alice.start()
        try:
            # the dead agent's connection is closed by its kernel: the server drops the
            # binding; a MESSAGE is now stored for bob and answered 202 at once (a branch to
            # the dead device would give 408 after Timer F)
            result = await asyncio.wait_for(alice.pager.send("bob", "are you there?"), LONG)
            assert result.status == 202
            assert await server.store.deferred.count(bob_aor) == 1  # type: ignore[union-attr]
            assert server.location.lookup(bob_aor) == []
            assert await server.store.get_bindings(bob_aor, time.time()) == []  # type: ignore[union-attr]
        finally:
            await alice.close()


async def test_account_pings_its_flow(tmp_path: Path) -> None:
    async with _server(tmp_path, flow_timer=1) as (_server_, port):
        alice = Account(client_config("alice", port, tmp_path, "tcp"))
        await alice.start()
        try:
            assert alice.outbound is not None
            # Flow-Timer 1: a ping every 0.8-1 s, each answered with a pong (RFC 5626 §4.4.1)
            await eventually(lambda: alice.outbound is not None and alice.outbound.pongs >= 2,
                             timeout=LONG)
            assert alice.outbound.failures == 0
        finally:
            await alice.close()


async def test_account_reregisters_over_a_new_flow(tmp_path: Path) -> None:
    async with _server(tmp_path) as (server, port):
        bob = Account(client_config("bob", port, tmp_path, "tcp"))
        await bob.start()
        try:
            [before] = server.location.lookup(f"bob@{DOMAIN}")
            [flow] = server.location.flows()
            server.endpoint.net.close_connection(flow)       # the flow dies (NAT, restart)

            def new_flow() -> bool:
                now = server.location.lookup(f"bob@{DOMAIN}")
                return len(now) == 1 and now[0].source != before.source

            # RFC 5626 §4.5: bob forms a new flow at once; same instance/reg-id: replaced
            await eventually(new_flow, timeout=LONG)
            assert bob.outbound is not None and bob.outbound.failures == 1
            [after] = server.location.lookup(f"bob@{DOMAIN}")
            assert after.key == before.key and after.instance == before.instance
            alice = Account(client_config("alice", port, tmp_path))
            await alice.start()
            try:
                result = await asyncio.wait_for(alice.pager.send("bob", "still here?"), LONG)
                assert result.status == 200
            finally:
                await alice.close()
        finally:
            await bob.close()


async def test_udp_account_has_no_outbound(tmp_path: Path) -> None:
    async with _server(tmp_path) as (server, port):
        alice = Account(client_config("alice", port, tmp_path, "udp"))
        await alice.start()
        try:
            assert alice.outbound is None
            [binding] = server.location.lookup(f"alice@{DOMAIN}")
            assert binding.reg_id is None and not server.location.flows()
        finally:
            await alice.close()
