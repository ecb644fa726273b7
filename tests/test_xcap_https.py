"""XCAP over HTTPS (issue 12 §1 "HTTP(S)"; RFC 4825 §14: XCAP runs over TLS): ``simpleim
server --xcap HOST:PORT --xcap-tls`` with the server's certificate; the library client and
curl verify it against the test CA (generated here, no key in the repository); plain HTTP to
that port gets no document; the configuration refuses --xcap-tls without a certificate."""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from needs import unavailable
from simpleim.cli.main import build_parser
from simpleim.cli.server import config_from_args
from simpleim.client.xcap import XcapClient
from simpleim.errors import ConfigError
from simpleim.server.config import ServerConfig
from simpleim.server.serve import serve
from simpleim.store import open_store
from simpleim.transport.sip_addr import ListenSpec
from tls_certs import self_signed_cert

DOMAIN = "example.com"
STEP = 30.0
RL = "urn:ietf:params:xml:ns:resource-lists"
LISTS = (f'<?xml version="1.0" encoding="UTF-8"?>\n<resource-lists xmlns="{RL}">'
         '<list name="friends"><entry uri="sip:bob@example.com"/></list>'
         '</resource-lists>\n').encode()


@pytest.fixture
async def https_root(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    cert, key = self_signed_cert(tmp_path)
    url = f"sqlite:///{tmp_path / 'xcap.db'}"
    async with await open_store(url) as store:
        await store.add_user("alice", DOMAIN, "alicepw")
    config = ServerConfig(domain=DOMAIN, listen=(ListenSpec("udp", "127.0.0.1", 0),),
                          db_url=url, xcap_listen="127.0.0.1:0", xcap_tls=True,
                          tls_cert=str(cert), tls_key=str(key), msrp_listen="off")
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(config, stop=stop, ready=ready.set_result))
    try:
        line = await asyncio.wait_for(asyncio.shield(ready), STEP)
        match = re.search(r" xcap=(https://127\.0\.0\.1:\d+/xcap-root)", line)
        assert match is not None, line
        yield match.group(1), cert
    finally:
        stop.set()
        assert await asyncio.wait_for(task, STEP) == 0


async def test_library_client_over_https_verifies_the_certificate(
        https_root: tuple[str, Path]) -> None:
    root, cert = https_root
    trusted = ssl.create_default_context(cafile=str(cert))
    async with XcapClient(root, "alice@example.com", "alicepw",
                          ssl_context=trusted) as client:
        put = await client.request("PUT", "resource-lists/~/index", LISTS,
                                   content_type="application/resource-lists+xml")
        assert put.status == 201
        got = await client.request("GET", "resource-lists/~/index")
        assert got.status == 200 and got.body == LISTS
    # the system CAs do not know the test certificate: the connection is refused
    async with XcapClient(root, "alice@example.com", "alicepw") as untrusting:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await untrusting.request("GET", "resource-lists/~/index")
    # plain HTTP to the HTTPS port: no XCAP answer
    plain = root.replace("https://", "http://")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(plain + "/resource-lists/users/sip:alice@example.com/index"):
                pass


async def test_curl_over_https(https_root: tuple[str, Path], tmp_path: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        unavailable("curl is not installed")
    root, cert = https_root
    doc = tmp_path / "lists.xml"
    doc.write_bytes(LISTS)
    url = f"{root}/resource-lists/users/sip:alice@example.com/index"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([curl, "-s", "--cacert", str(cert), "--digest", "-u",
                               "alice:alicepw", "-w", "%{http_code}", *args],
                              capture_output=True, text=True, timeout=STEP, check=False)

    loop = asyncio.get_running_loop()
    put = await loop.run_in_executor(None, lambda: run(
        "-X", "PUT", "-H", "Content-Type: application/resource-lists+xml",
        "--data-binary", f"@{doc}", "-o", "/dev/null", url))
    assert put.stdout == "201", put.stderr
    got = await loop.run_in_executor(None, lambda: run(url))
    assert got.stdout.endswith("200") and 'uri="sip:bob@example.com"' in got.stdout


def test_xcap_tls_needs_a_certificate() -> None:
    args = build_parser().parse_args(["server", "--xcap", "127.0.0.1:0", "--xcap-tls"])
    with pytest.raises(ConfigError, match="needs the server's certificate"):
        config_from_args(args)
