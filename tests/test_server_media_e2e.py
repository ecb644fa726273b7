"""PO-00: the terminating Participating Function as a B2BUA (``pf_media = "b2bua"``): both
MSRP sessions end at the server (the SDP paths on the wire), chat with IMDN and
is-composing both ways through the relay, BYE from either side ends both, a file transfer
through the relay arrives intact."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from client_helpers import client_config, running_server, wait_event
from cuts import cut_msrp_after
from simpleim.client import Account
from simpleim.client.config import Policy
from simpleim.client.events import (
    ComposingEvent,
    FileEvent,
    ImdnEvent,
    MessageEvent,
    SessionEvent,
)
from simpleim.client.session import ChatSession, SessionFailed
from simpleim.sdp import MsrpMedia, SessionDescription
from simpleim.server.app import ImServer
from simpleim.sip.message import SipMessage
from simpleim.timers import Timers
from simpleim.transport.msrp_sdp import sdp_of
from waiting import wait_until
from wire import MsrpWire, SipWire


def _state(state: str):  # type: ignore[no-untyped-def]
    return lambda e: isinstance(e, SessionEvent) and e.state == state


def _path(msg: SipMessage) -> tuple[str, ...]:
    sdp = sdp_of(msg)
    assert isinstance(sdp, SessionDescription)
    return MsrpMedia.from_media(sdp.media[0], sdp).path


@contextlib.asynccontextmanager
async def b2b_pair(tmp: Path, *, alice: dict[str, Any] | None = None,
                   bob: dict[str, Any] | None = None, **server: Any,
                   ) -> AsyncIterator[tuple[ImServer, Account, Account, SipWire, SipWire]]:
    server.setdefault("pf_media", "b2bua")
    async with running_server(tmp, **server) as (srv, port):
        a = Account(client_config("alice", port, tmp, "tcp", **(alice or {})))
        b = Account(client_config("bob", port, tmp, "tcp", **(bob or {})))
        a_wire, b_wire = SipWire(a), SipWire(b)
        await a.start()
        try:
            await b.start()
            try:
                yield srv, a, b, a_wire, b_wire
            finally:
                await b.close()
        finally:
            await a.close()


def _server_msrp_port(server: ImServer) -> int:
    assert server.services is not None and server.services.media.msrp is not None
    return server.services.media.msrp.port


async def test_b2bua_chat_paths_imdn_and_bye(tmp_path: Path) -> None:
    async with b2b_pair(tmp_path) as (server, alice, bob, a_wire, b_wire):
        chat = await alice.chats.start("bob")
        ev = await wait_event(bob, _state("established"))
        assert isinstance(ev, SessionEvent)
        bob_chat = bob.sessions[ev.session_id]
        assert isinstance(bob_chat, ChatSession)
        # On the wire: the 200 alice gets and the INVITE bob gets carry the server's MSRP
        # path (its listener), never the other client's.
        port = _server_msrp_port(server)
        ok = await a_wire.response("INVITE", 200, direction="in")
        invite = await b_wire.request("INVITE", direction="in")
        a_path = _path(await a_wire.request("INVITE"))
        b_path = _path(await b_wire.response("INVITE", 200))
        for seen in (_path(ok), _path(invite)):
            assert len(seen) == 1 and seen[0].startswith(f"msrp://127.0.0.1:{port}/")
            assert seen not in (a_path, b_path)
        assert _path(ok) != _path(invite)           # one MSRP session per leg
        # the callee's INVITE keeps the caller's identity and the CPM identifiers
        assert "alice@" in (invite.headers.get("From") or "")
        assert invite.headers.get("Conversation-ID") == chat.conversation_id
        assert "+g.oma.sip-im" in " ".join(invite.headers.get_all("Accept-Contact"))
        assert (ok.headers.get("Server") or "").startswith("IM-serv/OMA1.0")
        # chat, is-composing and IMDN both ways, intact
        await chat.composing(True)
        comp = await wait_event(bob, lambda e: isinstance(e, ComposingEvent))
        assert isinstance(comp, ComposingEvent) and comp.state == "active"
        mid = await chat.send("hi through the relay")
        msg = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(msg, MessageEvent) and msg.text == "hi through the relay"
        assert msg.message_id == mid and msg.mode == "session"
        delivered = await wait_event(alice, lambda e: isinstance(e, ImdnEvent))
        assert isinstance(delivered, ImdnEvent) and delivered.status == "delivered"
        assert await bob_chat.mark_displayed(mid)
        displayed = await wait_event(alice, lambda e: isinstance(e, ImdnEvent))
        assert isinstance(displayed, ImdnEvent) and displayed.status == "displayed"
        await bob_chat.send("and back")
        back = await wait_event(alice, lambda e: isinstance(e, MessageEvent))
        assert isinstance(back, MessageEvent) and back.text == "and back"
        # BYE from alice: the server answers it and BYEs bob
        await chat.end()
        ended = await wait_event(bob, _state("ended"))
        assert isinstance(ended, SessionEvent) and ended.reason == "remote hangup"
        bye_in = await b_wire.request("BYE", direction="in")
        assert bye_in.call_id == invite.call_id and bye_in.call_id != ok.call_id
        media = server.services.media                 # type: ignore[union-attr]
        await wait_until(lambda: not media.sessions, 10, what="both legs released")


async def test_b2bua_bye_from_callee(tmp_path: Path) -> None:
    async with b2b_pair(tmp_path) as (server, alice, bob, _a_wire, _b_wire):
        chat = await alice.chats.start("bob")
        ev = await wait_event(bob, _state("established"))
        assert isinstance(ev, SessionEvent)
        bob_chat = bob.sessions[ev.session_id]
        await bob_chat.end()
        ended = await wait_event(alice, _state("ended"))
        assert isinstance(ended, SessionEvent) and ended.reason == "remote hangup"
        assert chat.ended.is_set()


async def test_b2bua_file_transfer(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(300_000))
    async with b2b_pair(tmp_path) as (_server, alice, bob, _a_wire, b_wire):
        results = await alice.files.send("bob", [data])
        assert [r.status for r in results] == ["sent"]
        got = await wait_event(bob, lambda e: isinstance(e, FileEvent) and e.state == "received")
        assert isinstance(got, FileEvent) and got.hash_ok is True and got.path is not None
        digest = hashlib.sha256(Path(got.path).read_bytes()).hexdigest()
        assert digest == hashlib.sha256(data.read_bytes()).hexdigest()
        invite = await b_wire.request("INVITE", direction="in")
        offer = sdp_of(invite)
        assert offer is not None
        media = MsrpMedia.from_media(offer.media[0], offer)
        assert media.file is not None and media.file.selector.size == 300_000


async def test_b2bua_relays_the_callee_failure(tmp_path: Path) -> None:
    async with b2b_pair(tmp_path, bob={"policy": Policy(sessions="decline")}) as (
            _server, alice, _bob, a_wire, _b_wire):
        with pytest.raises(SessionFailed) as err:
            await alice.chats.start("bob")
        assert err.value.status == 480                  # bob's OMA §7.1.2.1 decline
        final = await a_wire.response("INVITE", 480, direction="in")
        assert (final.headers.get("Server") or "").startswith("IM-serv/OMA1.0")


async def test_b2bua_cancel_reaches_the_callee(tmp_path: Path) -> None:
    async with b2b_pair(tmp_path, bob={"policy": Policy(sessions="ask")}) as (
            server, alice, bob, a_wire, b_wire):
        task = asyncio.ensure_future(alice.chats.start("bob"))
        await wait_event(bob, _state("invited"))
        await a_wire.response("INVITE", 180, direction="in")    # bob's ringing relayed
        session = next(iter(alice.sessions.values()))
        assert session.attempt is not None
        session.attempt.cancel()
        with pytest.raises(SessionFailed) as err:
            await task
        assert err.value.status == 487
        await wait_event(bob, _state("cancelled"))
        cancel = await b_wire.request("CANCEL", direction="in")
        assert cancel.call_id == (await b_wire.request("INVITE", direction="in")).call_id
        media = server.services.media                           # type: ignore[union-attr]
        assert not media.sessions


async def test_b2bua_session_timer_refresh_and_expiry(tmp_path: Path) -> None:
    """RFC 4028 on both legs: alice refreshes leg A (refresher=uac); the server refreshes
    leg B itself (it is the UAC there, refresher=uac) with UPDATE; when alice stops
    refreshing, the server's timer on leg A expires and it BYEs both legs."""
    quick = {"timers": Timers(tc1=0.5, tc2=2.0, min_se=1.0), "session_expires": 3}
    async with b2b_pair(tmp_path, alice=quick, bob=quick,
                        timers=Timers(min_se=1.0, session_expires=3.0)) as (
            _server, alice, bob, _a_wire, b_wire):
        chat = await alice.chats.start("bob")
        ev = await wait_event(bob, _state("established"))
        assert isinstance(ev, SessionEvent)
        invite = await b_wire.request("INVITE", direction="in")
        assert invite.headers.get("Session-Expires") == "3;refresher=uac"
        assert "timer" in invite.headers.get("Supported", "")
        update = await b_wire.request("UPDATE", direction="in", timeout=15)
        assert (update.headers.get("Session-Expires") or "").startswith("3;refresher=uac")

        async def no_refresh() -> None:
            return None

        chat.refresh = no_refresh  # type: ignore[method-assign]
        ended = await wait_event(alice, _state("ended"), timeout=15)
        assert isinstance(ended, SessionEvent) and ended.reason == "remote hangup"
        await wait_event(bob, _state("ended"), timeout=15)


