"""Client conformance gaps (docs/conformance review): User-Agent everywhere (C-LM-06), the
peer's Allow/Supported per session (C-ST-01), RFC 4028 refresh with re-INVITE (C-SO-10),
RFC 3994 receiver timing (C-UP-06 / SMM-C-020), CEMA in the answer (CPM-06), large message
recognition (CPM-03)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from client_helpers import pair, wait_event
from simpleim.client.events import SessionEvent
from simpleim.sip.message import SipRequest, SipResponse, parse_message
from simpleim.transport.sip_addr import TransportAddr
from waiting import wait_until


def _is_state(state: str):  # type: ignore[no-untyped-def]
    return lambda e: isinstance(e, SessionEvent) and e.state == state


def _record(account: object) -> list[SipRequest | SipResponse]:
    """Every SIP message ``account`` puts on the wire (parsed)."""
    sent: list[SipRequest | SipResponse] = []
    net = account.endpoint.net  # type: ignore[attr-defined]
    orig = net.send

    def send(data: bytes, dest: TransportAddr, *a: object, **kw: object) -> object:
        if data.strip():
            sent.append(parse_message(data))
        return orig(data, dest, *a, **kw)

    net.send = send
    return sent


async def test_user_agent_on_every_request_and_response(tmp_path: Path) -> None:
    """C-LM-06 (OMA SIMPLE IM §5.x): requests and responses (except 100) of the IM client
    carry ``User-Agent: IM-client/OMA1.0 ...`` - MESSAGE 200, 180/200 to INVITE, ACK, BYE
    200, OPTIONS, UPDATE, REGISTER."""
    async with pair(tmp_path) as (alice, bob):
        a_sent, b_sent = _record(alice), _record(bob)
        await alice.pager.send("bob", "ua?")
        chat = await alice.chats.start("bob")
        await wait_event(bob, _is_state("established"))
        await chat.refresh()
        await alice.capabilities.query("bob", use_cache=False)
        await chat.end()
        await wait_event(bob, _is_state("ended"))
        await wait_until(lambda: any(isinstance(m, SipResponse) and m.status == 200
                                     and m.cseq.method == "BYE" for m in b_sent),
                         5, what="bob's 200 to the BYE")
        await alice.register()
    msgs = a_sent + b_sent
    kinds = {(m.method if isinstance(m, SipRequest) else f"{m.status} {m.cseq.method}")
             for m in msgs}
    assert {"MESSAGE", "INVITE", "ACK", "BYE", "REGISTER", "OPTIONS", "200 MESSAGE",
            "180 INVITE", "200 INVITE", "200 BYE", "200 OPTIONS"} <= kinds, kinds
    for m in msgs:
        if isinstance(m, SipResponse) and m.status == 100:
            continue
        if isinstance(m, SipRequest) and m.method == "ACK" and m.headers.get("Authorization") \
                is None and m.headers.get("Proxy-Authorization") is None \
                and m.headers.get("User-Agent") is None:
            # the ACK of a 407 challenge is made by the INVITE client transaction itself
            # (RFC 3261 §17.1.1.3, simpleim.sip) - hop by hop, not by the IM client
            continue
        ua = m.headers.get("User-Agent") or ""
        assert ua.startswith("IM-client/OMA1.0 simpleim/"), (kinds, bytes(m)[:200])
        assert len(m.headers.get_all("User-Agent")) == 1


async def test_peer_allow_and_supported_stored_per_session(tmp_path: Path) -> None:
    """C-ST-01 (OMA SIMPLE IM §7.1.2.1 step 2): the invited client stores the Allow of the
    INVITE; the inviting one that of the 200 (and both the Supported option tags)."""
    async with pair(tmp_path) as (alice, bob):
        chat = await alice.chats.start("bob")
        ev = await wait_event(bob, _is_state("established"))
        assert isinstance(ev, SessionEvent)
        bob_chat = bob.sessions[ev.session_id]
        for s in (chat, bob_chat):
            assert {"INVITE", "BYE", "MESSAGE", "UPDATE"} <= set(s.peer_allow), s.peer_allow
            assert "timer" in s.peer_supported
        await chat.end()


async def test_refresh_is_reinvite_with_current_sdp(tmp_path: Path) -> None:
    """C-SO-10 (OMA §7.1.1.8, RFC 4028 §7.4): the refresh is a re-INVITE with Supported:
    timer, Session-Expires;refresher=uac and the SDP in use; the peer's 200 (refresher=uas,
    OMA §7.1.2.2) hands the refreshing over; a 422 is retried with the peer's Min-SE."""
    from dataclasses import replace

    from simpleim.sip.session_timer import TimerState
    from simpleim.timers import Timers

    async with pair(tmp_path, bob={"timers": Timers(tc1=0.5, tc2=2.0, min_se=300.0),
                                   "session_expires": 1800}) as (alice, bob):
        chat = await alice.chats.start("bob")
        ev = await wait_event(bob, _is_state("established"))
        assert isinstance(ev, SessionEvent)
        bob_chat = bob.sessions[ev.session_id]
        assert chat.timer.state is TimerState.REFRESHER
        sent = _record(alice)
        chat.timer = replace(chat.timer, interval=100.0)      # below bob's Min-SE 300
        await chat.refresh()
        reinvites = [m for m in sent if isinstance(m, SipRequest) and m.method == "INVITE"]
        assert len(reinvites) == 2                            # 422, then the retry
        first, retry = reinvites
        assert first.headers.get("Session-Expires") == "100;refresher=uac"
        assert retry.headers.get("Session-Expires") == "300;refresher=uac"
        assert "timer" in retry.headers.get_all("Supported")
        assert retry.to_addr.tag is not None                  # in the dialog
        assert retry.body == chat.offer.to_bytes()            # the SDP in use
        assert chat.timer.interval == 300.0
        # bob answered refresher=uas: bob refreshes now, alice watches
        assert chat.timer.state is TimerState.WATCHER
        assert bob_chat.timer.state is TimerState.REFRESHER
        mid = await chat.send("still up")
        assert mid
        await chat.end()


