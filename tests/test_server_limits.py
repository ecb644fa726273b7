"""Issue 7, server limits: failed-auth lockouts (item 6), overload shedding (item 7), contact
and branch caps (item 8), no user enumeration for outsiders (item 11).  Each test reproduces
the abuse on loopback and failed before its limit existed."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from simpleim.sip.auth import DigestClient
from test_server_helpers import DOMAIN, eventually, running_server
from test_server_security import raw_request, raw_udp

DOCS = Path(__file__).resolve().parent.parent / "docs" / "security.md"


# ---------------------------------------------------------------- item 6: password guessing


async def test_failed_authentications_lock_the_source_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="simpleim.server.security")
    async with running_server(auth_max_failures_source=5, auth_max_failures_user=0,
                              auth_lockout=60.0) as srv:
        guesser = await srv.ua("alice")
        statuses = []
        for guess in range(8):
            guesser.auth = DigestClient("alice", f"guess{guess}")
            statuses.append((await guesser.register()).status)
        assert statuses[:5] == [401] * 5 and statuses[5:] == [403] * 3
        # the right password from the locked-out source: still 403, with Retry-After
        guesser.auth = DigestClient("alice", "alicepw")
        resp = await guesser.register()
        assert resp.status == 403 and int(resp.headers.get("Retry-After") or 0) > 0
    failures = [r.getMessage() for r in caplog.records if "auth failure" in r.getMessage()]
    assert len(failures) == 5
    assert failures[0].startswith("auth failure from 127.0.0.1 port=")
    assert any("auth lockout of source 127.0.0.1" in r.getMessage() for r in caplog.records)


async def test_failed_authentications_lock_the_user_out() -> None:
    async with running_server(auth_max_failures_source=0, auth_max_failures_user=3) as srv:
        for guess in range(3):
            ua = await srv.ua("bob")
            ua.auth = DigestClient("bob", f"wrong{guess}")
            req = ua.request("MESSAGE", f"sip:carol@{DOMAIN}", body=b"x")
            assert (await ua.send(req)).status == 407
        honest = await srv.ua("bob")
        req = honest.request("MESSAGE", f"sip:carol@{DOMAIN}", body=b"x")
        assert (await honest.send(req)).status == 403
        # other users are not affected
        alice = await srv.ua("alice")
        assert (await alice.register()).status == 200


def _fail2ban_regex(docs: str) -> re.Pattern[str]:
    """The failregex of docs/security.md, with fail2ban's <HOST> expansion."""
    match = re.search(r"^failregex\s*=\s*(.+)$", docs, re.M)
    assert match, "docs/security.md has no failregex"
    pattern = match.group(1).strip().replace("<HOST>", r"(?:::f{4,6}:)?(?P<host>[\w\-.^_:]*\w)")
    return re.compile(pattern)


async def test_fail2ban_filter_matches_the_real_failure_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="simpleim.server.security")
    async with running_server(auth_max_failures_source=0, auth_max_failures_user=0) as srv:
        ua = await srv.ua("alice")
        ua.auth = DigestClient('al" source=6.6.6.6 ice', "wrong")
        assert (await ua.register()).status in (401, 403)
        ua.auth = DigestClient("alice", "wrong")
        assert (await ua.register()).status == 401
        good = await srv.ua("bob")
        assert (await good.register()).status == 200
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    lines = [fmt.format(r) for r in caplog.records]
    regex = _fail2ban_regex(DOCS.read_text())
    hosts = [m.group("host") for line in lines if (m := regex.search(line))]
    assert hosts == ["127.0.0.1", "127.0.0.1"], lines


# ---------------------------------------------------------------- item 7: overload


async def test_overload_sheds_new_requests_with_503_and_recovers() -> None:
    async with running_server(auth=False, overload_max_pending=2) as srv:
        bob = await srv.ua("bob", answer=None)  # bob never answers: his requests stay pending
        await bob.register()
        addr = srv.addr("udp")
        sock = await raw_udp()
        held = [raw_request("MESSAGE", f"sip:bob@{DOMAIN}", sock.port,
                            from_=f"<sip:x@evil.test>;tag={i}") for i in range(3)]
        for data in held:
            sock.send(data, addr)
            await bob.next_request()
        endpoint = srv.server.endpoint
        assert endpoint.unanswered == 3
        # past the bound: a new request gets 503 + Retry-After without a transaction
        sock.send(raw_request("MESSAGE", f"sip:bob@{DOMAIN}", sock.port,
                              from_="<sip:x@evil.test>;tag=new"), addr)
        resp = await sock.next()
        assert resp.status == 503 and resp.headers.get("Retry-After") == "2"
        assert endpoint.shed_count == 1
        # a retransmission of a request being handled is dropped before parsing
        sock.send(held[0], addr)
        await eventually(lambda: endpoint.dropped_retransmissions == 1)
        assert bob.received.empty()
        # once the pending requests are answered, new requests are served again
        while not bob.received.empty():
            bob.received.get_nowait()
        for inc in list(endpoint._server.values()):
            inc.reply(480)
        for _ in range(3):
            assert (await sock.next()).status == 480
        await eventually(lambda: endpoint.unanswered == 0)
        sock.send(raw_request("OPTIONS", f"sip:{DOMAIN}", sock.port,
                              from_="<sip:x@evil.test>;tag=after"), addr)
        assert (await sock.next()).status == 200


