"""Extending a 1-1 chat to a group chat (OMA SIMPLE IM §7.1.1.6, Appendix L, RFC 3891
Replaces) through the server's focus, with the PF as a proxy and as a B2BUA; several users
in one REFER (§7.1.1.7 step 4, RFC 5368 multiple-refer)."""

from __future__ import annotations

from pathlib import Path

from client_helpers import wait_event
from simpleim.client import Account
from simpleim.client.events import (
    GroupMessageEvent,
    MessageEvent,
    ParticipantEvent,
    SessionEvent,
)
from simpleim.client.groupchat import GroupChat
from simpleim.client.session import ChatSession
from simpleim.content.resource_lists import parse_resource_lists
from simpleim.sip.message import SipRequest
from simpleim.sip.multipart import parse_multipart
from simpleim.sip.replaces import Replaces, split_replaces_uri
from simpleim.store.history import ItemKind
from test_server_conference import _joined, trio
from waiting import wait_until
from wire import SipWire


def _chat_of(account: Account) -> ChatSession:
    chats = [s for s in account.sessions.values()
             if isinstance(s, ChatSession) and not isinstance(s, GroupChat)]
    assert len(chats) == 1
    return chats[0]


async def _one_to_one(alice: Account, bob: Account) -> tuple[ChatSession, ChatSession]:
    a_chat = await alice.chats.start("bob")
    await wait_event(bob, lambda e: isinstance(e, SessionEvent) and e.kind == "chat"
                     and e.state == "established")
    b_chat = _chat_of(bob)
    assert a_chat.dialog is not None and b_chat.dialog is not None
    return a_chat, b_chat


def _listed(wire: SipWire) -> list[str]:
    invite = next(r for r in wire.requests("INVITE")
                  if str(r.uri).startswith("sip:Conference-Factory@"))
    mt = invite.media_type
    assert mt is not None and mt.boundary
    part = next(p for p in parse_multipart(invite.body, mt.boundary)
                if p.content_type == "application/resource-lists+xml")
    return [e.uri for e in parse_resource_lists(part.body).recipients()]


async def _extended(wires: list[SipWire], accounts: list[Account], a_chat: ChatSession,
                    b_chat: ChatSession) -> None:
    """alice extends her chat with bob to carol: the wire of all three."""
    alice, bob, carol = accounts
    a_w, b_w, _ = wires
    assert a_chat.dialog is not None and b_chat.dialog is not None
    group = await alice.groups.extend(a_chat, ["carol"])
    assert group.replaced == a_chat.session_id
    # the recipient list: bob with the Replaces of alice's dialog as bob would see it
    # (to-tag = bob's local tag = alice's remote tag), and carol
    listed = _listed(a_w)
    assert listed[1] == "sip:carol@example.test"
    assert split_replaces_uri(listed[0]) == ("sip:bob@example.test", Replaces(
        a_chat.dialog.call_id, a_chat.dialog.remote_tag, a_chat.dialog.local_tag))
    # the focus's INVITE to bob replaces bob's 1-1 dialog, as bob's side names it
    invite = await b_w.request("INVITE", "in", where=lambda r: bool(r.headers.get("Replaces")))
    assert invite.headers.get("Replaces") == (
        f"{b_chat.dialog.call_id};to-tag={b_chat.dialog.local_tag}"
        f";from-tag={b_chat.dialog.remote_tag}")
    assert "replaces" in [t.lower() for t in invite.require]
    assert "isfocus" in (invite.headers.get("Contact") or "")
    await wait_until(lambda: [r for r in b_w.responses("INVITE", 200)
                              if r.call_id == invite.call_id], 10, what="bob's 200")
    # bob's client BYEs the old 1-1 session, and alice's ends with it
    bye = await b_w.request("BYE", where=lambda r: r.call_id == b_chat.dialog.call_id)
    assert bye.call_id == b_chat.dialog.call_id
    await a_w.request("BYE", "in", where=lambda r: r.call_id == a_chat.dialog.call_id)
    await wait_until(lambda: a_chat.ended.is_set() and b_chat.ended.is_set(), 10,
                     what="the 1-1 sessions ended")
    # the chat goes on as the group: bob's group chat replaced his 1-1 one; carol is in
    b_group = await _joined(bob)
    assert b_group.replaced == b_chat.session_id
    await _joined(carol)
    await wait_event(alice, lambda e: isinstance(e, ParticipantEvent)
                     and e.participant == "sip:bob@example.test" and e.status == "connected")
    await b_group.send("hi both")
    for who in (alice, carol):
        ev = await wait_event(who, lambda e: isinstance(e, GroupMessageEvent)
                              and e.text == "hi both")
        assert isinstance(ev, GroupMessageEvent) and ev.sender == "sip:bob@example.test"