async def test_composing_receiver_timing_session_and_pager(tmp_path: Path) -> None:
    """C-UP-06 / SMM-C-020 (RFC 3994 §4.3): an ``active`` indication turns into an ``idle``
    event when its refresh interval passes without a new one, or when a message from the
    peer arrives - in an MSRP session and in pager mode; refreshes emit nothing."""
    from simpleim.client.events import ComposingEvent, MessageEvent
    from simpleim.content.iscomposing import ComposeState, IsComposing

    def composing(state: str):  # type: ignore[no-untyped-def]
        return lambda e: isinstance(e, ComposingEvent) and e.state == state

    doc = IsComposing(ComposeState.ACTIVE, None, "text/plain", 1).to_bytes()
    ctype = "application/im-iscomposing+xml"
    async with pair(tmp_path) as (alice, bob):
        # session: active (refresh 1 s) -> idle after ~1 s
        chat = await alice.chats.start("bob")
        await wait_event(bob, _is_state("established"))
        await chat.stream.send(doc, ctype)
        act = await wait_event(bob, composing("active"))
        assert isinstance(act, ComposingEvent) and act.session_id == chat.call_id
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        idle = await wait_event(bob, lambda e: isinstance(e, ComposingEvent))
        assert isinstance(idle, ComposingEvent) and idle.state == "idle"
        assert loop.time() - t0 >= 0.5
        # session: active, then a message -> idle before the message event
        await chat.stream.send(doc, ctype)
        await wait_event(bob, composing("active"))
        await chat.send("done typing")
        ev = await wait_event(bob, lambda e: isinstance(e, ComposingEvent | MessageEvent))
        assert isinstance(ev, ComposingEvent) and ev.state == "idle"
        await chat.end()
        # pager mode (session_id None): active, refreshed (no event), expires -> idle
        assert await alice.pager.send_raw("bob", doc, ctype) == 200
        act = await wait_event(bob, composing("active"))
        assert isinstance(act, ComposingEvent) and act.session_id is None
        assert bob.inbox.composing.state("sip:alice@example.test") == "active"
        assert await alice.pager.send_raw("bob", doc, ctype) == 200
        idle = await wait_event(bob, lambda e: isinstance(e, ComposingEvent))
        assert isinstance(idle, ComposingEvent) and idle.state == "idle"
        assert bob.inbox.composing.state("sip:alice@example.test") == "idle"


