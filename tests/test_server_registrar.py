"""Registrar (RFC 3261 §10.3) through real UDP/TCP sockets with digest authentication."""

from __future__ import annotations

import asyncio
import time

from simpleim.server.auth import Authenticator
from simpleim.server.config import ServerConfig
from simpleim.server.location import LocationService
from simpleim.server.registrar import Registrar
from simpleim.sip.auth import parse_challenge
from simpleim.sip.headers import Address
from simpleim.sip.message import SipRequest
from simpleim.store.model import Binding
from simpleim.transport.sip_addr import TransportAddr
from test_server_helpers import DOMAIN, running_server
from waiting import wait_until


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
        assert "path" in ", ".join(resp.headers.get_all("Supported"))
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


# ---------------------------------------------------------------------------------------
# RFC 3840 "pref" option tag, digest algorithms, RFC 3261 §10.3 details, enumeration.

_INSTANCE = '"<urn:uuid:00000000-0000-0000-0000-0000000000a1>"'


async def test_require_pref_with_oma_feature_tag_is_accepted() -> None:
    # OMA SIMPLE IM §5.2.1: REGISTER with Require: pref and +g.oma.sip-im; RFC 3840:
    # a registrar that stores feature tags supports "pref" (no 420).
    async with running_server() as srv:
        bob = await srv.ua("bob")
        contact = f"<{bob.contact_uri}>;+g.oma.sip-im;+sip.instance={_INSTANCE}"
        resp = await bob.register(contact=contact, headers=[("Require", "pref")])
        assert resp.status == 200
        assert resp.headers.get_all("Supported") == ["outbound", "path", "pref"]
        assert "+g.oma.sip-im" in _contacts(resp)[0].params
        [stored] = await srv.store.get_bindings(f"bob@{DOMAIN}", time.time())
        assert ("+g.oma.sip-im", None) in stored.params
        assert stored.instance == _INSTANCE
        # an option tag we do not implement is still refused (RFC 3261 §8.2.2.3)
        resp = await bob.register(headers=[("Require", "pref, foo-bar")])
        assert resp.status == 420 and resp.headers.get("Unsupported") == "foo-bar"


def _algorithms(resp: object) -> list[str]:
    values = resp.headers.get_all("WWW-Authenticate")  # type: ignore[attr-defined]
    return [parse_challenge(v).algorithm for v in values]


async def test_default_offers_md5_only() -> None:
    async with running_server() as srv:
        bob = await srv.ua("bob")
        first = await bob.register(auth=False)
        assert first.status == 401 and _algorithms(first) == ["MD5"]
        assert (await bob.register()).status == 200


async def test_sha256_enabled_first_in_order_of_preference() -> None:
    async with running_server(auth_algorithms=("SHA-256", "MD5")) as srv:
        bob = await srv.ua("bob")
        first = await bob.register(auth=False)
        # RFC 8760 §2.4: one challenge per algorithm, the preferred first
        assert _algorithms(first) == ["SHA-256", "MD5"]
        resp = await bob.register()
        assert resp.status == 200  # our DigestClient answers the SHA-256 challenge


async def test_md5_credentials_refused_when_only_sha256_offered() -> None:
    async with running_server(auth_algorithms=("SHA-256",)) as srv:
        bob = await srv.ua("bob")
        first = await bob.register(auth=False)
        assert _algorithms(first) == ["SHA-256"]
        assert (await bob.register()).status == 200


async def test_star_needs_expires_zero_and_must_be_alone() -> None:
    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob")
        assert (await bob.register(call_id="star")).status == 200
        # §10.3 step 6: "*" without an Expires header -> 400
        assert (await bob.register(contact="*", expires=None, call_id="star")).status == 400
        # "*" together with another contact -> 400
        resp = await bob.register(contact=f"*, <{bob.contact_uri}>", expires=0, call_id="star")
        assert resp.status == 400
        assert len(srv.server.location.lookup(f"bob@{DOMAIN}")) == 1
        # "*" with the stored Call-ID and a CSeq not higher than the stored one -> 500
        req = bob.request("REGISTER", f"sip:{DOMAIN}", to=f"<sip:bob@{DOMAIN}>",
                          call_id="star", headers=[("Expires", "0")])
        req.headers.set("Contact", "*")
        req.headers.set("CSeq", "1 REGISTER")
        assert (await bob.send(req)).status == 500
        # with another Call-ID every binding is removed
        resp = await bob.register(contact="*", expires=0, call_id="other")
        assert resp.status == 200 and _contacts(resp) == []


