"""The Conversation History Function on the wire (OMA SIMPLE IM §13; checklist §11 C-CH-*,
§24 CH-*): recording by the hist-activation setting (pager through the Participating
Function, sessions through the PF's B2BUA media room), recording on user directive (REFER
to sip:History@ with method=INVITE / BYE, NOTIFY message/sipfrag), retrieval (INVITE
recvonly + URI list -> 200 sendonly, MSRP SENDs multipart/mixed + message/sip,
message/msrp, message/sipfrag, BYE), deletion at the shared sip:Delete@, storage full
(quota, System Message) - SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

import test_server_helpers
from client_helpers import client_config, wait_event
from simpleim.client import Account
from simpleim.client.events import MessageEvent, SessionEvent
from simpleim.client.session import ChatSession, SessionFailed
from simpleim.content.poc_settings import ServiceSettings
from simpleim.content.resource_lists import Entry, ResourceList, ResourceLists
from simpleim.sdp import MsrpMedia
from simpleim.sdp.msrp import Direction
from simpleim.server.app import ImServer
from simpleim.server.history.content import history_document, reference_ids
from simpleim.server.xdm.metadata import history_list
from simpleim.sip.headers import Headers
from simpleim.sip.message import SipRequest
from simpleim.sip.multipart import MultipartPart, build_multipart, parse_multipart
from simpleim.sip.uri import parse_uri
from simpleim.store.base import Store
from simpleim.store.history import (
    HistoryItem,
    HistoryKind,
    HistoryQuery,
    HistoryRecord,
    HistoryRepository,
    ItemKind,
)
from simpleim.transport.msrp_sdp import sdp_of
from test_server_deferred import IM, SDP_RECVONLY, server_on
from test_server_media_e2e import b2b_pair
from waiting import wait_until
from wire import SipWire

DOMAIN = "example.test"


# ---------------------------------------------------------------- store (both backends)


def _item(hid: str, owner: str, seq: int, text: str, at: float) -> HistoryItem:
    return HistoryItem(f"i{seq}{hid}", hid, owner, seq, ItemKind.SEND, "in", at, "cid",
                       f"m{seq}", "text/plain", text, (("To-Path", "msrp://x"),),
                       text.encode())


async def test_history_store_roundtrip_search_and_delete(store: Store) -> None:
    repo = store.history
    owner = f"bob@{DOMAIN}"
    rec = HistoryRecord("h1", owner, HistoryKind.SESSION, f"alice@{DOMAIN}", "trip",
                        "trip.txt", "call-1", 100.0)
    await repo.create(rec, [_item("h1", owner, 1, "Hello Bob", 100.0)])
    await repo.append(_item("h1", owner, 2, "see you at 100% noon", 101.0))
    await repo.finish("h1", 102.0)
    other = HistoryRecord("h2", owner, HistoryKind.PAGER, f"carol@{DOMAIN}", "", "p", "c2",
                          200.0)
    await repo.create(other, [_item("h2", owner, 3, "carol says hi", 200.0)])
    got = await repo.get("h1")
    assert got is not None and got.ended_at == 102.0 and got.filename == "trip.txt"
    items = await repo.items("h1")
    assert [i.text for i in items] == ["Hello Bob", "see you at 100% noon"]
    assert items[0].headers == (("To-Path", "msrp://x"),) and items[0].content == b"Hello Bob"
    # paged reading (retrieval of a large history)
    assert [i.seq for i in await repo.items("h1", limit=1)] == [1]
    assert [i.seq for i in await repo.items("h1", after=1, limit=5)] == [2]
    assert await repo.usage(owner) == sum(i.size for i in items) \
        + (await repo.items("h2"))[0].size
    found = await repo.search(HistoryQuery(owner, text="HELLO"))
    assert [i.text for _r, i in found] == ["Hello Bob"]
    found = await repo.search(HistoryQuery(owner, text="100%"))
    assert [i.seq for _r, i in found] == [2]  # % is matched literally
    found = await repo.search(HistoryQuery(owner, peer="carol"))
    assert [r.id for r, _i in found] == ["h2"]
    found = await repo.search(HistoryQuery(owner, since=100.5, until=300.0, limit=1))
    assert [i.seq for _r, i in found] == [2]
    found = await repo.search(HistoryQuery(owner, since=100.5, limit=1, offset=1))
    assert [i.seq for _r, i in found] == [3]
    assert await repo.search(HistoryQuery(f"alice@{DOMAIN}")) == []
    assert await repo.remove(f"alice@{DOMAIN}", ["h1"]) == 0  # not alice's
    assert await repo.remove(owner, ["h1"]) == 1
    assert await repo.items("h1") == [] and [r.id for r in await repo.of(owner)] == ["h2"]
    assert await repo.remove_all(owner) == 1 and await repo.usage(owner) == 0


def test_metadata_document_and_references() -> None:
    rec = HistoryRecord("abc", f"bob@{DOMAIN}", HistoryKind.PAGER, f"alice@{DOMAIN}", "s",
                        "f", "c", 0.0, size=12)
    doc = history_document([rec], DOMAIN).decode()
    assert 'xmlns="urn:oma:xml:history-list"' in doc
    assert f'history-reference="abc@{DOMAIN}"' in doc and "<size>12</size>" in doc
    h = Headers()
    h.add("Refer-To", f"<sip:abc@{DOMAIN}>")
    req = SipRequest("REFER", parse_uri(f"sip:Delete@{DOMAIN}"), h)
    assert reference_ids(req) == ["abc"]


# ---------------------------------------------------------------- end to end


def pair(tmp: Path, store_url: str | None = None, *, pf_media: str = "proxy",
         **server: Any) -> contextlib.AbstractAsyncContextManager[
             tuple[ImServer, Account, Account, SipWire, SipWire]]:
    """alice and bob on TCP through the server (the PF as a proxy unless ``pf_media``)."""
    return b2b_pair(tmp, store_url=store_url, pf_media=pf_media, **server)


def _store(srv: ImServer) -> Store:
    store = srv.store
    assert store is not None
    return store  # type: ignore[return-value]


async def test_pager_recorded_by_setting_retrieved_and_deleted(tmp_path: Path,
                                                               store_url: str) -> None:
    async with pair(tmp_path, store_url) as (srv, alice, bob, a_wire, b_wire):
        await bob.settings.publish(ServiceSettings(history_pager=True))
        await alice.settings.publish(ServiceSettings(history_pager=True))
        await alice.pager.send("bob", "hello history")
        await alice.pager.send("bob", "second one")
        call_ids = list(dict.fromkeys(m.call_id for m in a_wire.requests("MESSAGE")
                                      if b"history" in m.body or b"second" in m.body))
        history = _store(srv).history
        bob_h = await history.of(f"bob@{DOMAIN}")
        alice_h = await history.of(f"alice@{DOMAIN}")
        # CH-00 method 1: the recipient's (PF-T) and the sender's (PF-O) history
        assert [h.kind for h in bob_h] == [HistoryKind.PAGER] * 2
        assert [h.peer for h in alice_h] == [f"bob@{DOMAIN}"] * 2
        assert [h.call_id for h in bob_h] == call_ids
        # CH-04 step 4: the complete MESSAGE
        (item,) = await history.items(bob_h[0].id)
        assert item.kind is ItemKind.MESSAGE and item.text == "hello history"
        assert b"MESSAGE sip:bob@" in item.content and b"\r\nVia:" not in item.content

        refs = [f"{h.id}@{DOMAIN}" for h in bob_h]
        alice_refs = [f"{h.id}@{DOMAIN}" for h in alice_h]
        # CH-09: the XDMS's history metadata (HistoryMetadata of server/xdm) from the store
        assert srv.roles is not None
        meta = await srv.roles.xdm.history.history_entries(f"bob@{DOMAIN}")
        assert [(m.reference, m.sender, m.recipient) for m in meta] == [
            (r, f"alice@{DOMAIN}", f"bob@{DOMAIN}") for r in refs]
        assert all(r.encode() in history_list(meta) for r in refs)
        entries = await bob.history.fetch(refs)
        # C-CH-03 on the wire: INVITE to History@, recvonly SDP + the URI list
        invite = b_wire.requests("INVITE")[-1]  # (the first one was challenged: 407)
        assert str(invite.uri) == f"sip:History@{DOMAIN}"
        assert (invite.content_type or "") == "multipart/mixed"
        offer = sdp_of(invite)
        assert offer is not None
        assert MsrpMedia.from_media(offer.media[0], offer).direction is Direction.RECVONLY
        assert invite.media_type is not None and invite.media_type.boundary
        parts = parse_multipart(invite.body, invite.media_type.boundary)
        lists = [p for p in parts if p.content_type == "application/resource-lists+xml"]
        assert lists and all(r.encode() in lists[0].body for r in refs)
        # CH-01: 200 with Server, Allow, Contact, SDP answer a=sendonly
        (ok,) = b_wire.responses("INVITE", 200, direction="in")
        assert (ok.headers.get("Server") or "").startswith("IM-serv/OMA1.0")
        assert "INVITE" in (ok.headers.get("Allow") or "")
        assert ok.headers.get("Contact")
        answer = sdp_of(ok)
        assert answer is not None
        assert MsrpMedia.from_media(answer.media[0], answer).direction is Direction.SENDONLY
        # CH-10: one SEND per item, multipart/mixed with message/sip, arrival order, the
        # original Call-ID and the server's receive timestamp (Date)
        assert [e.kind for e in entries] == ["message", "message"]
        assert [e.text for e in entries] == ["hello history", "second one"]
        assert [e.call_id for e in entries] == call_ids
        assert all(e.content_type.startswith("multipart/mixed") and e.date for e in entries)
        assert all(b"Content-Type: message/sip" in e.raw for e in entries)
        # ... and BYE after the last one
        await wait_until(lambda: bool(b_wire.requests("BYE", direction="in")))

        # C-CH-05 / CH-06: deletion at the shared sip:Delete@ (someone else's: 403 + 127)
        assert await alice.history.delete([refs[0]]) == [403]
        (refused,) = a_wire.responses("REFER", 403, direction="in")
        assert "127" in (refused.headers.get("Warning") or "")
        assert await bob.history.delete([refs[0]]) == [200]
        assert [h.id for h in await history.of(f"bob@{DOMAIN}")] == [bob_h[1].id]
        # several in one REFER (§13.1.6, RFC 5368): all of them must be bob's
        assert await bob.history.delete_many([refs[1], alice_refs[0]]) == 403
        multi = b_wire.requests("REFER")[-1]
        assert (multi.headers.get("Refer-To") or "").startswith("<cid:")
        assert multi.headers.get("Require") == "multiple-refer"
        assert multi.content_type == "application/resource-lists+xml"
        assert refs[1].encode() in multi.body
        assert await alice.history.delete_many(alice_refs) == 200
        assert await history.of(f"alice@{DOMAIN}") == []
        assert await bob.history.delete(["nosuch"]) == [404]
        # everything: Refer-To sip:History@DOMAIN (§13.1.7)
        assert await alice.history.delete_all() == 200
        assert len(await history.of(f"bob@{DOMAIN}")) == 1
        with pytest.raises(SessionFailed) as failed:
            await bob.history.fetch([refs[0]])
        assert failed.value.status == 404


async def test_notifications_and_unset_users_are_not_recorded(tmp_path: Path) -> None:
    async with pair(tmp_path) as (srv, alice, bob, _a_wire, _b_wire):
        await alice.pager.send("bob", "nobody records this")
        await bob.settings.publish(ServiceSettings(history_pager=True))
        result = await alice.pager.send("bob", "bob records this")
        assert result.status in (200, 202)
        history = _store(srv).history
        assert await history.of(f"alice@{DOMAIN}") == []
        bob_h = await history.of(f"bob@{DOMAIN}")
        assert len(bob_h) == 1
        assert (await history.items(bob_h[0].id))[0].text == "bob records this"


async def test_storage_full_stops_recording_and_sends_a_system_message(tmp_path: Path) -> None:
    async with pair(tmp_path, history_quota=1600) as (srv, alice, bob, _a, _b):
        await bob.settings.publish(ServiceSettings(history_pager=True))
        await alice.pager.send("bob", "first fits")
        store = _store(srv)
        used = await store.history.usage(f"bob@{DOMAIN}")
        assert 0 < used < 1600
        # a pager message (below the 1300-byte pager limit) over what is left: not stored
        await alice.pager.send("bob", "x" * (1600 - used))
        texts = [(await store.history.items(h.id))[0].text
                 for h in await store.history.of(f"bob@{DOMAIN}")]
        assert texts == ["first fits"]
        # §13.2.3 step 1a ii: a System Message tells the user (queued once)
        notes = await store.system_messages.of(f"bob@{DOMAIN}")
        assert len(notes) == 1 and "storage is full" in notes[0].body


async def test_storage_full_during_a_recorded_session(tmp_path: Path) -> None:
    """§13.2.3 step 3: a SEND that does not fit stops the recording (the stored part kept,
    the BYE headers stored with the reason), a System Message; the session goes on."""
    async with pair(tmp_path, pf_media="b2bua", history_quota=4000) as (srv, alice, bob,
                                                                        _a, _b):
        await bob.settings.publish(ServiceSettings(history_session=True))
        chat, bob_chat = await _chat(alice, bob)
        await chat.send("fits")
        await _got(bob, "fits")
        big = "y" * 20000
        await chat.send(big)
        await _got(bob, big)                              # delivered, not recorded
        history = _store(srv).history

        async def stopped() -> bool:
            found = await history.of(f"bob@{DOMAIN}")
            return len(found) == 1 and found[0].ended_at is not None

        await wait_until(stopped, what="recording stopped")
        await bob_chat.send("after")
        await _got(alice, "after")
        (rec,) = await history.of(f"bob@{DOMAIN}")
        items = await history.items(rec.id)
        assert [i.text for i in items if i.kind is ItemKind.SEND] == ["fits"]
        last = items[-1].content.decode()
        assert last.startswith("BYE ") and "history storage full" in last
        assert "Reason: SIP;" in last
        notes = await _store(srv).system_messages.of(f"bob@{DOMAIN}")
        assert len(notes) == 1 and "storage is full" in notes[0].body
        await chat.end()


async def test_retrieval_checks(store_url: str) -> None:
    async with server_on(store_url) as srv:
        owner = f"bob@{test_server_helpers.DOMAIN}"
        await srv.store.history.create(HistoryRecord(
            "abc", owner, HistoryKind.PAGER, "alice", "", "f", "c", 1.0))
        bob = await srv.ua("bob")

        async def invite(sdp: bytes, refs: tuple[str, ...]) -> Any:
            req = bob.request("INVITE", f"sip:History@{test_server_helpers.DOMAIN}",
                              headers=[IM])
            parts = [MultipartPart.create("application/sdp", sdp)]
            if refs:
                doc = ResourceLists((ResourceList(tuple(Entry(r) for r in refs)),))
                parts.append(MultipartPart.create("application/resource-lists+xml",
                                                  doc.to_bytes()))
            req.body, ctype = build_multipart(parts)
            req.headers.set("Content-Type", ctype)
            return await bob.send(req)

        ref = f"sip:abc@{test_server_helpers.DOMAIN}"
        # CH-01: no URI list -> 400; an unknown or someone else's reference -> 404
        resp = await invite(SDP_RECVONLY, ())
        assert resp.status == 400 and "URI list" in (resp.headers.get("Warning") or "")
        resp = await invite(SDP_RECVONLY, (f"sip:nosuch@{test_server_helpers.DOMAIN}",))
        assert resp.status == 404
        assert (resp.headers.get("Server") or "").startswith("IM-serv/OMA1.0")
        # §13.2.1 step 3: not a=recvonly -> 488
        resp = await invite(SDP_RECVONLY.replace(b"a=recvonly", b"a=sendrecv"), (ref,))
        assert resp.status == 488 and "recvonly" in (resp.headers.get("Warning") or "")
        # a recvonly offer that takes none of the delivery types -> 488 too
        resp = await invite(SDP_RECVONLY, (ref,))
        assert resp.status == 488 and "accept-types" in (resp.headers.get("Warning") or "")
        # other methods at History@ -> 405 with Allow
        resp = await bob.send(bob.request("MESSAGE", f"sip:History@{test_server_helpers.DOMAIN}",
                                          body=b"x", headers=[IM]))
        assert resp.status == 405
        assert ", ".join(resp.headers.get_all("Allow")) == "INVITE, REFER"


async def _got(account: Account, text: str) -> None:
    await wait_event(account, lambda e: isinstance(e, MessageEvent) and e.text == text)


async def _chat(alice: Account, bob: Account) -> tuple[ChatSession, ChatSession]:
    chat = await alice.chats.start("bob")
    # the session's own event (not a late one of a session that has ended meanwhile)
    ev = await wait_event(bob, lambda e: isinstance(e, SessionEvent)
                          and e.state == "established" and e.session_id in bob.sessions)
    assert isinstance(ev, SessionEvent)
    other = bob.sessions[ev.session_id]
    assert isinstance(other, ChatSession)
    return chat, other


async def test_proxy_mode_keeps_a_recorded_session_in_the_media_path(
        tmp_path: Path) -> None:
    """CH-00 method 1 in proxy mode (the default): a session neither party records is
    proxied (bob gets alice's own INVITE: same Call-ID, Record-Route); once bob's
    session-mode setting is on, the PF takes the next session back to back (bob's INVITE
    comes from the server: a Call-ID of its own, the server's MSRP path) and records it."""
    async with pair(tmp_path) as (srv, alice, bob, a_wire, b_wire):
        chat, bob_chat = await _chat(alice, bob)
        invite = await b_wire.request("INVITE", "in")
        assert invite.call_id == chat.call_id and invite.headers.get("Record-Route")
        await chat.end()
        await bob.settings.publish(ServiceSettings(history_session=True))
        chat, bob_chat = await _chat(alice, bob)
        second = await b_wire.request("INVITE", "in", where=lambda r: r is not invite)
        assert second.call_id != chat.call_id                  # leg B of the B2BUA
        mine = [r for r in a_wire.requests("INVITE") if r.call_id == chat.call_id][-1]
        assert _path(second) != _path(mine)                  # the server's MSRP path
        await chat.send("recorded in proxy mode")
        await _got(bob, "recorded in proxy mode")
        await chat.end()
        history = _store(srv).history
        await _one_closed_history(history, f"bob@{DOMAIN}")
        (rec,) = await history.of(f"bob@{DOMAIN}")
        entries = await bob.history.fetch([f"{rec.id}@{DOMAIN}"])
        assert [e.text for e in entries if e.kind == "send"] == ["recorded in proxy mode"]
        # the caller's setting alone does it too (PO-03 step 7, the originating side)
        await bob.settings.publish(ServiceSettings())
        await alice.settings.publish(ServiceSettings(history_session=True))
        chat, _bob_chat = await _chat(alice, bob)
        third = await b_wire.request("INVITE", "in",
                                     where=lambda r: r is not invite and r is not second)
        assert third.call_id != chat.call_id
        await chat.send("the caller records")
        await _got(bob, "the caller records")
        await chat.end()

        await _one_closed_history(history, f"alice@{DOMAIN}")
        assert len(await history.of(f"bob@{DOMAIN}")) == 1     # bob no longer records


async def _one_closed_history(history: HistoryRepository, owner: str) -> None:
    """Wait until ``owner`` has exactly one history and it is closed (ended)."""

    async def ended() -> bool:
        found = await history.of(owner)
        return len(found) == 1 and found[0].ended_at is not None

    await wait_until(ended, what=f"one closed history of {owner}")


def _path(invite: SipRequest) -> bytes:
    """The a=path line of an INVITE's SDP offer."""
    (line,) = [ln for ln in invite.body.splitlines() if ln.startswith(b"a=path:")]
    return line


async def test_session_recorded_by_setting_through_the_b2bua(tmp_path: Path,
                                                             store_url: str) -> None:
    async with pair(tmp_path, store_url, pf_media="b2bua") as (srv, alice, bob, _a, _b):
        await bob.settings.publish(ServiceSettings(history_session=True))
        chat, bob_chat = await _chat(alice, bob)
        await chat.send("one")
        await chat.send("two")
        await _got(bob, "two")
        await bob_chat.send("three")
        await _got(alice, "three")
        await chat.end()
        history = _store(srv).history
        await _one_closed_history(history, f"bob@{DOMAIN}")
        assert await history.of(f"alice@{DOMAIN}") == []
        (rec,) = await history.of(f"bob@{DOMAIN}")
        assert rec.kind is HistoryKind.SESSION and rec.peer == f"alice@{DOMAIN}"
        entries = await bob.history.fetch([f"{rec.id}@{DOMAIN}"])
        # CH-04 steps 5-6, CH-11: INVITE / 200 headers, each SEND in arrival order as
        # message/msrp with its original Message-ID, the BYE headers
        assert [e.kind for e in entries] == ["headers", "headers", "send", "send", "send",
                                             "headers"]
        assert entries[0].text.startswith("INVITE sip:bob@")
        assert entries[1].text.startswith("SIP/2.0 200")
        # CH-04 step 6: the BYE that ended it - alice's own, sent to the server's contact
        bye = entries[-1].text
        assert bye.startswith("BYE ") and not bye.startswith("BYE sip:bob@")
        assert f"Call-ID: {chat.call_id}\r\n" in bye
        sends = [e for e in entries if e.kind == "send"]
        assert [e.text for e in sends] == ["one", "two", "three"]
        assert all(e.content_type == "message/msrp" and e.message_id for e in sends)
        assert all(b"\r\nTo-Path: " in e.raw and b"\r\nFrom-Path: " in e.raw for e in sends)
        assert sends[0].sender == f"sip:alice@{DOMAIN}"
        assert all(e.content_type == "message/sipfrag" for e in entries if e.kind == "headers")


async def test_recording_started_and_stopped_by_refer(tmp_path: Path) -> None:
    async with pair(tmp_path, pf_media="b2bua") as (srv, alice, bob, a_wire, _b):
        chat, bob_chat = await _chat(alice, bob)
        await chat.send("before")
        # C-CH-01 / CH-03: REFER to History@;historyfilename with Refer-To the session
        assert await alice.history.record(chat, start=True, filename="trip",
                                          subscribe=True) == 202
        refer = a_wire.requests("REFER")[-1]  # (after the 407 challenge)
        # CH-02 step 1a: the REFER without credentials (no asserted identity yet) is
        # challenged by the core - a 407 the client answers - not refused 401 / 403
        (first, *_) = a_wire.requests("REFER")
        assert first.headers.get("Proxy-Authorization") is None
        (challenge,) = a_wire.responses("REFER", 407, direction="in")
        assert challenge.headers.get("Proxy-Authenticate", "").startswith("Digest ")
        assert refer.headers.get("Proxy-Authorization", "").startswith("Digest ")
        assert str(refer.uri) == f"sip:History@{DOMAIN};historyfilename=trip"
        assert "method=INVITE" in (refer.headers.get("Refer-To") or "")
        # RFC 3515 implicit subscription: NOTIFY with a message/sipfrag of the outcome
        notify = await a_wire.request("NOTIFY", direction="in")
        assert notify.headers.get("Event") == "refer"
        assert (notify.content_type or "") == "message/sipfrag"
        assert notify.body.startswith(b"SIP/2.0 200")
        await chat.send("during")
        await _got(bob, "during")
        await bob_chat.send("answer")
        await _got(alice, "answer")
        # C-CH-02 / CH-07: method=BYE ends the recording (Refer-Sub: false echoed)
        assert await alice.history.record(chat, start=False) == 202
        (ok,) = [r for r in a_wire.responses("REFER", 202, direction="in")
                 if r.headers.get("Refer-Sub") == "false"]
        assert ok.headers.get("Server", "").startswith("IM-serv/OMA1.0")
        await chat.send("after")
        await _got(bob, "after")
        # no such recording any more / a stranger / an unknown session
        assert await alice.history.record(chat, start=False) == 404
        assert await bob.history.record(bob_chat, start=True) == 202
        history = _store(srv).history
        (rec,) = await history.of(f"alice@{DOMAIN}")
        assert rec.filename == "trip" and rec.ended_at is not None
        texts = [i.text for i in await history.items(rec.id) if i.kind is ItemKind.SEND]
        assert texts == ["during", "answer"]
        await chat.end()
    async with pair(tmp_path, pf_media="b2bua") as (_srv, alice, bob, _a, _b):
        chat, _ = await _chat(alice, bob)
        carol = Account(client_config("carol", int(alice.config.proxy.rsplit(":", 1)[1]),
                                      tmp_path, "tcp"))
        await carol.start()
        try:
            # §13.2.2.2 step 1: not a participant -> 403 (+ Warning 127)
            assert await carol.history.record(chat, start=True) == 403
        finally:
            await carol.close()
        await chat.end()


# ---------------------------------------------------------------- search endpoint (HTTP)


async def test_history_http_search_with_digest(tmp_path: Path, store_url: str) -> None:
    import aiohttp

    from client_helpers import PASSWORDS

    async with pair(tmp_path, store_url, history_http_listen="127.0.0.1:0") as (
            srv, alice, bob, _a, _b):
        await bob.settings.publish(ServiceSettings(history_pager=True))
        for text in ("lunch at noon?", "Bring the Lunch box", "unrelated"):
            await alice.pager.send("bob", text)
        await bob.pager.send("alice", "lunch: yes")
        assert srv.services is not None and srv.services.history_http_addr is not None
        host, port = srv.services.history_http_addr
        base = f"http://{host}:{port}/history"
        async with aiohttp.ClientSession() as anon, anon.get(base) as resp:
            # RFC 7616: a digest challenge, nothing listed
            assert resp.status == 401
            assert resp.headers.get("WWW-Authenticate", "").startswith("Digest ")
        digest = aiohttp.DigestAuthMiddleware("bob", PASSWORDS["bob"])
        async with aiohttp.ClientSession(middlewares=(digest,)) as http:
            async with http.get(base) as resp:
                assert resp.status == 200
                listing = await resp.json()
            assert len(listing["histories"]) == 4 and listing["next_offset"] is None
            assert {h["kind"] for h in listing["histories"]} == {"pager"}
            async with http.get(f"{base}/search", params={"text": "LUNCH", "limit": "2"}) \
                    as resp:
                page = await resp.json()
            assert [i["text"] for i in page["items"]] == ["lunch at noon?",
                                                          "Bring the Lunch box"]
            assert page["next_offset"] == 2
            async with http.get(f"{base}/search", params={"text": "lunch", "offset": "2"}) \
                    as resp:
                page = await resp.json()
            assert [(i["text"], i["direction"]) for i in page["items"]] == [("lunch: yes",
                                                                             "out")]
            async with http.get(f"{base}/search", params={"peer": "alice",
                                                          "since": "2000-01-01T00:00:00Z",
                                                          "until": "1"}) as resp:
                assert (await resp.json())["items"] == []
            async with http.get(f"{base}/search", params={"since": "yesterday"}) as resp:
                assert resp.status == 400
            async with http.get(f"{base}/metadata") as resp:
                assert resp.status == 200
                doc = await resp.text()
            assert doc.count("<history ") == 4 and "urn:oma:xml:history-list" in doc
        # alice's history is hers: she recorded nothing
        digest = aiohttp.DigestAuthMiddleware("alice", PASSWORDS["alice"])
        async with aiohttp.ClientSession(middlewares=(digest,)) as http, \
                http.get(f"{base}/search", params={"text": "lunch"}) as resp:
            assert resp.status == 200 and (await resp.json())["items"] == []


async def test_large_message_recorded_by_the_pager_setting(tmp_path: Path) -> None:
    """A Large Message Mode session (§9) through the B2BUA is recorded by the pager-large-mode
    setting (not session-mode) and delivered as multipart/mixed with message/msrp
    (§13.3.3.1)."""
    async with pair(tmp_path, pf_media="b2bua") as (srv, alice, bob, _a, _b):
        await bob.settings.publish(ServiceSettings(history_pager=True))
        text = "large " + "x" * 3000
        await alice.pager.send("bob", text)
        await _got(bob, text)
        history = _store(srv).history
        await _one_closed_history(history, f"bob@{DOMAIN}")
        (rec,) = await history.of(f"bob@{DOMAIN}")
        assert rec.kind is HistoryKind.LARGE and rec.direction == "in"
        entries = await bob.history.fetch([f"{rec.id}@{DOMAIN}"])
        (large,) = [e for e in entries if e.kind == "large"]
        assert large.text == text and large.content_type.startswith("multipart/mixed")
        assert b"Content-Type: message/msrp" in large.raw


async def test_history_http_failed_authentications_lock_the_source_out(tmp_path: Path) -> None:
    """Password guessing at the history endpoint counts like SIP failures (issue 7 item 6)."""
    import aiohttp

    from client_helpers import PASSWORDS

    async with pair(tmp_path, history_http_listen="127.0.0.1:0",
                    auth_max_failures_source=2) as (srv, _alice, _bob, _a, _b):
        assert srv.services is not None and srv.services.history_http_addr is not None
        host, port = srv.services.history_http_addr
        url = f"http://{host}:{port}/history"
        for _ in range(2):
            wrong = aiohttp.DigestAuthMiddleware("bob", "not-the-password")
            async with aiohttp.ClientSession(middlewares=(wrong,)) as http, \
                    http.get(url) as resp:
                assert resp.status == 401
        right = aiohttp.DigestAuthMiddleware("bob", PASSWORDS["bob"])
        async with aiohttp.ClientSession(middlewares=(right,)) as http, \
                http.get(url) as resp:
            # locked out: even the right password gets 403 with Retry-After
            assert resp.status == 403 and int(resp.headers["Retry-After"]) > 0
