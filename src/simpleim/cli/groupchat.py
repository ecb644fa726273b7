"""``simpleim group-chat MEMBER...`` / ``--join GROUP``: a group chat on the console (OMA
SIMPLE IM §7.1.1.3 ad hoc, §7.1.1.4 / §7.1.1.10 a pre-defined group or room, the server's
conference focus).

The chat starts with one INVITE to the conference factory naming the members; typed lines
go to everybody; what the others write is shown with their name, and the participant list
changes as the focus reports them (conference event package).  Commands: ``/add USER``,
``/remove USER`` (the initiator only), ``/who``, ``/send FILE`` (file transfer in group
chat, to the members that take files), ``/msg NICK TEXT`` (a private message, §7.2.3.4),
``/alias NAME`` (a new chat alias: rejoins with it, §7.1.1.15), ``/leave`` (or ``/quit``,
Ctrl-D).  ``alias`` / ``anonymous``: join with a chat alias, anonymously (``Privacy: id``).
Others are shown by their alias when they have one; private messages as ``[private]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import TextIO

from simpleim.cli.chat import Keyboard, group_line
from simpleim.cli.outcome import describe_failure, exit_code_for
from simpleim.client import Account
from simpleim.client.events import GroupMessageEvent, ParticipantEvent, SessionEvent
from simpleim.client.groupchat import GroupChat
from simpleim.client.session import SessionFailed
from simpleim.errors import SimpleImError

__all__ = ["GROUP_HELP", "GroupConsole"]

GROUP_HELP = ("type a line and Enter to send to everybody; /msg NICK TEXT, /alias NAME, "
              "/add USER, /remove USER, /who, /send FILE; /leave, /quit or Ctrl-D ends")


class GroupConsole:
    """The group chat console (see the module doc)."""

    def __init__(self, account: Account, members: list[str], *, timeout: float = 60.0,
                 subject: str | None = None, out: TextIO | None = None,
                 join: str | None = None, alias: str | None = None,
                 anonymous: bool = False) -> None:
        self.account = account
        self.alias = alias
        self.anonymous = anonymous
        #: our sessions replaced by a rejoin with a new alias (their end is not the chat's)
        self.replaced: set[str] = set()
        self.members = members
        self.join = join
        self.timeout = timeout
        self.subject = subject
        self.domain = account.config.domain
        self.out = out or sys.stdout
        self.chat: GroupChat | None = None
        self.done = asyncio.Event()
        self.line = ""
        self.tty = False

    def say(self, text: str) -> None:
        if self.tty:
            self.out.write("\r\x1b[K" + text + "\n" + "group> " + self.line)
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def short(self, uri: str) -> str:
        return uri.removeprefix("sip:").removesuffix(f"@{self.domain}")

    async def show(self) -> None:
        async for ev in self.account.events:
            chat = self.chat
            if isinstance(ev, GroupMessageEvent | ParticipantEvent):
                line = group_line(ev, self.account.config.uri, self.short)
                if line is not None:
                    self.say(line)
            elif isinstance(ev, SessionEvent) and chat is not None \
                    and ev.session_id == chat.session_id and ev.state == "ended" \
                    and ev.session_id not in self.replaced:
                self.say(f"group chat ended ({ev.reason})")
                self.done.set()
        self.done.set()

    def _who(self, chat: GroupChat, entity: str, status: str) -> str:
        alias = chat.alias_of(entity)
        name = self.short(entity)
        return f"{name} [{alias}] ({status})" if alias and alias != name else \
            f"{name} ({status})"

    async def run(self, fd: int) -> int:
        names = self.join or ", ".join(self.members)
        what = f"joining {names}" if self.join else f"starting a group chat with {names}"
        self.say(f"{what}; waiting up to {self.timeout:.0f} s (Ctrl-C gives up)")
        shower = asyncio.ensure_future(self.show())
        try:
            try:
                if self.join:
                    self.chat = await self.account.groups.join(
                        self.join, timeout=self.timeout, subject=self.subject,
                        alias=self.alias, anonymous=self.anonymous)
                else:
                    self.chat = await self.account.groups.start(
                        self.members, timeout=self.timeout, subject=self.subject,
                        alias=self.alias, anonymous=self.anonymous)
            except SessionFailed as exc:
                self.say("no group chat: " + describe_failure(
                    exc.status, exc.reason, names, "nothing"))
                return exit_code_for(exc.status) if exc.status else 1
            self.say(f"group chat {self.chat.conference} established; {GROUP_HELP}")
            with Keyboard(fd) as keys:
                self.tty = keys.tty
                await self._read(keys)
        finally:
            chat = self.chat
            if chat is not None and not chat.ended.is_set():
                with contextlib.suppress(SimpleImError, OSError, TimeoutError):
                    async with asyncio.timeout(5):
                        await chat.leave()
            shower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shower
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
                if not await self.command(item.rstrip("\n")):
                    return
                continue
            if item in ("\n", "\r"):
                text, self.line = self.line, ""
                self.out.write("\r\x1b[K")
                if text and not await self.command(text):
                    return
                self.out.write("group> ")
            elif item == "\x04" and not self.line:
                return
            elif item in ("\x7f", "\b"):
                if self.line:
                    self.line = self.line[:-1]
                    self.out.write("\b \b")
            elif item.isprintable():
                self.line += item
                self.out.write(item)
            self.out.flush()

    async def command(self, text: str) -> bool:
        """One typed line: a command or a message to everybody; False ends the console."""
        chat = self.chat
        stripped = text.strip()
        if chat is None or not stripped:
            return True
        if stripped in ("/leave", "/quit"):
            return False
        word, _, arg = stripped.partition(" ")
        try:
            if word == "/add" and len(arg.split()) > 1:
                # §7.1.1.7 step 4: one multiple-refer REFER, its 202 is the answer
                names = ", ".join(arg.split())
                status = await chat.add(*arg.split())
                self.say(f"  {names} invited" if status < 300 else
                         f"  {names} not invited: "
                         + describe_failure(status, '', names, 'nothing'))
            elif word in ("/add", "/remove") and arg.strip():
                user = arg.strip()
                status = await (chat.add(user) if word == "/add" else chat.remove(user))
                verb = "added" if word == "/add" else "removed"
                self.say(f"  {user} {verb}" if status < 300 else
                         f"  {user} not {verb}: {describe_failure(status, '', user, 'nothing')}")
            elif word == "/send" and arg.strip():
                # CPM CR "File Transfer in Group Chat": to the members that take files
                path = Path(arg.strip()).expanduser()
                self.say(f"  sending {path.name} to the group")
                result = await chat.send_file(path, timeout=self.timeout)
                self.say(f"  {result.name} {result.status} ({result.size} bytes)")
            elif word == "/who":
                people = ", ".join(self._who(chat, p, s)
                                   for p, s in chat.participants.items()) or "(not known yet)"
                self.say(f"  {people}")
            elif word == "/msg" and len(arg.split(None, 1)) == 2:
                # §7.2.3.4: to one participant (its alias, user name or address)
                nick, message = arg.split(None, 1)
                await chat.send_private(nick, message)
                self.say(f"  (private to {nick})")
            elif word == "/alias" and arg.strip():
                self.replaced.add(chat.session_id)
                self.chat = await self.account.groups.rename(chat, arg.strip(),
                                                             timeout=self.timeout)
                self.say(f"  you are {arg.strip()} now")
            elif word.startswith("/"):
                self.say(f"  {GROUP_HELP}")
            else:
                await chat.send(text)
        except (SimpleImError, OSError) as exc:
            self.say(f"  failed ({exc}): {text}")
        return True
