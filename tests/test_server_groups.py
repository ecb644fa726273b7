"""Pre-defined groups and chat rooms at the conference focus (OMA SIMPLE IM §7.2.1.3,
§7.2.1.4, §7.2.1.5, §7.2.2.3, §7.2.2.7-§7.2.2.9, §7.1.1.9, §7.1.1.10; checklist §31): the
group definitions of the Shared Group XDMS decide who starts, who is invited, who joins,
how many - asserted on the wire."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from client_helpers import wait_event
from simpleim.client import Account
from simpleim.client.events import GroupMessageEvent, ParticipantEvent, SessionEvent
from simpleim.client.groupchat import GroupChat
from simpleim.client.session import SessionFailed
from simpleim.client.xcap import GroupSpec, group_document
from simpleim.server.app import ImServer
from simpleim.server.controlling.conference import ConferenceLimits
from simpleim.server.controlling.predefined import (
    W_ISFOCUS_ASSIGNED,
    group_conference,
    has_isfocus,
    start_refusal,
)
from simpleim.server.xdm.api import DocumentRef
from simpleim.server.xdm.groups import parse_groups
from simpleim.server.xdm.usages import AUID_GROUPS
from simpleim.sip.message import parse_message
from test_server_conference import trio
from waiting import wait_until
from wire import SipWire

ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"
CAROL = "sip:carol@example.test"


async def define(srv: ImServer, spec: GroupSpec, owner: str = ALICE) -> None:
    """The group as ``simpleim group create`` writes it, stored in the XDMS."""
    await srv.roles.xdm.documents.put(DocumentRef(AUID_GROUPS, owner, spec.name),  # type: ignore[union-attr]
                                      group_document(spec, owner))


async def _joined(account: Account) -> GroupChat:
    ev = await wait_event(account, lambda e: isinstance(e, SessionEvent)
                          and e.state == "established" and e.kind == "group")
    assert isinstance(ev, SessionEvent)
    chat = account.sessions[ev.session_id]
    assert isinstance(chat, GroupChat)
    return chat


async def _refused(account: Account, wire: SipWire, uri: str, status: int) -> str:
    with pytest.raises(SessionFailed) as info:
        await account.groups.join(uri, timeout=10)
    assert info.value.status == status
    # the final response was received before join() raised: the last one is ours
    resp = wire.responses("INVITE", status, direction="in")[-1]
    return resp.headers.get("Warning") or ""


async def test_predefined_group_start_join_rejoin_on_the_wire(tmp_path: Path) -> None:
    async with trio(tmp_path) as (srv, (alice, bob, carol), (a_w, b_w, c_w)):
        await define(srv, GroupSpec("friends", "sip:friends@example.test",
                                    members=((ALICE, "Alice"), (BOB, "Bob"), (CAROL, None)),
                                    subject="weekend"))
        await define(srv, GroupSpec("closed", "sip:closed@example.test",
                                    members=((ALICE, "Alice"), (BOB, "Bob"))))
        # §7.2.1.3 step 3 / §7.2.2.3: carol is no member: may not start it -> 403 + 127
        warning = await _refused(carol, c_w, "sip:closed@example.test", 403)
        assert "127 Service not authorised" in warning
        focus = srv.roles.focus
        assert focus is not None and not focus.conferences
        # alice starts the group's session: the members are invited (§7.2.2.3)
        chat = await alice.groups.join("friends")
        b_chat, _c_chat = await _joined(bob), await _joined(carol)
        invite = a_w.requests("INVITE")[-1]
        assert str(invite.uri) == "sip:friends@example.test"
        ok = await a_w.response("INVITE", 200, direction="in")
        contact = ok.headers.get("Contact") or ""
        assert "sip:conf~" in contact and ";isfocus" in contact
        assert "friends@example.test" in (ok.headers.get("P-Asserted-Identity") or "")
        inv = await b_w.request("INVITE", "in")
        assert "alice@example.test" in (inv.headers.get("Referred-By") or "")
        assert "isfocus" in (inv.headers.get("Contact") or "")
        assert inv.headers.get("Subject") == "weekend"           # the group's subject
        conf_uri = focus.conferences[0].uri
        stored = await srv.store.conferences.get(conf_uri)
        assert stored is not None and '"group": "sip:friends@example.test"' in stored.state
        await wait_until(lambda: chat.subscribed.is_set() and b_chat.subscribed.is_set(), 10,
                         what="subscriptions")
        await chat.send("hello friends")
        ev = await wait_event(bob, lambda e: isinstance(e, GroupMessageEvent))
        assert isinstance(ev, GroupMessageEvent) and ev.sender == ALICE
        got = await wait_event(carol, lambda e: isinstance(e, GroupMessageEvent))
        assert isinstance(got, GroupMessageEvent) and got.text == "hello friends"
        # the initiator leaves: a group's session goes on (§7.2.2.8 1b, auto-release off)
        await chat.leave()
        ev = await wait_event(bob, lambda e: isinstance(e, ParticipantEvent)
                              and e.participant == ALICE and e.status == "disconnected")
        assert isinstance(ev, ParticipantEvent) and ev.method == "departed"
        assert focus.conferences and not b_w.requests("BYE", "in")
        assert not c_w.requests("BYE", "in")
        # a later INVITE to the group URI joins the running session (§7.2.1.3 step 9)
        again = await alice.groups.join("sip:friends@example.test")
        assert again.conference.split(";")[0].split(":")[1].split("@")[0] == \
            conf_uri.split(":")[1].split("@")[0]
        ev = await wait_event(bob, lambda e: isinstance(e, ParticipantEvent)
                              and e.participant == ALICE and e.status == "connected")
        assert isinstance(ev, ParticipantEvent) and ev.method == "dialed-in"
        assert len(focus.conferences) == 1
        # bob leaves and rejoins with the IM Session Identity (§7.1.1.9 / §7.2.1.5)
        await b_chat.leave()
        await wait_event(alice, lambda e: isinstance(e, ParticipantEvent)
                         and e.participant == BOB and e.status == "disconnected")
        back = await bob.groups.join(b_chat.conference.split(";")[0])
        ev = await wait_event(alice, lambda e: isinstance(e, ParticipantEvent)
                              and e.participant == BOB and e.status == "connected")
        await wait_until(back.subscribed.is_set, 10, what="bob subscribed again")
        await again.send("welcome back")
        got = await wait_event(bob, lambda e: isinstance(e, GroupMessageEvent)
                               and e.text == "welcome back")
        assert isinstance(got, GroupMessageEvent) and got.sender == ALICE


async def test_public_chat_room_join_by_anyone_and_max(tmp_path: Path) -> None:
    async with trio(tmp_path) as (srv, (alice, bob, carol), (a_w, b_w, c_w)):
        await define(srv, GroupSpec("lobby", "sip:lobby@example.test", members=((ALICE, None),),
                                    chat=True, invite_members=False, max_participants=2,
                                    blocked=(BOB,)))
        focus = srv.roles.focus
        assert focus is not None
        # alice opens the room: nobody is invited, the 200 comes at once (§7.2.1.3)
        room = await alice.groups.join("lobby")
        assert "sip:conf~" in room.conference
        assert not b_w.requests("INVITE", "in") and not c_w.requests("INVITE", "in")
        # §7.1.1.10: carol, no member, joins the public room (join-handling allow)
        c_room = await carol.groups.join("sip:lobby@example.test")
        ev = await wait_event(alice, lambda e: isinstance(e, ParticipantEvent)
                              and e.participant == CAROL and e.status == "connected")
        assert isinstance(ev, ParticipantEvent) and ev.method == "dialed-in"
        # §7.2.1.4 step 2 / §7.2.2.9: bob is blocked (join-handling block) -> 403 + 127
        assert "127 Service not authorised" in await _refused(
            bob, b_w, "sip:lobby@example.test", 403)
        # §7.2.1.5 step 2: nor through the IM Session Identity -> 403 + 122
        conf_uri = focus.conferences[0].uri
        assert "122 Function not allowed" in await _refused(bob, b_w, conf_uri, 403)
        # §7.2.2.7: carol may join but not add users (allow-invite-users-dynamically)
        assert await c_room.add("bob") == 403
        refer = c_w.responses("REFER", 403, direction="in")[-1]
        assert "122 Function not allowed" in (refer.headers.get("Warning") or "")
        assert not b_w.requests("INVITE", "in")
        # the room is full (max-participant-count 2, §7.2.1.4 step 3) -> 486 + 102
        await srv.roles.xdm.documents.put(DocumentRef(AUID_GROUPS, ALICE, "lobby"),  # type: ignore[union-attr]
                                          group_document(GroupSpec(
                                              "lobby", "sip:lobby@example.test",
                                              members=((ALICE, None),), chat=True,
                                              invite_members=False, max_participants=2),
                                              ALICE))
        assert "102 too many participants" in await _refused(
            bob, b_w, "sip:lobby@example.test", 486)
        # the room lives while anyone is in it: alice leaves, carol stays
        await room.leave()
        await wait_event(carol, lambda e: isinstance(e, ParticipantEvent)
                         and e.participant == ALICE and e.status == "disconnected")
        assert focus.conferences
        await c_room.leave()
        await wait_until(lambda: not focus.conferences, 10, what="room released")
        assert await srv.store.conferences.active() == []


GROUP = group_document(GroupSpec("g", "sip:g@example.test",
                                 members=((ALICE, "Alice"), (BOB, "Bob"), (CAROL, None)),
                                 max_participants=2, subject="s"), ALICE)


def _invite(contact: str) -> Any:
    raw = ("INVITE sip:g@example.test SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
           "From: <sip:bob@example.test>;tag=1\r\nTo: <sip:g@example.test>\r\n"
           f"Call-ID: c\r\nCSeq: 1 INVITE\r\nContact: {contact}\r\n"
           "Content-Length: 0\r\n\r\n").encode()
    return parse_message(raw)


def test_group_policy_decisions() -> None:
    group = parse_groups(GROUP, ALICE, "g", "e")[0]
    limits = ConferenceLimits("example.test")
    # §7.2.1.3 step 2: an INVITE from a focus -> 495 + 105
    req = _invite("<sip:conf~x@h>;isfocus")
    assert has_isfocus(req)
    refusal = start_refusal(group, req, BOB, limits)
    assert refusal is not None and refusal.status == 495
    assert W_ISFOCUS_ASSIGNED in refusal.headers[0][1]
    assert start_refusal(group, _invite("<sip:bob@h>"), BOB, limits) is None
    # §7.2.2.3: members invited up to max-participant-count, the group's subject
    start = group_conference(group, "sip:conf~1@example.test", BOB, now=0.0, when="t",
                             display=None, subject="ignored", limits=limits)
    assert [m.uri for m in start.invitees] == [ALICE]
    conf = start.conference
    assert conf.subject == "s" and conf.group == "sip:g@example.test"
    assert conf.max_participants == 2 and not conf.auto_release
    assert conf.participant(BOB) is not None and conf.participant(BOB).display == "Bob"  # type: ignore[union-attr]


async def test_pager_message_to_a_group_reaches_the_members(tmp_path: Path) -> None:
    from simpleim.client.events import ImdnEvent, MessageEvent
    async with trio(tmp_path) as (srv, (alice, bob, carol), (a_w, b_w, _c)):
        await define(srv, GroupSpec("team", "sip:team@example.test",
                                    members=((ALICE, None), (BOB, None), (CAROL, None))))
        # §8.1.1 / §8.3.1.1 step 2: one MESSAGE to the group's URI, 202 from the exploder
        sent = await alice.pager.send("team", "hello team")
        assert sent.status == 202 and sent.mode == "pager"
        assert str(a_w.requests("MESSAGE")[-1].uri) == "sip:team@example.test"
        for acc in (bob, carol):
            ev = await wait_event(acc, lambda e: isinstance(e, MessageEvent))
            assert isinstance(ev, MessageEvent) and ev.text == "hello team"
            # the server asserted the group and named alice in Referred-By (§8.3.2.1 4)
            assert ev.sender == ALICE and ev.group == "sip:team@example.test"
            assert ev.claimed_sender is None and ev.to_json()["group"] == ev.group
        copy = b_w.requests("MESSAGE", "in")[-1]
        assert copy.headers.get("P-Asserted-Identity") == "<sip:team@example.test>"
        # both delivery IMDNs went to the exploder; alice gets them aggregated
        got = [await wait_event(alice, lambda e: isinstance(e, ImdnEvent)) for _ in range(2)]
        assert {e.peer for e in got if isinstance(e, ImdnEvent)} == {BOB, CAROL}  # type: ignore[attr-defined]
        assert not [r for r in a_w.requests("MESSAGE", "in")
                    if b"hello team" in r.body]


async def test_group_session_survives_a_restart(tmp_path: Path) -> None:
    from client_helpers import client_config, running_server
    from simpleim.client import Account
    spec = GroupSpec("friends", "sip:friends@example.test",
                     members=((ALICE, None), (BOB, None), (CAROL, None)))
    accounts: list[Account] = []
    async with running_server(tmp_path) as (srv, port):
        alice, bob, carol = accounts = [Account(client_config(u, port, tmp_path, "tcp"))
                                        for u in ("alice", "bob", "carol")]
        for a in accounts:
            await a.start()
        await define(srv, spec)
        await alice.groups.join("friends")
        await _joined(bob)
        await _joined(carol)
        adhoc = await alice.groups.start(["carol"])
        await _joined(carol)
        focus = srv.roles.focus
        assert focus is not None
        group_conf = next(c.uri for c in focus.conferences if c.group is not None)
    # the process ends with both conferences active in the store; a new one starts
    for a in accounts:
        await a.close()
    async with running_server(tmp_path) as (srv, port):
        focus = srv.roles.focus
        assert focus is not None
        # the ad-hoc conference is released, the group's session waits, everybody out
        (kept,) = focus.conferences
        assert kept.uri == group_conf and not kept.connected
        assert [r.uri for r in await srv.store.conferences.active()] == [group_conf]
        async with Account(client_config("alice", port, tmp_path, "tcp")) as alice2, \
                Account(client_config("bob", port, tmp_path, "tcp")) as bob2:
            a_w = SipWire(alice2)
            # §7.1.1.9 / §7.2.1.5: the IM Session Identity still takes alice back
            again = await alice2.groups.join(group_conf)
            ok = await a_w.response("INVITE", 200, direction="in")
            assert group_conf.split("@")[0].split(":")[1] in (ok.headers.get("Contact") or "")
            # the group URI joins the same session (§7.2.1.4)
            b_chat = await bob2.groups.join("friends")
            assert b_chat.conference.split("@")[0] == again.conference.split("@")[0]
            await wait_until(lambda: again.subscribed.is_set() and b_chat.subscribed.is_set(),
                             10, what="subscriptions")
            await again.send("back again")
            ev = await wait_event(bob2, lambda e: isinstance(e, GroupMessageEvent)
                                  and e.text == "back again")
            assert isinstance(ev, GroupMessageEvent) and ev.sender == ALICE
            # the released ad-hoc conference: 403 + 123
            with pytest.raises(SessionFailed) as info:
                await alice2.groups.join(adhoc.conference.split(";")[0], timeout=10)
            assert info.value.status == 403
            refused = a_w.responses("INVITE", 403, direction="in")[-1]
            assert "123 Session does not exist" in (refused.headers.get("Warning") or "")


def _with_policy(spec: GroupSpec, policy: str) -> bytes:
    """The group document with a ``<session-active-policy>`` (§7.2.2.8, CF-42)."""
    doc = group_document(spec, ALICE)
    return doc.replace(b"<cp:ruleset>", f"<session-active-policy>{policy}"
                       "</session-active-policy><cp:ruleset>".encode(), 1)


async def test_group_release_policy_auto_release_and_max_length(tmp_path: Path) -> None:
    async with trio(tmp_path) as (srv, (alice, bob, carol), (_a, b_w, c_w)):
        documents = srv.roles.xdm.documents  # type: ignore[union-attr]
        members = ((ALICE, None), (BOB, None), (CAROL, None))
        await documents.put(DocumentRef(AUID_GROUPS, ALICE, "strict"), _with_policy(
            GroupSpec("strict", "sip:strict@example.test", members=members),
            "<auto-release>true</auto-release>"))
        await documents.put(DocumentRef(AUID_GROUPS, ALICE, "brief"), _with_policy(
            GroupSpec("brief", "sip:brief@example.test", members=members),
            "<max-session-length>1</max-session-length>"))
        focus = srv.roles.focus
        assert focus is not None
        # §7.2.2.8 1b: with auto-release the initiator leaving ends the group's session
        chat = await alice.groups.join("strict")
        await _joined(bob)
        await _joined(carol)
        await chat.leave()
        await b_w.request("BYE", "in")          # bob and carol are BYEd by the focus
        await c_w.request("BYE", "in")
        await wait_until(lambda: not focus.conferences, 10, what="strict released")
        # §7.2.2.8 1e: a session that lasted max-session-length is released
        await alice.groups.join("brief")
        await _joined(bob)
        await _joined(carol)
        conf_uri = focus.conferences[0].uri
        await wait_until(lambda: not focus.conferences, 10, what="brief released")
        await wait_until(lambda: len(b_w.requests("BYE", "in")) == 2
                         and len(c_w.requests("BYE", "in")) == 2, 10, what="BYEs")
        stored = await srv.store.conferences.get(conf_uri)
        assert stored is not None and stored.status == "released"
