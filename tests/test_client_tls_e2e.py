"""Client signalling over TLS (RFC 3261 §26.2) through a ``simpleim server`` TLS listener:
``proxy="tls:HOST:PORT"`` / ``sips:``, the proxy's certificate verified against ``tls_ca``
(or not, with ``tls_insecure``); the server reaches the client over the client's TLS
connection (the Contact names its local end)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from client_helpers import DOMAIN, FAST, PASSWORDS, free_port, wait_event
from simpleim.client.account import Account, RegistrationError
from simpleim.client.config import ClientConfig, load_config
from simpleim.client.events import MessageEvent, SessionEvent
from simpleim.server.app import ImServer
from simpleim.server.config import ServerConfig
from simpleim.server.location import aor_key
from simpleim.server.serve import make_server_ssl
from simpleim.store import open_store
from simpleim.transport.sip_addr import ListenSpec
from tls_certs import self_signed_cert


@asynccontextmanager
async def tls_server(tmp: Path) -> AsyncIterator[tuple[ImServer, int, Path]]:
    cert, key = self_signed_cert(tmp)
    port = free_port()
    store = await open_store(f"sqlite:///{tmp / 'server.db'}")
    for name, pw in PASSWORDS.items():
        await store.add_user(name, DOMAIN, pw)
    config = ServerConfig(domain=DOMAIN, listen=(ListenSpec("tls", "127.0.0.1", port),),
                          db_url=f"sqlite:///{tmp / 'server.db'}", log_level="warning",
                          tls_cert=str(cert), tls_key=str(key))
    server = ImServer(config, store, ssl_server=make_server_ssl(config))  # type: ignore[arg-type]
    await server.start()
    try:
        yield server, port, cert
    finally:
        await server.close()
        await store.close()


def _config(user: str, proxy: str, tmp: Path, **kw: object) -> ClientConfig:
    dl = tmp / f"dl-{user}"
    dl.mkdir(exist_ok=True)
    return ClientConfig(aor=f"{user}@{DOMAIN}", password=PASSWORDS[user], proxy=proxy,
                        download_dir=str(dl), timers=FAST, expires=120, **kw)  # type: ignore[arg-type]


async def test_pager_and_session_over_tls(tmp_path: Path) -> None:
    async with tls_server(tmp_path) as (server, port, cert):
        alice = Account(_config("alice", f"tls:127.0.0.1:{port}", tmp_path, tls_ca=str(cert)))
        bob = Account(_config("bob", f"sips:127.0.0.1:{port}", tmp_path, tls_ca=str(cert)))
        async with alice, bob:
            assert ";transport=tls" in bob.contact
            binding = server.location.lookup(aor_key("bob", DOMAIN))[0]
            assert binding.source is not None and binding.source[0] == "tls"
            await alice.pager.send("bob", "over tls")
            msg = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
            assert isinstance(msg, MessageEvent) and msg.text == "over tls"
            chat = await alice.chats.start("bob")
            await wait_event(bob, lambda e: isinstance(e, SessionEvent)
                             and e.state == "established")
            await chat.send("session over tls")
            msg = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
            assert isinstance(msg, MessageEvent) and msg.text == "session over tls"
            await chat.refresh()                   # in-dialog re-INVITE over TLS
            await chat.end()
            await wait_event(bob, lambda e: isinstance(e, SessionEvent) and e.state == "ended")


async def test_msrp_over_tls_when_signalling_is_tls(tmp_path: Path) -> None:
    """RFC 4975 §6 / §8.1: with TLS signalling and a certificate, the MSRP streams are msrps
    paths on TCP/TLS/MSRP m-lines and the connection is TLS - chat and a file transfer."""
    from simpleim.client.events import FileEvent

    async with tls_server(tmp_path) as (_server, port, cert):
        tls = {"tls_ca": str(cert), "tls_cert": str(cert),
               "tls_key": str(tmp_path / "key.pem")}
        alice = Account(_config("alice", f"tls:127.0.0.1:{port}", tmp_path, **tls))
        bob = Account(_config("bob", f"tls:127.0.0.1:{port}", tmp_path, **tls))
        async with alice, bob:
            chat = await alice.chats.start("bob")
            await wait_event(bob, lambda e: isinstance(e, SessionEvent)
                             and e.state == "established")
            assert chat.offer is not None and chat.answer is not None
            for sdp in (chat.offer, chat.answer):
                m = sdp.media[0]
                assert m.proto == "TCP/TLS/MSRP" and (m.get("path") or "").startswith("msrps://")
            runner = chat.stream.runner
            assert runner is not None and runner.transport is not None
            assert runner.transport.get_extra_info("ssl_object") is not None
            await chat.send("msrps works")
            msg = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
            assert isinstance(msg, MessageEvent) and msg.text == "msrps works"
            await chat.end()
            doc = tmp_path / "doc.bin"
            doc.write_bytes(os.urandom(200_000))
            results = await alice.files.send("bob", [doc])
            assert [r.status for r in results] == ["sent"]
            got = await wait_event(bob, lambda e: isinstance(e, FileEvent)
                                   and e.state == "received", timeout=30)
            assert isinstance(got, FileEvent) and got.hash_ok


async def test_tls_certificate_is_verified(tmp_path: Path) -> None:
    """RFC 3261 §26.2.1: an unknown certificate fails the registration; ``tls_insecure``
    (``--insecure``) accepts it."""
    async with tls_server(tmp_path) as (_server, port, _cert):
        acc = Account(_config("alice", f"tls:127.0.0.1:{port}", tmp_path))
        with pytest.raises((OSError, RegistrationError)):
            async with asyncio.timeout(30):
                await acc.start()
        await acc.close()
        acc = Account(_config("alice", f"tls:127.0.0.1:{port}", tmp_path, tls_insecure=True))
        async with acc:
            assert acc.registered.is_set()


def test_tls_proxy_config() -> None:
    cfg = load_config(env={}, overrides={"aor": "a@example.test", "proxy": "sips:10.0.0.1"})
    assert cfg.proxy_addr.transport == "tls" and cfg.proxy_addr.port == 5061
    assert cfg.listen_addr.transport == "tcp"
    cfg = load_config(env={"SIMPLEIM_TLS_INSECURE": "yes"},
                      overrides={"aor": "a@example.test", "proxy": "tls:10.0.0.1:5071"})
    assert cfg.proxy_addr.port == 5071 and cfg.tls_insecure


async def test_cli_send_over_tls(tmp_path: Path) -> None:
    async with tls_server(tmp_path) as (_server, port, cert):
        bob = Account(_config("bob", f"tls:127.0.0.1:{port}", tmp_path, tls_ca=str(cert)))
        async with bob:
            env = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLEIM_")}
            env.update(HOME=str(tmp_path), SIMPLEIM_ACCOUNT=f"alice@{DOMAIN}",
                       SIMPLEIM_PASSWORD=PASSWORDS["alice"])
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "simpleim", "send", "bob", "hi via cli",
                "--proxy", f"tls:127.0.0.1:{port}", "--tls-ca", str(cert), env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            async with asyncio.timeout(90):
                out, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()
            assert out.decode().startswith("sent pager ")
            msg = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
            assert isinstance(msg, MessageEvent) and msg.text == "hi via cli"
