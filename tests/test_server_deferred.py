"""The IM application-server roles on the wire: deferral (PT-01 step 5, DM-05), msilo-style
delivery on registration, service settings (PUBLISH poc-settings, App. E), barring,
retrieval / deletion at sip:Deferred@ / sip:Delete@, expiry with failure IMDN (DM-09) —
on SQLite and on PostgreSQL (random schema: the shared ``store_url`` fixture)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from simpleim.content.cpim import CpimAddress, CpimDateTime, build_cpim, parse_cpim
from simpleim.content.imdn import parse_imdn
from simpleim.content.poc_settings import ServiceSettings
from simpleim.server.app import ImServer
from simpleim.server.config import ServerConfig
from simpleim.server.routing import (
    INITIAL_FILTER_CRITERIA,
    Role,
    Side,
    select_role,
    service_role,
)
from simpleim.server.settings import build_settings, parse_settings
from simpleim.store import open_store
from simpleim.transport.sip import IncomingRequest
from simpleim.transport.sip_addr import ListenSpec
from test_server_helpers import DOMAIN, FAST_TIMERS, PASSWORDS, ServerHandle, TestUA

IM = ("Accept-Contact", "*;+g.oma.sip-im")


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def server_on(url: str, clock: Callable[[], float] | None = None,
                    **config: object) -> AsyncIterator[ServerHandle]:
    store = await open_store(url)
    for user, password in PASSWORDS.items():
        if await store.get_user(user, DOMAIN) is None:
            await store.add_user(user, DOMAIN, password)
    config.setdefault("timers", FAST_TIMERS)
    cfg = ServerConfig(domain=DOMAIN, listen=(ListenSpec("udp", "127.0.0.1", 0),
                                              ListenSpec("tcp", "127.0.0.1", 0)),
                       db_url=url, **config)  # type: ignore[arg-type]
    server = ImServer(cfg, store, clock=clock) if clock else ImServer(cfg, store)
    bound = await server.start()
    handle = ServerHandle(server, store, {b.transport: b for b in bound})
    try:
        yield handle
    finally:
        for ua in handle.uas:
            await ua.close()
        await server.close()
        await store.close()


def cpim(text: str, *, notify: tuple[str, ...] = ()) -> bytes:
    from datetime import UTC, datetime

    return build_cpim(from_addr=CpimAddress(f"sip:alice@{DOMAIN}"),
                      to=[CpimAddress(f"sip:bob@{DOMAIN}")], body=text.encode(),
                      content_type="text/plain",
                      date_time=CpimDateTime.from_datetime(datetime.now(UTC).replace(
                          microsecond=0)),
                      message_id=secrets.token_hex(6),
                      disposition_notification=notify).to_bytes()


def message(ua: TestUA, to: str, body: bytes, ctype: str = "text/plain",
            headers: tuple[tuple[str, str], ...] = (IM,)) -> object:
    req = ua.request("MESSAGE", f"sip:{to}@{DOMAIN}", body=body, headers=list(headers))
    req.headers.set("Content-Type", ctype)
    return req


async def received(ua: TestUA, n: int, method: str = "MESSAGE") -> list[IncomingRequest]:
    out: list[IncomingRequest] = []
    while len(out) < n:
        inc = await ua.next_request(timeout=10)
        if inc.method == method:
            out.append(inc)
    return out


# ---------------------------------------------------------------- routing table (App. C)


def test_routing_table_is_appendix_c() -> None:
    tag = ["*;+g.oma.sip-im"]
    # C.2 originating: INVITE/MESSAGE/SUBSCRIBE/REFER with the IM tag -> PF
    for method in ("INVITE", "MESSAGE", "SUBSCRIBE", "REFER"):
        assert select_role(Side.ORIGINATING, method, tag) is Role.PARTICIPATING
        assert select_role(Side.TERMINATING, method, tag) is Role.PARTICIPATING
    # C.2 has no untagged MESSAGE row; C.3's NOTE routes plain MESSAGE to the IM server
    assert select_role(Side.ORIGINATING, "MESSAGE", []) is Role.CORE
    assert select_role(Side.TERMINATING, "MESSAGE", []) is Role.PARTICIPATING
    assert select_role(Side.TERMINATING, "INVITE", []) is Role.CORE
    assert select_role(Side.ORIGINATING, "PUBLISH", [], "poc-settings") is Role.SETTINGS
    assert service_role("Deferred") is Role.DEFERRED and service_role("DELETE") is Role.DELETE
    assert service_role("bob") is None
    assert all(c.cite for c in INITIAL_FILTER_CRITERIA)


# ---------------------------------------------------------------- settings document (App. E)


def test_settings_document_defaults_roundtrip_and_unknown_ignored() -> None:
    assert parse_settings(b'<poc-settings xmlns="urn:oma:params:xml:ns:poc:poc-settings"/>') \
        == ServiceSettings()
    s = ServiceSettings(incoming_pager_barring=True, visible=False, offline_delivery=True,
                        history_session=True)
    assert parse_settings(build_settings(s, "x")) == s
    doc = (b'<poc-settings xmlns="urn:oma:params:xml:ns:poc:poc-settings" '
           b'xmlns:ss="urn:oma:xml:im:service-settings" xmlns:o="urn:other">'
           b'<entity id="e"><o:unknown a="b"/><isb-settings service-id="PoC">'
           b'<incoming-session-barring active="true"/></isb-settings>'
           b'<ss:deferred-settings><ss:offline-delivery active="1" o:x="y"/>'
           b'</ss:deferred-settings></entity></poc-settings>')
    # another enabler's element (service-id PoC) and unknown elements are ignored
    assert parse_settings(doc) == ServiceSettings(offline_delivery=True)


# ---------------------------------------------------------------- deferral + delivery


async def test_offline_messages_are_deferred_then_delivered_in_order(store_url: str) -> None:
    async with server_on(store_url) as srv:
        alice = await srv.ua("alice")
        await alice.register()
        texts = [f"deferred {i} \u00e9\U0001f600".encode() for i in range(3)]
        for body in texts:
            resp = await alice.send(message(alice, "bob", body))  # type: ignore[arg-type]
            # PT-01 step 5 / DM-05: stored, then 202 Accepted (RFC 3428 §7), with Server
            assert resp.status == 202
            assert (resp.headers.get("Server") or "").startswith("IM-serv/OMA1.0")
        stored = await srv.store.deferred.pending(f"bob@{DOMAIN}")
        assert [m.request.split(b"\r\n\r\n", 1)[1] for m in stored] == texts
        assert all(m.sender == f"alice@{DOMAIN}" for m in stored)
        bob = await srv.ua("bob")
        assert (await bob.register()).status == 200
        got = await received(bob, 3)
        assert [g.request.body for g in got] == texts
        for g, m in zip(got, stored, strict=True):
            r = g.request
            assert str(r.from_addr.uri) == f"sip:alice@{DOMAIN}"
            assert r.headers.get("Date")  # DM-07: the receive time in the SIP headers
            assert r.headers.get("Deferred-Message-ID") == f"<sip:{m.id}@{DOMAIN}>"
        await _until_empty(srv, "bob")


async def _until_empty(srv: ServerHandle, user: str) -> None:
    from test_server_helpers import eventually

    async def empty() -> bool:
        return await srv.store.deferred.count(f"{user}@{DOMAIN}") == 0

    await eventually(empty, timeout=5)


async def test_registered_but_unreachable_contact_defers(store_url: str) -> None:
    def busy(inc: IncomingRequest) -> None:
        if inc.transaction_id is not None:
            inc.reply(480)

    async with server_on(store_url) as srv:
        bob = await srv.ua("bob", answer=busy)
        await bob.register()
        alice = await srv.ua("alice")
        resp = await alice.send(message(alice, "bob", b"are you there"))  # type: ignore[arg-type]
        assert resp.status == 202  # every contact answered 480 -> deferred
        assert await srv.store.deferred.count(f"bob@{DOMAIN}") == 1
        # is-composing is never deferred (RFC 3994: transient state)
        resp = await alice.send(message(  # type: ignore[arg-type]
            alice, "bob", b"<isComposing/>", "application/im-iscomposing+xml"))
        assert resp.status == 480
        bob.answer = lambda inc: inc.reply(200) if inc.transaction_id else None
        await bob.register()
        (got,) = await received(bob, 1)
        assert got.request.body == b"are you there"
        await _until_empty(srv, "bob")


async def test_unknown_user_is_404_not_stored(store_url: str) -> None:
    async with server_on(store_url) as srv:
        alice = await srv.ua("alice")
        resp = await alice.send(message(alice, "nobody", b"x"))  # type: ignore[arg-type]
        assert resp.status == 404
        assert await srv.store.deferred.count() == 0


async def test_expiry_sends_failure_imdn(store_url: str) -> None:
    clock = Clock()
    async with server_on(store_url, clock) as srv:
        alice = await srv.ua("alice")
        await alice.register()
        body = cpim("never read", notify=("negative-delivery",))
        resp = await alice.send(message(alice, "bob", body, "message/cpim",  # type: ignore[arg-type]
                                        headers=(IM, ("Expires", "60"))))
        assert resp.status == 202
        (stored,) = await srv.store.deferred.pending(f"bob@{DOMAIN}")
        assert stored.expires_at == pytest.approx(clock.now + 60)  # DM-05 step 6
        clock.now += 61
        assert srv.server.roles is not None
        assert await srv.server.roles.deferred.expire() == 1
        (report,) = await received(alice, 1)
        r = report.request
        assert str(r.from_addr.uri) == f"sip:Deferred@{DOMAIN}"
        note = parse_cpim(r.body)
        assert parse_imdn(note.body).status == "failed"  # DM-09
        assert await srv.store.deferred.count() == 0


async def test_expires_above_maximum_gets_the_default(store_url: str) -> None:
    clock = Clock()
    async with server_on(store_url, clock, deferred_default_expiry=100,
                         deferred_max_expiry=1000) as srv:
        alice = await srv.ua("alice")
        await alice.send(message(alice, "bob", b"x",  # type: ignore[arg-type]
                                 headers=(IM, ("Expires", "5000"))))
        (stored,) = await srv.store.deferred.pending(f"bob@{DOMAIN}")
        assert stored.expires_at == pytest.approx(clock.now + 100)


# ---------------------------------------------------------------- settings (PUBLISH)


def publish(ua: TestUA, body: bytes, *, target: str | None = None,
            ctype: str = "application/poc-settings+xml", event: str = "poc-settings",
            expires: int = 600) -> object:
    req = ua.request("PUBLISH", f"sip:{target or ua.user}@{DOMAIN}", body=body,
                     headers=[IM, ("Event", event), ("Expires", str(expires))])
    req.headers.set("Content-Type", ctype)
    return req


async def test_settings_publish_barring_and_restart(store_url: str) -> None:
    barred = build_settings(ServiceSettings(incoming_pager_barring=True), "bob")
    async with server_on(store_url) as srv:
        bob = await srv.ua("bob")
        await bob.register()
        resp = await bob.send(publish(bob, barred))  # type: ignore[arg-type]
        assert resp.status == 200 and resp.headers.get("SIP-ETag")
        assert resp.headers.get("Expires") == "600"
        alice = await srv.ua("alice")
        resp = await alice.send(message(alice, "bob", b"hi"))  # type: ignore[arg-type]
        # PT-01 step 1: incoming pager barring -> 403 + Warning 127
        assert resp.status == 403
        assert '"127 Service not authorised"' in (resp.headers.get("Warning") or "")
        # bad input
        resp = await bob.send(publish(bob, b"<poc-settings"))  # type: ignore[arg-type]
        assert resp.status == 400
        resp = await bob.send(publish(bob, barred, ctype="text/plain"))  # type: ignore[arg-type]
        assert resp.status == 415 and resp.headers.get("Accept") == \
            "application/poc-settings+xml"
        resp = await bob.send(publish(bob, barred, event="presence"))  # type: ignore[arg-type]
        assert resp.status == 489 and resp.headers.get("Allow-Events") == "poc-settings"
        resp = await bob.send(publish(bob, barred, target="alice"))  # type: ignore[arg-type]
        assert resp.status == 403
    # a restart keeps the settings (stored before the 200)
    async with server_on(store_url) as srv:
        bob = await srv.ua("bob")
        await bob.register()
        alice = await srv.ua("alice")
        resp = await alice.send(message(alice, "bob", b"hi"))  # type: ignore[arg-type]
        assert resp.status == 403


async def test_offline_delivery_publish_triggers_delivery(store_url: str) -> None:
    async with server_on(store_url) as srv:
        alice = await srv.ua("alice")
        assert (await alice.send(message(alice, "bob", b"queued"))).status == 202  # type: ignore[arg-type]
        # bob registers with a contact that refuses (kept), then publishes offline-delivery
        bob = await srv.ua("bob", answer=lambda i: i.reply(480) if i.transaction_id else None)
        await bob.register()
        (first,) = await received(bob, 1)
        assert first.request.body == b"queued"
        assert await srv.store.deferred.count() == 1
        bob.answer = lambda inc: inc.reply(200) if inc.transaction_id else None
        doc = build_settings(ServiceSettings(offline_delivery=True), "bob")
        assert (await bob.send(publish(bob, doc))).status == 200  # type: ignore[arg-type]
        (again,) = await received(bob, 1)
        assert again.request.body == b"queued"
        await _until_empty(srv, "bob")


# ---------------------------------------------------------------- Deferred@ / Delete@


SDP_RECVONLY = (b"v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                b"m=message 9 TCP/MSRP *\r\na=accept-types:message/cpim\r\n"
                b"a=path:msrp://127.0.0.1:9/x;tcp\r\na=recvonly\r\n")


async def test_retrieval_invite_checks(store_url: str) -> None:
    async with server_on(store_url) as srv:
        bob = await srv.ua("bob")
        req = bob.request("INVITE", f"sip:Deferred@{DOMAIN}", body=SDP_RECVONLY.replace(
            b"a=recvonly", b"a=sendrecv"), headers=[IM])
        req.headers.set("Content-Type", "application/sdp")
        resp = await bob.send(req)
        assert resp.status == 488  # DM-02: no recvonly
        req = bob.request("INVITE", f"sip:Deferred@{DOMAIN}", body=SDP_RECVONLY, headers=[IM])
        req.headers.set("Content-Type", "application/sdp")
        resp = await bob.send(req)
        # DM-03: nothing stored -> 488 + Warning "125 No messages"
        assert resp.status == 488 and '"125 No messages"' in (resp.headers.get("Warning") or "")


async def test_delete_by_refer(store_url: str) -> None:
    async with server_on(store_url) as srv:
        alice = await srv.ua("alice")
        await alice.register()
        for body in (b"one", b"two"):
            assert (await alice.send(message(alice, "bob", body))).status == 202  # type: ignore[arg-type]
        first, second = await srv.store.deferred.pending(f"bob@{DOMAIN}")
        # someone else's message -> 403
        req = alice.request("REFER", f"sip:Delete@{DOMAIN}", headers=[
            ("Refer-To", f"<sip:{first.id}@{DOMAIN}>")])
        resp = await alice.send(req)
        assert resp.status == 403 and "127" in (resp.headers.get("Warning") or "")
        bob = await srv.ua("bob", answer=lambda i: i.reply(480) if i.transaction_id else None)
        req = bob.request("REFER", f"sip:Delete@{DOMAIN}", headers=[
            ("Refer-To", f"<sip:{first.id}@{DOMAIN}>")])
        resp = await bob.send(req)
        assert resp.status == 200  # §12.2.2.7 step 2
        notify = (await received(bob, 1, "NOTIFY"))[0].request
        assert notify.headers.get("Event") == "refer"
        assert notify.body.startswith(b"SIP/2.0 200")
        assert [m.id for m in await srv.store.deferred.pending(f"bob@{DOMAIN}")] == [second.id]
        # delete all: Refer-To sip:Deferred@DOMAIN
        req = bob.request("REFER", f"sip:Delete@{DOMAIN}", headers=[
            ("Refer-To", f"<sip:Deferred@{DOMAIN}>"), ("Refer-Sub", "false")])
        assert (await bob.send(req)).status == 200
        assert await srv.store.deferred.count() == 0


async def test_delete_several_by_multiple_refer_sends_failure_imdn(store_url: str) -> None:
    """RFC 5368 multiple-refer to sip:Delete@ (§12.2.2.7): Refer-To a cid: pointing at a
    resource-lists body of Message-ID URIs; the named messages go, the others stay, and
    the one that asked for negative-delivery gets its failure IMDN (DM-09)."""
    async with server_on(store_url) as srv:
        alice = await srv.ua("alice")
        await alice.register()
        bodies = (cpim("one", notify=("negative-delivery",)), cpim("two"), cpim("three"))
        for body in bodies:
            resp = await alice.send(message(alice, "bob", body, "message/cpim"))  # type: ignore[arg-type]
            assert resp.status == 202
        first, second, third = await srv.store.deferred.pending(f"bob@{DOMAIN}")
        bob = await srv.ua("bob", answer=lambda i: i.reply(480) if i.transaction_id else None)
        entries = "".join(f'<entry uri="sip:{m.id}@{DOMAIN}"/>' for m in (first, third))
        lists = ('<?xml version="1.0" encoding="UTF-8"?>'
                 '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">'
                 f'<list>{entries}</list></resource-lists>').encode()
        req = bob.request("REFER", f"sip:Delete@{DOMAIN}", body=lists, headers=[
            ("Refer-To", "<cid:dellist@bob.invalid>"), ("Require", "multiple-refer"),
            ("Content-ID", "<dellist@bob.invalid>")])
        req.headers.set("Content-Type", "application/resource-lists+xml")
        assert (await bob.send(req)).status == 200
        notify = (await received(bob, 1, "NOTIFY"))[0].request
        assert notify.headers.get("Event") == "refer"
        assert notify.body.startswith(b"SIP/2.0 200")
        assert [m.id for m in await srv.store.deferred.pending(f"bob@{DOMAIN}")] == [second.id]
        (report,) = await received(alice, 1)
        assert str(report.request.from_addr.uri) == f"sip:Deferred@{DOMAIN}"
        assert parse_imdn(parse_cpim(report.request.body).body).status == "failed"


# ---------------------------------------------------------------- PF checks


async def test_pf_originating_content_policy_and_anonymity(store_url: str) -> None:
    async with server_on(store_url) as srv:
        bob = await srv.ua("bob")
        await bob.register()
        alice = await srv.ua("alice")
        resp = await alice.send(message(alice, "bob", b"x", "application/x-unknown"))  # type: ignore[arg-type]
        # PO-01 step 4a: 415 listing the supported types
        assert resp.status == 415 and "message/cpim" in resp.headers.get_all("Accept")
        resp = await alice.send(message(alice, "bob", b"secret admirer",  # type: ignore[arg-type]
                                        headers=(IM, ("Privacy", "id"),
                                                 ("P-Asserted-Identity",
                                                  f"<sip:alice@{DOMAIN}>"))))
        assert resp.status == 200
        (got,) = await received(bob, 1)
        assert "anonymous.invalid" in str(got.request.from_addr.uri)
        assert "P-Asserted-Identity" not in got.request.headers
    async with server_on(store_url, allow_anonymity=False) as srv:
        alice = await srv.ua("alice")
        resp = await alice.send(message(alice, "bob", b"x",  # type: ignore[arg-type]
                                        headers=(IM, ("Privacy", "id"))))
        assert resp.status == 403  # PO-09 step 2
        assert '"119 Anonymity not allowed"' in (resp.headers.get("Warning") or "")


async def test_store_keeps_what_it_acknowledged_across_restart(store_url: str) -> None:
    async with server_on(store_url) as srv:
        alice = await srv.ua("alice")
        assert (await alice.send(message(alice, "carol", b"persist"))).status == 202  # type: ignore[arg-type]
    async with server_on(store_url) as srv:
        carol = await srv.ua("carol")
        await carol.register()
        (got,) = await received(carol, 1)
        assert got.request.body == b"persist"
        await _until_empty(srv, "carol")


async def test_plain_client_refusing_cpim_gets_the_content(store_url: str) -> None:
    def plain_only(inc: IncomingRequest) -> None:
        if inc.transaction_id is None:
            return
        if inc.request.content_type == "message/cpim":
            inc.reply(415, headers=[("Accept", "text/plain")])  # like baresip
        else:
            inc.reply(200)

    async with server_on(store_url) as srv:
        alice = await srv.ua("alice")
        body = cpim("hello plain")
        assert (await alice.send(message(alice, "carol", body, "message/cpim"))).status == 202  # type: ignore[arg-type]
        carol = await srv.ua("carol", answer=plain_only)
        await carol.register()
        first, second = await received(carol, 2)
        assert first.request.content_type == "message/cpim"  # refused with 415
        assert second.request.content_type == "text/plain"
        assert second.request.body == b"hello plain"
        await _until_empty(srv, "carol")