async def test_extend_a_one_to_one_chat_through_the_proxy(tmp_path: Path) -> None:
    async with trio(tmp_path) as (_srv, accounts, wires):
        a_chat, b_chat = await _one_to_one(accounts[0], accounts[1])
        # end to end: both sides name the same dialog
        assert a_chat.call_id == b_chat.call_id
        await _extended(wires, accounts, a_chat, b_chat)


async def test_extend_translates_the_dialog_of_the_b2bua(tmp_path: Path) -> None:
    """PO-00 B2BUA: alice's dialog is her leg with the server; the focus names bob's leg
    (its Call-ID and tags) in the Replaces of bob's INVITE."""
    async with trio(tmp_path, pf_media="b2bua") as (_srv, accounts, wires):
        a_chat, b_chat = await _one_to_one(accounts[0], accounts[1])
        assert a_chat.call_id != b_chat.call_id                # two legs
        await _extended(wires, accounts, a_chat, b_chat)


async def test_replaces_of_an_unknown_dialog_is_481(tmp_path: Path) -> None:
    """RFC 3891 §3: bob has no such 1-1 chat -> 481; carol still joins."""
    async with trio(tmp_path) as (_srv, (alice, bob, carol), (_a_w, b_w, _c_w)):
        a_chat, b_chat = await _one_to_one(alice, bob)
        await b_chat.end("gone")
        await wait_until(lambda: a_chat.ended.is_set(), 10, what="1-1 ended")
        stale = Replaces(a_chat.call_id, "nope", "nada")
        group = await alice.groups.start([stale.in_uri("sip:bob@example.test"), "carol"])
        await _joined(carol)
        refused = await b_w.response("INVITE", 481)
        assert refused.status == 481
        assert group.dialog is not None


async def test_multiple_refer_adds_several_users(tmp_path: Path) -> None:
    """§7.1.1.7 step 4 / §7.2.1.7 step 3b: one REFER, Refer-To a cid: of its resource-lists
    body; the focus invites each listed user."""
    async with trio(tmp_path, conference_remaining_participants=1) as (
            _srv, (alice, bob, carol), (a_w, _b_w, c_w)):
        chat = await alice.groups.start(["bob"])
        await _joined(bob)
        # a user already in and one new: only carol is invited
        assert await chat.add("bob", "carol") == 202
        refer = a_w.requests("REFER")[-1]
        refer_to = refer.headers.get("Refer-To") or ""
        assert refer_to.startswith("<cid:")
        assert refer.headers.get("Content-ID") == "<" + refer_to[5:-1] + ">"
        assert [t.lower() for t in refer.require] == ["multiple-refer", "norefersub"]
        assert refer.headers.get("Refer-Sub") == "false"
        assert [e.uri for e in parse_resource_lists(refer.body).recipients()] == [
            "sip:bob@example.test", "sip:carol@example.test"]
        accepted = await a_w.response("REFER", 202, direction="in")
        assert accepted.headers.get("Refer-Sub") == "false"
        await _joined(carol)
        invite = c_w.requests("INVITE", "in")[-1]
        assert invite.headers.get("Referred-By") == "<sip:alice@example.test>"
        # no implicit subscription: no refer NOTIFY
        assert not [r for r in a_w.requests("NOTIFY", "in")
                    if r.headers.get("Event") == "refer"]