@pytest.mark.parametrize("pf_media", ["proxy", "b2bua"])
async def test_burst_arrives_complete_and_in_order(tmp_path: Path, pf_media: str) -> None:
    """200 messages, 16 in flight, with a delivery IMDN back for each: all arrive, in the
    order sent, directly (proxy) and through the relay (b2bua)."""
    async with b2b_pair(tmp_path, pf_media=pf_media) as (_server, alice, bob, _aw, _bw):
        chat = await alice.chats.start("bob")
        await wait_event(bob, _state("established"))
        for start in range(0, 200, 16):
            await asyncio.gather(*(chat.send(f"m{i}") for i in range(start, min(200, start + 16))))
        texts = []
        while len(texts) < 200:
            ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
            assert isinstance(ev, MessageEvent)
            texts.append(ev.text)
        assert texts == [f"m{i}" for i in range(200)]


async def test_b2bua_forks_to_every_device_first_2xx_wins(tmp_path: Path) -> None:
    """UAC forking (RFC 3261 §13.2.2.4 at the server's UA): bob has two devices that both
    accept; the first 2xx wins, the other device's session is ended (CANCEL or ACK + BYE),
    and the chat goes to the winner only."""
    async with b2b_pair(tmp_path) as (server, alice, bob, _a_wire, b_wire):
        port = int(bob.config.proxy.rsplit(":", 1)[1])
        bob2 = Account(client_config("bob", port, tmp_path, "tcp"))
        await bob2.start()
        try:
            chat = await alice.chats.start("bob")
            media = server.services.media                     # type: ignore[union-attr]
            await wait_until(lambda: len(media.sessions) == 2, 10, what="two legs up")
            devices = (bob, bob2)
            await wait_until(lambda: sum(1 for d in devices for s in d.sessions.values()
                                         if not s.ended.is_set()) == 1, 10,
                             what="one device left in the session")
            winner = next(d for d in devices
                          if any(not s.ended.is_set() for s in d.sessions.values()))
            await chat.send("to the winner")
            msg = await wait_event(winner, lambda e: isinstance(e, MessageEvent))
            assert isinstance(msg, MessageEvent) and msg.text == "to the winner"
            invites = b_wire.requests("INVITE", direction="in")
            assert len(invites) == 1 and invites[0].headers.get("From", "").count("alice")
            await chat.end()
        finally:
            await bob2.close()


