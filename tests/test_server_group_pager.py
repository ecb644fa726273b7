"""Group pager mode to pre-defined groups (OMA SIMPLE IM §8.3.1.1 step 2, §8.3.2.1 steps 4
and 7b; IMSpec-PMM-S-003 / PMM-S-005, CF-60 / CF-64): a MESSAGE to a group's URI is
exploded to its members through their terminating Participating Functions, the group's
identity asserted and the sender in Referred-By; the members' IMDNs are aggregated - on
the wire, on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets

from simpleim.client.xcap import GroupSpec, group_document
from simpleim.content.cpim import IMDN_NS, CpimAddress, build_cpim, parse_cpim
from simpleim.content.imdn import NotificationType, Status, build_notification, imdn_route
from simpleim.server.xdm.api import DocumentRef
from simpleim.server.xdm.usages import AUID_GROUPS
from simpleim.sip.message import SipRequest
from test_server_deferred import received, server_on
from test_server_exploder import EXPLODER, NOTIFY, now, report_parts
from test_server_helpers import DOMAIN, ServerHandle, TestUA, eventually

ALICE, BOB, CAROL = (f"sip:{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))
TEAM = f"sip:team@{DOMAIN}"


async def define(srv: ServerHandle, spec: GroupSpec) -> None:
    roles = srv.server.roles
    assert roles is not None
    await roles.xdm.documents.put(DocumentRef(AUID_GROUPS, ALICE, spec.name),
                                  group_document(spec, ALICE))


def group_message(ua: TestUA, sender: str, text: str, to: str = TEAM) -> SipRequest:
    msg = build_cpim(from_addr=CpimAddress(sender), to=[CpimAddress(to)], body=text.encode(),
                     content_type="text/plain; charset=utf-8", date_time=now(),
                     message_id=secrets.token_hex(6), disposition_notification=NOTIFY)
    req = ua.request("MESSAGE", to, body=msg.to_bytes(),
                     headers=[("Accept-Contact", "*;+g.oma.sip-im")])
    req.headers.set("Content-Type", "message/cpim")
    return req


def delivered(copy: SipRequest, member: str, ua: TestUA) -> SipRequest:
    """The member's delivery IMDN along imdn.IMDN-Route (RFC 5438 §6)."""
    note = build_notification(parse_cpim(copy.body), NotificationType.DELIVERY,
                              Status.DELIVERED, from_addr=CpimAddress(member),
                              message_id=secrets.token_hex(6), date_time=now(),
                              recipient_uri=member)
    (route,) = imdn_route(note)
    req = ua.request("MESSAGE", route, body=note.to_bytes())
    req.headers.set("Content-Type", "message/cpim")
    return req


async def test_message_to_a_predefined_group_on_the_wire(store_url: str) -> None:
    async with server_on(store_url) as srv:
        await define(srv, GroupSpec("team", TEAM, members=((ALICE, "Alice"), (BOB, "Bob"),
                                                            (CAROL, None))))
        alice, bob, carol = await srv.ua("alice"), await srv.ua("bob"), await srv.ua("carol")
        for ua in (alice, bob, carol):
            await ua.register()
        resp = await alice.send(group_message(alice, ALICE, "hello team"))
        # §8.3.1.1 step 12: 202 after the plan is stored
        assert resp.status == 202
        assert (resp.headers.get("Server") or "").startswith("IM-serv/OMA1.0")
        copies = {}
        for member, ua in ((BOB, bob), (CAROL, carol)):
            (inc,) = await received(ua, 1)
            r = inc.request
            copies[member] = r
            # §8.3.2.1 steps 2, 4a, 4b, 6: the member, the group asserted, the sender in
            # Referred-By, the IM feature tag; the IMDNs come back through the exploder
            assert str(r.to_addr.uri) == member
            assert str(r.from_addr.uri) == ALICE
            assert r.headers.get("P-Asserted-Identity") == f"<{TEAM}>"
            assert r.headers.get("Referred-By") == f"<{ALICE}>"
            assert "+g.oma.sip-im" in (r.headers.get("Accept-Contact") or "")
            assert r.content_type == "message/cpim"
            cpim = parse_cpim(r.body)
            assert cpim.payload == b"hello team"
            assert cpim.get("IMDN-Record-Route", IMDN_NS) == f"<{EXPLODER}>"
        for member, ua in ((BOB, bob), (CAROL, carol)):
            assert (await ua.send(delivered(copies[member], member, ua))).status == 200
        # one aggregated IMDN to alice - and no copy of her own message (§8.3.2.1 7b)
        (report,) = await received(alice, 1)
        assert str(report.request.from_addr.uri) == EXPLODER
        assert report_parts(report) == {BOB: Status.DELIVERED, CAROL: Status.DELIVERED}

        async def done() -> bool:
            return await srv.store.aggregations.count() == 0

        await eventually(done, timeout=5)


async def test_group_message_refusals(store_url: str) -> None:
    async with server_on(store_url) as srv:
        await define(srv, GroupSpec("team", TEAM, members=((ALICE, None), (BOB, None))))
        alice, bob, carol = await srv.ua("alice"), await srv.ua("bob"), await srv.ua("carol")
        for ua in (alice, bob, carol):
            await ua.register()
        # §8.3.1.1 step 5: carol is no member -> 403 + 127
        resp = await carol.send(group_message(carol, CAROL, "let me in"))
        assert resp.status == 403
        assert "127 Service not authorised" in (resp.headers.get("Warning") or "")
        # step 6: anonymity without <allow-anonymity> -> 403 + 119
        req = group_message(bob, BOB, "guess who")
        req.headers.add("Privacy", "id")
        resp = await bob.send(req)
        assert resp.status == 403
        assert "119 Anonymity not allowed" in (resp.headers.get("Warning") or "")
        # a URI that is neither a user nor a group: the user path (404 unknown)
        resp = await alice.send(group_message(alice, ALICE, "anyone?",
                                              to=f"sip:nogroup@{DOMAIN}"))
        assert resp.status == 404
        assert await srv.store.aggregations.count() == 0
