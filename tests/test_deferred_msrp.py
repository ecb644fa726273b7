"""Deferred messages delivered over MSRP sessions (OMA SIMPLE IM §12.1.1, §12.2.1,
§12.2.2.2, §12.2.2.5; DM-02/03/06/07, C-DM-01/05), asserted on the wire: the retrieval
INVITE to sip:Deferred@DOMAIN (a=recvonly -> 200 a=sendonly with ``automata``), the push
INVITE the server opens towards an OMA client with offline-delivery on, one MSRP SEND per
message (multipart/mixed with a message/sip part: the stored request, its Call-ID unaltered,
the receive time in Date), then the server's BYE."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client_helpers import DOMAIN, client_config, running_server, wait_event
from simpleim.client.account import Account
from simpleim.client.deferred import stored_requests
from simpleim.client.events import MessageEvent
from simpleim.content.poc_settings import ServiceSettings
from simpleim.errors import SimpleImError
from simpleim.sdp import parse_sdp
from simpleim.server.deferred.message import pushed
from simpleim.sip.header_values import MediaType
from simpleim.sip.message import SipRequest, parse_message
from simpleim.sip.multipart import parse_multipart
from simpleim.store.deferred import DeferredMessage
from waiting import wait_until
from wire import MsrpWire, SipWire

MESSAGE = (b"MESSAGE sip:carol@example.test SIP/2.0\r\n"
           b"From: <sip:alice@example.test>;tag=a1\r\n"
           b"To: <sip:carol@example.test>\r\n"
           b"Call-ID: original-call-id@alice\r\n"
           b"CSeq: 1 MESSAGE\r\n"
           b"Content-Type: text/plain\r\n"
           b"Content-Length: 5\r\n\r\nhello")


def test_the_pushed_format() -> None:
    """DM-07: one message/sip part, the stored request as it was with Date (the receive
    time) added and the stored message's URI; nothing else of it altered."""
    stored = parse_message(MESSAGE)
    assert isinstance(stored, SipRequest)
    message = DeferredMessage("abc123", f"carol@{DOMAIN}", f"alice@{DOMAIN}", 1,
                              1_780_000_000.0, 1_790_000_000.0, "", MESSAGE)
    body, ctype = pushed(message, stored, DOMAIN)
    mt = MediaType.parse(ctype)
    assert mt.mime == "multipart/mixed" and mt.boundary
    (part,) = parse_multipart(body, mt.boundary)
    assert part.content_type == "message/sip"
    inner = parse_message(part.body)
    assert isinstance(inner, SipRequest)
    assert inner.call_id == "original-call-id@alice" and inner.body == b"hello"
    assert str(inner.from_addr.uri) == "sip:alice@example.test"
    assert inner.headers.get("Date") == "Thu, 28 May 2026 20:26:40 GMT"
    assert inner.headers.get("Deferred-Message-ID") == f"<sip:abc123@{DOMAIN}>"


def _sends(msrp: MsrpWire, account: Account) -> list[tuple[str, bytes]]:
    return [(r.headers.get("Content-Type") or "", r.body)
            for r in msrp.requests(account.msrp) if r.body]


def _message_sip_parts(ctype: str, body: bytes) -> list[SipRequest]:
    mt = MediaType.parse(ctype)
    assert mt.mime == "multipart/mixed" and mt.boundary, ctype
    out = []
    for part in parse_multipart(body, mt.boundary):
        assert part.content_type == "message/sip"
        req = parse_message(part.body)
        assert isinstance(req, SipRequest)
        out.append(req)
    return out


async def _messages(account: Account, n: int) -> list[MessageEvent]:
    got = []
    while len(got) < n:
        ev = await wait_event(account, lambda e: isinstance(e, MessageEvent))
        assert isinstance(ev, MessageEvent)
        got.append(ev)
    return got


