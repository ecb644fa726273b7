"""Stateful proxy (RFC 3261 §16) with real sockets: relay, dialogs, forking, CANCEL."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from needs import require_ipv6_loopback
from simpleim.sip.headers import Address
from simpleim.sip.message import SipRequest
from simpleim.sip.transaction import TxKind, TxState
from simpleim.sip.uri import SipUri
from simpleim.transport.sip import IncomingRequest, resolve_uri
from test_server_helpers import DOMAIN, TestUA, running_server
from waiting import wait_until


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_message_relay_with_proxy_auth(transport: str) -> None:
    async with running_server() as srv:
        bob = await srv.ua("bob", transport)
        assert (await bob.register()).status == 200
        alice = await srv.ua("alice", transport)
        req = alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"hello bob")
        # first without credentials: 407 Proxy-Authenticate (RFC 3261 §22.3)
        plain = await alice.send(req.copy(), auth=False)
        assert plain.status == 407
        assert "Digest" in (plain.headers.get("Proxy-Authenticate") or "")
        resp = await alice.send(req)
        assert resp.status == 200
        got = await bob.next_request()
        assert got.method == "MESSAGE" and got.request.body == b"hello bob"
        # the proxy's Via is on top, credentials were consumed, Max-Forwards decremented
        assert len(got.request.via) == 2
        assert got.request.headers.get("Proxy-Authorization") is None
        assert got.request.max_forwards == 69
        assert len(resp.via) == 1


async def test_spoofed_from_is_forbidden() -> None:
    async with running_server() as srv:
        bob = await srv.ua("bob")
        await bob.register()
        alice = await srv.ua("alice")
        req = alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"x", from_user="carol")
        # alice's credentials for a request From carol: 403
        assert (await alice.send(req)).status == 403


async def test_404_unknown_and_480_unregistered() -> None:
    async with running_server(auth=False) as srv:
        alice = await srv.ua("alice")
        resp = await alice.send(alice.request("MESSAGE", f"sip:nobody@{DOMAIN}", body=b"x"))
        assert resp.status == 404
        # a session INVITE to a known user who is not registered: 480 (a MESSAGE would be
        # deferred: tests/test_server_deferred.py)
        resp = await alice.send(alice.request("INVITE", f"sip:carol@{DOMAIN}", body=b""))
        assert resp.status == 480
        # RFC 3261 §8.2.6.2 / §16.7: responses the proxy makes itself carry a To tag
        assert resp.to_addr.tag


async def test_own_responses_carry_a_to_tag() -> None:
    async with running_server() as srv:
        alice = await srv.ua("alice")
        for req in (alice.request("OPTIONS", f"sip:{DOMAIN}"),
                    alice.request("OPTIONS", f"sip:{DOMAIN}", headers=[("Require", "foo")]),
                    alice.request("MESSAGE", "sip:bob@elsewhere.test", body=b"x")):
            resp = await alice.send(req, auth=False)
            assert resp.status in (200, 420, 403, 407)
            assert resp.to_addr.tag, resp.status


async def test_foreign_domain_is_refused() -> None:
    async with running_server(auth=False) as srv:
        alice = await srv.ua("alice")
        resp = await alice.send(alice.request("MESSAGE", "sip:bob@elsewhere.test", body=b"x"))
        assert resp.status == 403


async def test_invite_ack_bye_through_record_route() -> None:
    async with running_server() as srv:
        bob = await srv.ua("bob")
        await bob.register()
        alice = await srv.ua("alice")
        invite = alice.request("INVITE", f"sip:bob@{DOMAIN}", body=b"v=0\r\n")
        resp = await alice.send(invite)
        assert resp.status == 200
        got = await bob.next_request()
        assert got.method == "INVITE"
        rr = resp.record_route
        assert rr and isinstance(rr[0].uri, SipUri) and rr[0].uri.lr
        # the route set of the caller is the Record-Route list in reverse (RFC 3261 §12.1.2)
        routes = [str(a) for a in reversed(resp.headers.get_all("Record-Route"))]
        remote = resp.contacts[0].uri
        to_value = resp.headers.get("To") or ""

        def in_dialog(method: str, cseq: int) -> SipRequest:
            req = SipRequest(method, remote, [
                ("Max-Forwards", "70"),
                ("From", invite.headers.get("From") or ""),
                ("To", to_value),
                ("Call-ID", invite.call_id),
                ("CSeq", f"{cseq} {method}"),
            ])
            for value in routes:
                req.headers.add("Route", value)
            return req

        first_route = Address.parse(routes[0]).uri
        assert isinstance(first_route, SipUri)
        dest = resolve_uri(first_route)
        ack = in_dialog("ACK", invite.cseq.seq)
        ack.headers.prepend("Via", alice.endpoint.via_for(dest, alice.endpoint.new_branch()))
        alice.endpoint.send_stateless(ack, dest)
        got_ack = await bob.next_request()
        assert got_ack.method == "ACK"
        assert len(got_ack.request.via) == 2  # came through the proxy
        assert not got_ack.request.headers.get_all("Route")  # our Route was consumed
        bye = in_dialog("BYE", invite.cseq.seq + 1)
        resp_bye = await alice.send(bye, dest=dest)
        assert resp_bye.status == 200
        got_bye = await bob.next_request()
        assert got_bye.method == "BYE" and len(got_bye.request.via) == 2


async def test_forking_with_accept_contact() -> None:
    async with running_server(auth=False) as srv:
        im = await srv.ua("bob")
        other = await srv.ua("bob")
        await im.register(contact=f"<{im.contact_uri}>;+g.oma.sip-im", call_id="c1")
        await other.register(contact=f"<{other.contact_uri}>;audio", call_id="c2")
        alice = await srv.ua("alice")
        # require + explicit: only the contact with the IM feature tag gets it (RFC 3841)
        req = alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"im only",
                            headers=[("Accept-Contact", "*;+g.oma.sip-im;require;explicit")])
        assert (await alice.send(req)).status == 200
        assert (await im.next_request()).request.body == b"im only"
        # nothing went to `other`: a sentinel only it accepts must be the first thing it gets
        req = alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"sentinel",
                            headers=[("Accept-Contact", "*;audio;require;explicit")])
        assert (await alice.send(req)).status == 200
        assert (await other.next_request()).request.body == b"sentinel"
        assert im.received.empty()
        # no preference: parallel forking to both contacts
        req = alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"both")
        assert (await alice.send(req)).status == 200
        assert (await im.next_request()).request.body == b"both"
        assert (await other.next_request()).request.body == b"both"
        # a required feature nobody has: 480
        req = alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"x",
                            headers=[("Accept-Contact", "*;+g.3gpp.icsi-ref;require;explicit")])
        assert (await alice.send(req)).status == 480
        # Reject-Contact removes the IM contact
        req = alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"not im",
                            headers=[("Reject-Contact", "*;+g.oma.sip-im")])
        assert (await alice.send(req)).status == 200
        assert (await other.next_request()).request.body == b"not im"


async def test_forking_best_response() -> None:
    def busy(inc: IncomingRequest) -> None:
        inc.reply(486, to_tag="b1")

    def decline(inc: IncomingRequest) -> None:
        inc.reply(404, to_tag="b2")

    async with running_server(auth=False) as srv:
        a = await srv.ua("bob", answer=busy)
        b = await srv.ua("bob", answer=decline)
        await a.register(call_id="f1")
        await b.register(call_id="f2")
        alice = await srv.ua("alice")
        resp = await alice.send(alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"x"))
        # RFC 3261 §16.7 step 6: lowest class, any 4xx; both are 4xx
        assert resp.status in (404, 486)


async def test_cancel_pending_invite() -> None:
    ringing: list[IncomingRequest] = []

    def ring(inc: IncomingRequest) -> None:
        if inc.method == "INVITE":
            inc.reply(180, to_tag="r1")
            ringing.append(inc)

    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob", answer=ring)
        await bob.register()
        alice = await srv.ua("alice")
        invite = alice.request("INVITE", f"sip:bob@{DOMAIN}", body=b"v=0\r\n")
        provisional = asyncio.Event()
        loop = asyncio.get_running_loop()
        final: asyncio.Future[int] = loop.create_future()

        def on_response(resp: object) -> None:
            status = resp.status  # type: ignore[attr-defined]
            if status < 200:
                provisional.set()
            elif not final.done():
                final.set_result(status)

        client = alice.endpoint.send_request(invite, srv.addr("udp"), on_response)
        await asyncio.wait_for(provisional.wait(), 5)
        client.cancel()
        # bob's endpoint answers the CANCEL and 487s the INVITE; the proxy relays the 487
        assert await asyncio.wait_for(final, 5) == 487
        assert (await bob.next_request()).method == "INVITE"
        # the CANCEL is absorbed by bob's endpoint (200 + 487, RFC 3261 §9.2)
        assert ringing and ringing[0].cancelled


async def test_max_forwards_zero_loop_and_extensions() -> None:
    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob")
        await bob.register()
        alice = await srv.ua("alice")
        req = alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"x")
        req.headers.set("Max-Forwards", "0")
        assert (await alice.send(req)).status == 483
        req = alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"x",
                            headers=[("Proxy-Require", "com.example.unknown")])
        resp = await alice.send(req)
        assert resp.status == 420
        assert resp.headers.get("Unsupported") == "com.example.unknown"
        req = alice.request("MESSAGE", "tel:+15551234", body=b"x")
        assert (await alice.send(req)).status == 416


async def test_loop_detected() -> None:
    async with running_server(auth=False) as srv:
        carol = await srv.ua("carol")
        proxy = srv.addr("udp")
        # carol's binding points back at the proxy itself: the request spirals, then loops
        await carol.register(contact=f"<sip:carol@{proxy.hostport}>")
        alice = await srv.ua("alice")
        resp = await alice.send(alice.request("MESSAGE", f"sip:carol@{DOMAIN}", body=b"x"))
        assert resp.status == 482


async def test_options_to_server() -> None:
    async with running_server() as srv:
        alice = await srv.ua("alice")
        req = alice.request("OPTIONS", f"sip:{DOMAIN}")
        resp = await alice.send(req, auth=False)
        assert resp.status == 200
        assert "MESSAGE" in resp.headers.get_all("Allow")
        assert resp.headers.get("Accept") and resp.headers.get("Supported") is not None
        req = alice.request("OPTIONS", f"sip:{DOMAIN}", headers=[("Require", "foo")])
        resp = await alice.send(req, auth=False)
        assert resp.status == 420 and resp.headers.get("Unsupported") == "foo"


async def test_response_to_unknown_branch_is_dropped() -> None:
    async with running_server(auth=False) as srv:
        alice = await srv.ua("alice")
        # a stray response must not crash anything
        stray = (
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKnothing\r\n"
            f"From: <sip:a@{DOMAIN}>;tag=1\r\nTo: <sip:b@{DOMAIN}>;tag=2\r\n"
            "Call-ID: stray\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        alice.endpoint.net.send(stray, srv.addr("udp"))
        resp = await alice.send(alice.request("OPTIONS", f"sip:{DOMAIN}"))
        assert resp.status == 200


async def test_message_to_ua_over_ipv6_if_available() -> None:
    require_ipv6_loopback()
    async with running_server(auth=False, host="::1") as srv:
        bob = await srv.ua("bob", host="::1")
        await bob.register()
        alice = await srv.ua("alice", host="::1")
        resp = await alice.send(alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"v6"))
        assert resp.status == 200
        got = await bob.next_request()
        assert got.source.host == "::1"


def _unused(_: TestUA) -> str:
    return secrets.token_hex(2)


async def test_unanswered_branch_gives_408() -> None:
    import socket

    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dead:
            dead.bind(("127.0.0.1", 0))
            port = dead.getsockname()[1]
            await bob.register(contact=f"<sip:bob@127.0.0.1:{port}>")
            alice = await srv.ua("alice")
            # RFC 3261 §16.7 step 6 / §8.1.3.1: the branch timed out -> 408 upstream
            resp = await alice.send(alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"x"))
        assert resp.status == 408


async def test_ack_with_new_branch_for_407_is_absorbed() -> None:
    """SIPp-style UAs send the ACK for a 407 with a new branch; it must not be relayed."""
    async with running_server() as srv:
        bob = await srv.ua("bob")
        await bob.register()
        alice = await srv.ua("alice")
        invite = alice.request("INVITE", f"sip:bob@{DOMAIN}", body=b"v=0\r\n")
        dest = srv.addr("udp")
        loop = asyncio.get_running_loop()
        final: asyncio.Future[int] = loop.create_future()
        statuses: list[int] = []

        def on_response(resp: object) -> None:
            status = resp.status  # type: ignore[attr-defined]
            statuses.append(status)
            if status >= 200 and not final.done():
                final.set_result(status)

        # A raw INVITE whose transaction we then abandon, to send our own odd ACK.
        invite.headers.prepend("Via", alice.endpoint.via_for(dest, "z9hG4bKfirst"))
        alice.endpoint.send_stateless(invite, dest)
        alice.endpoint.on_stray_response = lambda resp, src: on_response(resp)
        assert await asyncio.wait_for(final, 5) == 407
        layer = srv.server.endpoint.layer
        (tx,) = [t for t in layer.transactions() if t.kind is TxKind.INVITE_SERVER]
        assert tx.state is TxState.COMPLETED          # retransmitting the 407 (Timer G)
        ack = SipRequest("ACK", invite.uri, [
            ("Via", alice.endpoint.via_for(dest, "z9hG4bKother")),
            ("Max-Forwards", "70"),
            ("From", invite.headers.get("From") or ""),
            ("To", f"<sip:bob@{DOMAIN}>;tag=x"),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq.seq} ACK"),
        ])
        alice.endpoint.send_stateless(ack, dest)
        # The ACK is absorbed: the transaction is Confirmed (RFC 3261 §17.2.1: no more 407s).
        await wait_until(lambda: tx.state is not TxState.COMPLETED, 5, what="ACK absorbed")
        assert tx.state in (TxState.CONFIRMED, TxState.TERMINATED)
        # A round trip through the server: every 407 sent before the ACK has arrived by now.
        assert (await alice.send(alice.request("OPTIONS", f"sip:{DOMAIN}"))).status == 200
        count = len(statuses)
        # Confirmed lasts until Timer I: once it ended, no 407 came during it.
        await wait_until(lambda: layer.get(tx.id) is None, 5, what="Timer I ends the INVITE tx")
        assert (await alice.send(alice.request("OPTIONS", f"sip:{DOMAIN}"))).status == 200
        assert len(statuses) == count
        # Not relayed to bob: a MESSAGE sent after the ACK is the first request he sees.
        sentinel = alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"sentinel")
        assert (await alice.send(sentinel)).status == 200
        first = await bob.next_request()
        assert first.method == "MESSAGE" and first.request.body == b"sentinel"


async def test_forked_invite_relays_every_2xx() -> None:
    async with running_server(auth=False) as srv:
        one = await srv.ua("bob")
        two = await srv.ua("bob")
        await one.register(call_id="k1")
        await two.register(call_id="k2")
        alice = await srv.ua("alice")
        invite = alice.request("INVITE", f"sip:bob@{DOMAIN}", body=b"v=0\r\n")
        oks: list[str] = []
        done = asyncio.Event()

        def on_response(resp: object) -> None:
            if resp.status == 200:  # type: ignore[attr-defined]
                oks.append(resp.to_addr.tag or "")  # type: ignore[attr-defined]
                if len(oks) == 2:
                    done.set()

        alice.endpoint.send_request(invite, srv.addr("udp"), on_response)
        # RFC 3261 §16.7 step 5 / RFC 6026: every 2xx of a forked INVITE reaches the caller
        await asyncio.wait_for(done.wait(), 5)
        assert len(set(oks)) == 2


async def test_path_is_used_to_reach_the_contact() -> None:
    async with running_server(auth=False) as srv:
        edge = await srv.ua("edge")
        bob = await srv.ua("bob")
        assert edge.local is not None
        path = f"<sip:{edge.local.hostport};lr>"
        await bob.register(headers=[("Path", path), ("Supported", "path")])
        alice = await srv.ua("alice")
        # RFC 3327 §5.3: the Path becomes the Route set; the request goes to the edge
        resp = await alice.send(alice.request("MESSAGE", f"sip:bob@{DOMAIN}", body=b"via edge"))
        assert resp.status == 200
        got = await edge.next_request()
        assert got.request.headers.get_all("Route") == [path]
        assert str(got.request.uri) == bob.contact_uri
        assert bob.received.empty()


async def test_strict_router_request_is_fixed_up() -> None:
    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob")
        alice = await srv.ua("alice")
        proxy = srv.addr("udp")
        # RFC 3261 §16.4: a strict router put our Record-Route URI into the Request-URI and
        # the real target into the last Route value
        forged = alice.request("BYE", f"sip:{proxy.hostport};lr", to=f"<sip:bob@{DOMAIN}>;tag=t1",
                               headers=[("Route", f"<{bob.contact_uri}>")])
        # without the stamp of a Record-Route of ours the route set is not ours (issue 7)
        assert (await alice.send(forged)).status == 404
        stamp = srv.server.proxy.stamp.stamp("dialog-1")
        req = alice.request("BYE", f"sip:{proxy.hostport};lr;rt={stamp}",
                            to=f"<sip:bob@{DOMAIN}>;tag=t1", call_id="dialog-1",
                            headers=[("Route", f"<{bob.contact_uri}>")])
        resp = await alice.send(req)
        assert resp.status == 200
        got = await bob.next_request()
        assert got.method == "BYE" and str(got.request.uri) == bob.contact_uri
        assert not got.request.headers.get_all("Route")
