"""The client's SHALLs as they appear on the wire (issue 8 §2).

Each test records the SIP (and where it matters MSRP) messages a client sends and receives -
tests/wire.py taps the transport, every message is parsed back from its bytes - and asserts
the fields the OMA SIMPLE IM / IR.79 / CPM text names.  Most runs are direct client-to-client
(no server in the middle, so nothing but the client can have written what is checked); the
registration ones go through the in-process server.  Every comparison first asserts that
the values it compares exist.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from client_helpers import wait_event
from simpleim.client import ChatSession, MessageEvent, Policy, SessionEvent, SessionFailed
from simpleim.content.cpim import parse_cpim
from simpleim.sdp import MsrpMedia, SessionDescription
from simpleim.sip.message import SipMessage, SipRequest
from simpleim.transport.msrp_sdp import body_parts, sdp_of
from wire import MsrpWire, direct_pair, wired_pair

ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"
UA_PREFIX = "IM-client/OMA1.0"


def sdp(msg: SipMessage) -> SessionDescription:
    found = sdp_of(msg)
    assert found is not None, "no SDP in the message"
    return found


def msrp_media(desc: SessionDescription, index: int = 0) -> MsrpMedia:
    assert len(desc.media) > index
    return MsrpMedia.from_media(desc.media[index], desc)


def header(msg: SipMessage, name: str) -> str:
    value = msg.headers.get(name)
    assert value, f"no {name} in {msg.start_line() if hasattr(msg, 'start_line') else msg}"
    return value


def values(msg: SipMessage, name: str) -> list[str]:
    """All values of a (possibly comma-separated, possibly repeated) header."""
    out = [v.strip() for raw in msg.headers.get_all(name) for v in raw.split(",") if v.strip()]
    assert out, f"no {name}"
    return out


def same_header(a: SipMessage, b: SipMessage, name: str) -> str:
    """``name`` is present in both and equal."""
    va, vb = header(a, name), header(b, name)
    assert va == vb, f"{name}: {va!r} != {vb!r}"
    return va


def contact_uri(msg: SipMessage) -> str:
    contacts = msg.contacts
    assert len(contacts) == 1, "one Contact expected"
    return str(contacts[0].uri)


def is_state(state: str):  # noqa: ANN201
    return lambda e: isinstance(e, SessionEvent) and e.state == state


# ---------------------------------------------------------------------------- 1-1 session

async def test_one_to_one_session_on_the_wire(tmp_path: Path) -> None:
    """C-SO-01 / C-SO-02 (IMSpec-SMM-C-001), C-ST-01 (SMM-C-016), C-SO-13 / C-SO-16
    (SMM-C-011), C-ST-03 (SMM-C-017), CPM-01 / CPM-05, direct alice -> bob:

    * INVITE: R-URI = the recipient's IM address; Accept-Contact *;+g.oma.sip-im; User-Agent
      IM-client/OMA1.0; Contact with +g.oma.sip-im; Supported: timer; Allow; Session-Expires
      with refresher=uac; an SDP offer m=message TCP/MSRP with accept-types message/cpim;
    * 200: an SDP answer with accept-types, Contact, User-Agent, Conversation-ID and
      Contribution-ID equal to the INVITE's; alice stores the Contact as the session
      identity (dialog target), the Allow list, starts the session timer;
    * BYE: R-URI = the stored session identity; bob answers 200 and both release MSRP."""
    async with direct_pair(tmp_path) as (alice, bob, a_wire, b_wire):
        chat = await alice.chats.start("bob")
        invite = a_wire.requests("INVITE")[0]
        assert str(invite.uri) == BOB
        [accept_contact] = invite.headers.get_all("Accept-Contact")
        assert accept_contact.startswith("*;+g.oma.sip-im;")
        assert header(invite, "User-Agent").startswith(UA_PREFIX)
        assert "+g.oma.sip-im" in invite.contacts[0].params
        assert "timer" in invite.supported
        allow = set(values(invite, "Allow"))
        assert {"INVITE", "ACK", "CANCEL", "BYE", "MESSAGE"} <= allow
        assert header(invite, "Session-Expires").endswith(";refresher=uac")
        offer = sdp(invite)
        assert (offer.media[0].media, offer.media[0].proto) == ("message", "TCP/MSRP")
        assert "message/cpim" in msrp_media(offer).accept_types
        # bob received exactly this INVITE and answered it
        [got] = b_wire.requests("INVITE", direction="in")
        assert same_header(got, invite, "Call-ID")
        ok = await b_wire.response("INVITE", 200)
        answer = sdp(ok)
        assert msrp_media(answer).accept_types
        assert header(ok, "User-Agent").startswith(UA_PREFIX)
        bob_contact = contact_uri(ok)
        assert bob_contact.startswith("sip:bob@127.0.0.1:")
        same_header(invite, ok, "Conversation-ID")
        same_header(invite, ok, "Contribution-ID")
        # alice kept the session identity, the peer's Allow, and started the timer
        assert chat.dialog is not None and str(chat.dialog.remote_target) == bob_contact
        bob_allow = tuple(m.upper() for m in values(ok, "Allow"))
        assert chat.peer_allow and chat.peer_allow == bob_allow
        assert chat.timer.deadline is not None
        await a_wire.request("ACK")
        await wait_event(bob, is_state("established"))
        bob_chat = bob.chats.session(chat.call_id)
        assert bob_chat is not None
        # bob (C-ST-01) stored alice's Contact as the session identity and her Allow list
        assert bob_chat.dialog is not None
        assert str(bob_chat.dialog.remote_target) == contact_uri(invite)
        assert bob_chat.peer_allow == tuple(m.upper() for m in values(invite, "Allow"))
        # leaving: BYE to the session identity, 200, MSRP released on both sides
        a_conn, b_conn = chat.stream.runner, bob_chat.stream.runner
        assert a_conn is not None and b_conn is not None
        await chat.end()
        bye = await a_wire.request("BYE")
        assert str(bye.uri) == bob_contact
        assert header(bye, "User-Agent").startswith(UA_PREFIX)
        bye_ok = await b_wire.response("BYE", 200)
        assert header(bye_ok, "User-Agent").startswith(UA_PREFIX)
        await wait_event(bob, is_state("ended"))
        assert bob_chat.ended.is_set() and bob_chat.end_reason == "remote hangup"
        assert all(s.runner is None for s in [*chat.streams.values(),
                                               *bob_chat.streams.values()])
        async with asyncio.timeout(10):       # the last session closes the connection
            await a_conn.closed.wait()
            await b_conn.closed.wait()
        assert chat.call_id not in alice.sessions and chat.call_id not in bob.sessions


async def test_cancel_on_the_wire(tmp_path: Path) -> None:
    """C-ST-04 (IMSpec-SMM-C-019): bob answers the CANCEL with 200 and the INVITE with 487;
    C-SO-14 (SMM-C-012, 1-1 INVITE only): alice's CANCEL names the pending INVITE (RFC 3261
    §9.1: same Request-URI, Call-ID, From, To, CSeq number and top Via) and ACKs the 487."""
    async with direct_pair(tmp_path, bob={"policy": Policy(sessions="ask")}) as (
            alice, bob, a_wire, b_wire):
        task = asyncio.ensure_future(alice.chats.start("bob"))
        await wait_event(bob, is_state("invited"))
        ringing = await a_wire.response("INVITE", 180, direction="in")
        assert header(ringing, "User-Agent").startswith(UA_PREFIX)
        [session] = alice.sessions.values()
        assert isinstance(session, ChatSession) and session.attempt is not None
        session.attempt.cancel()
        with pytest.raises(SessionFailed) as err:
            await task
        assert err.value.status == 487
        invite = a_wire.requests("INVITE")[0]
        cancel = await a_wire.request("CANCEL")
        assert str(cancel.uri) == str(invite.uri)
        for name in ("Call-ID", "From", "To"):
            same_header(cancel, invite, name)
        assert cancel.cseq.seq == invite.cseq.seq and cancel.cseq.method == "CANCEL"
        assert values(cancel, "Via")[0] == values(invite, "Via")[0]
        ok = await b_wire.response("CANCEL", 200)
        same_header(ok, cancel, "Call-ID")
        terminated = await b_wire.response("INVITE", 487)
        assert terminated.to_addr.tag and terminated.to_addr.tag == ringing.to_addr.tag
        assert b_wire.responses("INVITE", 200) == []
        ack = await a_wire.request("ACK", where=lambda r: r.cseq.seq == invite.cseq.seq)
        assert ack.to_addr.tag == terminated.to_addr.tag      # RFC 3261 §17.1.1.3
        await wait_event(bob, is_state("cancelled"))
        assert session.call_id not in bob.sessions


@pytest.mark.parametrize(("policy", "status"), [("decline", 480), ("ask", 408)])
async def test_declined_and_unanswered_invitations(tmp_path: Path, policy: str,
                                                   status: int) -> None:
    """C-ST-01 (IMSpec-SMM-C-016): declined -> 480 Temporarily Unavailable; not answered in
    time -> 408 Request Timeout; both with User-Agent (OMA §5.x)."""
    bob_policy = Policy(sessions=policy, answer_timeout=0.3)
    async with direct_pair(tmp_path, bob={"policy": bob_policy}) as (alice, _bob, _a, b_wire):
        with pytest.raises(SessionFailed) as err:
            await alice.chats.start("bob")
        assert err.value.status == status
        refused = await b_wire.response("INVITE", status)
        assert header(refused, "User-Agent").startswith(UA_PREFIX)
        assert b_wire.responses("INVITE", 200) == []


# ---------------------------------------------------------------------------- pager mode

async def test_pager_message_and_notifications_on_the_wire(tmp_path: Path) -> None:
    """C-PM-01 (IMSpec-PMM-C-001), C-PM-02 (PMM-C-007), CPM-02, direct alice -> bob:

    * MESSAGE: R-URI = the recipient; Accept-Contact *;+g.oma.sip-im; User-Agent; a
      message/cpim body with imdn.Message-ID and imdn.Disposition-Notification;
    * bob: 200 with User-Agent and bob's own address in To; the delivery notification asked
      for goes back in a SIP MESSAGE (message/cpim around message/imdn+xml, delivered, the
      same Message-ID); alice correlates it through the Message-ID it kept (Tc2);
    * the display notification, when bob's user reads it, in a second MESSAGE."""
    from simpleim.client import ImdnEvent
    from simpleim.content.imdn import parse_imdn

    async with direct_pair(tmp_path) as (alice, bob, a_wire, b_wire):
        sent = await alice.pager.send("bob", "hello bob")
        [msg] = a_wire.requests("MESSAGE")
        assert str(msg.uri) == BOB
        assert msg.headers.get_all("Accept-Contact") == ["*;+g.oma.sip-im"]
        assert header(msg, "User-Agent").startswith(UA_PREFIX)
        assert msg.content_type == "message/cpim"
        cpim = parse_cpim(msg.body)
        assert cpim.imdn_message_id and cpim.imdn_message_id == sent.message_id
        assert "positive-delivery" in cpim.disposition_notification
        assert cpim.payload == b"hello bob"
        ok = await b_wire.response("MESSAGE", 200)
        assert header(ok, "User-Agent").startswith(UA_PREFIX)
        assert str(ok.to_addr.uri) == BOB
        got = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(got, MessageEvent) and got.message_id == sent.message_id
        # the delivery notification, in a MESSAGE from bob to alice
        imdn_msg = await b_wire.request("MESSAGE")
        assert str(imdn_msg.uri) == ALICE and imdn_msg.content_type == "message/cpim"
        wrapper = parse_cpim(imdn_msg.body)
        assert wrapper.content_type == "message/imdn+xml"
        assert wrapper.content_disposition == "notification"            # RFC 5438 §7.1.1.2
        doc = parse_imdn(wrapper.payload)
        assert doc.message_id == sent.message_id
        assert (doc.kind.value, doc.status.value) == ("delivery-notification", "delivered")
        await a_wire.response("MESSAGE", 200)
        tick = await wait_event(alice, lambda e: isinstance(e, ImdnEvent))
        assert isinstance(tick, ImdnEvent) and tick.message_id == sent.message_id
        assert tick.expected                  # matched the Message-ID kept for Tc2
        # display notification
        assert await bob.mark_displayed(sent.message_id)
        shown = await b_wire.request("MESSAGE", where=lambda r: r is not imdn_msg)
        doc2 = parse_imdn(parse_cpim(shown.body).payload)
        assert (doc2.message_id, doc2.status.value) == (sent.message_id, "displayed")


