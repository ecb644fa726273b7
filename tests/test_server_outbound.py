"""RFC 5626 outbound on the server (issue 11 §5): a registration bound to its TCP flow is
dropped when the flow dies, a MESSAGE to that user fails at once (not after Timer F), the
other device's answer is forwarded at once, re-registration replaces the flow, CRLF pings
are answered, silent flows are closed after Flow-Timer."""

from __future__ import annotations

import asyncio
import secrets
import time

from simpleim.server.location import BindingChange, RegistrationEvent
from simpleim.sip.outbound import FlowWatch
from simpleim.transport.sip import IncomingRequest
from test_server_helpers import DOMAIN, TestUA, eventually, running_server

# A branch left to time out would end the MESSAGE in 408 (Timer F, RFC 3261 §17.1.2.2);
# the assertions check for the status only the flow logic produces (480, or the live
# device's 603), not for a duration.
_INSTANCE = '"<urn:uuid:00000000-0000-0000-0000-00000000b0b1>"'


def _outbound_contact(ua: TestUA, reg_id: int = 1) -> str:
    return f"<{ua.contact_uri};ob>;+sip.instance={_INSTANCE};reg-id={reg_id}"


async def _register_outbound(ua: TestUA, reg_id: int = 1) -> None:
    resp = await ua.register(contact=_outbound_contact(ua, reg_id), expires=600,
                             headers=[("Supported", "outbound, path")])
    assert resp.status == 200
    # RFC 5626 §6: the registrar binds the flow and says so; §5.4: Flow-Timer
    assert "outbound" in [t.strip() for v in resp.headers.get_all("Require")
                          for t in v.split(",")]
    assert resp.headers.get("Flow-Timer") == "120"


def _decline(inc: IncomingRequest) -> None:
    if inc.transaction_id is not None:
        inc.reply(603, to_tag=secrets.token_hex(4))


async def test_dead_flow_drops_binding_and_message_fails_at_once() -> None:
    async with running_server() as srv:
        events: list[RegistrationEvent] = []
        srv.server.location.listeners.append(events.append)
        bob = await srv.ua("bob", "tcp")
        await _register_outbound(bob)
        assert [e.change for e in events] == [BindingChange.ADDED]
        # the agent dies: its kernel closes the TCP connection (what kill -9 does)
        await bob.close()
        await eventually(lambda: not srv.server.location.lookup(f"bob@{DOMAIN}"), timeout=10)
        assert await srv.store.get_bindings(f"bob@{DOMAIN}", time.time()) == []
        assert [e.change for e in events] == [BindingChange.ADDED, BindingChange.FLOW_FAILED]
        alice = await srv.ua("alice")
        # RFC 3261 §16.5: no binding for a known user -> 480 at once, not a 408 after Timer F
        req = alice.request("OPTIONS", f"sip:bob@{DOMAIN}")
        resp = await asyncio.wait_for(alice.send(req), 10)
        assert resp.status == 480
        # a MESSAGE is deferred at once (OMA SIMPLE IM §12, PT-01 step 5): stored, then 202
        req = alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"are you there?")
        resp = await asyncio.wait_for(alice.send(req), 10)
        assert resp.status == 202
        assert await srv.store.deferred.count(f"bob@{DOMAIN}") == 1


async def test_branch_on_dead_flow_is_not_waited_for() -> None:
    """Bob has a dead TCP device and a live one that declines: the decline is forwarded
    without waiting for the dead branch."""
    async with running_server() as srv:
        dead = await srv.ua("bob", "tcp")
        await _register_outbound(dead)
        live = await srv.ua("bob", "udp", answer=_decline)
        assert (await live.register(expires=600)).status == 200
        assert len(srv.server.location.lookup(f"bob@{DOMAIN}")) == 2
        await dead.close()
        await eventually(lambda: len(srv.server.location.lookup(f"bob@{DOMAIN}")) == 1,
                         timeout=10)
        alice = await srv.ua("alice")
        resp = await asyncio.wait_for(
            alice.send(alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"hi")),
            10)
        assert resp.status == 603
        assert dead.received.empty()