async def test_cseq_ordering_same_call_id_only() -> None:
    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob")

        def reg(call_id: str, cseq: int) -> SipRequest:
            req = bob.request("REGISTER", f"sip:{DOMAIN}", to=f"<sip:bob@{DOMAIN}>",
                              call_id=call_id, headers=[("Expires", "600")])
            req.headers.set("CSeq", f"{cseq} REGISTER")
            return req

        assert (await bob.send(reg("c1", 10))).status == 200
        # §10.3 step 7: same Call-ID and the same CSeq (not higher) -> 500
        assert (await bob.send(reg("c1", 10))).status == 500
        assert (await bob.send(reg("c1", 11))).status == 200
        # another Call-ID updates whatever its CSeq
        assert (await bob.send(reg("c2", 1))).status == 200
        [b] = srv.server.location.lookup(f"bob@{DOMAIN}")
        assert (b.call_id, b.cseq) == ("c2", 1)


async def test_contact_expires_param_overrides_expires_header() -> None:
    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob")
        keep = "<sip:bob@127.0.0.1:5991>;expires=600"
        resp = await bob.register(contact=keep, expires=0)
        assert resp.status == 200
        [c] = _contacts(resp)
        assert 590 <= int(c.params.get("expires") or 0) <= 600
        # the header applies to contacts without a parameter, the parameter wins
        both = f"<{bob.contact_uri}>, <sip:bob@127.0.0.1:5991>;expires=0"
        resp = await bob.register(contact=both, expires=300)
        [c] = _contacts(resp)
        assert str(c.uri) == bob.contact_uri
        assert 290 <= int(c.params.get("expires") or 0) <= 300
        # no parameter, no header: the configured default (capped by max_expires)
        resp = await bob.register(expires=None)
        assert 3590 <= int(_contacts(resp)[0].params.get("expires") or 0) <= 3600


async def test_423_only_below_one_hour() -> None:
    # §10.3 step 7: 423 only for 0 < expires < min(Min-Expires, 3600)
    async with running_server(auth=False, min_expires=7200, max_expires=9000) as srv:
        bob = await srv.ua("bob")
        resp = await bob.register(expires=1800)
        assert resp.status == 423 and resp.headers.get("Min-Expires") == "7200"
        assert srv.server.location.lookup(f"bob@{DOMAIN}") == []
        resp = await bob.register(expires=3600)
        assert resp.status == 200
        # Expires: 0 is never "too brief"
        assert (await bob.register(expires=0)).status == 200


async def test_200_lists_every_binding_with_remaining_expires_and_date() -> None:
    async with running_server(auth=False) as srv:
        alice = await srv.ua("alice")
        assert (await alice.register(contact="<sip:alice@127.0.0.1:5981>;expires=120",
                                     call_id="a1")).status == 200
        resp = await alice.register(contact="<sip:alice@127.0.0.1:5982>;expires=900",
                                    call_id="a2")
        got = {str(c.uri): int(c.params.get("expires") or -1) for c in _contacts(resp)}
        assert set(got) == {"sip:alice@127.0.0.1:5981", "sip:alice@127.0.0.1:5982"}
        assert 110 <= got["sip:alice@127.0.0.1:5981"] <= 120
        assert 890 <= got["sip:alice@127.0.0.1:5982"] <= 900
        assert (resp.headers.get("Date") or "").endswith("GMT")


async def test_same_contact_twice_in_one_request_processed_in_order() -> None:
    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob")
        twice = "<sip:bob@127.0.0.1:5990>;expires=120, <sip:bob@127.0.0.1:5990>;expires=0"
        resp = await bob.register(contact=twice)
        assert resp.status == 200 and _contacts(resp) == []


async def test_path_stored_but_echoed_only_with_supported_path() -> None:
    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob")
        edge = "<sip:edge.example.test;lr>"
        resp = await bob.register(headers=[("Path", edge)])
        assert resp.status == 200
        # RFC 3327 §5.3: no Supported: path -> the Path is not returned, but it is stored
        assert resp.headers.get_all("Path") == []
        [b] = srv.server.location.lookup(f"bob@{DOMAIN}")
        assert b.path == (edge,)
        resp = await bob.register(headers=[("Path", edge), ("Supported", "path")])
        assert resp.headers.get_all("Path") == [edge]