# ---------------------------------------------------------------------------- large message

async def test_large_message_on_the_wire(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """C-PM-00, C-LM-01, C-LM-02 (IMSpec-LMM-C-001), C-LM-04 (LMM-C-005), C-LM-06 / C-LM-07
    (LMM-C-006), C-LM-08 (LMM-C-007), CPM-03, direct:

    * above 1300 bytes: no MESSAGE but an INVITE to the recipient with Accept-Contact
      *;+g.oma.sip-im and +g.oma.sip-im.large-message, User-Agent, Contact with
      +g.oma.sip-im, Supported: timer, Session-Expires;refresher=uac, P-Preferred-Service
      cpm.largemsg and an SDP offer with a=sendonly and a=file-selector:size;
    * bob: 180 and 200 with User-Agent, 200 with Allow, Contact and an SDP answer;
    * one MSRP SEND of the message/cpim; alice's BYE (R-URI = bob's Contact) only after the
      200 to the last chunk; bob answers the BYE with 200."""
    text = "large " + "x" * 1400
    wire = MsrpWire(monkeypatch)
    async with direct_pair(tmp_path) as (alice, bob, a_wire, b_wire):
        wire.watch(alice.msrp)
        wire.watch(bob.msrp)
        result = await alice.pager.send("bob", text)
        assert result.mode == "large"
        assert a_wire.requests("MESSAGE") == []
        [invite] = a_wire.requests("INVITE")
        assert str(invite.uri) == BOB
        [ac] = invite.headers.get_all("Accept-Contact")
        assert ac.startswith("*;+g.oma.sip-im;") and "+g.oma.sip-im.large-message" in ac
        assert header(invite, "User-Agent").startswith(UA_PREFIX)
        assert "+g.oma.sip-im" in invite.contacts[0].params
        icsi = (invite.contacts[0].params.get("+g.3gpp.icsi-ref") or "").replace("%3A", ":")
        assert "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.largemsg" in icsi          # CPM-03
        assert "timer" in invite.supported
        assert header(invite, "Session-Expires").endswith(";refresher=uac")
        assert header(invite, "P-Preferred-Service") == \
            "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.largemsg"
        offer = msrp_media(sdp(invite))
        assert offer.direction.value == "sendonly"
        assert offer.file is not None and offer.file.selector.size
        ringing = await b_wire.response("INVITE", 180)
        assert header(ringing, "User-Agent").startswith(UA_PREFIX)
        ok = await b_wire.response("INVITE", 200)
        assert header(ok, "User-Agent").startswith(UA_PREFIX)
        assert {"INVITE", "BYE"} <= set(values(ok, "Allow"))
        bob_contact = contact_uri(ok)
        assert msrp_media(sdp(ok)).direction.value == "recvonly"
        got = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(got, MessageEvent) and got.mode == "large" and got.text == text
        # one SEND carrying the CPIM whose size the offer announced
        [send] = [m for m in wire.requests(bob.msrp) if m.body]
        assert send.content_type == "message/cpim" and send.body is not None
        assert len(send.body) == offer.file.selector.size
        assert parse_cpim(send.body).payload == text.encode()
        last_ok = [e for e in wire.responses(alice.msrp)
                   if e.message.tid == send.tid]
        assert last_ok and last_ok[0].message.status_code == 200
        bye = await a_wire.request("BYE")
        assert str(bye.uri) == bob_contact
        assert a_wire.seq_of(bye) > last_ok[0].seq          # BYE after the 200 to the chunk
        await b_wire.response("BYE", 200)
        ended = await wait_event(bob, is_state("ended"))
        assert isinstance(ended, SessionEvent) and ended.kind == "large-message"
        assert ended.session_id not in bob.sessions            # user plane released


# ---------------------------------------------------------------------------- file transfer

async def test_file_push_on_the_wire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """C-FT-01 / C-FT-02 / C-FT-03 (IMSpec-FT-C-001/002/003), CPM-06, GFT-04, direct:

    * INVITE: Accept-Contact with the cpm.filetransfer ICSI, P-Preferred-Service, a
      multipart/mixed body with a message/cpim part asking for the transfer's IMDN, a JPEG
      file-icon part and the SDP: one sendonly m-line per file with file-selector name, type,
      size and sha-1 hash, file-transfer-id, file-disposition, file-date (RFC 5547 §6);
    * bob: 180 then 200 whose SDP answer holds the identities of the accepted files (the
      same file-selector and file-transfer-id, recvonly), Conversation-ID / Contribution-ID
      echoed;
    * each file in MSRP SENDs with its Content-Type; after the 200 to the last SEND and Tc1,
      BYE (the file streams were the only media);
    * bob's delivery IMDN: a MESSAGE with Accept-Contact and P-Preferred-Service
      cpm.filetransfer and the session's Conversation-ID / Contribution-ID."""
    from PIL import Image

    img = tmp_path / "photo.jpg"
    Image.new("RGB", (160, 100), (200, 30, 30)).save(img, "JPEG")
    data = tmp_path / "data.bin"
    data.write_bytes(bytes(range(256)) * 300)
    wire = MsrpWire(monkeypatch)
    ft = "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.filetransfer"
    async with direct_pair(tmp_path) as (alice, bob, a_wire, b_wire):
        wire.watch(alice.msrp)
        wire.watch(bob.msrp)
        results = await alice.files.send("bob", [img, data])
        assert [r.status for r in results] == ["sent", "sent"]
        [invite] = a_wire.requests("INVITE")
        assert str(invite.uri) == BOB
        [ac] = invite.headers.get_all("Accept-Contact")
        assert ft.replace(":", "%3A") in ac
        assert header(invite, "P-Preferred-Service") == ft
        assert (invite.content_type or "").startswith("multipart/mixed")
        parts = {p.content_type: p for p in body_parts(invite)}
        assert set(parts) == {"message/cpim", "application/sdp", "image/jpeg"}
        request_imdn = parse_cpim(parts["message/cpim"].body)
        assert request_imdn.imdn_message_id
        assert "positive-delivery" in request_imdn.disposition_notification
        offer = sdp(invite)
        pushed = [msrp_media(offer, i) for i in range(len(offer.media))]
        assert [m.direction.value for m in pushed] == ["sendonly", "sendonly"]
        for media, path in zip(pushed, (img, data), strict=True):
            assert media.file is not None
            sel = media.file.selector
            assert (sel.name, sel.size) == (path.name, path.stat().st_size)
            assert sel.type and sel.hash is not None and sel.hash.algorithm.lower() == "sha-1"
            assert media.file.transfer_id and media.file.disposition and media.file.date
        assert pushed[0].file is not None and (pushed[0].file.icon or "").startswith("cid:")
        await b_wire.response("INVITE", 180)
        ok = await b_wire.response("INVITE", 200)
        answer = sdp(ok)
        accepted = [msrp_media(answer, i) for i in range(len(answer.media))]
        assert [m.direction.value for m in accepted] == ["recvonly", "recvonly"]
        for got, sent in zip(accepted, pushed, strict=True):
            assert got.file is not None and sent.file is not None
            assert got.file.transfer_id == sent.file.transfer_id
            assert got.file.selector == sent.file.selector
        conv = same_header(invite, ok, "Conversation-ID")
        contrib = same_header(invite, ok, "Contribution-ID")
        # the bytes: SENDs with the file's Content-Type, joined = the file
        sends = [m for m in wire.requests(bob.msrp) if m.body]
        by_type: dict[str, bytes] = {}
        for m in sends:
            assert m.content_type is not None
            by_type[m.content_type] = by_type.get(m.content_type, b"") + (m.body or b"")
        assert by_type == {"image/jpeg": img.read_bytes(),
                           "application/octet-stream": data.read_bytes()}
        # Tc1 then BYE, after the 200 to the last SEND
        bye = await a_wire.request("BYE")
        last = max(e.seq for e in wire.responses(alice.msrp))
        assert a_wire.seq_of(bye) > last
        assert str(bye.uri) == contact_uri(ok)
        await b_wire.response("BYE", 200)
        imdn_msg = await b_wire.request("MESSAGE")
        [imdn_ac] = imdn_msg.headers.get_all("Accept-Contact")
        assert ft.replace(":", "%3A") in imdn_ac
        assert header(imdn_msg, "P-Preferred-Service") == ft
        assert header(imdn_msg, "Conversation-ID") == conv
        assert header(imdn_msg, "Contribution-ID") == contrib


async def test_file_pull_on_the_wire(tmp_path: Path) -> None:
    """C-FT-01 (pull, RFC 5547 §8.3): a recvonly offer with the selector; the 200 answers
    sendonly with the full description of the matching file."""
    src = tmp_path / "shared.bin"
    src.write_bytes(b"pull me " * 1000)
    async with direct_pair(tmp_path) as (alice, bob, _a, b_wire):
        desc = alice.files.share(src)
        result = await bob.files.pull("alice", desc.selector)
        assert result.status == "received" and result.path is not None
        assert Path(result.path).read_bytes() == src.read_bytes()
        [invite] = b_wire.requests("INVITE")
        asked = msrp_media(sdp(invite))
        assert asked.direction.value == "recvonly"
        assert asked.file is not None and asked.file.selector.hash == desc.selector.hash
        ok = await b_wire.response("INVITE", 200, direction="in")
        served = msrp_media(sdp(ok))
        assert served.direction.value == "sendonly" and served.file is not None
        assert (served.file.selector.name, served.file.selector.size) == ("shared.bin", 8000)


async def test_finished_file_line_released_with_port_0(tmp_path: Path) -> None:
    """C-FT-01 / C-FT-02 (OMA §10.2): a finished file m-line is closed by a re-INVITE that
    sets its port to 0 while another line goes on; bob's 200 answers port 0 for it (RFC 3264
    §8.2) and keeps the other."""
    from simpleim.client.filetransfer import FileTransferSession

    a = tmp_path / "a.bin"
    a.write_bytes(b"a" * 5000)
    b = tmp_path / "b.bin"
    b.write_bytes(b"b" * 7000)
    async with direct_pair(tmp_path) as (alice, _bob, a_wire, b_wire):
        results = await alice.files.send("bob", [a, b], tc1=30.0, wait_release=False)
        assert [r.status for r in results] == ["sent", "sent"]
        [session] = [s for s in alice.sessions.values() if isinstance(s, FileTransferSession)]
        await session.release_lines({0})
        invites = a_wire.requests("INVITE")
        assert len(invites) == 2
        reinvite = invites[1]
        same_header(reinvite, invites[0], "Call-ID")
        assert reinvite.to_addr.tag                      # in the dialog
        new = sdp(reinvite)
        assert [m.port == 0 for m in new.media] == [True, False]
        ok = [r for r in b_wire.responses("INVITE", 200) if r.cseq.seq == reinvite.cseq.seq]
        assert ok
        answer = sdp(ok[0])
        assert [m.port == 0 for m in answer.media] == [True, False]
        await session.end("done")
        await a_wire.request("BYE")


# ---------------------------------------------------------------------------- image share

async def test_image_share_and_capabilities_on_the_wire(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """IS-01 / IS-02 / IS-03 / IS-04 (GSMA IR.79 §2.2-2.5), direct:

    * OPTIONS: Accept-Contact with +g.3gpp.cs-voice; the 200: Contact with the image share
      IARI and cs-voice, an SDP with one single m=message line;
    * INVITE: Accept-Contact and Contact with +g.3gpp.cs-voice and the IARI,
      P-Preferred-Service cpm.largemsg, SDP sendonly, a=path, accept-types:*, file-selector
      with type (and size), file-transfer-id, file-disposition:render, i=;
    * 200: Contact with the tags; SDP recvonly, a=path, accept-types, the same file-selector
      and file-transfer-id;
    * the image in one SEND with its Content-Type; then BYE."""
    from PIL import Image

    iari = "+g.3gpp.iari-ref"
    gsma_is = "urn%3Aurn-7%3A3gpp-application.ims.iari.gsma-is"
    img = tmp_path / "pic.jpg"
    Image.new("RGB", (320, 240), (10, 20, 200)).save(img, "JPEG")
    wire = MsrpWire(monkeypatch)
    async with direct_pair(tmp_path) as (alice, bob, a_wire, b_wire):
        wire.watch(bob.msrp)
        caps = await alice.capabilities.query("bob", use_cache=False)
        assert caps.status == 200 and "imageshare" in caps.names
        [options] = a_wire.requests("OPTIONS")
        assert options.headers.get_all("Accept-Contact") == ["*;+g.3gpp.cs-voice"]
        answered = await b_wire.response("OPTIONS", 200)
        [c] = answered.contacts
        assert "+g.3gpp.cs-voice" in c.params and gsma_is in (c.params.get(iari) or "")
        caps_sdp = sdp(answered)
        assert [m.media for m in caps_sdp.media] == ["message"]
        result = await alice.images.share("bob", img, title="my latest picture")
        assert result.status == "sent"
        [invite] = a_wire.requests("INVITE")
        [ac] = invite.headers.get_all("Accept-Contact")
        assert "+g.3gpp.cs-voice" in ac and gsma_is in ac
        [ic] = invite.contacts
        assert "+g.3gpp.cs-voice" in ic.params and gsma_is in (ic.params.get(iari) or "")
        assert header(invite, "P-Preferred-Service") == \
            "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.largemsg"
        offer = sdp(invite)
        assert offer.media[0].has("path") and offer.media[0].title == "my latest picture"
        shared = msrp_media(offer)
        assert shared.direction.value == "sendonly" and shared.accept_types == ("*",)
        assert shared.file is not None and shared.file.selector.type == "image/jpeg"
        assert shared.file.selector.size == img.stat().st_size
        assert shared.file.transfer_id and shared.file.disposition == "render"
        ok = await b_wire.response("INVITE", 200)
        [oc] = ok.contacts
        assert "+g.3gpp.cs-voice" in oc.params and gsma_is in (oc.params.get(iari) or "")
        answer = sdp(ok)
        got = msrp_media(answer)
        assert got.direction.value == "recvonly" and answer.media[0].has("path")
        assert got.accept_types and got.file is not None
        assert got.file.selector == shared.file.selector
        assert got.file.transfer_id == shared.file.transfer_id
        sends = [m for m in wire.requests(bob.msrp) if m.body]
        assert len(sends) == 1                           # IR.79 §2.5: en bloc
        assert sends[0].content_type == "image/jpeg" and sends[0].body == img.read_bytes()
        await a_wire.request("BYE")
        await b_wire.response("BYE", 200)


# ---------------------------------------------------------------------------- in-session

async def test_session_refresh_and_reinvite_answer_on_the_wire(tmp_path: Path) -> None:
    """C-SO-10 (OMA §7.1.1.8): the refresh is a re-INVITE in the dialog with
    Session-Expires;refresher=uac, Supported: timer and the SDP in use; C-ST-02 (SMM-C-018):
    bob's 200 carries Session-Expires;refresher=uas, Supported: timer and an SDP answer whose
    accept-types contain message/cpim."""
    async with direct_pair(tmp_path) as (alice, bob, a_wire, b_wire):
        chat = await alice.chats.start("bob")
        await wait_event(bob, is_state("established"))
        [initial] = a_wire.requests("INVITE")
        await chat.refresh()
        invites = a_wire.requests("INVITE")
        assert len(invites) == 2
        refresh = invites[1]
        same_header(refresh, initial, "Call-ID")
        assert refresh.to_addr.tag and refresh.cseq.seq > initial.cseq.seq
        assert header(refresh, "Session-Expires").endswith(";refresher=uac")
        assert "timer" in refresh.supported
        in_use, offered = sdp(initial), sdp(refresh)
        assert [(m.media, m.port, m.proto) for m in offered.media] == \
            [(m.media, m.port, m.proto) for m in in_use.media]
        assert msrp_media(offered).path == msrp_media(in_use).path
        ok = [r for r in b_wire.responses("INVITE", 200) if r.cseq.seq == refresh.cseq.seq]
        assert ok, "no 200 to the refresh"
        assert header(ok[0], "Session-Expires").endswith(";refresher=uas")
        assert "timer" in ok[0].supported
        assert "message/cpim" in msrp_media(sdp(ok[0])).accept_types
        await a_wire.request("ACK", where=lambda r: r.cseq.seq == refresh.cseq.seq)
        await chat.end()


async def _send_udp(port: int, data: bytes) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                       remote_addr=("127.0.0.1", port))
    try:
        transport.sendto(data)
    finally:
        transport.close()


async def test_reinvite_for_an_unknown_session_gets_606(tmp_path: Path) -> None:
    """C-ST-02 (OMA §7.1.2.2): a re-INVITE (To tag) for a session that does not exist ->
    606 Not Acceptable with a Warning saying so."""
    # the stray re-INVITE comes from a socket of its own: bob has to trust that source
    async with direct_pair(tmp_path, bob={"trusted_sources": ("127.0.0.1",)}) as (
            _alice, bob, _a, b_wire):
        assert bob.local is not None
        offer = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                 b"m=message 7 TCP/MSRP *\r\na=accept-types:message/cpim\r\n"
                 b"a=path:msrp://127.0.0.1:7/x;tcp\r\n")
        raw = (f"INVITE sip:bob@127.0.0.1:{bob.local.port} SIP/2.0\r\n"
               "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKgone1\r\n"
               f"From: <{ALICE}>;tag=a1\r\nTo: <{BOB}>;tag=b1\r\n"
               "Call-ID: no-such-session\r\nCSeq: 2 INVITE\r\nMax-Forwards: 70\r\n"
               "Contact: <sip:alice@127.0.0.1:9>\r\nContent-Type: application/sdp\r\n"
               f"Content-Length: {len(offer)}\r\n\r\n").encode() + offer
        await _send_udp(bob.local.port, raw)
        refused = await b_wire.response("INVITE", 606)
        assert "session does not exist" in header(refused, "Warning")
        assert b_wire.responses("INVITE", 200) == []