async def test_recording_a_one_to_one_chat_by_extending_it(tmp_path: Path) -> None:
    """C-CH-01 §13.1.1 1a: the server does not relay alice's 1-1 session (proxy), so she
    extends it to a conference listing sip:History@DOMAIN; the CHF records the conference
    for her (step 1b) - bob's side is swapped by Replaces, no other participant."""
    async with trio(tmp_path) as (srv, (alice, bob, _carol), (a_w, b_w, _c_w)):
        a_chat, b_chat = await _one_to_one(alice, bob)
        await a_chat.send("not recorded")
        assert await alice.history.record(a_chat) == 404        # not in the media path
        group = await alice.groups.extend(
            a_chat, ["sip:History@example.test;historyfilename=our%20talk"])
        listed = _listed(a_w)
        assert listed[1] == "sip:History@example.test;historyfilename=our%20talk"
        assert split_replaces_uri(listed[0])[0] == "sip:bob@example.test"
        invite = await b_w.request("INVITE", "in",
                                   where=lambda r: bool(r.headers.get("Replaces")))
        assert b_chat.dialog is not None
        assert (invite.headers.get("Replaces") or "").startswith(b_chat.dialog.call_id + ";")
        b_group = await _joined(bob)
        await wait_until(lambda: b_chat.ended.is_set(), 10, what="bob's 1-1 ended")
        await group.send("recorded")
        await wait_event(bob, lambda e: isinstance(e, GroupMessageEvent)
                         and e.text == "recorded")
        await b_group.send("me too")
        await wait_event(alice, lambda e: isinstance(e, GroupMessageEvent)
                         and e.text == "me too")
        # C-CH-02: stopped like any conference recording, by REFER method=BYE
        assert await alice.history.record(group, start=False) == 202
        await group.send("after")
        await wait_event(bob, lambda e: isinstance(e, GroupMessageEvent) and e.text == "after")
        focus = srv.roles.focus  # type: ignore[union-attr]
        conf_uri = focus.conferences[0].uri
        # the CHF is no participant: alice and bob only
        assert {p.uri for p in focus.conferences[0].participants} == {
            "sip:alice@example.test", "sip:bob@example.test"}
        await group.end()                       # the initiator leaves: released
        history = srv.store.history  # type: ignore[union-attr]

        async def closed() -> bool:
            found = await history.of("alice@example.test")
            return len(found) == 1 and found[0].ended_at is not None

        await wait_until(closed, what="alice's history closed")
        (rec,) = await history.of("alice@example.test")
        assert rec.peer == conf_uri.removeprefix("sip:")         # recorded under the conference
        assert rec.filename == "our talk"                        # E.5 historyfilename
        items = await history.items(rec.id)
        assert items[0].content.decode().startswith("INVITE sip:Conference-Factory@")
        texts = [i.text for i in items if i.kind is ItemKind.SEND]
        assert texts == ["recorded", "me too"]
        assert await history.of("bob@example.test") == []


async def test_multiple_refer_notifies_each_outcome(tmp_path: Path) -> None:
    """§7.2.1.7 step 10: a multiple-refer REFER with the implicit subscription: one 100,
    then one message/sipfrag NOTIFY per invitee, the last one terminating it."""
    async with trio(tmp_path, conference_remaining_participants=1) as (
            _srv, (alice, bob, carol), (a_w, _b_w, _c_w)):
        chat = await alice.groups.start(["bob"])
        await _joined(bob)
        assert chat.dialog is not None
        body = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
                b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list>'
                b'<entry uri="sip:carol@example.test"/><entry uri="sip:dave@example.test"/>'
                b'</list></resource-lists>')
        resp = await alice.ua.in_dialog(chat.dialog, "REFER", headers=(
            ("Refer-To", "<cid:list1@alice>"), ("Require", "multiple-refer"),
            ("Content-ID", "<list1@alice>")), body=body,
            content_type="application/resource-lists+xml")
        assert resp.status == 202 and resp.headers.get("Refer-Sub") is None
        await _joined(carol)

        def frags() -> list[SipRequest]:
            return [r for r in a_w.requests("NOTIFY", "in") if r.headers.get("Event") == "refer"]

        await wait_until(lambda: len(frags()) == 3, 10, what="three refer NOTIFYs")
        first, *finals = frags()
        assert first.body.startswith(b"SIP/2.0 100")
        assert (first.headers.get("Subscription-State") or "").startswith("active")
        assert all((r.headers.get("Content-Type") or "").startswith("message/sipfrag")
                   for r in finals)
        statuses = sorted(int(r.body.split()[1]) for r in finals)
        assert statuses[0] == 200 and statuses[1] >= 400          # carol in, dave not online
        assert (finals[0].headers.get("Subscription-State") or "").startswith("active")
        assert (finals[1].headers.get("Subscription-State") or "").startswith("terminated")


async def test_only_the_peer_may_replace_a_chat(tmp_path: Path) -> None:
    """RFC 3891 §6: carol names alice and bob's dialog - bob answers 481 (the inviter in
    Referred-By is not his peer) and his chat with alice goes on."""
    async with trio(tmp_path) as (_srv, (alice, bob, carol), (_a_w, b_w, _c_w)):
        a_chat, b_chat = await _one_to_one(alice, bob)
        assert a_chat.dialog is not None
        stolen = Replaces.of_dialog(a_chat.dialog.call_id, a_chat.dialog.local_tag,
                                    a_chat.dialog.remote_tag)
        await carol.groups.start([stolen.in_uri("sip:bob@example.test"), "alice"])
        invite = await b_w.request("INVITE", "in",
                                   where=lambda r: bool(r.headers.get("Replaces")))
        assert invite.headers.get("Referred-By") == "<sip:carol@example.test>"
        assert (await b_w.response("INVITE", 481)).call_id == invite.call_id
        await b_chat.send("still here")
        await wait_event(alice, lambda e: isinstance(e, MessageEvent)
                         and e.text == "still here")
        assert not b_chat.ended.is_set()