async def test_instance_and_reg_id_replace_the_flow_binding() -> None:
    # RFC 5626 §6: the same +sip.instance and reg-id replace the binding, even with
    # another contact URI (new port after a reconnect) and another Call-ID.
    async with running_server(auth=False) as srv:
        bob = await srv.ua("bob")
        first = f"<sip:bob@127.0.0.1:5971>;+sip.instance={_INSTANCE};reg-id=1"
        assert (await bob.register(contact=first, call_id="flow-a")).status == 200
        again = f"<sip:bob@127.0.0.1:5972>;+sip.instance={_INSTANCE};reg-id=1"
        resp = await bob.register(contact=again, call_id="flow-b")
        assert [str(c.uri) for c in _contacts(resp)] == ["sip:bob@127.0.0.1:5972"]
        # another reg-id is another flow of the same instance: both kept
        other = f"<sip:bob@127.0.0.1:5973>;+sip.instance={_INSTANCE};reg-id=2"
        resp = await bob.register(contact=other, call_id="flow-c")
        assert sorted(str(c.uri) for c in _contacts(resp)) == [
            "sip:bob@127.0.0.1:5972", "sip:bob@127.0.0.1:5973"]
        # unregistering by instance/reg-id with yet another URI removes that flow only
        gone = f"<sip:bob@127.0.0.1:5999>;+sip.instance={_INSTANCE};reg-id=1;expires=0"
        resp = await bob.register(contact=gone, call_id="flow-d")
        assert [str(c.uri) for c in _contacts(resp)] == ["sip:bob@127.0.0.1:5973"]


async def test_to_aor_domain_checks() -> None:
    async with running_server(auth=False, aliases=("im.example.test",)) as srv:
        bob = await srv.ua("bob")
        udp = srv.addr("udp")

        async def to(value: str) -> int:
            req = bob.request("REGISTER", f"sip:{DOMAIN}", to=value)
            return (await bob.send(req)).status

        # an alias and our own address name the served domain: same AOR
        assert await to("<sip:bob@IM.Example.Test>") == 200
        assert await to(f"<sip:bob@{udp.host}:{udp.port}>") == 200
        # §10.3 step 5: escaped characters are unescaped in the AOR
        assert await to(f"<sip:b%6Fb@{DOMAIN}>") == 200
        assert len(srv.server.location.lookup(f"bob@{DOMAIN}")) == 1
        # another domain, no user part, unknown scheme
        assert await to("<sip:bob@elsewhere.test>") == 404
        assert await to(f"<sip:{DOMAIN}>") == 404
        assert await to("<tel:+15551234>") == 400


async def test_register_does_not_reveal_which_users_exist() -> None:
    async with running_server() as srv:
        bob = await srv.ua("bob")
        ghost = await srv.ua("ghost")  # not in the store

        def shape(resp: object) -> tuple[object, ...]:
            values = resp.headers.get_all("WWW-Authenticate")  # type: ignore[attr-defined]
            challenges = []
            for v in values:
                ch = parse_challenge(v)
                challenges.append(sorted(
                    (p.name, p.value) for p in ch.params if p.name not in ("nonce", "opaque")))
            names = [n.lower() for n, _ in resp.headers]  # type: ignore[attr-defined]
            return resp.status, resp.reason, names, challenges  # type: ignore[attr-defined]

        # no credentials: identical answers
        assert shape(await bob.register(auth=False)) == shape(await ghost.register(auth=False))
        # wrong password of a known user vs any password of an unknown one
        bob.auth = type(bob.auth)("bob", "wrong")
        assert shape(await bob.register()) == shape(await ghost.register())
        # a known user authenticating for an unknown AOR: 403, the same as for a known one
        alice = await srv.ua("alice")
        for target in ("ghost", "carol"):
            req = alice.request("REGISTER", f"sip:{DOMAIN}", to=f"<sip:{target}@{DOMAIN}>")
            assert (await alice.send(req)).status == 403


class _CountingUsers:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.ha1s: dict[str, str] = {}

    async def get_ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        self.calls.append(username)
        return self.ha1s.get(username)

    async def user_exists(self, username: str) -> bool:
        return username in self.ha1s


