"""The Participating Function in proxy mode on the wire, for the dialogs it handles (OMA SIMPLE
IM §6.1.1.2.1-§6.1.1.2.8, §6.1.1.4, §6.1.2.2, §6.1.2.4, §6.1.2.5; RFC 3261 §16, RFC 4028 §8):
dispatch on the large-message feature tag, Record-Route on IM session, large-message and
SUBSCRIBE dialogs, final responses forwarded, re-INVITE / BYE / CANCEL / NOTIFY along the
recorded route, the session timer on refreshes (422 + Min-SE) — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from simpleim.sip.headers import Address
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.sip.uri import SipUri
from simpleim.transport.sip import IncomingRequest, resolve_uri
from simpleim.transport.sip_addr import TransportAddr
from test_server_deferred import IM, received, server_on
from test_server_helpers import DOMAIN, FAST_TIMERS, TestUA
from test_server_pf import LARGE, invite, sdp

OFFER = sdp("m=message 9 TCP/MSRP *", "a=accept-types:message/cpim")


class Dialog:
    """The caller's side of a dialog set up through the server (RFC 3261 §12.1.2)."""

    def __init__(self, ua: TestUA, initial: SipRequest, resp: SipResponse) -> None:
        self.ua = ua
        self.initial = initial
        self.routes = [str(a) for a in reversed(resp.headers.get_all("Record-Route"))]
        assert self.routes, "the PF did not record its route"
        self.remote = resp.contacts[0].uri if resp.contacts else initial.uri
        self.to = resp.headers.get("To") or ""
        self.cseq = initial.cseq.seq
        first = Address.parse(self.routes[0]).uri
        assert isinstance(first, SipUri)
        self.dest: TransportAddr = resolve_uri(first)

    def request(self, method: str, *headers: tuple[str, str], body: bytes = b"") -> SipRequest:
        if method != "ACK":
            self.cseq += 1
        req = SipRequest(method, self.remote, [
            ("Max-Forwards", "70"), ("From", self.initial.headers.get("From") or ""),
            ("To", self.to), ("Call-ID", self.initial.call_id),
            ("CSeq", f"{self.cseq} {method}"), ("Contact", f"<{self.ua.contact_uri}>"),
            *headers], body)
        for value in self.routes:
            req.headers.add("Route", value)
        return req

    def ack(self) -> None:
        ack = self.request("ACK")
        ack.headers.prepend("Via", self.ua.endpoint.via_for(self.dest,
                                                            self.ua.endpoint.new_branch()))
        self.ua.endpoint.send_stateless(ack, self.dest)

    async def send(self, req: SipRequest) -> SipResponse:
        return await self.ua.send(req, dest=self.dest)


def recorded_by_us(req: SipRequest) -> bool:
    """§6.1.1.2.2 step 2b: a Record-Route with a URI identifying the server (loose routing)."""
    for value in req.headers.get_all("Record-Route"):
        uri = Address.parse(value).uri
        if isinstance(uri, SipUri) and uri.lr:
            return True
    return False


async def test_pf_proxy_im_session_record_route_reinvite_and_bye(store_url: str) -> None:
    """PO-02/PO-03/PO-04/PO-08 and PT-02/PT-03/PT-04/PT-06 in proxy mode (pf_media proxy)."""
    timers = replace(FAST_TIMERS, min_se=300.0)
    async with server_on(store_url, timers=timers) as srv:
        bob = await srv.ua("bob")
        await bob.register()
        alice = await srv.ua("alice")
        req = invite(alice, "bob", OFFER, ("Supported", "timer"),
                     ("Allow", "INVITE, ACK, BYE, CANCEL, MESSAGE"))
        resp = await alice.send(req)
        # §6.1.1.2.2 (proxy): the 200 is forwarded to the caller, the route recorded
        assert resp.status == 200
        (inc,) = await received(bob, 1, "INVITE")
        # step 2b: Record-Route with our URI; step 2c: forwarded with the offer unchanged
        assert recorded_by_us(inc.request)
        assert inc.request.body == OFFER
        assert inc.request.headers.get_all("Allow") == ["INVITE", "ACK", "BYE", "CANCEL",
                                                     "MESSAGE"]
        assert "+g.oma.sip-im" in (inc.request.headers.get("Accept-Contact") or "")
        # RFC 4028 §8 on the session the PF handles
        assert inc.request.headers.get("Session-Expires") == "1800"
        assert resp.headers.get("Session-Expires") == "1800;refresher=uac"
        dialog = Dialog(alice, req, resp)
        dialog.ack()
        assert (await bob.next_request()).method == "ACK"
        # §6.1.1.2.4 (proxy: RFC 3261) — a refresh below our Min-SE -> 422 + Min-SE
        low = dialog.request("INVITE", ("Session-Expires", "90"), ("Content-Type",
                                                                    "application/sdp"),
                             body=OFFER)
        resp = await dialog.send(low)
        assert resp.status == 422 and resp.headers.get("Min-SE") == "300"
        assert (resp.headers.get("Server") or "").startswith("IM-serv/OMA1.0")
        # a re-INVITE with a new offer goes through to bob, its 200 back to alice
        new_offer = sdp("m=message 9 TCP/MSRP *", "a=accept-types:message/cpim text/plain")
        re_invite = dialog.request("INVITE", ("Session-Expires", "600;refresher=uac"),
                                   ("Supported", "timer"),
                                   ("Content-Type", "application/sdp"), body=new_offer)
        resp = await dialog.send(re_invite)
        assert resp.status == 200
        (inc,) = await received(bob, 1, "INVITE")
        assert inc.request.body == new_offer and inc.request.to_addr.tag is not None
        assert inc.request.headers.get("Session-Expires") == "600;refresher=uac"
        dialog.ack()
        assert (await bob.next_request()).method == "ACK"
        # §6.1.1.2.8 / §6.1.2.2.5 (proxy: RFC 3261): the BYE reaches bob, his 200 alice
        resp = await dialog.send(dialog.request("BYE"))
        assert resp.status == 200
        got = await bob.next_request()
        assert got.method == "BYE" and not got.request.headers.get_all("Route")
        assert len(got.request.via) == 2  # through the server