async def test_proxy_skips_a_flow_bound_binding_whose_flow_is_gone() -> None:
    """Between the connection's death and the binding's removal the proxy already knows:
    RFC 5626 §5.3, no branch to a failed flow (the caller gets 480, not a 408)."""
    async with running_server() as srv:
        bob = await srv.ua("bob", "tcp")
        await _register_outbound(bob)
        srv.server.endpoint.net.on_connection_closed = None     # the drop never happens
        await bob.close()
        flow = srv.server.location.flows()[0]
        await eventually(lambda: not srv.server.endpoint.net.has_connection(flow), timeout=10)
        assert srv.server.location.lookup(f"bob@{DOMAIN}")         # still registered
        alice = await srv.ua("alice")
        resp = await asyncio.wait_for(
            alice.send(alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"x")),
            10)
        assert resp.status == 480


async def test_reregistration_over_a_new_flow_replaces_the_old_one() -> None:
    async with running_server() as srv:
        first = await srv.ua("bob", "tcp")
        await _register_outbound(first)
        # the same instance and reg-id over a new connection (RFC 5626 §4.2 / §6)
        second = await srv.ua("bob", "tcp")
        resp = await second.register(contact=_outbound_contact(second), expires=600,
                                     headers=[("Supported", "outbound")],
                                     call_id=f"reg-bob-{id(first)}-2")
        assert resp.status == 200
        [binding] = srv.server.location.lookup(f"bob@{DOMAIN}")
        assert binding.contact.startswith(f"sip:bob@{second.local.hostport}")  # type: ignore[union-attr]
        # the old connection dying now does not remove the new binding
        await first.close()
        await eventually(lambda: len(srv.server.location.flows()) == 1, timeout=10)
        assert len(srv.server.location.lookup(f"bob@{DOMAIN}")) == 1
        alice = await srv.ua("alice")
        resp = await alice.send(alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"x"))
        assert resp.status == 200
        assert (await second.next_request()).method == "MESSAGE"


async def test_plain_tcp_registration_is_not_flow_bound() -> None:
    """Without +sip.instance/reg-id the binding is the Contact (RFC 3261): it stays when the
    REGISTER's connection closes."""
    async with running_server() as srv:
        bob = await srv.ua("bob", "tcp")
        resp = await bob.register(expires=600)
        assert resp.status == 200 and resp.headers.get("Flow-Timer") is None
        assert "outbound" not in resp.headers.get_all("Require")
        srv.server.endpoint.net.close_connection(srv.server.endpoint.net._conns and
                                                 next(iter(srv.server.endpoint.net._conns)))
        await eventually(lambda: not srv.server.endpoint.net._conns, timeout=10)
        assert len(srv.server.location.lookup(f"bob@{DOMAIN}")) == 1


async def test_crlf_ping_gets_a_pong() -> None:
    async with running_server() as srv:
        addr = srv.addr("tcp")
        reader, writer = await asyncio.open_connection(addr.host, addr.port)
        try:
            writer.write(b"\r\n\r\n")                    # RFC 5626 §3.5.1 ping
            await writer.drain()
            assert await asyncio.wait_for(reader.readexactly(2), 10) == b"\r\n"   # pong
        finally:
            writer.close()


async def test_silent_flow_is_closed_after_flow_timer() -> None:
    async with running_server(flow_timer=1) as srv:
        # a short grace for the test (production: the UA's 10 s pong wait)
        srv.server.flow_watch = FlowWatch(1, grace=0.2)
        bob = await srv.ua("bob", "tcp")
        resp = await bob.register(contact=_outbound_contact(bob), expires=600,
                                  headers=[("Supported", "outbound")])
        assert resp.headers.get("Flow-Timer") == "1"
        # restart the watch loop so that it picks up the short limit
        srv.server._flow_task.cancel()  # type: ignore[union-attr]
        srv.server._flow_task = asyncio.get_running_loop().create_task(
            srv.server._flow_loop())
        # bob never pings: the server closes the flow and drops the binding
        await eventually(lambda: not srv.server.location.lookup(f"bob@{DOMAIN}"), timeout=15)
