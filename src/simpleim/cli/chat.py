"""``simpleim chat [TO]``: an interactive console for 1-1 chats (OMA SIMPLE IM §7).

Everything the account acknowledges is shown: messages in any session and pager messages
from anyone (not only TO), chats others open, files received.  Typed lines go to the
current peer - TO, else the last one who wrote - in the open session with them, or in a new
one; ``/to PEER`` switches.  On a terminal each keystroke is read as it is typed and an
is-composing ``active`` indication (RFC 3994 §3) goes to the peer (``idle`` when the line
is erased); on a pipe an empty line sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
from collections.abc import Callable, Coroutine
from typing import Any, TextIO
from urllib.parse import quote

from simpleim.cli.outcome import describe_failure, exit_code_for
from simpleim.client import Account
from simpleim.client.events import (
    ComposingEvent,
    FileEvent,
    GroupMessageEvent,
    ImdnEvent,
    MessageEvent,
    ParticipantEvent,
    SessionEvent,
)
from simpleim.client.groupchat import GroupChat
from simpleim.client.pager import normalize_uri
from simpleim.client.session import ChatSession, SessionFailed
from simpleim.errors import SimpleImError

__all__ = ["ChatConsole", "HELP", "Keyboard", "group_line"]

HELP = ("type a line and Enter to send; /to PEER to write to someone else; /add USER... "
        "makes the current chat a group chat with them; /record start [NAME] | /record stop "
        "asks the server to record the current chat; /quit or Ctrl-D ends")
#: RFC 3994 §4.2: an ``active`` indication is refreshed while typing goes on.
COMPOSING_REFRESH = 60.0


def group_line(ev: GroupMessageEvent | ParticipantEvent, me: str,
               short: Callable[[str], str]) -> str | None:
    """A group chat's message or participant change as a console shows it (a participant by
    its alias, a private message ``[private]``); None for our own message (the focus does
    not echo it, an agent may)."""
    if isinstance(ev, ParticipantEvent):
        how = f" ({ev.method})" if ev.method else ""
        return f"* {short(ev.participant)} {ev.status}{how}"
    if ev.system is not None:
        return f"[{ev.system}] {ev.text}"
    if ev.sender == me:
        return None
    # the sender's chat alias when it has one; a private message to us marked (§7.1.3.3)
    mark = "[private] " if ev.private else ""
    return f"{mark}{ev.alias or short(ev.sender)}: {ev.text}"


class Keyboard:
    """Standard input without blocking the loop: whole lines from a pipe; keystrokes from a
    terminal (no canonical mode, no echo: the console echoes and erases itself)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.tty = os.isatty(fd)
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._saved: list[Any] | None = None
        self._pending = b""

    def __enter__(self) -> Keyboard:
        if self.tty:
            self._saved = termios.tcgetattr(self.fd)
            mode = termios.tcgetattr(self.fd)
            mode[3] &= ~(termios.ICANON | termios.ECHO)     # lflag; ISIG kept: Ctrl-C works
            mode[6][termios.VMIN] = 1
            mode[6][termios.VTIME] = 0
            termios.tcsetattr(self.fd, termios.TCSANOW, mode)
        asyncio.get_running_loop().add_reader(self.fd, self._readable)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.fd)
        if self._saved is not None:
            termios.tcsetattr(self.fd, termios.TCSANOW, self._saved)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.fd)
            if self._pending:
                self.queue.put_nowait(self._pending.decode("utf-8", "replace") + "\n")
            self.queue.put_nowait(None)
            return
        if self.tty:
            for ch in (self._pending + data).decode("utf-8", "ignore"):
                self.queue.put_nowait(ch)
            self._pending = b""
            return
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            self.queue.put_nowait(line.decode("utf-8", "replace") + "\n")


