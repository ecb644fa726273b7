"""Deferred large messages (OMA SIMPLE IM §12.2.2.1, §12.2.2.3 step 3, §12.2.2.5, D.2
example 2; DM-04/05/07, IMSpec-DM-S-001/003, C-DM-05), asserted on the wire, on SQLite and
PostgreSQL: a large message session to a user who is offline is answered by the Deferred
Messaging Function (200, ``a=recvonly``), its MSRP content received and stored with the
session's relevant headers; it is delivered later in a push / retrieval session as a
``multipart/mixed`` SEND with the INVITE and 200 OK (``message/sip``) and the SEND
(``message/msrp``, its MSRP Message-ID unaltered), and to a plain SIP client as a MESSAGE."""

from __future__ import annotations

from pathlib import Path

import pytest

from client_helpers import DOMAIN, client_config, running_server, wait_event
from simpleim.client.account import Account
from simpleim.client.deferred_parts import delivered_requests
from simpleim.client.events import MessageEvent
from simpleim.client.largemsg import LargeMessages
from simpleim.content.poc_settings import ServiceSettings
from simpleim.msrp import MsrpRequest, parse_stream
from simpleim.sdp import parse_sdp
from simpleim.server.deferred.large import (
    large_as_message,
    parse_stored_large,
    pushed_large,
    stored_large,
    with_bye,
)
from simpleim.sip.header_values import MediaType
from simpleim.sip.message import Headers, SipRequest, SipResponse, parse_message
from simpleim.sip.multipart import parse_multipart
from simpleim.transport.sip import IncomingRequest
from waiting import wait_until
from wire import MsrpWire, SipWire

BIG = "large message body " * 200           # ~3.8 kB: large message mode (§9, > 1300)

INVITE = (b"INVITE sip:carol@example.test SIP/2.0\r\n"
          b"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKx\r\n"
          b"From: <sip:alice@example.test>;tag=786\r\n"
          b"To: <sip:carol@example.test>\r\n"
          b"Call-ID: 3413an89KU\r\n"
          b"CSeq: 1 INVITE\r\n"
          b"Contact: <sip:alice@127.0.0.1:5999>;+g.oma.sip-im.large-message\r\n"
          b"P-Asserted-Identity: <sip:alice@example.test>\r\n"
          b"Privacy: id\r\n"
          b"Subject: hi\r\n"
          b"Accept-Contact: *;+g.oma.sip-im.large-message\r\n"
          b"Content-Type: application/sdp\r\n"
          b"Content-Length: 4\r\n\r\nv=0\n")


