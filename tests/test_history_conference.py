"""Conversation history of group chats (OMA SIMPLE IM §13.1.1 step 2, §13.1.2, §13.2.2.2,
§13.3.1; C-CH-01/02, CH-03, CH-07, CH-08): the Controlling Function's focus gives its rooms to
the history recorder; a REFER to sip:History@DOMAIN with Refer-To the conference URI starts
and stops the recording; the CHF is no participant (not counted against the maximum, not in
the RFC 4575 NOTIFYs); a private message between others is not in a third's history -
asserted on the wire, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from client_helpers import wait_event
from simpleim.client import Account
from simpleim.client.events import GroupMessageEvent
from simpleim.content.poc_settings import ServiceSettings
from simpleim.server.history import HistoryConfig, HistoryFunction, SessionRecorder
from simpleim.server.media import Leg, MediaMessage, Room
from simpleim.store.base import Store
from simpleim.store.history import HistoryKind, ItemKind
from test_server_conference import _docs, _joined, trio
from test_server_media import FakeSession, _invite
from waiting import wait_until

DOMAIN = "example.test"


async def _got(account: Account, text: str) -> None:
    await wait_event(account, lambda e: isinstance(e, GroupMessageEvent) and e.text == text)


async def test_group_chat_recorded_by_refer_and_by_setting(tmp_path: Path,
                                                           store_url: str) -> None:
    # three participants fill the conference: the CHF must not count (CH-08)
    async with trio(tmp_path, store_url=store_url, conference_max_participants=3) as (
            srv, (alice, bob, carol), (a_w, _b_w, _c_w)):
        await bob.settings.publish(ServiceSettings(history_session=True))   # method 1
        chat = await alice.groups.start(["bob", "carol"], subject="plans")
        b_chat, c_chat = await _joined(bob), await _joined(carol)
        await wait_until(lambda: chat.subscribed.is_set() and b_chat.subscribed.is_set()
                         and c_chat.subscribed.is_set(), 10, what="subscriptions")
        await chat.send("before")
        await _got(bob, "before")
        # C-CH-01 §13.1.1 step 2: the session has isfocus -> REFER to History@ with Refer-To
        # the conference URI (the focus's Contact) and method=INVITE
        assert await alice.history.record(chat, filename="plans", subscribe=True) == 202
        refer = [r for r in a_w.requests("REFER") if str(r.uri).startswith("sip:History@")][-1]
        assert str(refer.uri) == f"sip:History@{DOMAIN};historyfilename=plans"
        refer_to = refer.headers.get("Refer-To") or ""
        assert "sip:conf~" in refer_to and "method=INVITE" in refer_to
        notify = await a_w.request("NOTIFY", direction="in",
                                   where=lambda r: r.headers.get("Event") == "refer")
        assert notify.body.startswith(b"SIP/2.0 200")
        await chat.send("during")
        await _got(carol, "during")
        await c_chat.send("reply from carol")
        await _got(alice, "reply from carol")
        # CH-08: the conference is full (3 of 3) and still the recording runs; the focus
        # refuses a fourth participant, and no NOTIFY lists the History function
        assert await chat.add("dave") == 486
        users = {u.entity for _, doc in _docs(a_w) for u in doc.users}
        assert users == {f"sip:{u}@{DOMAIN}" for u in ("alice", "bob", "carol")}
        # C-CH-02 §13.1.2: Refer-To the conference URI with method=BYE ends alice's
        assert await alice.history.record(chat, start=False) == 202
        await chat.send("after")
        await _got(bob, "after")
        assert await alice.history.record(chat, start=False) == 404
        history = srv.store.history  # type: ignore[union-attr]
        (rec,) = await history.of(f"alice@{DOMAIN}")
        conf_uri = srv.roles.focus.conferences[0].uri  # type: ignore[union-attr]
        assert rec.kind is HistoryKind.SESSION and rec.filename == "plans"
        assert rec.peer == conf_uri.removeprefix("sip:") and rec.ended_at is not None
        entries = await alice.history.fetch([f"{rec.id}@{DOMAIN}"])
        # the INVITE / 200 of alice's own session with the focus, the SENDs, the BYE
        assert entries[0].text.startswith("INVITE sip:Conference-Factory@")
        assert entries[1].text.startswith("SIP/2.0 200")
        # stopped by REFER: the CHF's own leaving, with the reason
        assert entries[-1].text.startswith("BYE ") and "stopped by the user" in entries[-1].text
        sends = [e for e in entries if e.kind == "send"]
        assert [e.text for e in sends] == ["during", "reply from carol"]
        assert [e.sender for e in sends] == [f"sip:alice@{DOMAIN}", f"sip:carol@{DOMAIN}"]
        # bob's by setting, from the first message on, until the conference ends
        await chat.end()                      # the initiator leaves: released (§7.2.2.8)

        async def closed() -> bool:
            found = await history.of(f"bob@{DOMAIN}")
            return len(found) == 1 and found[0].ended_at is not None

        await wait_until(closed, what="bob's history closed")
        (brec,) = await history.of(f"bob@{DOMAIN}")
        texts = [i.text for i in await history.items(brec.id) if i.kind is ItemKind.SEND]
        assert texts == ["before", "during", "reply from carol", "after"]
        # CH-04 step 6: the BYE the focus sent bob when the conference was released
        bye = (await history.items(brec.id))[-1].content.decode()
        assert bye.startswith("BYE ") and f"Call-ID: {b_chat.call_id}\r\n" in bye
        assert await history.of(f"carol@{DOMAIN}") == []


async def test_refer_to_an_unknown_or_foreign_conference(tmp_path: Path) -> None:
    async with trio(tmp_path) as (srv, (alice, bob, carol), _wires):
        chat = await alice.groups.start(["bob"])
        await _joined(bob)
        # §13.2.2.2 step 1: carol is no participant -> 403; after release: 404
        assert await carol.history.record(chat) == 403
        await chat.end()
        focus = srv.roles.focus
        assert focus is not None
        await wait_until(lambda: not focus.conferences, what="released")
        assert await alice.history.record(chat) == 404


# ---------------------------------------------------------------- the recorder in a room


@dataclass(frozen=True)
class _On:
    history_session: bool = True
    history_pager: bool = False


class _Everyone:
    def settings_of(self, aor: str, now: float) -> _On:
        return _On()


class _Private:
    """A switch that sends ``@NAME text`` to NAME's leg only (a CPIM To naming one
    participant, §7.2.3.4), anything else to every other leg."""

    def route(self, room: Room, sender: Leg, message: MediaMessage
              ) -> Sequence[tuple[Leg, MediaMessage]]:
        if message.body.startswith(b"@"):
            name = message.body[1:].split(b" ", 1)[0].decode()
            return [(leg, message) for leg in room.legs if leg.name == name]
        return [(leg, message) for leg in room.legs if leg is not sender]


class _Party(FakeSession):
    request = _invite()                                     # type: ignore[assignment]
    response = _invite().create_response(200)               # type: ignore[assignment]
    bye_request = None
    ended_by_peer = False

    def __init__(self, name: str) -> None:
        super().__init__(name, takes_posts=True)


async def test_private_message_only_in_its_parties_histories(store: Store) -> None:
    function = HistoryFunction(store.history, _Everyone(), HistoryConfig(DOMAIN, quota=0))
    room = Room(policy=_Private(), recorder=SessionRecorder(function), min_legs=0)
    a, b, c = _Party("a"), _Party("b"), _Party("c")
    for session, name in ((a, "a"), (b, "b"), (c, "c")):
        room.add(session, name)  # type: ignore[arg-type]
    a.inbox.put_nowait(MediaMessage("text/plain", b"to all"))
    a.inbox.put_nowait(MediaMessage("text/plain", b"@c only for c"))
    await wait_until(lambda: len(b.sent) == 1 and len(c.sent) == 2, what="copies")
    room.end("done")

    async def texts(user: str) -> list[str]:
        (rec,) = await store.history.of(f"{user}@{DOMAIN}")
        return [i.text for i in await store.history.items(rec.id)
                if i.kind is ItemKind.SEND]

    async def closed() -> bool:
        recs = [await store.history.of(f"{u}@{DOMAIN}") for u in "abc"]
        return all(len(r) == 1 and r[0].ended_at is not None for r in recs)

    await wait_until(closed, what="histories closed")
    assert await texts("a") == ["to all", "@c only for c"]
    assert await texts("b") == ["to all"]
    assert await texts("c") == ["to all", "@c only for c"]


async def test_history_in_the_adhoc_list_records_for_the_inviter(tmp_path: Path) -> None:
    # §13.1.1 step 1b: sip:History@DOMAIN in the URI list of the ad-hoc INVITE; with a
    # maximum of 2 the list (bob + History@) still fits: the CHF is not counted (CH-08)
    async with trio(tmp_path, conference_max_participants=2) as (
            srv, (alice, bob, _carol), (a_w, b_w, _c_w)):
        chat = await alice.groups.start(["bob", f"History@{DOMAIN}"])
        b_chat = await _joined(bob)
        invite = a_w.requests("INVITE")[-1]
        assert f"sip:History@{DOMAIN}".encode() in invite.body
        await wait_until(lambda: chat.subscribed.is_set() and b_chat.subscribed.is_set(),
                         10, what="subscriptions")
        await chat.send("recorded from the start")
        await _got(bob, "recorded from the start")
        await b_chat.send("and the answer")
        await _got(alice, "and the answer")
        # nobody INVITEd History@ (bob's INVITE is the only one the focus sent)
        assert [str(r.uri).split("@")[0] for r in b_w.requests("INVITE", "in")] == ["sip:bob"]
        users = {u.entity for _, doc in _docs(a_w) for u in doc.users}
        assert users == {f"sip:alice@{DOMAIN}", f"sip:bob@{DOMAIN}"}
        history = srv.store.history  # type: ignore[union-attr]
        (rec,) = await history.of(f"alice@{DOMAIN}")
        texts = [i.text for i in await history.items(rec.id) if i.kind is ItemKind.SEND]
        assert texts == ["recorded from the start", "and the answer"]
        assert await history.of(f"bob@{DOMAIN}") == []
        await chat.end()
