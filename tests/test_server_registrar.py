"""Registrar (RFC 3261 §10.3) through real UDP/TCP sockets with digest authentication."""

from __future__ import annotations

import time

from simpleim.sip.headers import Address
from test_server_helpers import DOMAIN, running_server


def _contacts(resp: object) -> list[Address]:
    return resp.contacts  # type: ignore[attr-defined,no-any-return]


async def test_register_challenge_then_ok_lists_binding() -> None:
    async with running_server() as srv:
        bob = await srv.ua("bob")
        # Without credentials: 401 with a digest challenge (RFC 3261 §10.3 step 3).
        first = await bob.register(auth=False)
        assert first.status == 401
        assert "Digest" in (first.headers.get("WWW-Authenticate") or "")
        resp = await bob.register(expires=600)
        assert resp.status == 200
        contacts = _contacts(resp)
        assert len(contacts) == 1
        assert str(contacts[0].uri) == bob.contact_uri
        assert 590 <= int(contacts[0].params.get("expires") or 0) <= 600
        # write before acknowledging: the store already holds it
        stored = await srv.store.get_bindings(f"bob@{DOMAIN}", time.time())
        assert [b.contact for b in stored] == [bob.contact_uri]


async def test_register_over_tcp() -> None:
    async with running_server() as srv:
        bob = await srv.ua("bob", transport="tcp")
        resp = await bob.register()
        assert resp.status == 200
        assert "transport=tcp" in str(_contacts(resp)[0].uri)


async def test_wrong_password_and_unknown_user_look_alike() -> None:
    async with running_server() as srv:
        mallory = await srv.ua("mallory")  # not in the store
        resp = await mallory.register()
        # challenged again (credentials rejected): same answer as for a wrong password
        assert resp.status == 401
        bob = await srv.ua("bob")
        bob.auth = type(bob.auth)("bob", "wrong")
        resp2 = await bob.register()
        assert resp2.status == 401
        assert resp.reason == resp2.reason


async def test_register_for_someone_else_is_forbidden() -> None:
    async with running_server() as srv:
        alice = await srv.ua("alice")
        req = alice.request("REGISTER", f"sip:{DOMAIN}", to=f"<sip:bob@{DOMAIN}>",
                            headers=[("Expires", "60")])
        resp = await alice.send(req)
        assert resp.status == 403


async def test_expiry_zero_removes_and_star_removes_all() -> None:
    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob")
        call_id = "reg-fixed"
        assert (await bob.register(call_id=call_id)).status == 200
        other = "<sip:bob@127.0.0.1:5999>;expires=300"
        resp = await bob.register(contact=other, call_id=call_id)
        assert resp.status == 200 and len(_contacts(resp)) == 2
        # Expires: 0 on one contact removes just that binding
        resp = await bob.register(contact="<sip:bob@127.0.0.1:5999>", expires=0, call_id=call_id)
        assert [str(c.uri) for c in _contacts(resp)] == [bob.contact_uri]
        # "*" needs Expires: 0 (RFC 3261 §10.3 step 6)
        bad = await bob.register(contact="*", expires=60, call_id=call_id)
        assert bad.status == 400
        resp = await bob.register(contact="*", expires=0, call_id=call_id)
        assert resp.status == 200 and _contacts(resp) == []
        assert srv.server.location.lookup(f"bob@{DOMAIN}") == []


async def test_interval_too_brief() -> None:
    async with running_server(auth=False, min_expires=60) as srv:
        bob = await srv.ua("bob")
        resp = await bob.register(expires=5)
        assert resp.status == 423
        assert resp.headers.get("Min-Expires") == "60"
        # an expires above the maximum is lowered
        resp = await bob.register(expires=100000)
        assert resp.status == 200
        assert int(_contacts(resp)[0].params.get("expires") or 0) <= 3600


async def test_multiple_contacts_q_instance_tags_and_path() -> None:
    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob")
        contact = (
            '<sip:bob@127.0.0.1:5998>;q=0.5;+sip.instance="<urn:uuid:00000000-0000-0000-0000-'
            '000000000001>";reg-id=1;+g.oma.sip-im, <sip:bob@127.0.0.1:5997>;q=1.0'
        )
        resp = await bob.register(
            contact=contact,
            headers=[("Path", "<sip:edge.example.test;lr>"), ("Supported", "path")],
        )
        assert resp.status == 200
        contacts = _contacts(resp)
        assert [str(c.uri) for c in contacts] == ["sip:bob@127.0.0.1:5997",
                                                  "sip:bob@127.0.0.1:5998"]
        second = contacts[1].params
        assert second.get("q") == "0.5"
        assert second.get("reg-id") == "1"
        assert "+g.oma.sip-im" in second
        assert "urn:uuid" in (second.get("+sip.instance") or "")
        # RFC 3327 §5.3: Path stored and returned, Supported: path
        assert resp.headers.get_all("Path") == ["<sip:edge.example.test;lr>"]
        assert "path" in (resp.headers.get("Supported") or "")
        bindings = srv.server.location.lookup(f"bob@{DOMAIN}")
        assert bindings[1].path == ("<sip:edge.example.test;lr>",)
        assert bindings[1].instance is not None and bindings[1].reg_id == 1


async def test_query_without_contact_lists_bindings() -> None:
    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob")
        await bob.register()
        req = bob.request("REGISTER", f"sip:{DOMAIN}", to=f"<sip:bob@{DOMAIN}>",
                          call_id="query-1")
        req.headers.remove("Contact")
        resp = await bob.send(req)
        assert resp.status == 200 and len(_contacts(resp)) == 1


async def test_out_of_order_cseq_is_refused() -> None:
    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob")
        req = bob.request("REGISTER", f"sip:{DOMAIN}", to=f"<sip:bob@{DOMAIN}>",
                          call_id="same-call")
        req.headers.set("CSeq", "10 REGISTER")
        assert (await bob.send(req)).status == 200
        old = bob.request("REGISTER", f"sip:{DOMAIN}", to=f"<sip:bob@{DOMAIN}>",
                          call_id="same-call")
        old.headers.set("CSeq", "5 REGISTER")
        # RFC 3261 §10.3 step 7: same Call-ID, lower CSeq -> the update is not applied.
        assert (await bob.send(old)).status == 500


async def test_foreign_aor_and_bad_scheme() -> None:
    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob")
        req = bob.request("REGISTER", f"sip:{DOMAIN}", to="<sip:bob@elsewhere.test>")
        assert (await bob.send(req)).status == 404
        req = bob.request("REGISTER", f"sip:{DOMAIN}", to="<isbn:2983792873>")
        assert (await bob.send(req)).status == 400
        # REGISTER for another domain is not relayed
        req = bob.request("REGISTER", "sip:elsewhere.test", to="<sip:bob@elsewhere.test>")
        assert (await bob.send(req)).status == 403


async def test_bindings_survive_restart_via_store() -> None:
    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob")
        await bob.register()
        from simpleim.server.location import LocationService

        fresh = LocationService(srv.store)
        assert await fresh.load() == 1
        assert fresh.lookup(f"bob@{DOMAIN}")[0].contact == bob.contact_uri
