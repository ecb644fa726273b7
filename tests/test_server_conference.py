"""The Controlling Function as conference focus (OMA SIMPLE IM §7.2): ad-hoc group chat from
an INVITE with a recipient list to sip:Conference-Factory@DOMAIN, the MSRP switch, the
conference event package (RFC 4575 over RFC 6665 SUBSCRIBE/NOTIFY), REFER add/remove
(RFC 3515 sipfrag NOTIFYs), leave and the release policy - asserted on the wire."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from client_helpers import client_config, running_server, wait_event
from simpleim.client import Account
from simpleim.client.events import (
    GroupMessageEvent,
    ImdnEvent,
    ParticipantEvent,
    SessionEvent,
)
from simpleim.client.groupchat import GroupChat
from simpleim.content.conference_info import (
    YOUROWN,
    ElementState,
    parse_conference_info,
)
from simpleim.content.resource_lists import parse_resource_lists
from simpleim.server.app import ImServer
from simpleim.sip.multipart import parse_multipart
from simpleim.transport.msrp import MsrpTransferError
from waiting import wait_until
from wire import SipWire


@contextlib.asynccontextmanager
async def trio(tmp: Path, **server: Any
               ) -> AsyncIterator[tuple[ImServer, list[Account], list[SipWire]]]:
    async with running_server(tmp, **server) as (srv, port):
        accounts = [Account(client_config(u, port, tmp, "tcp")) for u in
                    ("alice", "bob", "carol")]
        wires = [SipWire(a) for a in accounts]
        async with contextlib.AsyncExitStack() as stack:
            for a in accounts:
                await a.start()
                stack.push_async_callback(a.close)
            yield srv, accounts, wires


def _group(ev: object) -> bool:
    return isinstance(ev, SessionEvent) and ev.state == "established" and ev.kind == "group"


async def _joined(account: Account) -> GroupChat:
    ev = await wait_event(account, _group)
    assert isinstance(ev, SessionEvent)
    chat = account.sessions[ev.session_id]
    assert isinstance(chat, GroupChat)
    return chat


def _docs(wire: SipWire) -> list[tuple[str, Any]]:
    out = []
    for r in wire.requests("NOTIFY", "in"):
        if (r.headers.get("Event") or "").startswith("conference") and r.body:
            out.append((r.headers.get("Subscription-State") or "",
                        parse_conference_info(r.body)))
    return out


async def test_adhoc_group_chat_on_the_wire(tmp_path: Path) -> None:
    async with trio(tmp_path) as (srv, (alice, bob, carol), (a_w, b_w, c_w)):
        chat = await alice.groups.start(["bob", "carol"], subject="lunch")
        b_chat, c_chat = await _joined(bob), await _joined(carol)
        # the INVITE alice sent: factory URI, Require recipient-list-invite, SDP + list
        invite = a_w.requests("INVITE")[-1]
        assert str(invite.uri).startswith("sip:Conference-Factory@example.test")
        assert "recipient-list-invite" in [t.lower() for t in invite.require]
        mt = invite.media_type
        assert mt is not None and mt.mime == "multipart/mixed"
        parts = parse_multipart(invite.body, mt.boundary or "")
        assert [p.content_type for p in parts] == ["application/sdp",
                                                   "application/resource-lists+xml"]
        assert (parts[1].headers.get("Content-Disposition") or "").startswith("recipient-list")
        assert [e.uri for e in parse_resource_lists(parts[1].body).recipients()] == [
            "sip:bob@example.test", "sip:carol@example.test"]
        # the 200: Contact = the conference URI with isfocus and the IM tag (§7.2.1.1)
        ok = await a_w.response("INVITE", 200, direction="in")
        contact = ok.headers.get("Contact") or ""
        assert "sip:conf~" in contact and ";isfocus" in contact and "+g.oma.sip-im" in contact
        assert "Conference-Factory@example.test" in (ok.headers.get("P-Asserted-Identity")
                                                     or "")
        assert (ok.headers.get("Server") or "").startswith("IM-serv/OMA1.0")
        # the INVITEs bob and carol got: from the focus, on behalf of alice (§7.2.2.1)
        for wire in (b_w, c_w):
            inv = await wire.request("INVITE", "in")
            assert "alice@example.test" in (inv.headers.get("From") or "")
            assert "alice@example.test" in (inv.headers.get("P-Asserted-Identity") or "")
            assert "alice@example.test" in (inv.headers.get("Referred-By") or "")
            assert "isfocus" in (inv.headers.get("Contact") or "")
            assert "+g.oma.sip-im" in " ".join(inv.headers.get_all("Accept-Contact"))
            assert inv.headers.get("Subject") == "lunch"
        # the conference state is in the store (schema v7) before anything else
        conf_uri = srv.roles.focus.conferences[0].uri  # type: ignore[union-attr]
        stored = await srv.store.conferences.get(conf_uri)
        assert stored is not None and stored.status == "active"
        assert stored.creator == "sip:alice@example.test"
        # MSRP switch: alice's message reaches bob and carol with alice's CPIM From
        await wait_until(lambda: chat.subscribed.is_set() and b_chat.subscribed.is_set()
                         and c_chat.subscribed.is_set(), 10, what="subscriptions")
        mid = await chat.send("hello group")
        for acc in (bob, carol):
            ev = await wait_event(acc, lambda e: isinstance(e, GroupMessageEvent))
            assert isinstance(ev, GroupMessageEvent)
            assert ev.text == "hello group" and ev.message_id == mid
            assert ev.sender == "sip:alice@example.test" and ev.mode == "session"
            assert ev.to_json()["event"] == "group-message"
            assert ev.group.startswith("sip:conf~")
        # the delivery IMDNs of both go back to alice only
        got = [await wait_event(alice, lambda e: isinstance(e, ImdnEvent)) for _ in range(2)]
        assert {e.peer for e in got if isinstance(e, ImdnEvent)} == {  # type: ignore[attr-defined]
            "sip:bob@example.test", "sip:carol@example.test"}
        # bob's reply reaches alice and carol, CPIM From bob, To the conference
        await b_chat.send("hi all")
        for acc in (alice, carol):
            ev = await wait_event(acc, lambda e: isinstance(e, GroupMessageEvent)
                                  and e.text == "hi all")
            assert isinstance(ev, GroupMessageEvent) and ev.sender == "sip:bob@example.test"
        # NOTIFY bodies alice got: full state first (3 users, yourown on alice), versions up
        docs = _docs(a_w)
        assert docs and docs[0][1].state is ElementState.FULL
        first = docs[0][1]
        assert first.entity == conf_uri
        me = first.user("sip:alice@example.test")
        assert me is not None and (YOUROWN, "true") in me.extra_attributes
        versions = [d.version for _, d in docs]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)
        assert all(state.startswith("active;expires=") for state, _ in docs)


async def test_subscribe_refresh_unknown_event_and_unsubscribe(tmp_path: Path) -> None:
    async with trio(tmp_path) as (srv, (alice, bob, carol), (a_w, _b, _c)):
        chat = await alice.groups.start(["bob", "carol"])
        await _joined(bob)
        await _joined(carol)
        await wait_until(lambda: chat.subscribed.is_set(), 10, what="alice subscribed")
        sub = a_w.requests("SUBSCRIBE")[-1]
        assert sub.headers.get("Event") == "conference"
        ok = await a_w.response("SUBSCRIBE", 200, direction="in")
        assert ok.headers.get("Expires") == "3600" and ok.headers.get("Contact")
        # 489 for a package the focus does not serve (RFC 6665 §4.2.1.1)
        from simpleim.client.pager import build_request, new_tag
        req = build_request("SUBSCRIBE", target=chat.conference, from_uri=alice.config.uri,
                            from_tag=new_tag(), call_id=f"{new_tag()}@x",
                            contact=alice.contact, accept_contact=None,
                            extra=(("Event", "presence"), ("Expires", "60")))
        resp = await alice.ua.request(req)
        assert resp.status == 489 and resp.headers.get("Allow-Events") == "conference"
        # a refresh gets 200 and a NOTIFY with the full state again
        before = len(_docs(a_w))
        assert chat._sub is not None
        refresh = await alice.ua.in_dialog(chat._sub, "SUBSCRIBE", headers=(
            ("Event", "conference"), ("Expires", "600")))
        assert refresh.status == 200 and refresh.headers.get("Expires") == "600"
        await wait_until(lambda: len(_docs(a_w)) > before, 10, what="refresh NOTIFY")
        state, doc = _docs(a_w)[-1]
        assert doc.state is ElementState.FULL and state.startswith("active")
        # Expires: 0 -> a last NOTIFY, terminated (RFC 6665 §4.2.1.4)
        await chat.unsubscribe()
        last = await a_w.request("NOTIFY", "in", where=lambda r: (
            r.headers.get("Subscription-State") or "").startswith("terminated"))
        assert "reason=timeout" in (last.headers.get("Subscription-State") or "")
        assert srv.services is not None
        notifier = srv.services.notifier
        conf_uri = srv.roles.focus.conferences[0].uri  # type: ignore[union-attr]
        # alice's subscription is gone, bob's and carol's remain
        await wait_until(lambda: len(notifier.watches(conf_uri, "conference")) == 2, 5,
                         what="alice's subscription forgotten")


async def test_refer_add_remove_leave_and_release(tmp_path: Path) -> None:
    async with trio(tmp_path, conference_remaining_participants=1) as (
            srv, (alice, bob, carol), (a_w, b_w, c_w)):
        chat = await alice.groups.start(["bob"])
        b_chat = await _joined(bob)
        await wait_until(lambda: chat.subscribed.is_set(), 10, what="alice subscribed")
        # add carol by REFER (§7.1.1.7): 202, sipfrag NOTIFYs, carol invited and joined
        status = await chat.add("carol")
        assert status == 200
        refer = a_w.requests("REFER")[-1]
        assert refer.headers.get("Refer-To") == "<sip:carol@example.test>"
        accepted = await a_w.response("REFER", 202, direction="in")
        assert accepted.cseq.method == "REFER"
        frags = [r for r in a_w.requests("NOTIFY", "in") if r.headers.get("Event") == "refer"]
        assert frags[0].headers.get("Content-Type", "").startswith("message/sipfrag")
        assert frags[0].body.startswith(b"SIP/2.0 100")
        assert frags[-1].body.startswith(b"SIP/2.0 200")
        assert (frags[-1].headers.get("Subscription-State") or "").startswith("terminated")
        c_chat = await _joined(carol)
        ev = await wait_event(alice, lambda e: isinstance(e, ParticipantEvent)
                              and e.participant == "sip:carol@example.test"
                              and e.status == "connected")
        assert isinstance(ev, ParticipantEvent) and ev.method == "dialed-out"
        # the partial NOTIFY of carol's join names only carol
        partial = [d for _, d in _docs(a_w) if d.state is ElementState.PARTIAL]
        assert any([u.entity for u in d.users] == ["sip:carol@example.test"] for d in partial)
        # bob may not remove anyone (only the initiator, §7.2.1.8 step 1)
        assert await b_chat.remove("carol") == 403
        # alice removes bob: REFER method=BYE, bob gets BYE, the others a partial NOTIFY
        assert await chat.remove("bob") == 200
        assert a_w.requests("REFER")[-1].headers.get("Refer-To") == \
            "<sip:bob@example.test;method=BYE>"
        await b_w.request("BYE", "in")
        ev = await wait_event(carol, lambda e: isinstance(e, ParticipantEvent)
                              and e.participant == "sip:bob@example.test"
                              and e.status == "disconnected")
        assert isinstance(ev, ParticipantEvent) and ev.method == "booted"
        # carol leaves (BYE): only alice would be left -> released (§7.2.2.8 1d)
        await c_chat.leave()
        ended = await wait_event(alice, lambda e: isinstance(e, SessionEvent)
                                 and e.state == "ended")
        assert isinstance(ended, SessionEvent)
        terminated = await a_w.request("NOTIFY", "in", where=lambda r: (
            r.headers.get("Subscription-State") or "") == "terminated;reason=noresource"
            and r.headers.get("Event") == "conference")
        assert not terminated.body                    # §7.2.2.11: the subscription ends
        focus = srv.roles.focus  # type: ignore[union-attr]
        await wait_until(lambda: not focus.conferences, 10, what="released")
        assert c_w.requests("BYE")                    # carol's own BYE


async def test_initiator_leaving_releases_and_rejoin(tmp_path: Path) -> None:
    async with trio(tmp_path) as (srv, (alice, bob, carol), (_a, b_w, c_w)):
        chat = await alice.groups.start(["bob", "carol"])
        b_chat, c_chat = await _joined(bob), await _joined(carol)
        # carol leaves and rejoins with an INVITE to the conference URI (§7.2.1.5)
        await c_chat.leave()
        ev = await wait_event(bob, lambda e: isinstance(e, ParticipantEvent)
                              and e.participant == "sip:carol@example.test"
                              and e.status == "disconnected")
        assert isinstance(ev, ParticipantEvent) and ev.method == "departed"
        again = await carol.chats.start(b_chat.conference.split(";")[0])
        joined = await wait_event(bob, lambda e: isinstance(e, ParticipantEvent)
                                  and e.participant == "sip:carol@example.test"
                                  and e.status == "connected")
        assert isinstance(joined, ParticipantEvent) and joined.method == "dialed-in"
        await chat.send("still here?")
        got = await wait_event(carol, lambda e: isinstance(e, ImdnEvent) or hasattr(e, "text"))
        assert got is not None and again is not None
        # the initiator leaves: everybody is BYEd (§7.2.2.8 1a)
        await chat.leave()
        await b_w.request("BYE", "in")
        focus = srv.roles.focus  # type: ignore[union-attr]
        await wait_until(lambda: not focus.conferences, 10, what="released")
        stored = await srv.store.conferences.active()
        assert stored == []
        # rejoining a released conference: 403 + Warning 123
        from simpleim.client.session import SessionFailed
        try:
            await bob.chats.start(b_chat.conference.split(";")[0])
        except SessionFailed as exc:
            assert exc.status == 403
        else:
            raise AssertionError("rejoin of a released conference accepted")
        refused = await b_w.response("INVITE", 403, direction="in")
        assert "123 Session does not exist" in (refused.headers.get("Warning") or "")
        assert c_w.requests("INVITE")


async def test_unknown_conference_and_outsider_subscription(tmp_path: Path) -> None:
    from simpleim.client.pager import build_request, new_tag
    async with trio(tmp_path) as (_srv, (alice, bob, carol), (_a, _b, c_w)):
        # §11.2: a conference URI the focus does not know -> 404
        req = build_request("SUBSCRIBE", target="sip:conf~nothere@example.test",
                            from_uri=carol.config.uri, from_tag=new_tag(),
                            call_id=f"{new_tag()}@x", contact=carol.contact,
                            accept_contact=None, extra=(("Event", "conference"),))
        assert (await carol.ua.request(req)).status == 404
        # only participants may subscribe (§7.2.1.12 step 4): 403 + Warning 122
        chat = await alice.groups.start(["bob"])
        await _joined(bob)
        req = build_request("SUBSCRIBE", target=chat.conference, from_uri=carol.config.uri,
                            from_tag=new_tag(), call_id=f"{new_tag()}@x",
                            contact=carol.contact, accept_contact=None,
                            extra=(("Event", "conference"),))
        resp = await carol.ua.request(req)
        assert resp.status == 403 and "122" in (resp.headers.get("Warning") or "")
        # the factory takes INVITE only
        req = build_request("MESSAGE", target="sip:Conference-Factory@example.test",
                            from_uri=carol.config.uri, from_tag=new_tag(),
                            call_id=f"{new_tag()}@x", body=b"hi", content_type="text/plain")
        resp = await carol.ua.request(req)
        assert resp.status == 405 and resp.headers.get("Allow") == "INVITE"
        assert not c_w.requests("INVITE", "in")


async def test_cancel_by_the_initiator_cancels_the_invitations(tmp_path: Path) -> None:
    from simpleim.client.config import Policy
    async with running_server(tmp_path) as (srv, port):
        alice = Account(client_config("alice", port, tmp_path, "tcp"))
        bob = Account(client_config("bob", port, tmp_path, "tcp",
                                    policy=Policy(sessions="ask")))
        b_w, a_w = SipWire(bob), SipWire(alice)
        async with alice, bob:
            start = asyncio.ensure_future(alice.groups.start(["bob"]))
            ringing = await wait_event(bob, lambda e: isinstance(e, SessionEvent)
                                       and e.state == "invited")
            assert isinstance(ringing, SessionEvent) and ringing.kind == "group"
            start.cancel()                         # the initiator gives up: CANCEL (§7.2.2.4)
            with contextlib.suppress(asyncio.CancelledError):
                await start
            await a_w.response("INVITE", 487, direction="in")
            await b_w.request("CANCEL", "in")      # the focus cancels the member's INVITE
            cancelled = await wait_event(bob, lambda e: isinstance(e, SessionEvent)
                                         and e.state == "cancelled")
            assert isinstance(cancelled, SessionEvent)
            focus = srv.roles.focus  # type: ignore[union-attr]
            await wait_until(lambda: not focus.conferences, 10, what="released")
            assert await srv.store.conferences.active() == []


async def test_spoofed_cpim_from_is_not_switched(tmp_path: Path) -> None:
    from simpleim.content.cpim import CpimAddress, build_cpim
    async with trio(tmp_path) as (_srv, (alice, bob, carol), _w):
        chat = await alice.groups.start(["bob", "carol"])
        await _joined(bob)
        c_chat = await _joined(carol)
        forged = build_cpim(from_addr=CpimAddress("sip:bob@example.test"),
                            to=[CpimAddress(c_chat.conference)], body=b"forged by carol",
                            content_type="text/plain")
        # §7.2.3.1 / §7.2.3.3 step 1: not switched, and the SEND is answered 403
        with pytest.raises(MsrpTransferError) as refused:
            await c_chat.stream.send(forged.to_bytes(), "message/cpim")
        assert refused.value.status == 403
        await c_chat.send("honest carol")
        ev = await wait_event(alice, lambda e: isinstance(e, GroupMessageEvent))
        assert isinstance(ev, GroupMessageEvent)
        assert ev.text == "honest carol" and ev.sender == "sip:carol@example.test"
        assert chat.conference