def test_stored_and_pushed_format_round_trip() -> None:
    """§12.2.2.3 step 3: relevant headers only (no Via, no PAI when anonymity was asked),
    the SEND whole with its Message-ID and the receive Date; DM-07: the push parts; the
    client presents it as a MESSAGE with the sender's headers and the content."""
    invite = parse_message(INVITE)
    assert isinstance(invite, SipRequest)
    answer = SipResponse(200, "OK", [("To", "<sip:carol@example.test>;tag=9"),
                                     ("Via", "SIP/2.0/TCP x"), ("Call-ID", "3413an89KU")],
                         b"v=0\n")
    raw = stored_large(invite, answer, "text/plain", b"Hi, Alice! I'm Bob!",
                       (("To-Path", "msrp://127.0.0.1:7/a;tcp"),
                        ("From-Path", "msrp://127.0.0.1:8/b;tcp")),
                       "m456abc", "Thu, 21 Feb 2005 13:02:04 GMT", anonymous=True)
    stored = parse_message(raw)
    assert isinstance(stored, SipRequest) and stored.method == "INVITE"
    assert "via" not in stored.headers and "accept-contact" not in stored.headers
    assert "p-asserted-identity" not in stored.headers               # §12.2.2.3 step 2
    assert stored.headers.get("Contact")                             # §12.2.2.1 step 1
    large = parse_stored_large(stored)
    assert large is not None
    assert large.send.message_id == "m456abc" and large.send.body == b"Hi, Alice! I'm Bob!"
    assert large.send.headers.get("Date") == "Thu, 21 Feb 2005 13:02:04 GMT"
    assert str(large.send.byte_range) == "1-19/19"
    extra = Headers()
    extra.add("Date", "Thu, 21 Feb 2005 13:02:05 GMT")
    extra.add("Deferred-Message-ID", f"<sip:abc@{DOMAIN}>")
    body, ctype = pushed_large(large, extra)
    mt = MediaType.parse(ctype)
    assert mt.mime == "multipart/mixed" and mt.boundary
    parts = parse_multipart(body, mt.boundary)
    assert [p.content_type for p in parts] == ["message/sip", "message/sip", "message/msrp"]
    inv = parse_message(parts[0].body)
    assert isinstance(inv, SipRequest) and inv.call_id == "3413an89KU"   # unaltered
    assert inv.headers.get("Date") == "Thu, 21 Feb 2005 13:02:05 GMT"
    assert inv.body == b"v=0\n" and inv.content_type == "application/sdp"
    ok = parse_message(parts[1].body)
    assert isinstance(ok, SipResponse) and ok.status == 200 and "via" not in ok.headers
    (send,) = parse_stream(parts[2].body)
    assert isinstance(send, MsrpRequest) and send.message_id == "m456abc"
    (presented,) = delivered_requests(ctype, body)
    assert presented.method == "MESSAGE" and presented.body == b"Hi, Alice! I'm Bob!"
    assert presented.content_type == "text/plain"
    assert presented.headers.get("Deferred-Message-ID") == f"<sip:abc@{DOMAIN}>"
    assert str(presented.from_addr.uri) == "sip:alice@example.test"
    plain = large_as_message(large, f"carol@{DOMAIN}")
    assert plain is not None and plain.method == "MESSAGE" and plain.call_id == "3413an89KU"
    assert plain.headers.get("CSeq") == "1 MESSAGE"
    # §12.2.2.3 step 3: the relevant headers of the BYE join the stored message
    bye = SipRequest("BYE", invite.uri, [
        ("Via", "SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKy"), ("Max-Forwards", "70"),
        ("From", "<sip:alice@example.test>;tag=786"), ("To", "<sip:carol@example.test>;tag=9"),
        ("Call-ID", "3413an89KU"), ("CSeq", "2 BYE"),
        ("P-Asserted-Identity", "<sip:alice@example.test>"),
        ("Reason", 'SIP;cause=200;text="done"')])
    raw_bye = with_bye(raw, bye, anonymous=True)
    assert raw_bye is not None and with_bye(raw_bye, bye, anonymous=True) is None  # once
    closed = parse_message(raw_bye)
    assert isinstance(closed, SipRequest)
    large = parse_stored_large(closed)
    assert large is not None and large.bye is not None and large.answer is not None
    kept_bye = parse_message(large.bye)
    assert isinstance(kept_bye, SipRequest) and kept_bye.method == "BYE"
    assert kept_bye.headers.get("CSeq") == "2 BYE" and kept_bye.call_id == "3413an89KU"
    assert kept_bye.headers.get("Reason") == 'SIP;cause=200;text="done"'
    assert "via" not in kept_bye.headers and "max-forwards" not in kept_bye.headers
    assert "p-asserted-identity" not in kept_bye.headers              # anonymity asked
    assert large.send.body == b"Hi, Alice! I'm Bob!"
    # the push still carries INVITE, 200 and SEND only (§12.2.2.5)
    body, ctype = pushed_large(large, extra)
    parts = parse_multipart(body, MediaType.parse(ctype).boundary or "")
    assert [p.content_type for p in parts] == ["message/sip", "message/sip", "message/msrp"]
    assert with_bye(b"not a request", bye, anonymous=False) is None


def _sends(msrp: MsrpWire, account: Account) -> list[MsrpRequest]:
    return [r for r in msrp.requests(account.msrp) if r.body]


async def test_large_message_to_offline_user_is_stored_then_pushed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str) -> None:
    msrp = MsrpWire(monkeypatch)
    async with (
        running_server(tmp_path, store_url=store_url) as (server, port),
        Account(client_config("alice", port, tmp_path, "tcp")) as alice,
    ):
        a_wire = SipWire(alice)
        msrp.watch(alice.msrp)
        result = await alice.pager.send("carol", BIG)
        assert result.mode == "large" and result.status == 200     # DM-04: the DMF took it
        invite = await a_wire.request("INVITE", "out")
        ok = await a_wire.response("INVITE", 200, direction="in")
        assert parse_sdp(ok.body).media[0].has("recvonly")
        assert (ok.headers.get("Server") or "").startswith("IM-serv/OMA1.0")
        assert server.roles is not None
        # whoever ended the session first sent the BYE (alice after the 200, or the DMF)
        byes = await wait_until(lambda: a_wire.requests("BYE", "out")
                                or a_wire.requests("BYE", "in"), 10, what="BYE")
        a_bye = byes[0]
        roles = server.roles

        async def bye_kept() -> bool:
            (row,) = await roles.deferred.stored(f"carol@{DOMAIN}")
            got = parse_message(row.request)
            return isinstance(got, SipRequest) and b"\r\nBYE " in got.body

        await wait_until(bye_kept, 10, what="the BYE's headers stored with the message")
        (stored,) = await server.roles.deferred.stored(f"carol@{DOMAIN}")
        assert stored.request.startswith(b"INVITE ")
        kept = parse_message(stored.request)
        assert isinstance(kept, SipRequest)
        large = parse_stored_large(kept)
        assert large is not None and large.send.message_id
        # §12.2.2.3 step 3: the relevant headers of the session's BYE are kept with it
        assert large.bye is not None
        kept_bye = parse_message(large.bye)
        assert isinstance(kept_bye, SipRequest) and kept_bye.call_id == invite.call_id
        assert kept_bye.headers.get("CSeq") == a_bye.headers.get("CSeq")
        assert "via" not in kept_bye.headers
        assert stored.sender == f"alice@{DOMAIN}"
        carol = Account(client_config("carol", port, tmp_path, "tcp"))
        c_wire = SipWire(carol)
        msrp.watch(carol.msrp)
        await carol.start(register=False)
        try:
            assert await carol.settings.publish(ServiceSettings(offline_delivery=True)) == 200
            await carol.register()
            ev = await wait_event(carol, lambda e: isinstance(e, MessageEvent))
            assert isinstance(ev, MessageEvent)
            assert ev.text == BIG and ev.deferred and ev.sender == f"sip:alice@{DOMAIN}"
            push = await c_wire.request("INVITE", "in")
            assert "automata" in (push.headers.get("Contact") or "")
            await c_wire.request("BYE", "in")
            (send,) = _sends(msrp, carol)
            mt = MediaType.parse(send.content_type or "")
            assert mt.mime == "multipart/mixed" and mt.boundary
            parts = parse_multipart(send.body or b"", mt.boundary)
            assert [p.content_type for p in parts] == ["message/sip", "message/sip",
                                                       "message/msrp"]
            inv = parse_message(parts[0].body)
            assert isinstance(inv, SipRequest) and inv.call_id == invite.call_id
            assert inv.headers.get("Date")
            (inner,) = parse_stream(parts[2].body)
            assert isinstance(inner, MsrpRequest)
            # §12.2.2.5: the MSRP Message-ID of the sender's SEND is kept
            assert inner.message_id == large.send.message_id
            assert inner.body and BIG.encode() in inner.body
            assert inner.headers.get("Date")
            assert await server.roles.deferred.stored(f"carol@{DOMAIN}") == []
            assert not c_wire.requests("MESSAGE", "in")
        finally:
            await carol.close()