async def test_answer_has_msrp_cema_when_offered(tmp_path: Path) -> None:
    """CPM-06 (RFC 6714 §4.1): an offer with a=msrp-cema gets it back in the answer; the
    connection then goes to the SDP c=/m= address (here the same place as the path)."""
    from simpleim.client import invites
    from simpleim.client.session import ChatSession
    from simpleim.sdp import chat_stream

    async with pair(tmp_path) as (alice, bob):
        session = ChatSession(alice, alice.inbox, "sip:bob@example.test", is_uac=True,
                              call_id="cema-test@127.0.0.1")
        await invites.establish(alice, session, "sip:bob@example.test",
                                lambda i, local: chat_stream(local, cema=True), 1,
                                accept_contact="*;+g.oma.sip-im")
        session.start_media()
        assert session.offer is not None and session.offer.media[0].has("msrp-cema")
        assert session.answer is not None and session.answer.media[0].has("msrp-cema")
        ev = await wait_event(bob, _is_state("established"))
        assert isinstance(ev, SessionEvent)
        mid = await session.send("cema works")
        from simpleim.client.events import MessageEvent
        msg = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(msg, MessageEvent) and msg.message_id == mid
        await session.end()
        # and without msrp-cema in the offer, none in the answer
        chat = await alice.chats.start("bob")
        assert chat.answer is not None and not chat.answer.media[0].has("msrp-cema")
        await chat.end()


async def test_file_transfer_delivery_imdn_has_cpm_ft_service(tmp_path: Path) -> None:
    """CPM-06 (RCS 5.1 / CPM 2.0 FT trace, step 14): the delivery IMDN of a file transfer
    is a MESSAGE with Accept-Contact +g.3gpp.icsi-ref=...cpm.filetransfer, the same ICSI in
    P-Preferred-Service and the session's Conversation-ID / Contribution-ID."""
    from simpleim.client.events import FileEvent, ImdnEvent

    doc = tmp_path / "a.txt"
    doc.write_text("imdn please\n")
    async with pair(tmp_path) as (alice, bob):
        b_sent = _record(bob)
        await alice.files.send("bob", [doc])
        await wait_event(bob, lambda e: isinstance(e, FileEvent) and e.state == "received")
        await wait_event(alice, lambda e: isinstance(e, ImdnEvent))
    invite = next(m for m in b_sent if isinstance(m, SipResponse) and m.status == 200
                  and m.cseq.method == "INVITE")
    imdns = [m for m in b_sent if isinstance(m, SipRequest) and m.method == "MESSAGE"]
    assert imdns, [getattr(m, "method", None) for m in b_sent]
    ft = "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.filetransfer"
    m = imdns[0]
    assert m.headers.get("Accept-Contact") == \
        f'*;+g.3gpp.icsi-ref="{ft.replace(":", "%3A")}"'
    assert m.headers.get("P-Preferred-Service") == ft
    assert m.headers.get("Conversation-ID") == invite.headers.get("Conversation-ID")
    assert m.headers.get("Contribution-ID") == invite.headers.get("Contribution-ID")
    assert b"message/imdn+xml" in m.body and b"<delivered/>" in m.body


async def test_large_message_offer_has_file_selector_size(tmp_path: Path) -> None:
    """CPM-03 (RCS 5.1 / CPM 2.0 large message trace): the offer carries
    a=file-selector:size:<bytes> and P-Preferred-Service with the largemsg ICSI; the receiver
    still takes it for a large message (feature tag / ICSI), not for a file transfer."""
    from simpleim.client.events import FileEvent, MessageEvent

    async with pair(tmp_path) as (alice, bob):
        a_sent = _record(alice)
        text = "L" * 3000
        result = await alice.pager.send("bob", text)
        assert result.mode == "large"
        msg = await wait_event(bob, lambda e: isinstance(e, MessageEvent | FileEvent))
        assert isinstance(msg, MessageEvent) and msg.mode == "large" and msg.text == text
    invite = next(m for m in a_sent if isinstance(m, SipRequest) and m.method == "INVITE")
    assert invite.headers.get("P-Preferred-Service") == \
        "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.largemsg"
    sel = [line for line in invite.body.decode().splitlines()
           if line.startswith("a=file-selector")]
    assert len(sel) == 1 and sel[0].startswith("a=file-selector:size:")
    assert int(sel[0].rsplit(":", 1)[1]) > 3000