async def test_pf_proxy_large_message_invite_cancel_and_bye(store_url: str) -> None:
    """PO-10/PO-11/PO-12 and PT-08/PT-09/PT-10 (proxy mode): §6.1.1.2.1 step 1a dispatch on
    +g.oma.sip-im.large-message, Record-Route, CANCEL -> 487, BYE along the route."""
    ringing: list[IncomingRequest] = []

    def ring_first(inc: IncomingRequest) -> None:
        if inc.transaction_id is None:
            return
        if inc.method == "INVITE" and not ringing:
            inc.reply(180, to_tag="r1")
            ringing.append(inc)
            return
        headers = []
        if inc.method == "INVITE":
            local = inc.local
            headers.append(("Contact", f"<sip:uas@{local.hostport};transport="
                                       f"{local.transport}>"))
        inc.reply(200, headers=headers, to_tag="t2")

    # authentication off: a CANCEL cannot follow a challenged INVITE's 407 (RFC 3261 §22.1)
    async with server_on(store_url, auth=False) as srv:
        bob = await srv.ua("bob", answer=ring_first)
        await bob.register()
        alice = await srv.ua("alice")
        # §6.1.1.4.2 / §6.1.2.4.2: CANCEL of a pending large-message INVITE (RFC 3261)
        req = invite(alice, "bob", OFFER, LARGE)
        loop = asyncio.get_running_loop()
        provisional = asyncio.Event()
        final: asyncio.Future[SipResponse] = loop.create_future()

        def on_response(resp: SipResponse) -> None:
            if resp.status < 200:
                provisional.set()
            elif not final.done():
                final.set_result(resp)

        client = alice.endpoint.send_request(req, srv.addr("udp"), on_response)
        await asyncio.wait_for(provisional.wait(), 5)
        (inc,) = await received(bob, 1, "INVITE")
        assert recorded_by_us(inc.request)
        assert "*;+g.oma.sip-im.large-message" in inc.request.headers.get_all(
            "Accept-Contact")
        client.cancel()
        assert (await asyncio.wait_for(final, 5)).status == 487
        assert ringing and ringing[0].cancelled
        # §6.1.1.4.1 / §6.1.2.4.1 (proxy): accepted, forwarded with the route recorded
        req = invite(alice, "bob", OFFER, LARGE)
        resp = await alice.send(req)
        assert resp.status == 200 and resp.headers.get_all("Record-Route")
        (inc,) = await received(bob, 1, "INVITE")
        assert recorded_by_us(inc.request) and inc.request.body == OFFER
        dialog = Dialog(alice, req, resp)
        dialog.ack()
        # §6.1.1.4.3 / §6.1.2.4.3: the BYE after the transfer goes along the route
        resp = await dialog.send(dialog.request("BYE"))
        assert resp.status == 200
        while (got := await bob.next_request()).method == "ACK":
            pass
        assert got.method == "BYE"


async def test_pf_subscribe_recorded_and_notify_in_the_dialog(store_url: str) -> None:
    """PO-05 (SUBSCRIBE for a session or group not owned here: Record-Route, forwarded, the
    final response back) and PT-11 (the NOTIFY in that dialog reaches the subscriber)."""
    async with server_on(store_url) as srv:
        bob = await srv.ua("bob")
        await bob.register()
        alice = await srv.ua("alice")
        await alice.register()
        sub = alice.request("SUBSCRIBE", f"sip:bob@{DOMAIN}", headers=[
            IM, ("Event", "conference"), ("Expires", "600"),
            ("Accept", "application/conference-info+xml")])
        resp = await alice.send(sub)
        assert resp.status == 200
        (inc,) = await received(bob, 1, "SUBSCRIBE")
        # §6.1.1.2.5 step 1: the server stays on the signalling path
        assert recorded_by_us(inc.request)
        assert inc.request.headers.get("Event") == "conference"
        # §6.1.2.5: bob's NOTIFY in the subscription dialog, along the recorded route
        routes = inc.request.headers.get_all("Record-Route")  # the callee keeps the order
        notify = SipRequest("NOTIFY", (sub.headers.get("Contact") or "").strip("<>"), [
            ("Max-Forwards", "70"), ("From", resp.headers.get("To") or ""),
            ("To", sub.headers.get("From") or ""), ("Call-ID", sub.call_id),
            ("CSeq", "1 NOTIFY"), ("Contact", f"<{bob.contact_uri}>"),
            ("Event", "conference"), ("Subscription-State", "active;expires=600"),
            ("Content-Type", "application/conference-info+xml")], b"<conference-info/>")
        for value in routes:
            notify.headers.add("Route", value)
        first = Address.parse(routes[0]).uri
        assert isinstance(first, SipUri)
        resp = await bob.send(notify, dest=resolve_uri(first))
        assert resp.status == 200
        got = await received(alice, 1, "NOTIFY")
        assert got[0].request.body == b"<conference-info/>"
        assert got[0].request.headers.get("Subscription-State") == "active;expires=600"