async def test_authenticator_sees_new_users_and_new_passwords_at_once() -> None:
    """Issue 11 §4: a user added (or a password changed) while the server runs can register
    at once; known users' HA1 values are still cached (one store read within the TTL)."""
    from simpleim.sip.auth import answer_challenge, ha1

    users = _CountingUsers()
    now = [0.0]
    auth = Authenticator("example.test", users, clock=lambda: now[0], ha1_cache_ttl=30)
    first = await auth.check("REGISTER", [], proxy=False)
    [(header, value)] = first.headers
    assert header == "WWW-Authenticate" and parse_challenge(value).algorithm == "MD5"

    def creds(name: str, password: str, nc: int) -> str:
        return str(answer_challenge(value, method="REGISTER", uri="sip:example.test",
                                    username=name, password=password, cnonce=f"c{nc}",
                                    nc=nc))

    assert (await auth.check("REGISTER", [creds("ghost", "pw", 1)], proxy=False)).status == 401
    users.ha1s["ghost"] = ha1("ghost", "example.test", "pw", "MD5")    # `user add` meanwhile
    decision = await auth.check("REGISTER", [creds("ghost", "pw", 2)], proxy=False)
    assert decision.ok, decision.reason
    assert users.calls == ["ghost", "ghost"]
    assert (await auth.check("REGISTER", [creds("ghost", "pw", 3)], proxy=False)).ok
    assert users.calls == ["ghost", "ghost"]                           # cached
    users.ha1s["ghost"] = ha1("ghost", "example.test", "new", "MD5")   # `user add --update`
    assert (await auth.check("REGISTER", [creds("ghost", "new", 4)], proxy=False)).ok
    assert not (await auth.check("REGISTER", [creds("ghost", "pw", 5)], proxy=False)).ok


class _SlowStore:
    """A binding store whose writes wait until the test opens the gate (a PostgreSQL round
    trip that takes as long as the test wants); it records how many writes overlapped."""

    def __init__(self) -> None:
        self.saved: dict[str, list[Binding]] = {}
        self.gate = asyncio.Event()
        self.started = 0
        self.active = 0
        self.max_active = 0

    async def load_bindings(self) -> list[Binding]:
        return []

    async def replace_bindings(self, aor: str, bindings: list[Binding]) -> None:
        self.started += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        await self.gate.wait()
        self.saved[aor] = list(bindings)
        self.active -= 1

    async def purge_expired(self, now: float) -> int:
        return 0


async def test_concurrent_registers_of_one_aor_do_not_lose_updates() -> None:
    store = _SlowStore()
    location = LocationService(store)
    registrar = Registrar(ServerConfig(domain=DOMAIN), location,
                          is_local_domain=lambda uri: True)
    source = TransportAddr("udp", "127.0.0.1", 5999)

    def req(port: int) -> SipRequest:
        return SipRequest("REGISTER", f"sip:{DOMAIN}", [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{port}"),
            ("From", f"<sip:bob@{DOMAIN}>;tag=t{port}"), ("To", f"<sip:bob@{DOMAIN}>"),
            ("Call-ID", f"call-{port}"), ("CSeq", "1 REGISTER"),
            ("Contact", f"<sip:bob@127.0.0.1:{port}>"), ("Expires", "600"),
        ])

    tasks = [asyncio.ensure_future(registrar.handle(req(p), source))
             for p in (5961, 5962, 5963)]
    # all three REGISTERs reached the AOR's lock while the first write is held in the store
    await wait_until(lambda: store.started == 1, 5, what="the first binding write")
    entry = registrar._locks[f"bob@{DOMAIN}"]
    await wait_until(lambda: entry.users == 3, 5, what="three REGISTERs at the AOR lock")
    assert store.started == 1 and entry.lock.locked()
    store.gate.set()
    responses = await asyncio.gather(*tasks)
    assert [r.status for r in responses] == [200, 200, 200]
    assert store.started == 3 and store.max_active == 1      # one write at a time
    assert len(location.lookup(f"bob@{DOMAIN}")) == 3
    assert len(responses[-1].contacts) == 3
    assert registrar._locks == {}


async def test_registrar_responses_carry_a_to_tag() -> None:
    # RFC 3261 §8.2.6.2: the registrar (a UAS) tags To in its responses.
    async with running_server(auth=False, min_expires=60) as srv:
        bob = await srv.ua("bob")
        for resp in (await bob.register(), await bob.register(expires=5)):
            assert resp.status in (200, 423)
            assert resp.to_addr.tag
