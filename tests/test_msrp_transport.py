"""asyncio MSRP endpoints on loopback: big files, TLS, connection sharing, tshark wire check."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
import time
from pathlib import Path

import pytest

from needs import require_ipv6_loopback
from simpleim.msrp import MemorySink, MessageHead, MsrpParser, MsrpRequest, MsrpUri, plan_connection
from simpleim.msrp.fsm import Binding
from simpleim.transport.msrp import EndpointSession, FileSink, MsrpEndpoint, MsrpTransferError
from tls_certs import self_signed_cert
from waiting import wait_until

SIZE = 50 * 1024 * 1024


def sha1_file(path: Path) -> str:
    h = hashlib.sha1()  # noqa: S324 - integrity check
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("msrp") / "big.bin"
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(SIZE >> 20):
            f.write(i.to_bytes(4, "big") + block[4:])
    return path, sha1_file(path)


async def pair(chunk: int, **kw: object) -> tuple[MsrpEndpoint, MsrpEndpoint, EndpointSession,
                                                   EndpointSession]:
    a, b = MsrpEndpoint("127.0.0.1", 0, **kw), MsrpEndpoint("127.0.0.1", 0, **kw)  # type: ignore[arg-type]
    await a.start()
    await b.start()
    sb = b.new_session()
    sa = a.new_session(sb.local_path, chunk_size=chunk)
    sb.set_remote_path(sa.local_path)
    # SDP: Alice offers actpass, Bob answers passive -> Alice connects (RFC 6135)
    plan = plan_connection(we_are_offerer=True, offer_setup="actpass", answer_setup="passive",
                           remote_path=sb.local_path)
    assert plan.connect and plan.port == b.port
    await asyncio.gather(a.connect(sa, plan), sb.wait_bound())
    return a, b, sa, sb


@pytest.mark.parametrize("chunk", [
    pytest.param(2048, marks=pytest.mark.slow), 10 * 1024, 64 * 1024])
async def test_50mb_file_same_sha1(big_file: tuple[Path, str], tmp_path: Path, chunk: int) -> None:
    src, digest = big_file
    a, b, sa, sb = await pair(chunk)
    sb.receive_into(tmp_path)
    try:
        t0 = time.perf_counter()
        sent = await asyncio.wait_for(sa.send_file(src, success_report=True), 120)
        msg = await sb.receive(timeout=120)
        await asyncio.wait_for(sa.wait_delivered(sent), 30)   # success REPORT (§7.1.3)
        dt = time.perf_counter() - t0
        out = tmp_path / msg.message_id
        assert msg.complete and out.stat().st_size == SIZE
        assert sha1_file(out) == digest
        print(f"chunk {chunk}: {SIZE / dt / 1e6:.1f} MB/s")
    finally:
        await a.close()
        await b.close()


async def test_tls_msrps(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    a = MsrpEndpoint("127.0.0.1", 0, ssl_server=server, ssl_client=client)
    b = MsrpEndpoint("127.0.0.1", 0, ssl_server=server, ssl_client=client)
    await a.start()
    await b.start()
    try:
        sb = b.new_session()
        sa = a.new_session(sb.local_path, chunk_size=16384)
        sb.set_remote_path(sa.local_path)
        assert sb.local_uri.scheme == "msrps" and sb.local_uri.secure
        plan = plan_connection(we_are_offerer=True, offer_setup="actpass", answer_setup="passive",
                               remote_path=sb.local_path, remote_proto="TCP/TLS/MSRP")
        assert plan.tls
        await a.connect(sa, plan)
        payload = os.urandom(300_000)
        await sa.send(payload, "application/octet-stream")
        got = await sb.receive(timeout=10)
        assert got.sink.data == payload  # type: ignore[attr-defined]
    finally:
        await a.close()
        await b.close()


async def test_connection_shared_by_sessions_and_teardown() -> None:
    a, b = MsrpEndpoint(), MsrpEndpoint()
    await a.start()
    await b.start()
    try:
        b1, b2 = b.new_session(), b.new_session()
        a1 = a.new_session(b1.local_path)
        a2 = a.new_session(b2.local_path)
        b1.set_remote_path(a1.local_path)
        b2.set_remote_path(a2.local_path)
        await a.connect(a1)
        await a.connect(a2)
        assert a1.runner is a2.runner and len(a._runners) == 1        # RFC 4975 §5.4 reuse
        await asyncio.gather(a1.send(b"one", "text/plain"), a2.send(b"two", "text/plain"))
        assert (await b1.receive(timeout=5)).sink.data == b"one"  # type: ignore[attr-defined]
        assert (await b2.receive(timeout=5)).sink.data == b"two"  # type: ignore[attr-defined]
        runner = a1.runner
        assert runner is not None
        a1.close()                                                  # other session still uses it
        await a2.send(b"still here", "text/plain")
        assert (await b2.receive(timeout=5)).sink.data == b"still here"  # type: ignore[attr-defined]
        a2.close()                                                  # last one closes it
        await asyncio.wait_for(runner.closed.wait(), 5)
        # the peer saw the connection go (RFC 4975 §5.4: its sessions on it are over)
        await wait_until(lambda: b2.core.binding is Binding.CLOSED, 5, what="b2 unbound")
        assert b1.core.binding is Binding.CLOSED and b2.core.binding is Binding.CLOSED
    finally:
        await a.close()
        await b.close()


async def test_bounded_receive_queue_backpressure() -> None:
    a, b = MsrpEndpoint(), MsrpEndpoint(queue_size=1)
    await a.start()
    await b.start()
    try:
        sb = b.new_session()
        sa = a.new_session(sb.local_path)
        sb.set_remote_path(sa.local_path)
        await a.connect(sa)
        for i in range(5):
            await sa.send(f"m{i}".encode(), "text/plain", wait=False)
        # bounded: the queue holds one message and the connection stops reading (the rest
        # waits in the kernel / the blocked list instead of piling up in memory)
        await wait_until(lambda: any(r._read_paused for r in b._runners), 5,
                         what="reading paused by the full receive queue")
        assert sb._incoming.qsize() == 1
        got = [(await sb.receive(timeout=5)).sink.data for _ in range(5)]  # type: ignore[attr-defined]
        assert got == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    finally:
        await a.close()
        await b.close()


async def test_unknown_session_is_refused() -> None:
    a, b = MsrpEndpoint(), MsrpEndpoint()
    await a.start()
    await b.start()
    try:
        ghost = MsrpUri("msrp", "127.0.0.1", b.port, "nosuchsession")
        sa = a.new_session([ghost])
        with pytest.raises(MsrpTransferError) as ei:
            await a.connect(sa, timeout=5)
        assert ei.value.status == 481
    finally:
        await a.close()
        await b.close()


async def test_ipv6_loopback_and_custom_sink() -> None:
    require_ipv6_loopback()
    a, b = MsrpEndpoint("::1", 0), MsrpEndpoint("::1", 0)
    await a.start()
    await b.start()
    try:
        sb = b.new_session()
        assert str(sb.local_uri).startswith(f"msrp://[::1]:{b.port}/")
        sinks: list[MemorySink] = []

        def factory(_req: object) -> MemorySink:
            sinks.append(MemorySink())
            return sinks[-1]

        sb.receive_with(factory)  # type: ignore[arg-type]
        sa = a.new_session(sb.local_path, chunk_size=1000)
        sb.set_remote_path(sa.local_path)
        await a.connect(sa)
        await sa.send(b"v6" * 3000, "text/plain")
        msg = await sb.receive(timeout=5)
        assert msg.sink is sinks[0] and sinks[0].data == b"v6" * 3000
    finally:
        await a.close()
        await b.close()


async def test_relay_auth_is_refreshed_before_expiry() -> None:
    """A tiny AUTH-only relay on loopback: 401 challenge, then 200 with Expires: 2; the
    endpoint re-AUTHs at 80 % of Expires (RFC 4976 §5.1)."""
    from simpleim.sip.auth import parse_credentials

    auths: list[MsrpRequest] = []

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = MsrpParser()
        while data := await reader.read(65536):
            for ev in parser.feed(data):
                if not isinstance(ev, MessageHead) or not isinstance(ev.message, MsrpRequest):
                    continue
                req = ev.message
                auths.append(req)
                paths = f"To-Path: {req.from_path[0]}\r\nFrom-Path: {req.to_path[0]}\r\n"
                if req.headers.get("Authorization") is None:
                    extra = 'WWW-Authenticate: Digest realm="r", nonce="n", qop="auth"\r\n'
                    status = "401 Unauthorized"
                else:
                    cred = parse_credentials(req.headers.get("Authorization") or "")
                    assert cred.username == "bob" and cred.response
                    extra = f"Use-Path: msrp://127.0.0.1:{port}/relayed;tcp\r\nExpires: 2\r\n"
                    status = "200 OK"
                writer.write(f"MSRP {req.tid} {status}\r\n{paths}{extra}-------{req.tid}$\r\n"
                             .encode())
        writer.close()

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    b = MsrpEndpoint()
    await b.start()
    try:
        sb = b.new_session()
        grant = await b.authenticate(sb, MsrpUri("msrp", "127.0.0.1", port, None), "bob", "pw")
        assert grant.expires == 2 and sb.local_path[0].session_id == "relayed"
        # AUTH, AUTH+credentials, then the refresh pair at 80 % of the 2 s
        await wait_until(lambda: len(auths) >= 4, 10, what="the AUTH refresh")
    finally:
        await b.close()
        server.close()
        await server.wait_closed()


async def test_send_file_offset_and_receive_file_resume(tmp_path: Path) -> None:
    """RFC 5547 §6 file-range resume over TCP: the receiver keeps its partial file (bytes
    1..N), the sender sends from Byte-Range N+1 (send_file(offset=N)), the file completes."""
    src = tmp_path / "src.bin"
    data = os.urandom(300_000)
    src.write_bytes(data)
    held = 123_457
    partial = tmp_path / "partial.bin"
    partial.write_bytes(data[:held])
    a, b, sa, sb = await pair(16 * 1024)
    try:
        sb.receive_file(partial, resume_from=held)
        msg = await sa.send_file(src, offset=held, wait=False)
        await sa.wait_sent(msg)
        assert msg.sent_bytes == len(data) - held
        rx = await sb.receive(timeout=10)
        assert rx.complete and rx.start == held and rx.received == len(data) - held
        assert partial.read_bytes() == data
        # a second message on the stream: the stream is reusable after a resumed one
        sb.receive_file(tmp_path / "again.bin")
        await sa.send_file(src, offset=0)
        await sb.receive(timeout=10)
        assert (tmp_path / "again.bin").read_bytes() == data
    finally:
        await a.close()
        await b.close()


async def test_closing_connection_is_not_reused() -> None:
    """RFC 4975 §5.4: connections are shared per (host, port, transport), but one whose last
    session just ended is closing: a new session to the same peer must get a new connection
    and bind at once (it used to hit the closing one and fail with 408)."""
    a, b = MsrpEndpoint(), MsrpEndpoint()
    await a.start()
    await b.start()
    try:
        b1, b2 = b.new_session(), b.new_session()
        a1, a2 = a.new_session(b1.local_path), a.new_session(b2.local_path)
        b1.set_remote_path(a1.local_path)
        b2.set_remote_path(a2.local_path)
        await a.connect(a1)
        first = a1.runner
        assert first is not None
        a1.close()                       # last session: the connection starts closing
        assert not first.usable
        await a.connect(a2, timeout=3)   # no wait for the old one to be gone
        assert a2.runner is not None and a2.runner is not first and a2.runner.usable
        await a2.send(b"after", "text/plain")
        assert (await b2.receive(timeout=5)).sink.data == b"after"  # type: ignore[attr-defined]
        await asyncio.wait_for(first.closed.wait(), 5)
    finally:
        await a.close()
        await b.close()


async def test_relay_auth_after_closing_connection_gets_a_new_connection() -> None:
    """RFC 4976 §5: AUTH on a connection to our relay; when the previous session's connection
    to the relay is closing, the next AUTH goes on a new connection (no 408)."""
    conns = 0

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal conns
        conns += 1
        parser = MsrpParser()
        while data := await reader.read(65536):
            for ev in parser.feed(data):
                if not isinstance(ev, MessageHead) or not isinstance(ev.message, MsrpRequest):
                    continue
                req = ev.message
                paths = f"To-Path: {req.from_path[0]}\r\nFrom-Path: {req.to_path[0]}\r\n"
                extra = f"Use-Path: msrp://127.0.0.1:{port}/r{conns};tcp\r\nExpires: 600\r\n"
                writer.write(f"MSRP {req.tid} 200 OK\r\n{paths}{extra}-------{req.tid}$\r\n"
                             .encode())
        writer.close()

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    relay_uri = MsrpUri("msrp", "127.0.0.1", port, None)
    b = MsrpEndpoint()
    await b.start()
    try:
        s1 = b.new_session()
        await b.authenticate(s1, relay_uri, "bob", "pw")
        s1.close()                                   # its connection to the relay closes
        s2 = b.new_session()
        async with asyncio.timeout(5):
            await b.authenticate(s2, relay_uri, "bob", "pw")
        assert s2.runner is not None and s2.runner.usable and conns == 2
    finally:
        await b.close()
        server.close()
        await server.wait_closed()


async def test_interruptible_chunks_over_tcp(tmp_path: Path) -> None:
    """RFC 4975 §7.1.1 over a real connection: big chunks written in slices (n-*/total), a
    short message sent meanwhile interrupts the chunk in progress; both arrive intact."""
    src = tmp_path / "src.bin"
    data = os.urandom(3_000_000)
    src.write_bytes(data)
    a, b = MsrpEndpoint(), MsrpEndpoint()
    await a.start()
    await b.start()
    try:
        sb = b.new_session()
        sa = a.new_session(sb.local_path, chunk_size=1 << 20, interrupt_slice=16 * 1024)
        sb.set_remote_path(sa.local_path)
        sb.receive_with(lambda req: FileSink(tmp_path / (req.message_id or "m"))
                        if (req.content_type or "").startswith("application") else MemorySink())
        await a.connect(sa)
        # The receiver stops reading and the socket buffers are small fixed sizes (no
        # autotuning to megabytes): the first 1 MiB chunk cannot be written completely before
        # the short message is queued, whatever the machine's speed.
        (rb,) = b._runners
        ra = sa.runner
        assert rb.transport is not None and ra is not None and ra.transport is not None
        rb.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        ra.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        rb.transport.pause_reading()
        big = await sa.send_file(src, wait=False)
        await wait_until(lambda: ra._write_paused, 5, what="the sender blocked by the receiver")
        assert 0 < big.sent_bytes < 1 << 20            # inside the first chunk
        small_msg = await sa.send(b"meanwhile", "text/plain", wait=False)
        rb.transport.resume_reading()
        await sa.wait_sent(big)
        await sa.wait_sent(small_msg)
        got = [await sb.receive(timeout=10), await sb.receive(timeout=10)]
        # the short message interrupted the big chunk in progress: it is complete first
        assert isinstance(got[0].sink, MemorySink) and got[0].sink.data == b"meanwhile"
        assert got[1].message_id == big.message_id
        assert (tmp_path / big.message_id).read_bytes() == data
    finally:
        await a.close()
        await b.close()
