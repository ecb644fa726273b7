"""End-to-end 1-1 IM session through the simpleim server: INVITE/200/ACK, MSRP, CPIM with
IMDN delivery + display, is-composing both ways, decline, CANCEL, BYE, session refresh."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from client_helpers import pair, wait_event
from simpleim.client.config import Policy
from simpleim.client.events import ComposingEvent, ImdnEvent, MessageEvent, SessionEvent
from simpleim.client.session import ChatSession, SessionFailed
from waiting import wait_until


def _is_state(state: str):  # type: ignore[no-untyped-def]
    return lambda e: isinstance(e, SessionEvent) and e.state == state


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_chat_imdn_composing(tmp_path: Path, transport: str) -> None:
    async with pair(tmp_path, transport) as (alice, bob):
        chat = await alice.chats.start("bob")
        ev = await wait_event(bob, _is_state("established"))
        assert isinstance(ev, SessionEvent) and ev.kind == "chat"
        bob_chat = bob.sessions[ev.session_id]
        assert isinstance(bob_chat, ChatSession)
        # is-composing alice -> bob
        await chat.composing(True)
        comp = await wait_event(bob, lambda e: isinstance(e, ComposingEvent))
        assert isinstance(comp, ComposingEvent) and comp.state == "active"
        mid = await chat.send("hi in session")
        msg = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(msg, MessageEvent)
        assert msg.text == "hi in session" and msg.mode == "session"
        assert msg.message_id == mid
        delivered = await wait_event(alice, lambda e: isinstance(e, ImdnEvent))
        assert isinstance(delivered, ImdnEvent) and delivered.status == "delivered"
        assert await bob_chat.mark_displayed(mid)
        displayed = await wait_event(alice, lambda e: isinstance(e, ImdnEvent))
        assert isinstance(displayed, ImdnEvent) and displayed.status == "displayed"
        # and the other way round, composing too
        await bob_chat.composing(True)
        comp2 = await wait_event(alice, lambda e: isinstance(e, ComposingEvent))
        assert isinstance(comp2, ComposingEvent)
        await bob_chat.send("hi alice")
        back = await wait_event(alice, lambda e: isinstance(e, MessageEvent))
        assert isinstance(back, MessageEvent) and back.text == "hi alice"
        # session refresh (RFC 4028 UPDATE) keeps the session up
        await chat.refresh()
        assert not chat.ended.is_set()
        await chat.end()
        ended = await wait_event(bob, _is_state("ended"))
        assert isinstance(ended, SessionEvent) and ended.reason == "remote hangup"


async def test_chat_declined(tmp_path: Path) -> None:
    async with pair(tmp_path, bob={"policy": Policy(sessions="decline")}) as (alice, _bob):
        with pytest.raises(SessionFailed) as err:
            await alice.chats.start("bob")
        assert err.value.status == 480  # OMA §7.1.2.1


async def test_chat_cancel(tmp_path: Path) -> None:
    async with pair(tmp_path, bob={"policy": Policy(sessions="ask")}) as (alice, bob):
        task = asyncio.ensure_future(alice.chats.start("bob"))
        await wait_event(bob, _is_state("invited"))
        session = next(iter(alice.sessions.values()))
        assert session.attempt is not None
        session.attempt.cancel()
        with pytest.raises(SessionFailed) as err:
            await task
        assert err.value.status == 487
        await wait_event(bob, _is_state("cancelled"))


async def test_chat_ask_accept(tmp_path: Path) -> None:
    async with pair(tmp_path, bob={"policy": Policy(sessions="ask")}) as (alice, bob):
        task = asyncio.ensure_future(alice.chats.start("bob"))
        ev = await wait_event(bob, _is_state("invited"))
        assert isinstance(ev, SessionEvent) and ev.invitation is not None
        ev.invitation.accept()
        chat = await task
        await chat.send("ok")
        msg = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(msg, MessageEvent) and msg.text == "ok"
        await chat.end()


async def test_session_timer_refresh_and_expiry(tmp_path: Path) -> None:
    """RFC 4028: alice (refresher=uac) refreshes at half the interval with a re-INVITE
    (OMA §7.1.1.8); bob answers refresher=uas (OMA §7.1.2.2), so the refreshes alternate.
    When nobody refreshes any more, the watching side's timer ends the session with BYE
    (interval - min(32, interval/3))."""
    from simpleim.timers import Timers

    quick = {"timers": Timers(tc1=0.5, tc2=2.0, min_se=1.0), "session_expires": 3}
    # 3 s is below RFC 4028's 90 s floor, which the server's Participating Function enforces
    # as a proxy (422): its session timer is off for this client-to-client test.
    async with pair(tmp_path, alice=quick, bob=quick,
                    server={"pf_session_timer": False}) as (alice, bob):
        chat = await alice.chats.start("bob")
        ev = await wait_event(bob, _is_state("established"))
        assert isinstance(ev, SessionEvent)
        bob_chat = bob.sessions[ev.session_id]
        refreshes: list[str] = []
        for who, side in (("alice", chat), ("bob", bob_chat)):
            async def counted(real=side.refresh, who=who) -> None:  # type: ignore[no-untyped-def]
                await real()
                refreshes.append(who)

            side.refresh = counted  # type: ignore[method-assign]
        # Two refreshes done = past the first expiry (interval - interval/3 = 2 s): the session
        # is only alive thanks to them.  Waiting for the refreshes, not for a duration.
        await wait_until(lambda: len(refreshes) >= 2, 15, what="two session refreshes")
        assert refreshes[:2] == ["alice", "bob"]      # alternate: bob answered refresher=uas
        assert not chat.ended.is_set() and not bob_chat.ended.is_set()
        await chat.send("still here")
        await wait_event(bob, lambda e: isinstance(e, MessageEvent))

        async def no_refresh() -> None:
            return None

        chat.refresh = no_refresh  # type: ignore[method-assign]
        bob_chat.refresh = no_refresh  # type: ignore[method-assign]
        ended = await wait_event(bob, _is_state("ended"), timeout=10)
        assert isinstance(ended, SessionEvent)
        await wait_event(alice, _is_state("ended"), timeout=10)
        assert "session timer" in (chat.end_reason or "") + (bob_chat.end_reason or "")


async def test_422_min_se_retry(tmp_path: Path) -> None:
    from simpleim.timers import Timers

    async with pair(
        tmp_path,
        alice={"timers": Timers(min_se=1.0), "session_expires": 5},
        bob={"timers": Timers(min_se=120.0)},
    ) as (alice, _bob):
        chat = await alice.chats.start("bob")  # 422 Min-SE: 120 -> retried (RFC 4028 §7.4)
        assert chat.timer.interval == 120.0
        await chat.end()


async def test_busy_486(tmp_path: Path) -> None:
    async with pair(tmp_path, bob={"max_sessions": 0}) as (alice, _bob):
        with pytest.raises(SessionFailed) as err:
            await alice.chats.start("bob")
        assert err.value.status == 486


async def test_lost_msrp_connection_ends_session(tmp_path: Path) -> None:
    async with pair(tmp_path) as (alice, bob):
        chat = await alice.chats.start("bob")
        await wait_event(bob, _is_state("established"))
        for runner in list(alice.msrp._runners):
            runner.close()
        ended = await wait_event(alice, _is_state("ended"))
        assert isinstance(ended, SessionEvent) and ended.reason == "MSRP connection lost"
        await wait_event(bob, _is_state("ended"))
        assert chat.ended.is_set()
