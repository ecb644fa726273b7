"""Odd and malformed input (RFC 4475) never kills the server and gets the right status."""

from __future__ import annotations

import asyncio
import itertools
import re
from pathlib import Path

from simpleim.server.app import ImServer
from simpleim.sip.message import SipResponse, parse_message
from simpleim.transport.sip_addr import TransportAddr
from test_server_helpers import DOMAIN, running_server
from waiting import wait_until

VECTORS = Path(__file__).resolve().parent / "vectors" / "sip" / "rfc4475"

# file -> expected status (the server as proxy/registrar for example.com)
EXPECTED = {
    "badinv01.dat": 400, "badvers.dat": 505, "bext01.dat": 420, "clerr.dat": 400,
    "insuf.dat": 400, "lwsruri.dat": 400, "mismatch01.dat": 400, "multi01.dat": 400,
    "novelsc.dat": 416, "quotbal.dat": 400, "scalar02.dat": 400, "unkscm.dat": 416,
    "unksm2.dat": 400, "zeromf.dat": 483, "ltgtruri.dat": 400, "mcl01.dat": 400,
    "regbadct.dat": 400, "cparam01.dat": 200, "cparam02.dat": 200, "regescrt.dat": 200,
    "dblreq.dat": 200,
}
DROPPED = ("bigcode.dat", "scalarlg.dat", "bcast.dat", "noreason.dat", "unreason.dat")


class _Capture:
    def __init__(self, server: ImServer) -> None:
        self.sent: list[tuple[bytes, TransportAddr]] = []
        server.endpoint.net.send = self._send  # type: ignore[method-assign]

    def _send(self, data: bytes, dest: TransportAddr, tag: str | None = None) -> None:
        self.sent.append((data, dest))

    def statuses(self, call_id: str | None) -> list[int]:
        out = []
        for data, _ in self.sent:
            msg = parse_message(data)
            if not isinstance(msg, SipResponse) or msg.status == 100:
                continue
            # INVITE responses of earlier vectors are retransmitted (Timer G): skip them
            if call_id is not None and msg.headers.get("Call-ID") != call_id:
                continue
            out.append(msg.status)
        return out


async def test_rfc4475_vectors_through_the_server() -> None:
    async with running_server(auth=False, domain="example.com") as srv:
        cap = _Capture(srv.server)
        local = srv.server.endpoint.listeners[0]
        src = TransportAddr("udp", "192.0.2.9", 5060)
        results: dict[str, list[int]] = {}
        for index, path in enumerate(sorted(VECTORS.glob("*.dat"))):
            cap.sent.clear()
            data = path.read_bytes()
            if path.name != "badbranch.dat":
                # several vectors share a branch: make each its own transaction
                data = data.replace(b"branch=z9hG4bK", f"branch=z9hG4bK{index}x".encode())
            srv.server.endpoint._on_message(data, src, local)
            found = _CALL_ID.search(path.read_bytes())
            call_id = found.group(1).decode() if found else None
            if path.name in EXPECTED:
                await wait_until(lambda c=call_id: cap.statuses(c), 5,  # type: ignore[misc]
                                 what=f"the response to {path.name}")
            # the handler tasks it started are over (nothing more to come for this vector)
            await wait_until(lambda: not srv.server._tasks, 5, what=f"{path.name} handled")
            results[path.name] = cap.statuses(call_id)
        for name, status in EXPECTED.items():
            assert results[name][:1] == [status], (name, results[name])
        for name in DROPPED:
            assert results[name] == [], (name, results[name])


async def _raw_exchange(addr: TransportAddr, data: bytes) -> SipResponse | None:
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[bytes] = asyncio.Queue()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, _addr: object) -> None:
            got.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0))
    try:
        transport.sendto(data, (addr.host, addr.port))
        try:
            raw = await asyncio.wait_for(got.get(), 1.0)
        except TimeoutError:
            return None
        msg = parse_message(raw)
        return msg if isinstance(msg, SipResponse) else None
    finally:
        transport.close()


_BRANCHES = itertools.count()
_CALL_ID = re.compile(rb"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def _msg(*, first: str = f"OPTIONS sip:{DOMAIN} SIP/2.0", drop: str = "", extra: str = "",
         body: bytes = b"") -> bytes:
    lines = [
        first,
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKmal{next(_BRANCHES)};rport",
        f"From: <sip:alice@{DOMAIN}>;tag=1",
        f"To: <sip:{DOMAIN}>",
        "Call-ID: mal-1",
        "CSeq: 1 OPTIONS",
        "Max-Forwards: 70",
    ]
    lines = [line for line in lines if not (drop and line.startswith(drop))]
    if extra:
        lines.append(extra)
    head = "\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def test_malformed_datagrams_over_real_udp() -> None:
    async with running_server(max_message_size=4000) as srv:
        addr = srv.addr("udp")
        cases = [
            (_msg(drop="Call-ID"), 400),
            (_msg(extra="CSeq: 2 OPTIONS"), 400),
            (_msg(first=f"OPTIONS sip:{DOMAIN} SIP/3.0"), 505),
            (_msg(body=b"x" * 5000), 513),
            (_msg(first="OPTIONS urn:x-nobody:thing SIP/2.0"), 416),
        ]
        for data, status in cases:
            resp = await _raw_exchange(addr, data)
            assert resp is not None and resp.status == status, (status, resp)
            if status != 416:
                assert (resp.headers.get("Warning") or "").startswith("399 ")
        # garbage is dropped silently
        assert await _raw_exchange(addr, b"\xff\xfe\x00garbage\r\n\r\n") is None
        assert await _raw_exchange(addr, b"SIP/2.0 200 OK\r\n\r\n") is None
        # and the server still answers
        resp = await _raw_exchange(addr, _msg())
        assert resp is not None and resp.status == 200


async def test_bad_tcp_framing_closes_only_that_connection() -> None:
    async with running_server() as srv:
        addr = srv.addr("tcp")
        bad_r, bad_w = await asyncio.open_connection(addr.host, addr.port)
        good_r, good_w = await asyncio.open_connection(addr.host, addr.port)
        bad_w.write(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: abc\r\n\r\n")
        assert await asyncio.wait_for(bad_r.read(), 5) == b""
        good_w.write(_msg().replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        data = await asyncio.wait_for(good_r.readuntil(b"\r\n\r\n"), 5)
        assert data.startswith(b"SIP/2.0 200")
        bad_w.close()
        good_w.close()
