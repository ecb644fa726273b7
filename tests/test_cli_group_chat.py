"""``simpleim group-chat MEMBER...`` and the agent's group events, as a new user runs them:
the real commands (subprocesses) against the in-process server with its conference focus;
the other members are library accounts or ``simpleim agent --json``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from cli_helpers import LONG, clean_env, finish_console, reap, simpleim_bin
from client_helpers import DOMAIN, PASSWORDS, client_config, running_server, wait_event
from simpleim.client import Account
from simpleim.client.events import (
    FileEvent,
    GroupMessageEvent,
    ParticipantEvent,
    SessionEvent,
)
from simpleim.client.groupchat import GroupChat
from waiting import wait_until


def _env(tmp: Path, user: str, port: int) -> dict[str, str]:
    return clean_env(tmp, SIMPLEIM_ACCOUNT=f"{user}@{DOMAIN}",
                     SIMPLEIM_PASSWORD=PASSWORDS[user], SIMPLEIM_PROXY=f"127.0.0.1:{port}")


async def _until(stream: asyncio.StreamReader, needle: bytes) -> bytes:
    seen = b""
    async with asyncio.timeout(LONG):
        while needle not in seen:
            chunk = await stream.read(4096)
            if not chunk:
                raise AssertionError(f"output ended before {needle!r}: {seen!r}")
            seen += chunk
    return seen


async def _group_of(account: Account) -> GroupChat:
    ev = await wait_event(account, lambda e: isinstance(e, SessionEvent)
                          and e.kind == "group" and e.state == "established", timeout=LONG)
    assert isinstance(ev, SessionEvent)
    chat = account.sessions[ev.session_id]
    assert isinstance(chat, GroupChat)
    return chat


@contextlib.asynccontextmanager
async def _alice_console(tmp: Path, *options: str
                         ) -> AsyncIterator[tuple[asyncio.subprocess.Process, Account, Account]]:
    """alice's ``simpleim group-chat bob carol OPTIONS...`` with its pipes, bob and carol
    library accounts, against a running server."""
    async with running_server(tmp) as (_server, port), \
            Account(client_config("bob", port, tmp, "tcp")) as bob, \
            Account(client_config("carol", port, tmp, "tcp")) as carol:
        proc = await asyncio.create_subprocess_exec(
            simpleim_bin(), "group-chat", "bob", "carol", *options,
            env=_env(tmp, "alice", port), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        yield proc, bob, carol


async def test_group_chat_command(tmp_path: Path) -> None:
    async with _alice_console(tmp_path, "--subject", "plans") as (proc, bob, carol):
        assert proc.stdin is not None and proc.stdout is not None
        try:
            out = await _until(proc.stdout, b"established")
            assert b"starting a group chat with bob, carol" in out
            assert b"group chat sip:conf~" in out
            b_chat, c_chat = await _group_of(bob), await _group_of(carol)
            await _until(proc.stdout, b"* carol connected")
            proc.stdin.write(b"hello from the console\n")
            await proc.stdin.drain()
            for acc in (bob, carol):
                ev = await wait_event(acc, lambda e: isinstance(e, GroupMessageEvent),
                                      timeout=LONG)
                assert isinstance(ev, GroupMessageEvent)
                assert ev.text == "hello from the console"
                assert ev.sender == f"sip:alice@{DOMAIN}"
            await b_chat.send("bob here")
            await _until(proc.stdout, b"bob: bob here")
            proc.stdin.write(b"/remove carol\n/who\n")
            await proc.stdin.drain()
            await _until(proc.stdout, b"carol removed")
            ended = await wait_event(carol, lambda e: isinstance(e, SessionEvent)
                                     and e.state == "ended", timeout=LONG)
            assert isinstance(ended, SessionEvent) and ended.session_id == c_chat.session_id
            proc.stdin.write(b"/leave\n")
            await proc.stdin.drain()
            async with asyncio.timeout(LONG):
                assert await proc.wait() == 0
            # the initiator left: the conference is over for bob too (§7.2.2.8 1a)
            await wait_event(bob, lambda e: isinstance(e, SessionEvent) and e.state == "ended"
                             and e.session_id == b_chat.session_id, timeout=LONG)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_group_chat_command_refused(tmp_path: Path) -> None:
    async with running_server(tmp_path) as (_server, port):
        proc = await asyncio.create_subprocess_exec(
            simpleim_bin(), "group-chat", "bob", env=_env(tmp_path, "alice", port),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(LONG):
            out, _err = await proc.communicate(b"")
        assert b"no group chat" in out
        assert proc.returncode == 6              # 480: bob is not online


async def test_group_chat_join_predefined_group(tmp_path: Path) -> None:
    from simpleim.client.xcap import GroupSpec, group_document
    from simpleim.server.xdm.api import DocumentRef
    from simpleim.server.xdm.usages import AUID_GROUPS
    alice = f"sip:alice@{DOMAIN}"
    async with running_server(tmp_path) as (server, port), \
            Account(client_config("bob", port, tmp_path, "tcp")) as bob:
        spec = GroupSpec("team", f"sip:team@{DOMAIN}",
                         members=((alice, None), (f"sip:bob@{DOMAIN}", None)))
        await server.roles.xdm.documents.put(  # type: ignore[union-attr]
            DocumentRef(AUID_GROUPS, alice, "team"), group_document(spec, alice))
        proc = await asyncio.create_subprocess_exec(
            simpleim_bin(), "group-chat", "--join", "team", env=_env(tmp_path, "alice", port),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            out = await _until(proc.stdout, b"established")
            assert b"joining team" in out and b"group chat sip:conf~" in out
            b_chat = await _group_of(bob)            # the focus invited the member
            await b_chat.send("bob in the team")
            await _until(proc.stdout, b"bob: bob in the team")
            # /send FILE: file transfer in group chat, to the members that take files
            doc = tmp_path / "notes.txt"
            doc.write_bytes(b"minutes of the meeting\n" * 100)
            proc.stdin.write(f"/send {doc}\n".encode())
            await proc.stdin.drain()
            got = await wait_event(bob, lambda e: isinstance(e, FileEvent)
                                   and e.state == "received", timeout=LONG)
            assert isinstance(got, FileEvent) and got.path is not None
            assert Path(got.path).read_bytes() == doc.read_bytes()
            await _until(proc.stdout, b"notes.txt sent (2300 bytes)")
            assert await finish_console(proc, b"/leave") == 0
        finally:
            await reap(proc)


async def test_agent_reports_group_events(tmp_path: Path) -> None:
    async with running_server(tmp_path) as (_server, port), \
            Account(client_config("alice", port, tmp_path, "tcp")) as alice, \
            Account(client_config("carol", port, tmp_path, "tcp")) as carol:
        agent = await asyncio.create_subprocess_exec(
            simpleim_bin(), "agent", "--json", env=_env(tmp_path, "bob", port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert agent.stdout is not None
        events: list[dict[str, object]] = []

        async def until(name: str) -> dict[str, object]:
            async with asyncio.timeout(LONG):
                while True:
                    for ev in events:
                        if ev["event"] == name:
                            events.remove(ev)
                            return ev
                    line = await agent.stdout.readline()  # type: ignore[union-attr]
                    if not line:
                        raise AssertionError(f"agent output ended before {name}")
                    events.append(json.loads(line))

        try:
            await until("registered")
            chat = await alice.groups.start(["bob", "carol"])
            await _group_of(carol)
            await wait_event(alice, lambda e: isinstance(e, ParticipantEvent)
                             and e.participant == f"sip:bob@{DOMAIN}"
                             and e.status == "connected", timeout=LONG)
            mid = await chat.send("to the agent")
            msg = await until("group-message")
            assert msg == {"event": "group-message", "group": msg["group"],
                           "sender": f"sip:alice@{DOMAIN}", "text": "to the agent",
                           "message_id": mid, "mode": "session",
                           "session_id": msg["session_id"], "system": None,
                           "alias": None, "private": False}
            assert str(msg["group"]).startswith("sip:conf~")
            # a private message (§7.2.3.4): to bob only, flagged private
            await chat.send_private("bob", "only for bob")
            msg = await until("group-message")
            assert (msg["text"], msg["private"]) == ("only for bob", True)
            part = await until("participant")
            assert part["group"] == msg["group"] and part["status"] in (
                "connected", "pending")
        finally:
            agent.terminate()
            async with asyncio.timeout(LONG):
                await agent.wait()


async def test_group_chat_alias_and_private_messages(tmp_path: Path) -> None:
    """``group-chat --alias NICK``, ``/msg NICK TEXT``, ``/alias NAME`` (§7.1.1.15,
    §7.2.3.4): the others see the alias; private messages both ways, shown ``[private]``."""
    async with _alice_console(tmp_path, "--alias", "Boss") as (proc, bob, carol):
        assert proc.stdin is not None and proc.stdout is not None
        try:
            await _until(proc.stdout, b"established")
            b_chat, c_chat = await _group_of(bob), await _group_of(carol)
            await _until(proc.stdout, b"* carol connected")
            await b_chat.send_private("Boss", "psst")
            await _until(proc.stdout, b"[private] bob: psst")
            proc.stdin.write(b"/msg carol for carol only\n")
            await proc.stdin.drain()
            got = await wait_event(carol, lambda e: isinstance(e, GroupMessageEvent),
                                   timeout=LONG)
            assert isinstance(got, GroupMessageEvent)
            assert (got.text, got.private, got.alias) == ("for carol only", True, "Boss")
            # /alias: rejoined with the new alias, which the others now see
            proc.stdin.write(b"/alias Chief\n")
            await proc.stdin.drain()
            await _until(proc.stdout, b"you are Chief now")
            proc.stdin.write(b"the new name\n/who\n")
            await proc.stdin.drain()
            for acc in (bob, carol):
                ev = await wait_event(acc, lambda e: isinstance(e, GroupMessageEvent)
                                      and e.text == "the new name", timeout=LONG)
                assert isinstance(ev, GroupMessageEvent)
                assert (ev.alias, ev.private) == ("Chief", False)
            await _until(proc.stdout, b"alice [Chief] (connected)")
            # the conference state shows it too (a partial NOTIFY, §7.2.2.10)
            await wait_until(lambda: c_chat.alias_of(f"sip:alice@{DOMAIN}") == "Chief", LONG,
                             what="the new alias in carol's conference state")
            assert await finish_console(proc, b"/leave") == 0
        finally:
            await reap(proc)