def test_classify_large_message_by_icsi_not_sdp() -> None:
    """CPM-03: a=file-selector in the offer does not make a large message a file transfer;
    the largemsg ICSI (without the large-message tag) is enough; image share (gsma-is IARI
    + reused largemsg ICSI) stays image share."""
    from simpleim.client.invites import classify_invite
    from simpleim.sdp import parse_sdp

    sdp = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                    b"t=0 0\r\nm=message 9 TCP/MSRP *\r\na=accept-types:message/cpim\r\n"
                    b"a=path:msrp://127.0.0.1:9/x;tcp\r\na=sendonly\r\n"
                    b"a=file-selector:size:4000\r\n")

    class Inc:
        def __init__(self, *headers: tuple[str, str]) -> None:
            raw = "INVITE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n" \
                  "From: <sip:a@example.test>;tag=1\r\nTo: <sip:bob@example.test>\r\n" \
                  "Call-ID: c\r\nCSeq: 1 INVITE\r\n" + \
                  "".join(f"{k}: {v}\r\n" for k, v in headers) + "Content-Length: 0\r\n\r\n"
            self.request = parse_message(raw.encode())

    lm = "urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.largemsg"
    assert classify_invite(Inc(("Accept-Contact", "*;+g.oma.sip-im;"
                                                  "+g.oma.sip-im.large-message")),
                           sdp) == "large"  # type: ignore[arg-type]
    assert classify_invite(Inc(("Accept-Contact", f'*;+g.3gpp.icsi-ref="{lm}"')),
                           sdp) == "large"  # type: ignore[arg-type]
    assert classify_invite(Inc(("P-Preferred-Service", lm.replace("%3A", ":"))),
                           sdp) == "large"  # type: ignore[arg-type]
    assert classify_invite(Inc(("Accept-Contact", "*;+g.3gpp.cs-voice;+g.3gpp.iari-ref="
                                "\"urn%3Aurn-7%3A3gpp-application.ims.iari.gsma-is\";"
                                f'+g.3gpp.icsi-ref="{lm}"')),
                           sdp) == "image"  # type: ignore[arg-type]
    assert classify_invite(Inc(), sdp) == "file"  # type: ignore[arg-type]


async def test_file_stream_interruptible_only_on_shared_connection(tmp_path: Path) -> None:
    """RFC 4975 §7.1.1 / §5.4: a file sent while a chat runs on the same MSRP connection is
    written in interruptible slices (chat messages and IMDNs go between them); a file on a
    connection of its own keeps whole chunks.  Both arrive intact."""
    import os

    from simpleim.client import filetransfer
    from simpleim.client.events import FileEvent, MessageEvent

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2_000_000))
    seen: list[tuple[bool, bool]] = []
    orig = filetransfer.use_interruption

    def spy(stream):  # type: ignore[no-untyped-def]
        on = orig(stream)
        seen.append((filetransfer.shares_connection(stream), on))
        return on

    filetransfer.use_interruption = spy  # type: ignore[assignment]
    try:
        async with pair(tmp_path) as (alice, bob):
            # alone on its connection: whole chunks
            await alice.files.send("bob", [big])
            await wait_event(bob, lambda e: isinstance(e, FileEvent) and e.state == "received")
            assert seen[-1] == (False, False)
            # with a chat to the same peer: the same connection, interruptible slices
            chat = await alice.chats.start("bob")
            await wait_event(bob, _is_state("established"))
            send = asyncio.ensure_future(alice.files.send("bob", [big]))
            mid = await chat.send("between the slices")
            msg = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
            assert isinstance(msg, MessageEvent) and msg.message_id == mid
            results = await send
            assert [r.status for r in results] == ["sent"]
            got = await wait_event(bob, lambda e: isinstance(e, FileEvent)
                                   and e.state == "received", timeout=30)
            assert isinstance(got, FileEvent) and got.hash_ok
            assert seen[-1] == (True, True)
            await chat.end()
    finally:
        filetransfer.use_interruption = orig  # type: ignore[assignment]