class ChatConsole:
    """The console: shows every event, sends what is typed (see the module doc)."""

    def __init__(self, account: Account, target: str | None, *, timeout: float = 60.0,
                 out: TextIO | None = None) -> None:
        self.account = account
        self.domain = account.config.domain
        self.current: str | None = normalize_uri(target, self.domain) if target else None
        self.first = self.current
        self.timeout = timeout
        self.out = out or sys.stdout
        self.chats: dict[str, ChatSession] = {}
        self.sent: dict[str, str] = {}
        self.unconfirmed: set[str] = set()
        self.line = ""
        self.tty = False
        self._composing_at: float | None = None
        self._opening: dict[str, asyncio.Task[int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: 1-1 sessions being extended to a group chat: their end is no news (§7.1.1.6)
        self.replacing: set[str] = set()
        self.done = asyncio.Event()

    # ------------------------------------------------------------------ output
    def say(self, text: str) -> None:
        if self.tty:
            self.out.write("\r\x1b[K" + text + "\n" + self.prompt() + self.line)
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def prompt(self) -> str:
        return f"{self.short(self.current)}> " if self.current else "> "

    def short(self, uri: str | None) -> str:
        if uri is None:
            return ""
        bare = uri.removeprefix("sip:")
        return bare.removesuffix(f"@{self.domain}")

    # ------------------------------------------------------------------ events
    async def show(self) -> None:
        async for ev in self.account.events:
            if isinstance(ev, MessageEvent):
                self.say(f"{self.short(ev.sender)}: {ev.text}")
                if self.current is None:
                    self.current = ev.sender
                    self.say(f"  (replying to {self.short(ev.sender)}; /to PEER changes)")
                if ev.message_id:
                    # not awaited here: the display must not wait for the notification
                    self._background(self.account.mark_displayed(ev.message_id))
            elif isinstance(ev, ImdnEvent) and ev.message_id in self.sent:
                tick = "✓✓" if ev.status == "displayed" else "✓"
                self.unconfirmed.discard(ev.message_id)
                self.say(f"  {tick} {ev.status}: {self.sent[ev.message_id]}")
            elif isinstance(ev, ComposingEvent) and ev.state == "active":
                self.say(f"  … {ev.peer} is typing")
            elif isinstance(ev, SessionEvent) and ev.kind == "chat":
                self._session(ev)
            elif isinstance(ev, SessionEvent) and ev.kind == "group":
                self._group_session(ev)
            elif isinstance(ev, GroupMessageEvent | ParticipantEvent):
                line = group_line(ev, self.account.config.uri, self.short)
                if line is not None:
                    self.say(line)
            elif isinstance(ev, FileEvent) and ev.state in ("received", "failed"):
                where = f" -> {ev.path}" if ev.path else f" ({ev.reason})"
                self.say(f"* file {ev.file_name} from {self.short(ev.peer)} {ev.state}{where}")
        self.done.set()

    def _background(self, work: Coroutine[Any, Any, object]) -> None:
        async def quietly() -> None:
            with contextlib.suppress(SimpleImError, OSError, TimeoutError):
                await work

        task = asyncio.ensure_future(quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _session(self, ev: SessionEvent) -> None:
        chat = self.account.chats.session(ev.session_id)
        if ev.state == "established" and chat is not None and not chat.is_uac:
            self.chats[ev.peer] = chat
            self.say(f"* {self.short(ev.peer)} opened a chat")
            if self.current is None:
                self.current = ev.peer
                self.say(f"  (replying to {self.short(ev.peer)}; /to PEER changes)")
        elif ev.state == "ended" and ev.session_id not in self.replacing:
            known = self.chats.get(ev.peer)
            if known is not None and known.session_id == ev.session_id:
                del self.chats[ev.peer]
                self.say(f"session with {ev.peer} ended ({ev.reason})")
                if ev.peer == self.first and known.is_uac:
                    self.done.set()          # `chat TO`: the conversation asked for is over

    def _group_session(self, ev: SessionEvent) -> None:
        """A group chat that took over one of our 1-1 chats (§7.1.1.6, the peer extended
        it) goes on under that peer; a group chat of ours that ended is gone."""
        key = next((k for k, c in self.chats.items() if c.session_id == ev.session_id), None)
        if ev.state == "ended" and key is not None:
            del self.chats[key]
            self.say(f"group chat ended ({ev.reason})")
            return
        group = self.account.groups.chat(ev.session_id)
        if ev.state != "established" or group is None or group.replaced is None:
            return
        key = next((k for k, c in self.chats.items() if c.session_id == group.replaced), None)
        if key is not None:
            self.replacing.add(group.replaced)
            self.chats[key] = group
            self.say(f"* the chat with {self.short(key)} is now the group chat "
                     f"{group.conference}")

    # ------------------------------------------------------------------ input
    async def run(self, fd: int) -> int:
        shower = asyncio.ensure_future(self.show())
        calling: asyncio.Task[int] | None = None
        try:
            with Keyboard(fd) as keys:
                self.tty = keys.tty
                if self.current is not None:
                    # Typing (and /to someone else) works while the invitation rings.
                    calling = self._opening[self.current] = asyncio.ensure_future(
                        self.open(self.current))
                    calling.add_done_callback(self._first_call_done)
                else:
                    self.say(f"waiting for chats and messages to {self.account.config.uri}; "
                             f"{HELP}")
                await self._read(keys)
            if calling is not None and calling.done() and calling.result() and not self.chats:
                return exit_code_for(calling.result())
            await self._wait_for_ticks()
        finally:
            shower.cancel()
            for pending in list(self._tasks):
                pending.cancel()
            if calling is not None and not calling.done():
                calling.cancel()
            for task in (shower, calling):
                if task is not None:
                    with contextlib.suppress(asyncio.CancelledError, SimpleImError, OSError):
                        await task
            for chat in list(self.chats.values()):
                with contextlib.suppress(SimpleImError, OSError, TimeoutError):
                    async with asyncio.timeout(5):
                        await chat.end()
        return 0

    def _first_call_done(self, task: asyncio.Task[int]) -> None:
        if not task.cancelled() and task.result() and not self.chats:
            self.done.set()          # `chat TO` and TO refused: nothing else to do

    async def open(self, peer: str) -> int:
        """A new chat with ``peer`` (events keep being shown while it rings); 0 when it is
        established, else the SIP status of the failure (said in words)."""
        self.say(f"inviting {peer} to a chat; waiting up to {self.timeout:.0f} s for an "
                 "answer (Ctrl-C gives up)")
        try:
            chat = await self.account.chats.start(peer, timeout=self.timeout)
        except SessionFailed as exc:
            self.say(f"no chat with {peer}: "
                     f"{describe_failure(exc.status, exc.reason, self.short(peer), 'nothing')}")
            return exc.status or 1
        self.chats[chat.peer] = chat
        self.say(f"session with {chat.peer} established; {HELP}")
        return 0

    async def _read(self, keys: Keyboard) -> None:
        while not self.done.is_set():
            get = asyncio.ensure_future(keys.queue.get())
            stop = asyncio.ensure_future(self.done.wait())
            await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not get.done():
                get.cancel()
                return
            item = get.result()
            if item is None:
                return
            if not self.tty:
                if not await self._line(item.rstrip("\n")):
                    return
            elif not await self._key(item):
                return

    async def _key(self, ch: str) -> bool:
        if ch in ("\n", "\r"):
            text, self.line = self.line, ""
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._composing_at = None
            go_on = await self._line(text) if text else True
            self.out.write(self.prompt())
            self.out.flush()
            return go_on
        if ch == "\x04" and not self.line:           # Ctrl-D on an empty line
            return False
        if ch in ("\x7f", "\b"):
            if self.line:
                self.line = self.line[:-1]
                self.out.write("\b \b")
                self.out.flush()
                if not self.line:
                    await self._composing(False)
            return True
        if ch.isprintable():
            self.line += ch
            self.out.write(ch)
            self.out.flush()
            await self._composing(True)
        return True

    async def _composing(self, active: bool) -> None:
        chat = self.chats.get(self.current or "")
        if chat is None:
            return
        now = asyncio.get_running_loop().time()
        if active and self._composing_at is not None \
                and now - self._composing_at < COMPOSING_REFRESH:
            return
        self._composing_at = now if active else None
        with contextlib.suppress(SimpleImError, OSError):
            await chat.composing(active)

    async def _line(self, text: str) -> bool:
        """One typed line: a command or a message.  False ends the console."""
        stripped = text.strip()
        if stripped == "/quit":
            return False
        if stripped.startswith("/to"):
            peer = stripped[3:].strip()
            if not peer:
                self.say("usage: /to PEER")
                return True
            self.current = normalize_uri(peer, self.domain)
            self.say(f"  (writing to {self.short(self.current)})")
            return True
        if stripped.startswith("/add"):
            await self._add(stripped[4:].split())
            return True
        if stripped.startswith("/record"):
            await self._record(stripped[7:].split())
            return True
        if not stripped:
            await self._composing(True)
            return True
        if self.current is None:
            self.say("  nobody to write to yet: /to PEER first")
            return True
        peer = self.current
        if peer not in self.chats:
            pending = self._opening.get(peer)
            if pending is None or pending.done():
                pending = self._opening[peer] = asyncio.ensure_future(self.open(peer))
            if await pending:
                return True
        chat = self.chats.get(peer)
        if chat is None:
            self.say(f"  not sent (the chat with {self.short(peer)} is over): {text}")
            return True
        try:
            mid = await chat.send(text)
        except (SimpleImError, OSError) as exc:
            self.say(f"  not sent ({exc}): {text}")
            return True
        self.sent[mid] = text
        self.unconfirmed.add(mid)
        return True

    async def _add(self, users: list[str]) -> None:
        """``/add USER...``: a 1-1 chat becomes a group chat with them (§7.1.1.6); in a group
        chat they are invited by REFER (one, or several in one multiple-refer, §7.1.1.7)."""
        key = self.current or ""
        chat = self.chats.get(key)
        if not users or chat is None:
            self.say("usage: /add USER... (in an open chat)")
            return
        if not isinstance(chat, GroupChat):
            await self._extend(key, chat, users)
            return
        try:
            status = await chat.add(*users)
        except (SimpleImError, OSError) as exc:
            self.say(f"  not added ({exc})")
            return
        names = ", ".join(users)
        verb = "invited" if len(users) > 1 else "added"    # multiple-refer: the 202 only
        self.say(f"  {names} {verb}" if status < 300 else
                 f"  {names} not {verb}: {describe_failure(status, '', names, 'nothing')}")

    async def _extend(self, key: str, chat: ChatSession, members: list[str]
                      ) -> GroupChat | None:
        """§7.1.1.6: the chat with ``key`` goes on as a group chat with ``members`` too."""
        self.replacing.add(chat.session_id)
        try:
            group = await self.account.groups.extend(chat, members, timeout=self.timeout)
        except (SimpleImError, OSError) as exc:
            self.replacing.discard(chat.session_id)
            status = exc.status if isinstance(exc, SessionFailed) else 0
            self.say(f"  the chat with {self.short(key)} stays 1-1: "
                     + describe_failure(status, str(exc), ", ".join(members), "nothing"))
            return None
        self.chats[key] = group
        self.say(f"* the chat with {self.short(key)} is now the group chat {group.conference}")
        return group

    async def _record(self, words: list[str]) -> None:
        """``/record start [NAME]`` / ``/record stop`` for the open chat with the current
        peer (OMA SIMPLE IM §13.1.1 / §13.1.2): a 1-1 chat is extended to a conference
        listing sip:History@DOMAIN (step 1a), a group chat gets a REFER to History@
        naming its conference (step 2); stopping is that REFER with method=BYE."""
        if not words or words[0] not in ("start", "stop"):
            self.say("usage: /record start [NAME] | /record stop")
            return
        chat = self.chats.get(self.current or "")
        if chat is None:
            self.say("  no open chat with the current peer to record")
            return
        start = words[0] == "start"
        name = " ".join(words[1:]) or None
        if start and not isinstance(chat, GroupChat):
            # §13.1.1 step 1a: a session whose answer had no isfocus is extended to a
            # conference listing History@DOMAIN (§7.1.1.6); the focus has it recorded
            named = f";historyfilename={quote(name, safe='')}" if name else ""
            if await self._extend(self.current or "", chat,
                                  [f"sip:History@{self.domain}{named}"]) is not None:
                self.say("  (recording started)")
            return
        try:
            # step 2 / §13.1.2: REFER to History@ naming the conference
            status = await self.account.history.record(chat, start=start, filename=name)
        except (SimpleImError, OSError) as exc:
            self.say(f"  recording not {'started' if start else 'stopped'}: {exc}")
            return
        if 200 <= status < 300:
            self.say(f"  (recording {'started' if start else 'stopped'})")
        else:
            self.say(f"  recording not {'started' if start else 'stopped'}: "
                     + describe_failure(status, "", "the server", "the request"))

    async def _wait_for_ticks(self, limit: float = 5.0) -> None:
        """Input ended: give the delivery notifications of what was just sent a moment to
        arrive, so that a piped chat shows its ticks (bounded, not a synchronisation)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                while self.unconfirmed and self.chats and not self.done.is_set():
                    await asyncio.sleep(0.05)
