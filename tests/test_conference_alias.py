"""Chat aliases, anonymity and private messages in a group chat (OMA SIMPLE IM §7.2.3.2,
§7.2.3.4, §7.1.1.15, §7.1.3.2.1, §7.1.3.3; checklist CF-51, CF-53), on the wire: a member
joins a pre-defined group with ``Privacy: id`` and a chat alias; the conference event package
shows the alias and an anonymous identity (``yourown`` for the user itself), never the
URI; the MSRP switch sends the copies of its messages with that identity; a private message
(CPIM To = one participant) reaches only that participant, its To kept; what the group's
policy forbids is refused (SIP 403 + 119, MSRP 403)."""

from __future__ import annotations

from pathlib import Path

import pytest

from client_helpers import wait_event
from simpleim.client import Account
from simpleim.client.events import GroupMessageEvent, MessageEvent, ParticipantEvent
from simpleim.client.groupchat import GroupChat
from simpleim.client.session import SessionFailed
from simpleim.client.xcap import GroupSpec
from simpleim.content.conference_info import YOUROWN
from simpleim.content.cpim import parse_cpim
from test_server_conference import _docs, _joined, trio
from test_server_groups import ALICE, BOB, CAROL, define
from waiting import wait_until
from wire import MsrpWire

ANON1 = "sip:anonymous-1@anonymous.invalid"
ANON2 = "sip:anonymous-2@anonymous.invalid"


async def _private_refused(chat: GroupChat, to: str, receiver: Account) -> None:
    """A private message from ``chat`` to ``to`` is answered MSRP 403 (not switched), a
    message to everybody after it reaches ``receiver`` - the first one it gets."""
    with pytest.raises(SessionFailed) as failed:
        await chat.send_private(to, "psst")
    assert failed.value.status == 403
    await chat.send("public")
    ev = await wait_event(receiver, lambda e: isinstance(e, GroupMessageEvent))
    assert isinstance(ev, GroupMessageEvent) and ev.text == "public"


def _sends(msrp: MsrpWire, chat: GroupChat, text: bytes) -> list[bytes]:
    return [r.body or b"" for r in msrp.requests(chat.ctx.msrp) if r.body and text in r.body]