async def test_retrieval_of_all_then_selected_on_the_wire(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msrp = MsrpWire(monkeypatch)
    async with (
        running_server(tmp_path, ) as (server, port),
        Account(client_config("alice", port, tmp_path, "tcp")) as alice,
    ):
        a_wire = SipWire(alice)
        for text in ("first", "second"):
            assert (await alice.pager.send("carol", text)).status == 202
        # each MESSAGE went twice (the digest challenge), with one Call-ID
        alice_calls = list(dict.fromkeys(r.call_id for r in a_wire.requests("MESSAGE", "out")))
        carol = Account(client_config("carol", port, tmp_path, "tcp"))
        c_wire = SipWire(carol)
        msrp.watch(carol.msrp)
        await carol.start(register=False)      # no registration: nothing re-sent by MESSAGE
        try:
            assert await carol.deferred.retrieve() == 2                   # C-DM-01
            invite = await c_wire.request("INVITE", "out")
            assert str(invite.uri) == f"sip:Deferred@{DOMAIN}"
            offer = parse_sdp(invite.body)
            assert offer.media[0].has("recvonly")                       # §12.1.1
            ok = await c_wire.response("INVITE", 200, direction="in")
            assert "automata" in (ok.headers.get("Contact") or "")      # §12.2.1 step 4
            assert (ok.headers.get("Server") or "").startswith("IM-serv/OMA1.0")
            assert parse_sdp(ok.body).media[0].has("sendonly")
            bye = await c_wire.request("BYE", "in")                     # §12.2.2.5: the end
            assert bye.call_id == invite.call_id
            sends = _sends(msrp, carol)
            assert len(sends) == 2                                      # one SEND each
            inner = [r for c, b in sends for r in _message_sip_parts(c, b)]
            assert [r.call_id for r in inner] == alice_calls            # unaltered, in order
            assert all(r.headers.get("Date") for r in inner)
            got = await _messages(carol, 2)
            assert [e.text for e in got] == ["first", "second"]
            assert all(e.deferred and e.sender == f"sip:alice@{DOMAIN}" for e in got)
            assert server.roles is not None
            assert await server.roles.deferred.stored(f"carol@{DOMAIN}") == []
            # DM-03: nothing left -> 488 + Warning 125
            assert await carol.deferred.retrieve() == 0
            warn = c_wire.responses("INVITE", 488, "in")[-1].headers.get("Warning") or ""
            assert '"125 No messages"' in warn
            # selected retrieval: only the listed message goes, the other stays
            for text in ("third", "fourth"):
                assert (await alice.pager.send("carol", text)).status == 202
            third, fourth = await server.roles.deferred.stored(f"carol@{DOMAIN}")
            assert await carol.deferred.retrieve([fourth.id]) == 1
            ev = await wait_event(carol, lambda e: isinstance(e, MessageEvent))
            assert isinstance(ev, MessageEvent) and ev.text == "fourth"
            left = await server.roles.deferred.stored(f"carol@{DOMAIN}")
            assert [m.id for m in left] == [third.id]
        finally:
            await carol.close()


async def test_push_to_an_oma_client_with_offline_delivery_on_the_wire(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msrp = MsrpWire(monkeypatch)
    async with (
        running_server(tmp_path) as (server, port),
        Account(client_config("alice", port, tmp_path, "tcp")) as alice,
    ):
        for text in ("pushed one", "pushed two"):
            assert (await alice.pager.send("carol", text)).status == 202
        carol = Account(client_config("carol", port, tmp_path, "tcp"))
        c_wire = SipWire(carol)
        msrp.watch(carol.msrp)
        await carol.start(register=False)
        try:
            # offline-delivery on (§12.2.2.2), then the registration: the server pushes
            assert await carol.settings.publish(ServiceSettings(offline_delivery=True)) == 200
            await carol.register()
            got = await _messages(carol, 2)
            assert [e.text for e in got] == ["pushed one", "pushed two"]
            assert all(e.deferred for e in got)
            invite = await c_wire.request("INVITE", "in")
            assert str(invite.from_addr.uri) == f"sip:Deferred@{DOMAIN}"
            contact = invite.headers.get("Contact") or ""
            assert "automata" in contact and "+g.oma.sip-im" in contact       # d, e
            assert "+g.oma.sip-im" in (invite.headers.get("Accept-Contact") or "")  # b
            assert (invite.headers.get("User-Agent") or "").startswith("IM-serv/OMA1.0")  # c
            assert parse_sdp(invite.body).media[0].has("sendonly")             # g
            ok = await c_wire.response("INVITE", 200, direction="out")
            assert parse_sdp(ok.body).media[0].has("recvonly")
            await c_wire.request("BYE", "in")
            sends = _sends(msrp, carol)
            inner = [r for c, b in sends for r in _message_sip_parts(c, b)]   # DM-07
            assert len(sends) == 2 and len(inner) == 2
            assert all(str(r.from_addr.uri) == f"sip:alice@{DOMAIN}" for r in inner)
            assert not c_wire.requests("MESSAGE", "in")    # not re-sent by MESSAGE too
            assert server.roles is not None
            await wait_until(lambda: not server.roles.deferred.has_pending(  # type: ignore[union-attr]
                f"carol@{DOMAIN}"), 10, what="store emptied")
        finally:
            await carol.close()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.sampled_from([
    "multipart/mixed; boundary=b1", "multipart/mixed", "message/sip", "text/plain",
    "multipart/mixed; boundary=\"\"", "", ";;"]))
def test_a_delivery_item_parses_or_fails_with_the_typed_error(body: bytes, ctype: str) -> None:
    """What the client takes from a push / retrieval SEND: a list of requests or a
    SimpleImError - never another exception, whatever the server (or a relay) sends."""
    try:
        out = stored_requests(ctype, b"--b1\r\nContent-Type: message/sip\r\n\r\n" + body
                              + b"\r\n--b1--\r\n" if "b1" in ctype else body)
    except SimpleImError:
        return
    assert all(isinstance(r, SipRequest) for r in out)