# ---------------------------------------------------------------- item 8: contacts, branches


async def test_contacts_per_aor_and_branches_per_request_are_capped() -> None:
    async with running_server(auth=False, max_contacts=3, max_branches=2) as srv:
        victims = [await srv.ua("bob") for _ in range(4)]
        for ua in victims[:3]:
            assert (await ua.register()).status == 200
        resp = await victims[3].register()
        assert resp.status == 403 and "3 contacts" in (resp.headers.get("Warning") or "")
        alice = await srv.ua("alice")
        assert (await alice.send(alice.request("MESSAGE", f"sip:bob@{DOMAIN}",
                                               body=b"fork"))).status == 200
        got = [ua for ua in victims[:3] if not ua.received.empty()]
        assert len(got) == 2


# ---------------------------------------------------------------- item 11: enumeration


async def test_outsiders_cannot_tell_unknown_from_offline() -> None:
    async with running_server() as srv:
        out = await srv.ua("mallory")
        statuses = []
        for user in ("carol", "nosuchuser"):  # carol exists but is not registered
            req = out.request("MESSAGE", f"sip:{user}@{DOMAIN}", body=b"x")
            req.headers.set("From", "<sip:mallory@evil.test>;tag=e1")
            statuses.append((await out.send(req, auth=False)).status)
        assert statuses == [404, 404]
        # our own authenticated users still learn that carol is offline: her MESSAGE is
        # stored for later delivery (202, OMA SIMPLE IM §12.2.2.3)
        alice = await srv.ua("alice")
        resp = await alice.send(alice.request("MESSAGE", f"sip:carol@{DOMAIN}", body=b"x"))
        assert resp.status == 202


# ---------------------------------------------------------------- item 10: TCP


async def _closed_by_peer(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:
        return True


async def test_tcp_connections_per_source_are_capped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with running_server(max_tcp_per_source=3) as srv:
        addr = srv.addr("tcp")
        conns = [await asyncio.open_connection(addr.host, addr.port) for _ in range(5)]
        for reader, _ in conns[3:]:
            assert await _closed_by_peer(reader)
        reader, writer = conns[0]
        writer.write(raw_request("OPTIONS", f"sip:{DOMAIN}", 1, from_="<sip:x@evil.test>;tag=1")
                     .replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)).startswith(b"SIP/2.0 200")
        for _, w in conns:
            w.close()
    assert any("per-source limit" in r.getMessage() for r in caplog.records)


async def test_incomplete_message_is_not_held_for_ever() -> None:
    async with running_server(tcp_incomplete_timeout=0.3) as srv:
        addr = srv.addr("tcp")
        reader, writer = await asyncio.open_connection(addr.host, addr.port)
        # slowloris: a head that never ends
        writer.write(b"OPTIONS sip:example.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;bra")
        assert await _closed_by_peer(reader)
        writer.close()
        await eventually(lambda: not srv.server.endpoint.net._per_source)


def test_limit_flags_reach_the_config() -> None:
    from simpleim.cli.main import build_parser
    from simpleim.cli.server import config_from_args

    args = build_parser().parse_args([
        "server", "--max-contacts", "5", "--max-branches", "3", "--auth-max-failures", "4",
        "--auth-lockout", "30", "--overload-max-pending", "100", "--overload-max-lag", "0.5",
        "--max-tcp-per-source", "8"])
    config = config_from_args(args)
    assert (config.max_contacts, config.max_branches, config.auth_max_failures_source,
            config.auth_lockout, config.overload_max_pending, config.overload_max_lag,
            config.max_tcp_per_source) == (5, 3, 4, 30.0, 100, 0.5, 8)
    defaults = config_from_args(build_parser().parse_args(["server"]))
    assert defaults.max_contacts == 10 and defaults.auth_max_failures_source == 10


def test_shed_verdict_soft_and_hard() -> None:
    from simpleim.transport.sip_overload import Shed, shed_verdict

    plain = raw_request("MESSAGE", f"sip:bob@{DOMAIN}", 5, from_="<sip:a@b>;tag=1")
    creds = raw_request("MESSAGE", f"sip:bob@{DOMAIN}", 5, from_="<sip:a@b>;tag=1",
                        extra='Proxy-Authorization: Digest username="a"\r\n')
    dialog = raw_request("BYE", "sip:x@127.0.0.1", 5, from_="<sip:a@b>;tag=1",
                         to="<sip:x@y>;tag=9")
    assert shed_verdict(plain, set(), hard=False) is Shed.REJECT
    assert shed_verdict(creds, set(), hard=False) is Shed.PASS
    assert shed_verdict(creds, set(), hard=True) is Shed.REJECT
    assert shed_verdict(dialog, set(), hard=True) is Shed.PASS
    branch = re.search(rb"branch=([^;,\s]+)", plain)
    assert branch is not None
    assert shed_verdict(plain, {branch.group(1).decode()}) is Shed.RETRANSMISSION
