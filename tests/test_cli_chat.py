"""Issue 11 §3: two-way messaging from the CLI, nothing acknowledged and not shown.

The real ``simpleim chat`` command (subprocess) against the in-process server; the other
users are library accounts."""

from __future__ import annotations

import asyncio
import os
import pty
from pathlib import Path

from cli_helpers import LONG, clean_env, console, simpleim_bin
from client_helpers import DOMAIN, PASSWORDS, client_config, running_server, wait_event
from simpleim.client import Account
from simpleim.client.config import Policy
from simpleim.client.events import ComposingEvent, MessageEvent, SessionEvent


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


async def test_chat_shows_others_while_it_waits_and_can_answer_them(tmp_path: Path) -> None:
    # bob's phone rings for ever (policy ask, nobody answers); carol writes to alice meanwhile
    async with running_server(tmp_path) as (_server, port), \
            Account(client_config("bob", port, tmp_path, policy=Policy(sessions="ask"))), \
            Account(client_config("carol", port, tmp_path)) as carol:
        proc = await console("chat", "bob", env=_env(tmp_path, "alice", port))
        assert proc.stdin is not None and proc.stdout is not None
        try:
            out = await _until(proc.stdout, b"waiting up to 60 s for an answer")
            assert out.startswith(b"inviting sip:bob@example.test to a chat")
            await carol.pager.send("alice", "pager note from carol")
            out = await _until(proc.stdout, b"carol: pager note from carol")
            chat = await carol.chats.start("alice")
            await chat.send("and in a session")
            await _until(proc.stdout, b"carol: and in a session")
            # alice answers carol from the same console
            proc.stdin.write(b"/to carol\nthanks carol\n")
            await proc.stdin.drain()
            got = await wait_event(carol, lambda e: isinstance(e, MessageEvent)
                                   and e.text == "thanks carol", timeout=LONG)
            assert isinstance(got, MessageEvent) and got.mode == "session"
            assert got.session_id == chat.session_id      # in carol's session, not a new one
            proc.stdin.write(b"/quit\n")
            await proc.stdin.drain()
            async with asyncio.timeout(LONG):
                assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_chat_without_target_answers_whoever_writes(tmp_path: Path) -> None:
    async with running_server(tmp_path) as (_server, port), \
            Account(client_config("alice", port, tmp_path)) as alice:
        proc = await console("chat", env=_env(tmp_path, "bob", port))
        assert proc.stdin is not None and proc.stdout is not None
        try:
            await _until(proc.stdout, b"waiting for chats and messages to sip:bob@example.test")
            chat = await alice.chats.start("bob")
            await chat.send("hello bob")
            await _until(proc.stdout, b"alice: hello bob")
            proc.stdin.write(b"hi alice\n")
            await proc.stdin.drain()
            got = await wait_event(alice, lambda e: isinstance(e, MessageEvent), timeout=LONG)
            assert isinstance(got, MessageEvent) and got.text == "hi alice"
            assert got.session_id == chat.session_id
            proc.stdin.close()                                   # Ctrl-D
            async with asyncio.timeout(LONG):
                assert await proc.wait() == 0
            ended = await wait_event(alice, lambda e: isinstance(e, SessionEvent)
                                     and e.state == "ended", timeout=LONG)
            assert ended is not None
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_typing_on_a_terminal_sends_is_composing(tmp_path: Path) -> None:
    async with running_server(tmp_path) as (_server, port), \
            Account(client_config("alice", port, tmp_path)) as alice:
        master, slave = pty.openpty()
        proc = await asyncio.create_subprocess_exec(
            simpleim_bin(), "chat", env=_env(tmp_path, "bob", port), stdin=slave,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        os.close(slave)
        assert proc.stdout is not None
        try:
            await _until(proc.stdout, b"waiting for chats and messages")
            chat = await alice.chats.start("bob")
            await chat.send("are you there?")
            await _until(proc.stdout, b"alice: are you there?")
            os.write(master, b"yes")                           # typed, no Enter yet
            typing = await wait_event(alice, lambda e: isinstance(e, ComposingEvent)
                                      and e.state == "active", timeout=LONG)
            assert typing is not None
            os.write(master, b"\r")
            got = await wait_event(alice, lambda e: isinstance(e, MessageEvent), timeout=LONG)
            assert isinstance(got, MessageEvent) and got.text == "yes"
            os.write(master, b"/quit\r")
            async with asyncio.timeout(LONG):
                assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            os.close(master)


async def test_one_shot_commands_show_or_refuse_what_comes_in(tmp_path: Path) -> None:
    """``send`` is no receiver: a chat offered meanwhile is declined (480, never
    acknowledged); a pager message it acknowledged (200) is shown on stderr."""
    from simpleim.client.session import SessionFailed

    async with running_server(tmp_path) as (_server, port), \
            Account(client_config("carol", port, tmp_path)) as carol:
        proc = await asyncio.create_subprocess_exec(
            simpleim_bin(), "send", "carol", "hi carol", "--wait-imdn", "60",
            env=_env(tmp_path, "alice", port), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            await wait_event(carol, lambda e: isinstance(e, MessageEvent), timeout=LONG)
            try:
                await carol.chats.start("alice", timeout=LONG)
            except SessionFailed as exc:
                declined: int | None = exc.status
            else:
                declined = None
            try:
                await carol.pager.send("alice", "a note while you send")
                acknowledged = True
            except SessionFailed:
                acknowledged = False                # alice had gone: 480, not acknowledged
            async with asyncio.timeout(LONG):
                _out, err = await proc.communicate()
            assert proc.returncode == 0, err
            assert declined in (480, 404), declined   # 404/480 once alice de-registered
            if acknowledged:
                assert ("meanwhile sip:carol@example.test wrote: a note while you send"
                        in err.decode()), err
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
