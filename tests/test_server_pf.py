"""The Participating Function's checks on the wire (OMA SIMPLE IM §6.1.1.1, §6.1.2.1, App. E,
App. F, RFC 4028 §8): User-Agent policy (403 + Error-Info), SDP policy of IM INVITEs (488
with the supported sizes and contents), session and pager barring (403 + Warning 127 with
Allow and Server), invisibility (capability queries answered as for an unregistered user),
anonymity in stored copies (DM-05), session timers as a proxy (Session-Expires inserted,
422 + Min-SE) — on SQLite and on PostgreSQL (``store_url``)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest

from simpleim.content.poc_settings import ServiceSettings
from simpleim.server.participating import SessionPolicy, UserAgentPolicy
from simpleim.server.participating.policy import products
from simpleim.server.roles import SERVER_PRODUCT
from simpleim.server.settings import build_settings
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.sip.session_timer_proxy import ProxyTimerPolicy, proxy_request, proxy_response
from simpleim.store import open_store
from simpleim.store.system import SystemMessageRecord
from simpleim.transport.sip import IncomingRequest
from test_server_deferred import IM, message, publish, received, server_on
from test_server_helpers import DOMAIN, FAST_TIMERS, TestUA

LARGE = ("Accept-Contact", "*;+g.oma.sip-im.large-message")


def sdp(media: str = "m=message 9 TCP/MSRP *", *attrs: str) -> bytes:
    lines = ["v=0", "o=alice 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
             media, "a=path:msrp://127.0.0.1:9/abc;tcp", *attrs]
    return ("\r\n".join(lines) + "\r\n").encode()


def invite(ua: TestUA, to: str, body: bytes, *headers: tuple[str, str]) -> SipRequest:
    req = ua.request("INVITE", f"sip:{to}@{DOMAIN}", body=body, headers=[IM, *headers])
    req.headers.set("Content-Type", "application/sdp")
    return req


def warning(resp: SipResponse) -> str:
    return resp.headers.get("Warning") or ""


def assert_pf_answer(resp: SipResponse, status: int, invite: bool = True) -> None:
    """§6.1.1.1 / §6.1.2.2.2: Server (Appendix F.1) and, to an INVITE, Allow."""
    assert resp.status == status
    assert (resp.headers.get("Server") or "").startswith("IM-serv/OMA1.0")
    if invite:
        assert "MESSAGE" in resp.headers.get_all("Allow")
        assert "INVITE" in resp.headers.get_all("Allow")


# ---------------------------------------------------------------- pure policy units


def test_user_agent_policy_units() -> None:
    assert products("IM-client/OMA1.0 Acme-Talk5000/v1.01 (beta; x)") == [
        "IM-client/OMA1.0", "Acme-Talk5000/v1.01"]
    allow = UserAgentPolicy(allow=("IM-client/OMA1.0",))
    assert allow.refusal("IM-client/OMA1.0 simpleim/0.1") is None
    assert "IM-client/OMA0.9" in (allow.refusal("IM-client/OMA0.9") or "")
    assert allow.refusal(None) is not None
    deny = UserAgentPolicy(deny=("badclient",))
    assert deny.refusal("BadClient/2.0") is not None  # a name matches every version
    assert deny.refusal("GoodClient/2.0") is None
    assert UserAgentPolicy().refusal(None) is None


def test_session_policy_units() -> None:
    policy = SessionPolicy(max_size=1000, content_types=("text/plain", "message/*"))
    assert policy.refusal(sdp("m=message 9 TCP/MSRP *", "a=accept-types:message/cpim *")) \
        is None
    assert "m=audio" in (policy.refusal(sdp("m=audio 4000 RTP/AVP 0")) or "")
    assert policy.refusal(sdp("m=audio 0 RTP/AVP 0")) is None  # a disabled stream
    assert "image/png" in (policy.refusal(sdp(
        "m=message 9 TCP/MSRP *", "a=accept-types:image/png")) or "")
    assert "max-size" in (policy.refusal(sdp(
        "m=message 9 TCP/MSRP *", "a=accept-types:text/plain", "a=max-size:5000")) or "")
    assert "file size" in (policy.refusal(sdp(
        "m=message 9 TCP/MSRP *", "a=accept-types:message/cpim",
        'a=file-selector:name:"a.txt" type:text/plain size:2000')) or "")
    assert "malformed" in (policy.refusal(b"garbage") or "")
    caps = policy.capabilities("example.test").decode()
    assert "m=message 0 TCP/MSRP *" in caps and "a=max-size:1000" in caps


def test_proxy_session_timer_units() -> None:
    policy = ProxyTimerPolicy(session_expires=1800, min_se=120)
    req = SipRequest("INVITE", "sip:bob@example.test", [("Supported", "timer")])
    decision = proxy_request(req, policy, initial=True)
    # RFC 4028 §8.1: inserted (no refresher), Min-SE raised to ours
    assert decision.inserted and decision.interval == 1800
    assert req.headers.get("Session-Expires") == "1800" and req.headers.get("Min-SE") == "120"
    resp = SipResponse(200, "OK", [])
    proxy_response(resp, decision)
    # RFC 4028 §8.2: the UAS did not take part, the UAC supports it -> the UAC refreshes
    assert resp.headers.get("Session-Expires") == "1800;refresher=uac"
    assert "timer" in resp.headers.get_all("Require")
    low = SipRequest("INVITE", "sip:bob@example.test", [("Session-Expires", "100")])
    assert proxy_request(low, policy, initial=True).reject_min_se == 120
    high = SipRequest("UPDATE", "sip:bob@example.test",
                      [("Session-Expires", "7200;refresher=uac"), ("Min-SE", "3600")])
    decision = proxy_request(high, policy, initial=False)
    # lowered to ours, but never below the Min-SE of the request
    assert decision.interval == 7200 and high.headers.get("Min-SE") == "3600"
    plain = SipRequest("INVITE", "sip:bob@example.test", [])
    decision = proxy_request(plain, policy, initial=True)
    untouched = SipResponse(200, "OK", [])
    proxy_response(untouched, decision)  # the UAC does not support the timer: nothing
    assert "Session-Expires" not in untouched.headers


# ---------------------------------------------------------------- PO-01 on the wire


async def test_user_agent_policy_on_the_wire(store_url: str) -> None:
    async with server_on(store_url, pf_user_agent_allow=("IM-client/OMA1.0",),
                         pf_user_agent_deny=("IM-client/OMA1.0-broken",)) as srv:
        bob = await srv.ua("bob")
        await bob.register()
        alice = await srv.ua("alice")
        req = message(alice, "bob", b"hi")
        req.headers.set("User-Agent", "Acme-Talk/2.0")  # type: ignore[attr-defined]
        resp = await alice.send(req)  # type: ignore[arg-type]
        # PO-01 step 3: 403 with Error-Info (SHALL) and the reason in a 399 Warning
        assert_pf_answer(resp, 403, invite=False)
        info = resp.headers.get("Error-Info") or ""
        assert info.startswith("<data:text/plain") and "Acme-Talk" in info
        assert warning(resp).startswith(f"399 {DOMAIN} ") and "Acme-Talk/2.0" in warning(resp)
        req = message(alice, "bob", b"hi")
        req.headers.set("User-Agent", "IM-client/OMA1.0 simpleim/0.1")  # type: ignore[attr-defined]
        assert (await alice.send(req)).status == 200  # type: ignore[arg-type]
        (got,) = await received(bob, 1)
        assert got.request.body == b"hi"
        # the order of §6.1.1.1: the User-Agent (step 3) before the content (step 4)
        req = message(alice, "bob", b"x", "application/x-unknown")
        req.headers.set("User-Agent", "Acme-Talk/2.0")  # type: ignore[attr-defined]
        assert (await alice.send(req)).status == 403  # type: ignore[arg-type]
    async with server_on(store_url, pf_user_agent_deny=("acme-talk",),
                         pf_user_agent_error_info="https://example.test/clients") as srv:
        alice = await srv.ua("alice")
        req = message(alice, "bob", b"hi")
        req.headers.set("User-Agent", "Acme-Talk/3.0")  # type: ignore[attr-defined]
        resp = await alice.send(req)  # type: ignore[arg-type]
        assert resp.status == 403
        assert resp.headers.get("Error-Info") == "<https://example.test/clients>"


async def test_sdp_policy_488_with_supported_sizes_and_contents(store_url: str) -> None:
    async with server_on(store_url, pf_session_max_size=4096,
                         pf_session_content_types=("text/plain", "message/cpim",
                                                   "message/imdn+xml")) as srv:
        bob = await srv.ua("bob")
        await bob.register()
        alice = await srv.ua("alice")
        for body, why in (
            (sdp("m=audio 4000 RTP/AVP 0"), "m=audio RTP/AVP is not supported"),
            (sdp("m=message 9 TCP/MSRP *", "a=accept-types:application/x-exe"),
             "content application/x-exe is not supported"),
            (sdp("m=message 9 TCP/MSRP *", "a=accept-types:message/cpim",
                 "a=max-size:100000"), "max-size 100000 is above 4096"),
        ):
            resp = await alice.send(invite(alice, "bob", body))
            # PO-01 step 4b: 488 with the sizes and contents supported (399 Warning + SDP)
            assert_pf_answer(resp, 488)
            text = warning(resp)
            assert why in text and "max-size 4096" in text and "TCP/MSRP" in text
            assert resp.headers.get("Content-Type") == "application/sdp"
            assert b"m=message 0 TCP/MSRP *" in resp.body and b"a=max-size:4096" in resp.body
        # a conforming offer goes through to bob
        ok = sdp("m=message 9 TCP/MSRP *", "a=accept-types:message/cpim text/plain")
        resp = await alice.send(invite(alice, "bob", ok))
        assert resp.status == 200
        assert [i for i in await received(bob, 1, "INVITE")]


# ---------------------------------------------------------------- PT-01 barring


async def test_session_and_large_message_barring(store_url: str) -> None:
    async with server_on(store_url) as srv:
        bob = await srv.ua("bob")
        await bob.register()
        doc = build_settings(ServiceSettings(incoming_session_barring=True), "bob")
        assert (await bob.send(publish(bob, doc))).status == 200  # type: ignore[arg-type]
        alice = await srv.ua("alice")
        offer = sdp("m=message 9 TCP/MSRP *", "a=accept-types:message/cpim")
        resp = await alice.send(invite(alice, "bob", offer))
        # PT-01 step 1: isb -> 403 + Warning 127 (not 486/603: §6.1.2.1 names 403)
        assert_pf_answer(resp, 403)
        assert warning(resp) == f'399 {DOMAIN} "127 Service not authorised"'
        # ipab is off: a large message and a pager message still reach bob
        resp = await alice.send(invite(alice, "bob", offer, LARGE))
        assert resp.status == 200
        assert (await alice.send(message(alice, "bob", b"hi"))).status == 200  # type: ignore[arg-type]
        doc = build_settings(ServiceSettings(incoming_pager_barring=True), "bob")
        assert (await bob.send(publish(bob, doc))).status == 200  # type: ignore[arg-type]
        resp = await alice.send(invite(alice, "bob", offer, LARGE))
        assert_pf_answer(resp, 403)  # ipab bars large messages too
        resp = await alice.send(invite(alice, "bob", offer))
        assert resp.status == 200  # isb is off again (the whole document is replaced)


# ---------------------------------------------------------------- invisibility


async def test_invisible_user_looks_unregistered_to_capability_queries(
        store_url: str) -> None:
    async with server_on(store_url) as srv:
        bob = await srv.ua("bob")
        await bob.register()
        alice = await srv.ua("alice")

        async def options(ua: TestUA, to: str, from_user: str | None = None) -> int:
            req = ua.request("OPTIONS", f"sip:{to}@{DOMAIN}", from_user=from_user)
            return (await ua.send(req)).status

        assert await options(alice, "bob") == 200  # visible: bob answers
        unregistered = await options(alice, "carol")
        assert unregistered == 480
        doc = build_settings(ServiceSettings(visible=False), "bob")
        assert (await bob.send(publish(bob, doc))).status == 200  # type: ignore[arg-type]
        # App. E.1 vis-status false: the same answer as for carol, who is not registered
        req = alice.request("OPTIONS", f"sip:bob@{DOMAIN}")
        resp = await alice.send(req)
        assert resp.status == unregistered
        req = alice.request("SUBSCRIBE", f"sip:bob@{DOMAIN}", headers=[
            ("Event", "presence"), ("Expires", "600")])
        assert (await alice.send(req)).status == unregistered
        # bob's own devices still see each other
        other = await srv.ua("bob")
        assert await options(other, "bob") == 200
        # invisibility does not bar messages: they are delivered
        while not bob.received.empty():
            bob.received.get_nowait()
        assert (await alice.send(message(alice, "bob", b"still there"))).status == 200  # type: ignore[arg-type]
        (got,) = await received(bob, 1)
        assert got.request.body == b"still there"


# ---------------------------------------------------------------- anonymity (§14.3, DM-05)


async def test_anonymous_sender_stored_copy_has_no_asserted_identity(store_url: str) -> None:
    async with server_on(store_url) as srv:
        alice = await srv.ua("alice")
        resp = await alice.send(message(alice, "bob", b"guess who",  # type: ignore[arg-type]
                                        headers=(IM, ("Privacy", "id"))))
        assert_pf_answer(resp, 202, invite=False)  # deferred (PT-01 step 5), with Server
        (stored,) = await srv.store.deferred.pending(f"bob@{DOMAIN}")
        head = stored.request.decode().split("\r\n\r\n")[0]
        # DM-05 / RFC 3325 §7: the anonymous sender's asserted identity is not kept
        assert "p-asserted-identity" not in head.lower()
        assert "\r\nFrom: \"Anonymous\" <sip:anonymous@anonymous.invalid>" in head
        bob = await srv.ua("bob")
        await bob.register()
        (got,) = await received(bob, 1)
        assert "P-Asserted-Identity" not in got.request.headers
        assert "anonymous.invalid" in str(got.request.from_addr.uri)


# ---------------------------------------------------------------- RFC 4028 as a proxy


def _answer_no_timer(inc: IncomingRequest) -> None:
    if inc.transaction_id is None:
        return
    local = inc.local
    inc.reply(200, headers=[("Contact", f"<sip:uas@{local.hostport}>")], to_tag="t1")


async def test_session_timer_inserted_and_422(store_url: str) -> None:
    timers = replace(FAST_TIMERS, min_se=300.0)
    async with server_on(store_url, timers=timers) as srv:
        bob = await srv.ua("bob", answer=_answer_no_timer)
        await bob.register()
        alice = await srv.ua("alice")
        offer = sdp("m=message 9 TCP/MSRP *", "a=accept-types:message/cpim")
        resp = await alice.send(invite(alice, "bob", offer, ("Supported", "timer")))
        assert resp.status == 200
        (inc,) = await received(bob, 1, "INVITE")
        # RFC 4028 §8.1: Session-Expires inserted, Min-SE raised to ours
        assert inc.request.headers.get("Session-Expires") == "1800"
        assert inc.request.headers.get("Min-SE") == "300"
        # §8.2: bob did not take part, alice supports it -> alice refreshes
        assert resp.headers.get("Session-Expires") == "1800;refresher=uac"
        assert "timer" in resp.headers.get_all("Require")
        resp = await alice.send(invite(alice, "bob", offer, ("Session-Expires", "120")))
        # §8.1 / §6: below our minimum -> 422 with our Min-SE
        assert_pf_answer(resp, 422)
        assert resp.headers.get("Min-SE") == "300"
    async with server_on(store_url, pf_session_timer=False) as srv:
        bob = await srv.ua("bob", answer=_answer_no_timer)
        await bob.register()
        alice = await srv.ua("alice")
        resp = await alice.send(invite(alice, "bob", offer, ("Supported", "timer")))
        (inc,) = await received(bob, 1, "INVITE")
        assert "Session-Expires" not in inc.request.headers
        assert "Session-Expires" not in resp.headers


@pytest.mark.parametrize("product", [SERVER_PRODUCT])
def test_server_product_is_appendix_f(product: str) -> None:
    assert products(product)[0] == "IM-serv/OMA1.0"


# ---------------------------------------------------------------- settings documents


async def test_settings_unknown_elements_ignored_and_bad_values_refused(store_url: str) -> None:
    """App. E.1: unknown elements / attributes (and another enabler's service-id) are
    ignored; a value that is not an XML Schema boolean is a 400 with the reason in a 399
    Warning, and the stored settings stay as they were."""
    doc = (b'<?xml version="1.0"?><poc-settings xmlns="urn:oma:params:xml:ns:poc:poc-settings"'
           b' xmlns:ss="urn:oma:xml:im:service-settings" xmlns:x="urn:example:x">'
           b'<entity id="bob"><x:future a="1"/>'
           b'<ipab-settings service-id="IM" x:extra="y"><incoming-personal-alert-barring'
           b' active="true"/><x:more/></ipab-settings>'
           b'<isb-settings service-id="PoC"><incoming-session-barring active="true"/>'
           b'</isb-settings></entity></poc-settings>')
    async with server_on(store_url) as srv:
        bob = await srv.ua("bob")
        await bob.register()
        assert (await bob.send(publish(bob, doc))).status == 200  # type: ignore[arg-type]
        alice = await srv.ua("alice")
        resp = await alice.send(message(alice, "bob", b"hi"))  # type: ignore[arg-type]
        assert resp.status == 403  # the IM ipab applies
        offer = sdp("m=message 9 TCP/MSRP *", "a=accept-types:message/cpim")
        resp = await alice.send(invite(alice, "bob", offer))
        assert resp.status == 200  # the PoC isb is another enabler's: ignored
        bad = doc.replace(b'active="true"/><x:more/>', b'active="yes"/><x:more/>')
        resp = await bob.send(publish(bob, bad))  # type: ignore[arg-type]
        assert resp.status == 400 and "not a boolean" in warning(resp)
        resp = await alice.send(message(alice, "bob", b"hi"))  # type: ignore[arg-type]
        assert resp.status == 403  # unchanged: nothing was stored


# ---------------------------------------------------------------- System Messages (§5.4, Ts1)


async def test_system_message_and_ts1_block_until_answered(store_url: str) -> None:
    """§5.4: the MESSAGE on the wire; §15 Ts1 = 0 blocks at once; §6.1.1.1 step 2: 403 with
    Error-Info while the answer is due, also after a restart (the deadline is stored);
    the answer (a MESSAGE to sip:System@DOMAIN) lifts it."""
    async with server_on(store_url) as srv:
        assert srv.server.roles is not None
        system = srv.server.roles.system
        bob = await srv.ua("bob")
        await bob.register()
        await srv.store.system_messages.add(SystemMessageRecord(
            "sm1", f"bob@{DOMAIN}", "Please accept the new terms", "text/plain;charset=utf-8",
            time.time(), 0.0))
        assert await system.dispatch() == 1
        (got,) = await received(bob, 1)
        sm = got.request
        assert sm.headers.get("Accept-Contact") == "*;+g.oma.sip-im.system-message"
        assert str(sm.from_addr.uri) == f"sip:System@{DOMAIN}"
        assert sm.headers.get("P-Asserted-Identity") == f"<sip:System@{DOMAIN}>"
        assert (sm.headers.get("User-Agent") or "").startswith("IM-serv/OMA1.0")
        assert sm.body == b"Please accept the new terms"
        assert await system.dispatch() == 0  # sent once
        resp = await bob.send(message(bob, "carol", b"hi"))  # type: ignore[arg-type]
        assert_pf_answer(resp, 403, invite=False)
        assert "System" in (resp.headers.get("Error-Info") or "")
    async with server_on(store_url) as srv:
        bob = await srv.ua("bob")
        await bob.register()
        resp = await bob.send(message(bob, "carol", b"hi"))  # type: ignore[arg-type]
        assert resp.status == 403  # still due after the restart
        answer = bob.request("MESSAGE", f"sip:System@{DOMAIN}", body=b"accepted")
        resp = await bob.send(answer)
        assert_pf_answer(resp, 200, invite=False)
        resp = await bob.send(message(bob, "carol", b"hi"))  # type: ignore[arg-type]
        assert resp.status == 202  # carol is offline: deferred, bob is no longer blocked


def test_admin_system_message_queues(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    from simpleim.cli.main import main

    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["admin", "system-message", "bob", "Maintenance at 22:00", "--domain", DOMAIN,
                 "--respond-within", "30", "--db", url]) == 0
    assert "queued system message" in capsys.readouterr().out
    assert main(["admin", "system-message", f"bob@{DOMAIN}", "x" * 1301, "--db", url]) == 2
    assert "--url" in capsys.readouterr().err
    assert main(["admin", "system-message", f"bob@{DOMAIN}", "see the page", "--db", url,
                 "--url", "https://example.test/terms.html"]) == 0

    async def stored() -> list[SystemMessageRecord]:
        async with await open_store(url) as store:
            return await store.system_messages.of(f"bob@{DOMAIN}")

    first, second = asyncio.run(stored())
    assert first.ts1 == 30.0 and first.sent_at is None and first.body == "Maintenance at 22:00"
    assert second.content_type.startswith("message/external-body")
    assert 'URL="https://example.test/terms.html"' in second.content_type


# ---------------------------------------------------------------- Expires validity


async def test_expired_pager_message_is_refused_not_delivered_or_deferred(
        store_url: str) -> None:
    """PO-09 step 3 (originating, +g.oma.sip-im) and PT-01 step 4 (terminating, a plain
    MESSAGE): Date + Expires in the past -> 408 with the reason in a 399 Warning and Server;
    nothing reaches bob and nothing is stored for him while offline."""
    from email.utils import formatdate

    old = formatdate(time.time() - 3600, usegmt=True)
    fresh = formatdate(time.time(), usegmt=True)
    async with server_on(store_url) as srv:
        alice = await srv.ua("alice")
        for headers in ((IM, ("Date", old), ("Expires", "60")), (("Date", old),
                                                                 ("Expires", "60"))):
            resp = await alice.send(message(alice, "bob", b"stale",  # type: ignore[arg-type]
                                            headers=headers))
            assert_pf_answer(resp, 408, invite=False)
            assert "message expired" in warning(resp)
            assert warning(resp).startswith(f"399 {DOMAIN} ")
        assert await srv.store.deferred.pending(f"bob@{DOMAIN}") == []
        bob = await srv.ua("bob")
        await bob.register()
        # still valid (Date + Expires ahead), and Expires without Date (valid on receipt)
        for headers in ((IM, ("Date", fresh), ("Expires", "3600")), (IM, ("Expires", "0"))):
            resp = await alice.send(message(alice, "bob", b"fresh",  # type: ignore[arg-type]
                                            headers=headers))
            assert resp.status == 200
            (got,) = await received(bob, 1)
            assert got.request.body == b"fresh"
        assert bob.received.empty()