async def test_large_message_retrieved_and_resent_to_plain_client(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str) -> None:
    """Retrieval (INVITE to sip:Deferred@) carries it as message/msrp; without
    offline-delivery the registration re-sends its content as a MESSAGE (msilo path)."""
    msrp = MsrpWire(monkeypatch)
    async with (
        running_server(tmp_path, store_url=store_url) as (server, port),
        Account(client_config("alice", port, tmp_path, "tcp")) as alice,
    ):
        assert (await alice.pager.send("carol", BIG)).status == 200
        assert (await alice.pager.send("carol", "x" + BIG)).status == 200
        carol = Account(client_config("carol", port, tmp_path, "tcp"))
        c_wire = SipWire(carol)
        msrp.watch(carol.msrp)
        await carol.start(register=False)
        try:
            assert server.roles is not None
            first, second = await server.roles.deferred.stored(f"carol@{DOMAIN}")
            assert await carol.deferred.retrieve([first.id]) == 1
            ev = await wait_event(carol, lambda e: isinstance(e, MessageEvent))
            assert isinstance(ev, MessageEvent) and ev.text == BIG and ev.deferred
            (send,) = _sends(msrp, carol)
            assert b"Content-Type: message/msrp" in (send.body or b"")
            left = await server.roles.deferred.stored(f"carol@{DOMAIN}")
            assert [m.id for m in left] == [second.id]
            await carol.register()                  # no offline-delivery: MESSAGE re-send
            ev = await wait_event(carol, lambda e: isinstance(e, MessageEvent))
            assert isinstance(ev, MessageEvent) and ev.text == "x" + BIG and ev.deferred
            msg = await c_wire.request("MESSAGE", "in")
            assert msg.headers.get("Date") and msg.headers.get("Deferred-Message-ID")
            assert str(msg.from_addr.uri) == f"sip:alice@{DOMAIN}"
            await wait_until(lambda: not server.roles.deferred.has_pending(  # type: ignore[union-attr]
                f"carol@{DOMAIN}"), 10, what="store emptied")
        finally:
            await carol.close()


async def test_large_message_to_unreachable_contact_is_deferred(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str) -> None:
    """PT-01 step 5 for a large message: carol is registered, her contact answers 480 ->
    the DMF takes the session instead (the sender sees a 200, not the 480)."""
    async def busy(self: LargeMessages, inc: IncomingRequest, offer: object) -> None:
        inc.reply(480)

    monkeypatch.setattr(LargeMessages, "on_invite", busy)
    async with (
        running_server(tmp_path, store_url=store_url) as (server, port),
        Account(client_config("alice", port, tmp_path, "tcp")) as alice,
        Account(client_config("carol", port, tmp_path, "tcp")) as carol,
    ):
        c_wire = SipWire(carol)
        assert (await alice.pager.send("carol", BIG)).status == 200
        assert await c_wire.response("INVITE", 480, direction="out")
        assert server.roles is not None
        (stored,) = await server.roles.deferred.stored(f"carol@{DOMAIN}")
        assert stored.request.startswith(b"INVITE ") and BIG.encode()[:200] in stored.request