async def test_b2bua_two_files_in_one_invite_second_refused(tmp_path: Path) -> None:
    """One MSRP stream per relayed session: of an offer with two m-lines the relay takes the
    first and refuses the second with port 0 (RFC 3264 §6) in the caller's answer."""
    one, two = tmp_path / "one.bin", tmp_path / "two.bin"
    one.write_bytes(os.urandom(20_000))
    two.write_bytes(os.urandom(30_000))
    async with b2b_pair(tmp_path) as (_server, alice, bob, a_wire, b_wire):
        results = await alice.files.send("bob", [one, two])
        assert [r.status for r in results] == ["sent", "declined"]
        ok = await a_wire.response("INVITE", 200, direction="in")
        answer = sdp_of(ok)
        assert answer is not None and [m.port != 0 for m in answer.media] == [True, False]
        invite = await b_wire.request("INVITE", direction="in")
        offer = sdp_of(invite)
        assert offer is not None and len(offer.media) == 1
        got = await wait_event(bob, lambda e: isinstance(e, FileEvent) and e.state == "received")
        assert isinstance(got, FileEvent) and got.path is not None
        assert Path(got.path).read_bytes() == one.read_bytes()


async def test_b2bua_switches_chunks_as_they_arrive(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A large message is switched chunk by chunk (RFC 4975 §7.1.1): when the caller's MSRP
    connection is cut after 300 kB of a 2 MB file, the callee has already received part of
    it and gets the message aborted with '#' - a store-and-forward relay would have sent
    nothing."""
    data = tmp_path / "big.bin"
    data.write_bytes(os.urandom(2_000_000))
    wire = MsrpWire(monkeypatch)
    async with b2b_pair(tmp_path) as (server, alice, bob, _a_wire, _b_wire):
        wire.watch(bob.msrp)
        media = server.services.media                          # type: ignore[union-attr]
        assert media.msrp is not None
        with cut_msrp_after(media.msrp.endpoint, 300_000):
            task = asyncio.ensure_future(alice.files.send("bob", [data]))
            await wait_until(lambda: any(r.flag == "#" for r in wire.requests(bob.msrp)),
                             15, what="the aborted copy at bob")
            await asyncio.gather(task, return_exceptions=True)
        sends = [r for r in wire.requests(bob.msrp)
                 if (r.headers.get("Byte-Range") or "").endswith("/2000000")]
        assert sends and sends[-1].flag == "#"
        got = sum(len(r.body or b"") for r in sends)
        assert 0 < got <= 300_000


async def test_b2bua_file_above_the_memory_bound_is_switched(tmp_path: Path) -> None:
    """A file larger than what a relay leg holds in memory (media_max_message) still goes
    through: switched as it arrives, never held whole."""
    data = tmp_path / "large.bin"
    data.write_bytes(os.urandom(3_000_000))
    async with b2b_pair(tmp_path, media_max_message=1_000_000) as (_s, alice, bob, _aw, _bw):
        results = await alice.files.send("bob", [data])
        assert [r.status for r in results] == ["sent"]
        got = await wait_event(bob, lambda e: isinstance(e, FileEvent) and e.state == "received")
        assert isinstance(got, FileEvent) and got.hash_ok is True and got.path is not None
        assert hashlib.sha256(Path(got.path).read_bytes()).digest() == \
            hashlib.sha256(data.read_bytes()).digest()
