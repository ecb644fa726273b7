"""The Controlling Function's pager exploder on the wire (OMA SIMPLE IM §8.3, RFC 5365,
RFC 5364 copyControl, RFC 5438 §8 aggregation, Timer Ts2 of §15.1) — on SQLite and on
PostgreSQL (``store_url``)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from simpleim.content.cpim import (
    IMDN_NS,
    CpimAddress,
    CpimDateTime,
    CpimMessage,
    build_cpim,
    parse_cpim,
)
from simpleim.content.imdn import (
    NotificationType,
    Status,
    build_notification,
    imdn_route,
    parse_imdn,
)
from simpleim.content.resource_lists import (
    CopyControl,
    Entry,
    ResourceList,
    ResourceLists,
    parse_resource_lists,
    recipient_list_headers,
)
from simpleim.server.routing import Role, service_role
from simpleim.sip.message import SipRequest
from simpleim.sip.multipart import MultipartPart, build_multipart, parse_multipart
from simpleim.transport.sip import IncomingRequest
from test_server_deferred import received, server_on
from test_server_helpers import DOMAIN, TestUA, eventually

EXPLODER = f"sip:Exploder@{DOMAIN}"
NOTIFY = ("positive-delivery", "negative-delivery")


def now() -> CpimDateTime:
    return CpimDateTime.from_datetime(datetime.now(UTC).replace(microsecond=0))


def im(text: str, notify: tuple[str, ...] = NOTIFY) -> CpimMessage:
    return build_cpim(from_addr=CpimAddress(f"sip:alice@{DOMAIN}"),
                      to=[CpimAddress(EXPLODER)], body=text.encode(),
                      content_type="text/plain; charset=utf-8", date_time=now(),
                      message_id=secrets.token_hex(6), disposition_notification=notify)


def entries(*spec: tuple[str, CopyControl | None]) -> ResourceLists:
    return ResourceLists((ResourceList(tuple(
        Entry(f"sip:{u}@{DOMAIN}", copy_control=cc) for u, cc in spec)),))


def list_message(ua: TestUA, message: bytes, lists: bytes | ResourceLists, *,
                 ctype: str = "message/cpim", require: bool = True) -> SipRequest:
    listed = lists.to_bytes() if isinstance(lists, ResourceLists) else lists
    body, mtype = build_multipart([
        MultipartPart.create(ctype, message),
        MultipartPart.create(recipient_list_headers()[0][1], listed,
                             recipient_list_headers()[1:])])
    headers = [("Require", "recipient-list-message")] if require else []
    req = ua.request("MESSAGE", EXPLODER, body=body, headers=headers)
    req.headers.set("Content-Type", mtype)
    return req


def member_imdn(copy: SipRequest, member: str, ua: TestUA) -> SipRequest:
    """What a member sends back: the delivery IMDN along imdn.IMDN-Route (RFC 5438 §6)."""
    mt = copy.media_type
    assert mt is not None and mt.boundary
    inner = parse_multipart(copy.body, mt.boundary)[0]
    cpim = parse_cpim(inner.body)
    note = build_notification(cpim, NotificationType.DELIVERY, Status.DELIVERED,
                              from_addr=CpimAddress(f"sip:{member}@{DOMAIN}"),
                              message_id=secrets.token_hex(6), date_time=now(),
                              recipient_uri=f"sip:{member}@{DOMAIN}")
    (route,) = imdn_route(note)
    req = ua.request("MESSAGE", route, body=note.to_bytes())
    req.headers.set("Content-Type", "message/cpim")
    return req


def report_parts(inc: IncomingRequest) -> dict[str, Status]:
    cpim = parse_cpim(inc.request.body)
    assert cpim.content_disposition == "notification"
    ctype = cpim.content_type or ""
    assert ctype.startswith("multipart/mixed")
    boundary = ctype.split("boundary=", 1)[1].strip('"')
    out: dict[str, Status] = {}
    for part in parse_multipart(cpim.body, boundary):
        assert part.content_type == "message/imdn+xml"
        doc = parse_imdn(part.body)
        assert doc.kind is NotificationType.DELIVERY
        assert doc.recipient_uri is not None
        out[doc.recipient_uri] = doc.status
    return out


def test_exploder_uri_is_a_service_uri() -> None:
    assert service_role("Exploder") is Role.EXPLODER


async def test_uri_list_message_on_the_wire(store_url: str) -> None:
    async with server_on(store_url) as srv:
        alice, bob, carol = await srv.ua("alice"), await srv.ua("bob"), await srv.ua("carol")
        for ua in (alice, bob, carol):
            await ua.register()
        msg = im("hello group")
        lists = entries(("bob", CopyControl.TO), ("carol", CopyControl.CC),
                        ("nobody", CopyControl.BCC))
        resp = await alice.send(list_message(alice, msg.to_bytes(), lists))
        # §8.3.1.1 step 12: 202 Accepted after the plan is stored, with Server
        assert resp.status == 202
        assert (resp.headers.get("Server") or "").startswith("IM-serv/OMA1.0")
        copies = {}
        for member, ua in (("bob", bob), ("carol", carol)):
            (inc,) = await received(ua, 1)
            r = inc.request
            copies[member] = r
            # §8.3.2.1: R-URI (retargeted by the core to the contact) and To = the recipient,
            # the sender's From, the asserted originator, the IM feature tag
            assert r.uri.user == member  # type: ignore[union-attr]
            assert str(r.to_addr.uri) == f"sip:{member}@{DOMAIN}"
            assert str(r.from_addr.uri) == f"sip:alice@{DOMAIN}"
            assert r.headers.get("P-Asserted-Identity") == f"<sip:alice@{DOMAIN}>"
            assert "+g.oma.sip-im" in (r.headers.get("Accept-Contact") or "")
            mt = r.media_type
            assert mt is not None and mt.mime == "multipart/mixed" and mt.boundary
            text, history = parse_multipart(r.body, mt.boundary)
            # RFC 5438 §6/§8: the IMDNs come back through the exploder
            cpim = parse_cpim(text.body)
            assert cpim.payload == b"hello group"
            assert cpim.imdn_message_id == msg.imdn_message_id
            assert cpim.get("IMDN-Record-Route", IMDN_NS) == f"<{EXPLODER}>"
            assert cpim.get("Original-To", IMDN_NS) == f"<sip:{member}@{DOMAIN}>"
            # RFC 5365 §4.1 / RFC 5364: the list as history, without the bcc entry
            assert (history.headers.get("Content-Disposition") or "").startswith(
                "recipient-list-history")
            shown = parse_resource_lists(history.body)
            assert [(e.uri, e.copy_control) for e in shown.entries()] == [
                (f"sip:bob@{DOMAIN}", CopyControl.TO), (f"sip:carol@{DOMAIN}", CopyControl.CC)]
        # aggregation pending in the store until every member answered
        assert await srv.store.aggregations.count() == 1
        for member, ua in (("bob", bob), ("carol", carol)):
            assert (await ua.send(member_imdn(copies[member], member, ua))).status == 200
        (report,) = await received(alice, 1)
        r = report.request
        assert str(r.from_addr.uri) == EXPLODER and r.content_type == "message/cpim"
        # RFC 5438 §8.3: one aggregated IMDN, per-recipient status (the unknown bcc
        # recipient's 404 became a failure notification, §8.3.1.4)
        assert report_parts(report) == {f"sip:bob@{DOMAIN}": Status.DELIVERED,
                                        f"sip:carol@{DOMAIN}": Status.DELIVERED,
                                        f"sip:nobody@{DOMAIN}": Status.FAILED}

        async def done() -> bool:
            return await srv.store.aggregations.count() == 0

        await eventually(done, timeout=5)


async def test_ts2_reports_with_an_offline_member_deferred(store_url: str) -> None:
    async with server_on(store_url, exploder_ts2=0.5) as srv:
        alice, bob = await srv.ua("alice"), await srv.ua("bob")
        await alice.register()
        await bob.register()
        msg = im("to bob and offline carol")
        resp = await alice.send(list_message(alice, msg.to_bytes(), entries(
            ("bob", None), ("carol", None))))
        assert resp.status == 202
        (copy,) = await received(bob, 1)
        # no copyControl to/cc: the copy is the message itself
        assert copy.request.content_type == "message/cpim"

        async def deferred() -> bool:
            return await srv.store.deferred.count(f"carol@{DOMAIN}") == 1

        await eventually(deferred, timeout=5)  # carol's copy went to the DMF (PT-01 step 5)
        note = build_notification(parse_cpim(copy.request.body), NotificationType.DELIVERY,
                                  Status.DELIVERED, from_addr=CpimAddress(f"sip:bob@{DOMAIN}"),
                                  message_id=secrets.token_hex(6), date_time=now(),
                                  recipient_uri=f"sip:bob@{DOMAIN}")
        req = bob.request("MESSAGE", EXPLODER, body=note.to_bytes())
        req.headers.set("Content-Type", "message/cpim")
        assert (await bob.send(req)).status == 200
        # §8.3.1.3: Ts2 expires -> what was kept is reported
        (report,) = await received(alice, 1)
        assert report_parts(report) == {f"sip:bob@{DOMAIN}": Status.DELIVERED}
        # carol comes online: her deferred copy, then her IMDN after Ts2 is forwarded alone
        carol = await srv.ua("carol")
        await carol.register()
        (late,) = await received(carol, 1)
        note = build_notification(parse_cpim(late.request.body), NotificationType.DELIVERY,
                                  Status.DELIVERED, from_addr=CpimAddress(f"sip:carol@{DOMAIN}"),
                                  message_id=secrets.token_hex(6), date_time=now(),
                                  recipient_uri=f"sip:carol@{DOMAIN}")
        req = carol.request("MESSAGE", imdn_route(note)[0], body=note.to_bytes())
        req.headers.set("Content-Type", "message/cpim")
        assert (await carol.send(req)).status == 200
        (alone,) = await received(alice, 1)
        doc = parse_imdn(parse_cpim(alone.request.body).body)  # §8.3.1.2 step 1
        assert doc.recipient_uri == f"sip:carol@{DOMAIN}" and doc.status is Status.DELIVERED


async def test_pending_aggregation_survives_a_restart(store_url: str) -> None:
    async with server_on(store_url) as srv:
        alice, bob = await srv.ua("alice"), await srv.ua("bob")
        await bob.register()
        resp = await alice.send(list_message(alice, im("before restart").to_bytes(),
                                             entries(("bob", CopyControl.TO))))
        assert resp.status == 202
        (copy,) = await received(bob, 1)

        async def stored() -> bool:
            # the plan, then (every copy handed over) the aggregation alone
            rows = await srv.store.aggregations.load_all()
            return len(rows) == 1 and '"sent": true' in rows[0].state

        await eventually(stored, timeout=5)
    async with server_on(store_url) as srv:
        alice, bob = await srv.ua("alice"), await srv.ua("bob")
        await alice.register()
        await bob.register()
        assert (await bob.send(member_imdn(copy.request, "bob", bob))).status == 200
        (report,) = await received(alice, 1)
        assert report_parts(report) == {f"sip:bob@{DOMAIN}": Status.DELIVERED}


async def test_bad_list_messages_are_refused_with_a_reason(store_url: str) -> None:
    async with server_on(store_url, exploder_max_recipients=2) as srv:
        alice = await srv.ua("alice", "tcp")
        bob = await srv.ua("bob")
        await bob.register()
        text = im("x").to_bytes()
        two = entries(("bob", None), ("carol", None))

        async def status(req: SipRequest) -> tuple[int, str]:
            resp = await alice.send(req)
            return resp.status, resp.headers.get("Warning") or ""

        # RFC 5365 §4: Require: recipient-list-message
        st, warning = await status(list_message(alice, text, two, require=False))
        assert st == 400 and "recipient-list-message" in warning
        # not multipart
        req = alice.request("MESSAGE", EXPLODER, body=b"hi",
                            headers=[("Require", "recipient-list-message")])
        assert (await status(req))[0] == 400
        # malformed XML, empty list, a non-SIP entry
        assert (await status(list_message(alice, text, b"<resource-lists")))[0] == 400
        st, warning = await status(list_message(alice, text, ResourceLists((ResourceList(),))))
        assert st == 400 and "empty" in warning
        st, warning = await status(list_message(alice, text, ResourceLists((ResourceList((
            Entry("mailto:bob@example.com"),)),))))
        assert st == 400 and "SIP" in warning
        # §8.3.1.1 step 8: above the local maximum -> 486 + Warning 102
        st, warning = await status(list_message(alice, text, entries(
            ("bob", None), ("carol", None), ("alice", None))))
        assert st == 486 and "102 too many recipients" in warning
        # a 1,000-entry list (40 KB): above the list size bound (32 KiB) -> 413; a
        # 10,000-entry one (400 KB) is above the SIP core's 64 KiB message bound and never
        # reaches the exploder (docs/server.md)
        big = ResourceLists((ResourceList(tuple(
            Entry(f"sip:user{i}@{DOMAIN}") for i in range(1_000))),))
        assert (await status(list_message(alice, text, big)))[0] == 413
        # the exploder takes MESSAGE only (no large message mode yet)
        assert (await alice.send(alice.request("INVITE", EXPLODER))).status == 405
        # nothing was stored or sent for any of them; a good one still works
        assert await srv.store.aggregations.count() == 0
        assert (await status(list_message(alice, text, entries(("bob", None)))))[0] == 202
        (got,) = await received(bob, 1)
        assert parse_cpim(got.request.body).payload == b"x"


async def test_plain_client_refusing_cpim_gets_the_text(store_url: str) -> None:
    def plain_only(inc: IncomingRequest) -> None:
        if inc.transaction_id is not None:
            # baresip's answer (RFC 3428 §11): text/plain only
            ok = inc.request.content_type == "text/plain"
            inc.reply(200 if ok else 415, headers=[] if ok else [("Accept", "text/plain")])

    async with server_on(store_url) as srv:
        alice = await srv.ua("alice")
        bob = await srv.ua("bob", answer=plain_only)
        await alice.register()
        await bob.register()
        resp = await alice.send(list_message(alice, im("plain please", ("negative-delivery",))
                                             .to_bytes(), entries(("bob", None))))
        assert resp.status == 202
        refused, plain = await received(bob, 2)
        assert refused.request.content_type == "message/cpim"
        assert plain.request.content_type == "text/plain"
        assert plain.request.body == b"plain please"
        assert plain.request.headers.get("P-Asserted-Identity") == f"<sip:alice@{DOMAIN}>"