async def test_anonymous_alias_join_and_private_messages(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msrp = MsrpWire(monkeypatch)
    async with trio(tmp_path) as (srv, (alice, bob, carol), (a_w, b_w, c_w)):
        for account in (alice, bob, carol):
            msrp.watch(account.msrp)
        await define(srv, GroupSpec("club", "sip:club@example.test",
                                    members=((ALICE, "Alice"), (BOB, "Bob"), (CAROL, "Carol")),
                                    invite_members=False, anonymity=True))
        chat = await alice.groups.join("club")
        # §7.1.1.15: bob joins with the alias "Ally" and Privacy: id
        b_chat = await bob.groups.join("club", alias="Ally", anonymous=True)
        invite = b_w.requests("INVITE")[-1]
        assert invite.headers.get("Privacy") == "id"
        assert invite.from_addr.display_name == "Ally"
        # carol asks for the same alias: made unique (§7.2.3.2 step 2)
        c_chat = await carol.groups.join("club", alias="Ally", anonymous=True)
        await wait_until(lambda: b_chat.me == ANON1 and c_chat.me == ANON2
                         and len(chat.participants) == 3, 10, what="the aliases known")
        # the conference state: the alias and the anonymous identity, never the URI
        for wire in (a_w, b_w, c_w):
            for _state, doc in _docs(wire):
                entities = [u.entity for u in doc.users]
                assert BOB not in entities and CAROL not in entities
        (_s, full) = _docs(c_w)[0]
        shown = {u.entity: u.display_text for u in full.users}
        assert shown == {ALICE: "Alice", ANON1: "Ally", ANON2: "Ally-2"}
        mine = [u.entity for u in full.users if (YOUROWN, "true") in u.extra_attributes]
        assert mine == [ANON2]                               # §7.2.3.2: yourown
        focus = srv.roles.focus  # type: ignore[union-attr]
        assert focus is not None
        stored = focus.conferences[0].participant(BOB)
        assert stored is not None and stored.shown == ANON1       # the mapping table

        # bob's message: CPIM From = its yourown identity and alias (§7.1.3.2.1 step 4)
        await b_chat.send("hi from nobody")
        ev = await wait_event(alice, lambda e: isinstance(e, GroupMessageEvent))
        assert isinstance(ev, GroupMessageEvent)
        assert (ev.sender, ev.alias, ev.private) == (ANON1, "Ally", False)
        (body,) = _sends(msrp, chat, b"hi from nobody")
        cpim = parse_cpim(body)
        assert str(cpim.from_addr) == f'"Ally" <{ANON1}>' and b"bob@" not in body
        # a client that writes its own URI: the switch sends the copies anonymised
        b_chat.me, b_chat.alias = None, None
        await b_chat.send("own address")
        b_chat.me, b_chat.alias = ANON1, "Ally"
        ev = await wait_event(alice, lambda e: isinstance(e, GroupMessageEvent))
        assert isinstance(ev, GroupMessageEvent) and ev.sender == ANON1
        for target in (chat, c_chat):
            (body,) = _sends(msrp, target, b"own address")
            assert str(parse_cpim(body).from_addr) == f'"Ally" <{ANON1}>'
            assert b"bob@" not in body
        await wait_event(carol, lambda e: isinstance(e, GroupMessageEvent)
                         and e.text == "own address")

        # §7.2.3.4: alice to "Ally-2" only: CPIM To = carol's anonymous identity, kept
        await chat.send_private("Ally-2", "just for you")
        got = await wait_event(carol, lambda e: isinstance(e, GroupMessageEvent))
        assert isinstance(got, GroupMessageEvent)
        assert (got.text, got.private, got.sender, got.alias) == (
            "just for you", True, ALICE, "Alice")
        (body,) = _sends(msrp, c_chat, b"just for you")
        assert [str(a.uri) for a in parse_cpim(body).to_addrs] == [ANON2]
        # the anonymous carol answers bob privately by his identity
        await c_chat.send_private(ANON1, "psst")
        got = await wait_event(bob, lambda e: isinstance(e, GroupMessageEvent)
                               and e.text == "psst")
        assert isinstance(got, GroupMessageEvent)
        assert (got.private, got.sender, got.alias) == (True, ANON2, "Ally-2")
        # then a message to everybody: bob's next message is it - the private one never
        # reached him, nor alice the second one
        await chat.send("to all")
        ev = await wait_event(bob, lambda e: isinstance(e, GroupMessageEvent))
        assert isinstance(ev, GroupMessageEvent) and ev.text == "to all" and not ev.private
        await wait_event(carol, lambda e: isinstance(e, GroupMessageEvent)
                         and e.text == "to all")
        assert not _sends(msrp, b_chat, b"just for you")
        assert not _sends(msrp, chat, b"psst")
        assert ev.to_json()["private"] is False and ev.to_json()["alias"] == "Alice"
        # the delivery IMDNs of the anonymous bob and carol (RFC 5438, through the switch)
        # name them by their anonymous identities only
        def notes() -> list[bytes]:
            return [b for b in _sends(msrp, chat, b"imdn+xml") if b"to all" not in b]

        await wait_until(lambda: any(ANON1.encode() in b for b in notes())
                         and any(ANON2.encode() in b for b in notes()), 10, what="IMDNs")
        for body in notes():
            assert b"bob@" not in body and b"carol@" not in body
        # §7.1.3.2.1 step 3a: a private message only through an OMA IM server (the focus's
        # 200 said "Server: IM-serv/OMA1.0"); else an error, nothing sent
        assert any(v.startswith("IM-serv/OMA1.0") for v in chat.peer_agents)
        chat.peer_agents = ("Acme-Focus/1.0",)
        with pytest.raises(SessionFailed) as local:
            await chat.send_private("Ally", "not through an unknown focus")
        assert local.value.status == 0


async def test_anonymity_and_private_messages_refused_by_the_group(tmp_path: Path) -> None:
    async with trio(tmp_path) as (srv, (alice, bob, carol), (_a_w, _b_w, c_w)):
        await define(srv, GroupSpec("quiet", "sip:quiet@example.test",
                                    members=((ALICE, None), (BOB, None), (CAROL, None)),
                                    invite_members=False, private_messages=False))
        chat = await alice.groups.join("quiet")
        # §7.2.3.2 step 1: no <allow-anonymity> -> 403 + 119
        with pytest.raises(SessionFailed) as info:
            await carol.groups.join("quiet", alias="ghost", anonymous=True, timeout=10)
        assert info.value.status == 403
        refused = c_w.responses("INVITE", 403, direction="in")[-1]
        assert "119 Anonymity not allowed" in (refused.headers.get("Warning") or "")
        # ... which it also is through the IM Session Identity (§7.2.1.5 step 6)
        focus = srv.roles.focus  # type: ignore[union-attr]
        assert focus is not None
        with pytest.raises(SessionFailed) as info:
            await carol.groups.join(focus.conferences[0].uri, anonymous=True, timeout=10)
        assert info.value.status == 403
        b_chat = await bob.groups.join("quiet")
        await wait_event(alice, lambda e: isinstance(e, ParticipantEvent)
                         and e.participant == BOB and e.status == "connected")
        # §7.2.3.4 a): <allow-private-message> false -> the SEND is answered MSRP 403
        await _private_refused(chat, "bob", bob)
        assert b_chat.conference


async def test_adhoc_anonymous_initiator_and_operator_policy(tmp_path: Path) -> None:
    async with trio(tmp_path, conference_private_messages=False) as (
            _srv, (alice, bob, carol), (_a_w, b_w, _c_w)):
        # §7.2.1.2 / §7.2.2.1 step 9: the invitations of an anonymous initiator show its
        # alias and anonymous identity only
        chat = await alice.groups.start(["bob", "carol"], alias="Boss", anonymous=True)
        b_chat = await _joined(bob)
        await _joined(carol)
        invite = await b_w.request("INVITE", "in")
        assert invite.from_addr.display_name == "Boss"
        assert str(invite.from_addr.uri) == ANON1
        for name in ("From", "P-Asserted-Identity", "Referred-By"):
            assert "alice" not in (invite.headers.get(name) or "")
        assert invite.headers.get("Privacy") == "id"
        await wait_until(lambda: chat.me == ANON1 and b_chat.subscribed.is_set(), 10,
                         what="alice's identity")
        # the operator allows no private messages in ad-hoc conferences: MSRP 403
        await _private_refused(b_chat, "Boss", alice)
    (tmp_path / "closed").mkdir()
    async with trio(tmp_path / "closed", allow_anonymity=False) as (_srv, (alice, _b, _c),
                                                                    (a_w, _bw, _cw)):
        # §7.2.1.2 step 3: anonymity not allowed by the server -> 403 + 119
        with pytest.raises(SessionFailed) as info:
            await alice.groups.start(["bob"], anonymous=True, timeout=10)
        assert info.value.status == 403
        refused = a_w.responses("INVITE", 403, direction="in")[-1]
        assert "119 Anonymity not allowed" in (refused.headers.get("Warning") or "")


async def test_private_message_only_to_oma_im_nodes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """§7.2.3.4 b): a private message goes only to a participant whose INVITE or 200 named
    an OMA IM release (Appendix F: ``IM-client/OMA1.0``); else MSRP 403."""
    import simpleim.client.invites as invites
    # the invited members answer as some other product (alice's INVITE is unchanged)
    monkeypatch.setattr(invites, "USER_AGENT", "Acme-Talk/2.0")
    async with trio(tmp_path) as (_srv, (alice, bob, carol), (_a_w, b_w, _c_w)):
        chat = await alice.groups.start(["bob", "carol"])
        b_chat = await _joined(bob)
        await _joined(carol)
        ok = b_w.responses("INVITE", 200)[-1]
        assert ok.headers.get("User-Agent") == "Acme-Talk/2.0"
        await wait_until(lambda: len(chat.participants) == 3, 10, what="participants")
        with pytest.raises(SessionFailed) as failed:
            await chat.send_private("bob", "are you an IM client?")
        assert failed.value.status == 403
        await b_chat.send_private("alice", "yes, but you cannot tell")
        got = await wait_event(alice, lambda e: isinstance(e, GroupMessageEvent))
        assert isinstance(got, GroupMessageEvent) and got.private


async def test_message_to_the_session_identity(tmp_path: Path) -> None:
    """§8.3.2.1 step 5 / 7c (IMSpec-PMM-S-006): a pager MESSAGE a participant sends to the
    IM Session Identity goes to each other participant as a MESSAGE asserting the session's
    identity, the sender in Referred-By; others get 403 + 127, a gone session 403 + 123."""
    async with trio(tmp_path) as (srv, (alice, bob, carol), (a_w, b_w, c_w)):
        await alice.groups.start(["bob"])
        await _joined(bob)
        focus = srv.roles.focus  # type: ignore[union-attr]
        assert focus is not None
        conf = focus.conferences[0].uri
        sent = await bob.pager.send(conf, "a pager message to the chat")
        assert sent.status == 202
        got = await wait_event(alice, lambda e: isinstance(e, MessageEvent))
        assert isinstance(got, MessageEvent)
        assert (got.text, got.sender, got.mode, got.group) == (
            "a pager message to the chat", BOB, "pager", conf)
        copy = await a_w.request("MESSAGE", "in")
        assert str(copy.uri).startswith("sip:alice@")
        assert copy.headers.get("P-Asserted-Identity") == f"<{conf}>"
        assert copy.headers.get("Referred-By") == f"<{BOB}>"
        assert "+g.oma.sip-im" in (copy.headers.get("Accept-Contact") or "")
        assert not b_w.requests("MESSAGE", "in")            # not back to the sender
        # carol takes no part in it: 403 + 127 (§8.3.1.1 step 5)
        with pytest.raises(SessionFailed) as info:
            await carol.pager.send(conf, "let me in")
        assert info.value.status == 403
        refused = c_w.responses("MESSAGE", 403, direction="in")[-1]
        assert "127 Service not authorised" in (refused.headers.get("Warning") or "")
        # no such session on-going: 403 + 123 (step 3)
        with pytest.raises(SessionFailed) as info:
            await bob.pager.send("sip:conf~0000000000000000@example.test", "anyone?")
        assert info.value.status == 403
        refused = b_w.responses("MESSAGE", 403, direction="in")[-1]
        assert "123 Session does not exist" in (refused.headers.get("Warning") or "")
