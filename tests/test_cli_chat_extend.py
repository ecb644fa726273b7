"""``/add USER`` in a 1-1 ``simpleim chat PEER`` (OMA SIMPLE IM §7.1.1.6): the chat goes on
as a group chat - the real command (subprocess) against the in-process server; bob and
carol are library accounts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cli_helpers import LONG, console, finish_console, reap
from client_helpers import client_config, running_server, wait_event
from simpleim.client import Account
from simpleim.client.events import GroupMessageEvent, SessionEvent
from simpleim.client.groupchat import GroupChat
from simpleim.store.history import ItemKind
from test_cli_chat import _env, _until
from waiting import wait_until
from wire import SipWire


async def _typed(proc: asyncio.subprocess.Process, line: bytes, shown: bytes) -> None:
    """Type ``line`` in the console and wait until it shows ``shown``."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + b"\n")
    await proc.stdin.drain()
    await _until(proc.stdout, shown)


async def test_add_in_a_one_to_one_chat_makes_it_a_group_chat(tmp_path: Path) -> None:
    async with running_server(tmp_path) as (server, port), \
            Account(client_config("bob", port, tmp_path, "tcp")) as bob, \
            Account(client_config("carol", port, tmp_path, "tcp")) as carol:
        b_w = SipWire(bob)
        proc = await console("chat", "bob", env=_env(tmp_path, "alice", port))
        assert proc.stdin is not None and proc.stdout is not None
        try:
            await _until(proc.stdout, b"session with sip:bob@example.test established")
            await _typed(proc, b"/add carol",
                         b"* the chat with bob is now the group chat sip:conf~")
            # bob's 1-1 session was replaced (RFC 3891) and ended by his BYE
            invite = await b_w.request("INVITE", "in",
                                       where=lambda r: bool(r.headers.get("Replaces")))
            assert "isfocus" in (invite.headers.get("Contact") or "")
            group = await wait_event(bob, lambda e: isinstance(e, SessionEvent)
                                     and e.kind == "group" and e.state == "established",
                                     timeout=LONG)
            assert isinstance(group, SessionEvent)
            b_group = bob.sessions[group.session_id]
            assert isinstance(b_group, GroupChat) and b_group.replaced is not None
            await b_w.request("BYE", where=lambda r: r.call_id == b_group.replaced)
            await wait_event(carol, lambda e: isinstance(e, SessionEvent)
                             and e.kind == "group" and e.state == "established", timeout=LONG)
            # what alice types goes to both; what carol writes shows in alice's console
            proc.stdin.write(b"hello both\n")
            await proc.stdin.drain()
            for who in (bob, carol):
                await wait_event(who, lambda e: isinstance(e, GroupMessageEvent)
                                 and e.text == "hello both", timeout=LONG)
            await b_group.send("hi from bob")
            await _until(proc.stdout, b"bob: hi from bob")
            # in the group chat /add with several users is one multiple-refer REFER
            await _typed(proc, b"/add dave erin", b"dave, erin invited")
            focus = server.roles.focus  # type: ignore[union-attr]
            await wait_until(lambda: all(
                focus.conferences[0].participant(f"sip:{u}@example.test") is not None
                for u in ("dave", "erin")), LONG, what="dave and erin invited")
            assert await finish_console(proc, b"/quit") == 0
        finally:
            await reap(proc)


async def test_record_in_a_one_to_one_chat_the_server_does_not_relay(tmp_path: Path) -> None:
    """C-CH-01 §13.1.1 1a from the console: the 1-1 chat's answer had no isfocus (the PF
    is a proxy here), so ``/record start NAME`` extends the chat with History@ listed."""
    async with running_server(tmp_path) as (server, port), \
            Account(client_config("bob", port, tmp_path, "tcp")) as bob:
        proc = await console("chat", "bob", env=_env(tmp_path, "alice", port))
        assert proc.stdout is not None and proc.stdin is not None
        try:
            await _until(proc.stdout, b"session with sip:bob@example.test established")
            await _typed(proc, b"/record start plans", b"(recording started)")
            await wait_event(bob, lambda e: isinstance(e, SessionEvent)
                             and e.kind == "group" and e.state == "established", timeout=LONG)
            proc.stdin.write(b"kept\n")
            await proc.stdin.drain()
            await wait_event(bob, lambda e: isinstance(e, GroupMessageEvent)
                             and e.text == "kept", timeout=LONG)
            assert await finish_console(proc, b"/quit") == 0
        finally:
            await reap(proc)
        history = server.store.history  # type: ignore[union-attr]
        (rec,) = await history.of("alice@example.test")
        assert rec.filename == "plans" and rec.peer.startswith("conf~")
        texts = [i.text for i in await history.items(rec.id) if i.kind is ItemKind.SEND]
        assert texts == ["kept"]
