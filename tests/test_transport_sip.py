"""asyncio SIP transports and SipEndpoint: UDP, TCP, TLS, IPv6, keep-alives, timeouts."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest

from needs import require_ipv6_loopback
from simpleim.sip.auth import DigestClient, DigestServer, ha1
from simpleim.sip.message import SipRequest, SipResponse, parse_message
from simpleim.sip.uri import SipUri
from simpleim.timers import Timers
from simpleim.transport.sip import IncomingRequest, SipEndpoint, resolve_uri
from simpleim.transport.sip_addr import ListenSpec, TransportAddr, normalize_host
from tls_certs import self_signed_cert
from waiting import wait_until

FAST = Timers(t1=0.02, t2=0.1, t4=0.1, timer_d_unreliable=0.1)


def _request(method: str, target: TransportAddr, call_id: str = "c1") -> SipRequest:
    return SipRequest(method, f"sip:svc@{target.hostport}", [
        ("Max-Forwards", "70"),
        ("From", "<sip:a@example.test>;tag=1"),
        ("To", "<sip:svc@example.test>"),
        ("Call-ID", call_id),
        ("CSeq", f"1 {method}"),
    ])


def _ok(inc: IncomingRequest) -> None:
    inc.reply(200, headers=[("X-Source", str(inc.source))])


async def _pair(transport: str, host: str = "127.0.0.1", **kw: object
                ) -> tuple[SipEndpoint, SipEndpoint, TransportAddr]:
    server = SipEndpoint(_ok, **kw)  # type: ignore[arg-type]
    client = SipEndpoint(**kw)  # type: ignore[arg-type]
    addr = await server.listen(ListenSpec(transport, host, 0))
    await client.listen(ListenSpec(transport, host, 0))
    return server, client, addr


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_request_response_and_received_rport(transport: str) -> None:
    server, client, addr = await _pair(transport)
    try:
        resp = await asyncio.wait_for(client.request(_request("OPTIONS", addr), addr), 5)
        assert resp.status == 200
        via = resp.top_via
        # RFC 3581 §4: rport filled in and received added by the server transport
        assert via.rport is not None and via.received == "127.0.0.1"
        assert resp.headers.get("X-Source", "").startswith(transport)
    finally:
        await client.close()
        await server.close()


async def test_tcp_response_reuses_the_connection() -> None:
    server, client, addr = await _pair("tcp")
    try:
        req = _request("OPTIONS", addr)
        resp = await asyncio.wait_for(client.request(req, addr), 5)
        source = resp.headers.get("X-Source") or ""
        # the request came from an ephemeral port, not the client's listener: the response
        # still arrived (RFC 3261 §18.2.2: sent back on the same connection)
        assert source != str(client.listeners[0])
    finally:
        await client.close()
        await server.close()


async def test_tls_listener(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    server = SipEndpoint(_ok, ssl_server=server_ctx)
    client = SipEndpoint(ssl_client=client_ctx)
    addr = await server.listen(ListenSpec("tls", "127.0.0.1", 0))
    await client.listen(ListenSpec("tcp", "127.0.0.1", 0))
    try:
        assert addr.transport == "tls"
        req = SipRequest("OPTIONS", f"sips:svc@{addr.hostport}", _request("OPTIONS", addr).headers)
        resp = await asyncio.wait_for(client.request(req), 5)
        assert resp.status == 200
        assert resp.top_via.transport == "TLS"
    finally:
        await client.close()
        await server.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_ipv6(transport: str) -> None:
    require_ipv6_loopback()
    server, client, addr = await _pair(transport, "::1")
    try:
        assert addr.host == "::1"
        resp = await asyncio.wait_for(client.request(_request("OPTIONS", addr), addr), 5)
        assert resp.status == 200
        assert resp.top_via.host == "[::1]"
    finally:
        await client.close()
        await server.close()


async def test_udp_timeout_gives_408() -> None:
    client = SipEndpoint(timers=FAST)
    await client.listen(ListenSpec("udp", "127.0.0.1", 0))
    # a port nobody listens on
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        dead = TransportAddr("udp", "127.0.0.1", s.getsockname()[1])
    try:
        resp = await asyncio.wait_for(client.request(_request("MESSAGE", dead), dead), 5)
        assert resp.status == 408  # RFC 3261 §8.1.3.1: timeout -> 408
    finally:
        await client.close()


async def test_tcp_connect_failure_gives_503() -> None:
    client = SipEndpoint(timers=FAST)
    await client.listen(ListenSpec("tcp", "127.0.0.1", 0))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = TransportAddr("tcp", "127.0.0.1", s.getsockname()[1])
    try:
        resp = await asyncio.wait_for(client.request(_request("MESSAGE", dead), dead), 5)
        assert resp.status == 503  # RFC 3261 §8.1.3.1: transport error -> 503
    finally:
        await client.close()


async def test_digest_retry_in_request() -> None:
    digest = DigestServer("example.test", b"0123456789abcdef0123456789abcdef")

    def challenge(inc: IncomingRequest) -> None:
        result = digest.verify(inc.request.headers.get_all("Authorization"), inc.method,
                               lambda u, r, alg: ha1(u, r, "pw", alg) if u == "a" else None, 0.0)
        if result.ok:
            inc.reply(200)
        else:
            inc.reply(result.status, headers=[(result.header, c) for c in result.challenges])

    server = SipEndpoint(challenge)
    client = SipEndpoint()
    addr = await server.listen(ListenSpec("udp", "127.0.0.1", 0))
    await client.listen(ListenSpec("udp", "127.0.0.1", 0))
    try:
        req = _request("REGISTER", addr)
        resp = await asyncio.wait_for(client.request(req, addr, auth=DigestClient("a", "pw")), 5)
        assert resp.status == 200
        assert req.cseq.seq == 2  # the retry used CSeq + 1
        bad = await asyncio.wait_for(
            client.request(_request("REGISTER", addr, "c2"), addr, auth=DigestClient("a", "x")),
            5)
        assert bad.status == 401
    finally:
        await client.close()
        await server.close()


async def test_crlf_keepalive_pong_and_bad_framing_closes_only_that_connection() -> None:
    server = SipEndpoint(_ok)
    addr = await server.listen(ListenSpec("tcp", "127.0.0.1", 0))
    try:
        reader, writer = await asyncio.open_connection(addr.host, addr.port)
        writer.write(b"\r\n\r\n")  # RFC 5626 §3.5.1 ping
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"\r\n"
        good_reader, good_writer = await asyncio.open_connection(addr.host, addr.port)
        # a negative Content-Length cannot be framed (RFC 4475 §3.1.2.3): close
        writer.write(b"OPTIONS sip:x@example.test SIP/2.0\r\nContent-Length: -5\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        msg = bytes(_request("OPTIONS", addr))
        msg = msg.replace(b"Max-Forwards", b"Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKk1\r\n"
                          b"Max-Forwards", 1)
        good_writer.write(msg)
        data = await asyncio.wait_for(good_reader.readuntil(b"\r\n\r\n"), 5)
        assert data.startswith(b"SIP/2.0 200")
        good_writer.close()
        writer.close()
    finally:
        await server.close()


async def test_malformed_request_is_answered_with_warning() -> None:
    server = SipEndpoint(_ok, validate=lambda req: None)
    addr = await server.listen(ListenSpec("udp", "127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[bytes] = asyncio.Queue()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, _addr: object) -> None:
            got.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0))
    try:
        bad = (b"OPTIONS sip:x@example.test SIP/7.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch="
               b"z9hG4bKv\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@b>\r\nCall-ID: v\r\n"
               b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        transport.sendto(bad, (addr.host, addr.port))
        resp = parse_message(await asyncio.wait_for(got.get(), 5))
        assert isinstance(resp, SipResponse) and resp.status == 505
        assert (resp.headers.get("Warning") or "").startswith("399 ")
        transport.sendto(b"\x00\xffgarbage", (addr.host, addr.port))  # dropped, no crash
        good = bad.replace(b"SIP/7.0", b"SIP/2.0").replace(b"z9hG4bKv", b"z9hG4bKv;rport")
        transport.sendto(good, (addr.host, addr.port))
        resp = parse_message(await asyncio.wait_for(got.get(), 5))
        assert isinstance(resp, SipResponse) and resp.status == 200
    finally:
        transport.close()
        await server.close()


def test_resolve_uri_and_hosts() -> None:
    assert resolve_uri(SipUri.parse("sip:bob@127.0.0.1:5080;transport=TCP")) == \
        TransportAddr("tcp", "127.0.0.1", 5080)
    assert resolve_uri(SipUri.parse("sips:bob@[::1]")) == TransportAddr("tls", "::1", 5061)
    assert resolve_uri(SipUri.parse("sip:localhost")) == TransportAddr("udp", "127.0.0.1", 5060)
    assert resolve_uri(SipUri.parse("sip:x@example.test"), {"example.test": "127.0.0.2"}) \
        == TransportAddr("udp", "127.0.0.2", 5060)
    assert normalize_host("[0:0:0:0:0:0:0:1]") == "::1"


async def test_client_keepalive_ping() -> None:
    server, client, addr = await _pair("tcp")
    try:
        assert not client.send_keepalive(addr)  # no connection yet
        await asyncio.wait_for(client.request(_request("OPTIONS", addr), addr), 5)
        conn = client.net._conns[addr]
        assert client.send_keepalive(addr)  # the server answers the ping (no error)
        # A request after the ping on the same stream: answered, on the same connection - the
        # ping (which the server read first) did not break the framing or the connection.
        resp = await asyncio.wait_for(client.request(_request("OPTIONS", addr), addr), 5)
        assert resp.status == 200
        assert client.net.has_connection(addr) and client.net._conns[addr] is conn
    finally:
        await client.close()
        await server.close()


async def test_idle_connections_are_closed() -> None:
    server, client, addr = await _pair("tcp")
    server.net.idle_timeout = 60.0
    try:
        await asyncio.wait_for(client.request(_request("OPTIONS", addr), addr), 5)
        assert server.net._conns
        server.net._reap_idle()  # nothing is idle yet
        assert server.net._conns and all(not c.closed for c in server.net._conns.values())
        # the connection's clock: its last activity 61 s ago (no waiting for real seconds)
        for conn in server.net._conns.values():
            conn.last_activity -= 61.0
        server.net._reap_idle()
        await wait_until(lambda: not server.net._conns, 5, what="the idle connection closed")
    finally:
        await client.close()
        await server.close()


async def test_a_client_account_takes_a_message_above_64_kib_on_tcp() -> None:
    """A group chat's full conference state outgrows a UDP-sized limit (~360 bytes per
    participant: a 500-member NOTIFY is ~180 KB).  The client's endpoint takes up to
    STREAM_MESSAGE_LIMIT on a stream flow; a default endpoint (64 KiB) closes the flow."""
    from simpleim.client.account import STREAM_MESSAGE_LIMIT, Account
    from simpleim.client.config import ClientConfig
    from simpleim.sip.message import SipLimits

    account = Account(ClientConfig(aor="alice@example.test", password="x",
                                   proxy="tcp:127.0.0.1:5060"))
    assert account.endpoint.limits.max_message_size == STREAM_MESSAGE_LIMIT

    limits = SipLimits(max_message_size=STREAM_MESSAGE_LIMIT, max_body=STREAM_MESSAGE_LIMIT)
    got: list[SipRequest] = []

    def take(inc: IncomingRequest) -> None:
        got.append(inc.request)
        inc.reply(200)

    big = SipEndpoint(take, limits=limits)
    small = SipEndpoint(take)
    sender = SipEndpoint(timers=FAST)
    try:
        big_addr = await big.listen(ListenSpec("tcp", "127.0.0.1", 0))
        small_addr = await small.listen(ListenSpec("tcp", "127.0.0.1", 0))
        await sender.listen(ListenSpec("tcp", "127.0.0.1", 0))
        body = b"<user/>" * 26_000                                 # 182 KB
        req = _request("NOTIFY", big_addr)
        req.body = body
        req.headers.add("Content-Type", "application/conference-info+xml")
        resp = await asyncio.wait_for(sender.request(req, big_addr), 10)
        assert resp.status == 200 and got[0].body == body
        req = _request("NOTIFY", small_addr, call_id="c2")
        req.body = body
        req.headers.add("Content-Type", "application/conference-info+xml")
        resp = await asyncio.wait_for(sender.request(req, small_addr), 10)
        assert resp.status >= 400 and len(got) == 1              # the flow was closed
    finally:
        for ep in (sender, big, small):
            await ep.close()