async def test_chat_user_plane_on_the_wire(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """CPM-05 (seed 002 session), C-UP-05 / C-UP-06 (IMSpec-SMM-C-013 / -020), direct:

    * the offer: accept-types message/cpim and application/im-iscomposing+xml,
      accept-wrapped-types text/plain and message/imdn+xml;
    * the active side opens with an empty SEND (RFC 4975 §5.4), answered 200;
    * isComposing in a SEND of application/im-iscomposing+xml with <state>active</state>,
      which bob reports as the peer's composing state;
    * a chat SEND of message/cpim asking for IMDN; the delivery notification comes back
      inside the session as a SEND of message/cpim wrapping message/imdn+xml."""
    from simpleim.client import ComposingEvent
    from simpleim.content.imdn import parse_imdn

    wire = MsrpWire(monkeypatch)
    async with direct_pair(tmp_path) as (alice, bob, a_wire, _b):
        wire.watch(alice.msrp)
        wire.watch(bob.msrp)
        chat = await alice.chats.start("bob")
        offer = msrp_media(sdp(a_wire.requests("INVITE")[0]))
        assert {"message/cpim", "application/im-iscomposing+xml"} <= set(offer.accept_types)
        assert {"text/plain", "message/imdn+xml"} <= set(offer.accept_wrapped_types)
        await wait_event(bob, is_state("established"))
        await chat.composing(True)
        typing = await wait_event(bob, lambda e: isinstance(e, ComposingEvent))
        assert isinstance(typing, ComposingEvent) and typing.state == "active"
        mid = await chat.send("hi in a session")
        await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        got = await wait_event(alice, lambda e: type(e).__name__ == "ImdnEvent")
        assert getattr(got, "message_id", None) == mid
        to_bob = wire.requests(bob.msrp)
        # the first SEND of the connection is empty (binds the session, RFC 4975 §5.4)
        assert to_bob and not to_bob[0].body
        composing = [m for m in to_bob if m.content_type == "application/im-iscomposing+xml"]
        assert composing and composing[0].body is not None
        assert b"<state>active</state>" in composing[0].body
        chat_sends = [m for m in to_bob if m.content_type == "message/cpim"]
        assert chat_sends and chat_sends[0].body is not None
        cpim = parse_cpim(chat_sends[0].body)
        assert cpim.imdn_message_id == mid and cpim.disposition_notification
        back = [m for m in wire.requests(alice.msrp) if m.content_type == "message/cpim"]
        assert back and back[0].body is not None
        wrapped = parse_cpim(back[0].body)
        assert wrapped.content_type == "message/imdn+xml"
        doc = parse_imdn(wrapped.payload)
        assert (doc.message_id, doc.status.value) == (mid, "delivered")
        await chat.end()


async def test_busy_is_486_on_the_wire(tmp_path: Path) -> None:
    """GFT-02 / OMA §7.1.2.1: a client that takes no further session answers 486 Busy Here."""
    async with direct_pair(tmp_path, bob={"max_sessions": 0}) as (alice, _bob, _a, b_wire):
        with pytest.raises(SessionFailed) as err:
            await alice.chats.start("bob")
        assert err.value.status == 486
        busy = await b_wire.response("INVITE", 486)
        assert header(busy, "User-Agent").startswith(UA_PREFIX)


# ---------------------------------------------------------------------------- registration

async def test_registration_on_the_wire(tmp_path: Path) -> None:
    """C-REG-01 (OMA §5.2.1): REGISTER with +g.oma.sip-im in Contact, Require: pref,
    User-Agent, and the digest response after the challenge; C-REG-02 (§5.2.3): on close a
    REGISTER with Expires: 0."""
    async with wired_pair(tmp_path) as (alice, _bob, a_wire, _b):
        registers = a_wire.requests("REGISTER")
        assert len(registers) >= 2                    # challenged, then answered
        first, answered = registers[0], registers[-1]
        for reg in (first, answered):
            assert "+g.oma.sip-im" in reg.contacts[0].params
            # IR.79 §2.2: the image share identifiers in the REGISTER Contact too
            assert "+g.3gpp.cs-voice" in reg.contacts[0].params
            assert "gsma-is" in (reg.contacts[0].params.get("+g.3gpp.iari-ref") or "")
            assert "pref" in values(reg, "Require")
            assert header(reg, "User-Agent").startswith(UA_PREFIX)
        assert a_wire.responses("REGISTER", 401, direction="in")
        auth = header(answered, "Authorization")
        assert auth.startswith("Digest ") and 'response="' in auth
        await a_wire.response("REGISTER", 200, direction="in")
        before = len(a_wire.requests("REGISTER"))
        await alice.close()
        gone = a_wire.requests("REGISTER")[before:]
        assert gone and header(gone[-1], "Expires") == "0"


async def test_large_message_cancelled_before_the_final_response(tmp_path: Path) -> None:
    """C-LM-03 (IMSpec-LMM-C-004, §9.1.2): a large-message INVITE without a final response
    is CANCELled (RFC 3261 §9.1: same R-URI, Call-ID, CSeq number, Via) and the 487 ACKed.
    The peer is a scripted test peer that rings and never answers."""
    from simpleim.client import Account
    from simpleim.client.pager import build_im, new_message_id
    from simpleim.content.cpim import CpimDateTime
    from simpleim.sip.message import SipResponse
    from wire import SipWire, _direct_config, scripted_peer

    pending: dict[str, SipRequest] = {}

    def script(req: SipRequest) -> list[SipResponse]:
        if req.method == "INVITE":
            pending["invite"] = req
            return [req.create_response(100), req.create_response(180, to_tag="peer1")]
        if req.method == "CANCEL":
            return [req.create_response(200, to_tag="peer1"),
                    pending["invite"].create_response(487, to_tag="peer1")]
        return []

    async with scripted_peer(script) as peer:
        from client_helpers import free_port
        alice = Account(_direct_config("alice", free_port(), peer.port, tmp_path))
        a_wire = SipWire(alice)
        await alice.start(register=False)
        try:
            mid = new_message_id()
            cpim = build_im(sender=ALICE, recipient=BOB, body=b"y" * 2000,
                            content_type="text/plain", message_id=mid, imdn=(),
                            date_time=CpimDateTime("2026-12-04T22:00:00Z")).to_bytes()
            with pytest.raises(SessionFailed) as err:
                await alice.large.send(BOB, cpim, mid, timeout=0.5)
            assert err.value.status == 408
            invite = await peer.request("INVITE")
            assert "+g.oma.sip-im.large-message" in header(invite, "Accept-Contact")
            cancel = await peer.request("CANCEL")
            assert str(cancel.uri) == str(invite.uri)
            for name in ("Call-ID", "From"):
                same_header(cancel, invite, name)
            assert cancel.cseq.seq == invite.cseq.seq and cancel.cseq.method == "CANCEL"
            assert values(cancel, "Via")[0] == values(invite, "Via")[0]
            ack = await peer.request("ACK")
            assert ack.cseq.seq == invite.cseq.seq and ack.to_addr.tag == "peer1"
            assert a_wire.requests("BYE") == []
            assert len(alice.sessions) == 0
        finally:
            await alice.close()


async def test_reinvite_without_acceptable_media_gets_488(tmp_path: Path) -> None:
    """C-ST-02 (OMA §7.1.2.2): a re-INVITE whose media cannot be taken (no MSRP line, or no
    accept-types) -> 488 Not Acceptable Here; the session goes on and a later refresh with
    the SDP in use is still answered 200."""
    async with direct_pair(tmp_path) as (alice, bob, _a, b_wire):
        chat = await alice.chats.start("bob")
        await wait_event(bob, is_state("established"))
        assert chat.dialog is not None
        audio = (b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                 b"m=audio 49170 RTP/AVP 0\r\n")
        resp = await alice.ua.in_dialog(chat.dialog, "INVITE", body=audio,
                                        content_type="application/sdp")
        assert resp.status == 488
        refused = await b_wire.response("INVITE", 488)
        assert "not an MSRP stream" in header(refused, "Warning")
        assert not chat.ended.is_set() and chat.call_id in bob.sessions
        await chat.refresh()
        assert [r.status for r in b_wire.responses("INVITE") if r.status >= 200] == [200, 488, 200]
        await chat.end()


# ---------------------------------------------------------------------------- settings

async def test_settings_published_after_registration_on_the_wire(tmp_path: Path) -> None:
    """C-REG-01 (OMA §5.2.2) / C-SET-01 (§5.2.4): after the initial registration the client
    PUBLISHes its settings (from the config, E.1 defaults otherwise) to its own address with
    Accept-Contact +g.oma.sip-im, User-Agent, Event: poc-settings, Expires and the Appendix E
    document; a refresh is body-less with SIP-If-Match (RFC 3903 §4.2)."""
    from simpleim.content.poc_settings import parse_settings

    async with wired_pair(tmp_path, alice={"bar_messages": True}) as (alice, bob, a_wire, _b):
        ok = await a_wire.response("REGISTER", 200, direction="in")
        publish = await a_wire.request("PUBLISH")
        # after the registration's 200 (the wire keeps the order)
        assert a_wire.entries.index(next(e for e in a_wire.entries if e.message is ok)) < \
            a_wire.entries.index(next(e for e in a_wire.entries if e.message is publish))
        assert str(publish.uri) == "sip:alice@example.test"
        assert header(publish, "Event") == "poc-settings"
        assert "+g.oma.sip-im" in header(publish, "Accept-Contact")
        assert header(publish, "User-Agent").startswith(UA_PREFIX)
        assert header(publish, "Expires") == "120"
        assert header(publish, "Content-Type") == "application/poc-settings+xml"
        published = parse_settings(publish.body)
        assert published.incoming_pager_barring and published.visible
        stored = await a_wire.response("PUBLISH", 200, direction="in")
        etag = header(stored, "SIP-ETag")
        assert etag
        # applied by the server: bob's message to alice is barred (PT-01 step 1)
        with pytest.raises(SessionFailed) as err:
            await bob.pager.send("alice", "barred?")
        assert err.value.status == 403
        # RFC 3903 §4.2 refresh: no body, SIP-If-Match with the entity-tag
        assert await alice.settings.refresh() == 200
        refresh = a_wire.requests("PUBLISH")[-1]
        assert header(refresh, "SIP-If-Match") == etag and not refresh.body
        found = await alice.settings.fetch()
        assert found.stored and found.settings.incoming_pager_barring
