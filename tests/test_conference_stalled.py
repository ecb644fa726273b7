"""A participant that stops reading never stalls a conference (issue 10 §1, §5; OMA SIMPLE IM
§7.2.3): the focus's MSRP switch keeps a bounded queue per participant; when a participant's
connection is full and its queue too, that participant is dropped with a BYE saying why, the
others get every message, in order.  The stall is made by a receiver held at a byte offset
(tests/cuts.py), not by timing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from client_helpers import wait_event
from cuts import hold_msrp_after
from simpleim.client.events import GroupMessageEvent, ParticipantEvent
from test_server_conference import _joined, trio
from waiting import wait_until

#: far more than the kernel's socket buffers on both sides plus the queue (bounded loop)
MAX_MESSAGES = 600
BODY = "x" * (60 * 1024)     # below the switch's chunk-by-chunk threshold: queued whole


async def test_a_stalled_participant_is_dropped_and_the_others_go_on(tmp_path: Path) -> None:
    async with trio(tmp_path, media_queue_limit=4) as (_srv, (alice, bob, carol),
                                                        (_a_w, _b_w, c_w)):
        chat = await alice.groups.start(["bob", "carol"])
        await _joined(bob)
        await _joined(carol)
        await chat.send("before the stall")
        for account in (bob, carol):
            async with asyncio.timeout(30):
                while True:
                    ev = await account.events.get()
                    if isinstance(ev, GroupMessageEvent) and ev.text == "before the stall":
                        break
        got: list[str] = []

        def on_bob(ev: object) -> None:
            if isinstance(ev, GroupMessageEvent) and ev.text.startswith("x"):
                got.append(ev.message_id or "")

        with hold_msrp_after(carol.msrp, 0) as valve:      # carol reads nothing more
            sent: list[str] = []
            while not c_w.requests("BYE", "in") and len(sent) < MAX_MESSAGES:
                sent.append(await chat.send(BODY))
            bye = await c_w.request("BYE", "in", timeout=30)
            assert valve.holding                              # she really stopped reading
        # §7.2.3: the switch dropped carol, saying why, and told the others (RFC 4575)
        reason = bye.headers.get("Reason") or ""
        assert "too slow" in reason, reason
        left = await wait_event(alice, lambda e: isinstance(e, ParticipantEvent)
                                and e.participant == "sip:carol@example.test"
                                and e.status == "disconnected", timeout=30)
        assert isinstance(left, ParticipantEvent)
        # bob got every message alice sent, in order, while carol was stuck
        async with asyncio.timeout(60):
            while len(got) < len(sent):
                on_bob(await bob.events.get())
        assert got == sent
        assert len(sent) < MAX_MESSAGES                       # dropped before the bound


def _waiting_receives() -> int:
    """Tasks of ``EndpointSession.receive`` not done: a reader of the focus waiting for its
    leg's next message (the in-process clients await their streams directly)."""
    return sum(1 for t in asyncio.all_tasks() if not t.done()
               and getattr(t.get_coro(), "__qualname__", "") == "EndpointSession.receive")


async def test_legs_taken_out_leave_no_reader_behind(tmp_path: Path) -> None:
    """A leg the room takes out (a participant who leaves; every leg when the conference
    is released) leaves no reader behind: a reader cancelled while it waits for its leg's
    next message cancels that receive too - a server running for weeks must not keep one
    pending task per participant that ever was in a released conference."""
    async with trio(tmp_path) as (_srv, (alice, bob, carol), _wires):
        chat = await alice.groups.start(["bob", "carol"])
        b_chat = await _joined(bob)
        c_chat = await _joined(carol)
        await wait_until(lambda: _waiting_receives() == 3, what="one reader per leg")
        await c_chat.leave()
        await wait_until(lambda: _waiting_receives() == 2, what="carol's reader gone")
        await chat.send("still here")
        await wait_event(bob, lambda e: isinstance(e, GroupMessageEvent)
                         and e.text == "still here")
        await chat.leave()                  # the initiator leaves: the conference ends
        await wait_until(lambda: b_chat.ended.is_set(), what="bob's leg released")
        await wait_until(lambda: _waiting_receives() == 0, what="no reader left")
