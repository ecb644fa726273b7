"""Implementations of the client commands (see :mod:`simpleim.cli.client`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from simpleim.cli.chat import ChatConsole
from simpleim.cli.groupchat import GroupConsole
from simpleim.cli.outcome import EXIT_CODES, describe_failure, exit_code_for
from simpleim.cli.preflight import (
    UdpProbe,
    check_address,
    check_image,
    check_readable_file,
    check_text,
    proxy_text,
    resolve_proxy,
)
from simpleim.client import Account, RegistrationError
from simpleim.client.config import DEFAULT_STATE_DIR, ClientConfig, Policy, load_config
from simpleim.client.events import (
    CapabilitiesEvent,
    ComposingEvent,
    ErrorEvent,
    Event,
    FileEvent,
    FinalReportEvent,
    GroupMessageEvent,
    HistoryEvent,
    ImdnEvent,
    MessageEvent,
    ParticipantEvent,
    ReadyEvent,
    RegisteredEvent,
    SessionEvent,
)
from simpleim.client.session import ChatSession, SessionFailed
from simpleim.errors import ConfigError, SimpleImError

__all__ = ["EXIT_CODES", "exit_code_for", "describe_failure", "event_json", "safe_text",
           "run_agent", "run_send", "run_chat",
           "run_send_file", "run_share_image", "run_capabilities", "format_event"]

log = logging.getLogger("simpleim.cli")

def _config(args: argparse.Namespace, **extra: Any) -> ClientConfig:
    overrides: dict[str, Any] = {
        "aor": args.account, "password": args.password, "proxy": args.proxy,
        "listen": args.listen, "msrp_listen": args.msrp_listen,
        "msrp_relay": args.msrp_relay,
        "display_name": args.display_name, "expires": args.expires,
        "fixed_datetime": args.fixed_datetime,
        "tls_ca": args.tls_ca, "tls_insecure": True if args.insecure else None,
        "tls_cert": args.tls_cert, "tls_key": args.tls_key,
    }
    overrides.update(extra)
    cfg = load_config(path=args.config, overrides=overrides)
    if cfg.state_dir is None:
        # the CLI keeps what it last published (settings set / show, C-REG-01)
        cfg = replace(cfg, state_dir=DEFAULT_STATE_DIR)
    return cfg


def _fail(cmd: str, code: int, text: str, err: TextIO | None = None) -> int:
    print(f"simpleim {cmd}: {text}", file=err or sys.stderr, flush=True)
    return code


def _run(cmd: str, args: argparse.Namespace,
         body: Callable[[Account], Awaitable[int]], *,
         check: Callable[[], object] | None = None, one_shot: bool = False,
         **extra: Any) -> int:
    """Check the local input (``check``), build the config, start the account, run
    ``body``, map errors to exit codes and one-line reasons.

    ``one_shot`` commands (send, send-file, ...) are no receivers: sessions, files and
    images offered meanwhile are declined (480 / 603, never acknowledged), and a pager
    message that arrived (and was acknowledged with 200) is shown on stderr at the end."""
    if one_shot:
        extra.update(policy_sessions="decline", policy_files="decline",
                     policy_images="decline")
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        if check is not None:
            check()                 # issue 11 §4: local input first, before the network
        cfg = _config(args, **extra)
    except ConfigError as exc:
        return _fail(cmd, 2, str(exc))

    async def main() -> int:
        try:
            account = Account(cfg)
        except ConfigError as exc:
            return _fail(cmd, 2, str(exc))
        try:
            code = await _start(cmd, args, account)
            if code is not None:
                return code
            return await body(account)
        except SessionFailed as exc:
            to = getattr(args, "to", None) or "the peer"
            if isinstance(to, list):  # send TO [TO...]
                to = to[0] if len(to) == 1 else "the exploder"
            return _fail(cmd, exit_code_for(exc.status),
                         describe_failure(exc.status, exc.reason, to))
        except ConfigError as exc:
            return _fail(cmd, 2, str(exc))
        except (SimpleImError, OSError) as exc:
            return _fail(cmd, 1, f"error: {exc}")
        finally:
            await account.close()
            if one_shot:
                await _drain(cmd, account)

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        # asyncio.run cancelled the command and closed the account (sessions ended or
        # CANCELled, de-registered) before re-raising: say so, no traceback.
        return _fail(cmd, 130, "interrupted")


def _meanwhile(cmd: str, ev: Event) -> None:
    """A message a one-shot command received (and acknowledged): shown, not dropped."""
    if isinstance(ev, MessageEvent):
        print(f"simpleim {cmd}: meanwhile {ev.sender} wrote: {safe_text(ev.text)}",
              file=sys.stderr, flush=True)


async def _drain(cmd: str, account: Account) -> None:
    """After close: the stream ends with the account, every event in it is looked at."""
    with contextlib.suppress(TimeoutError):
        async for ev in account.events:
            _meanwhile(cmd, ev)


async def _start(cmd: str, args: argparse.Namespace, account: Account) -> int | None:
    """Open the listeners and register; None when it worked, else the exit code (after
    saying why in words: unresolvable host, refused connection, dead UDP proxy, ...)."""
    proxy = account.config.proxy_addr
    where = proxy_text(proxy)
    try:
        await resolve_proxy(proxy)
    except OSError as exc:
        return _fail(cmd, 4, str(exc))
    register = not args.no_register
    probe = UdpProbe(proxy) if register and proxy.transport == "udp" else None
    if probe is not None:
        await probe.start()
    log.info("registering %s at %s", account.config.uri, where)
    start = asyncio.ensure_future(account.start(register=register))
    waiting: set[asyncio.Future[Any]] = {start}
    if probe is not None:
        waiting.add(probe.refused)
    told = False
    try:
        while not start.done():
            done, _ = await asyncio.wait(waiting, timeout=3.0,
                                         return_when=asyncio.FIRST_COMPLETED)
            if probe is not None and probe.refused.done() and not start.done():
                start.cancel()
                with contextlib.suppress(asyncio.CancelledError, SimpleImError, OSError):
                    await start
                return _fail(cmd, 4, f"nothing listens at {where} (ICMP port unreachable) "
                                     "— is the server running?")
            if not done and not told:
                told = True
                print(f"simpleim {cmd}: no answer from {where} yet; still trying (RFC 3261 "
                      "retransmissions, up to 32 s) — is the server running?",
                      file=sys.stderr, flush=True)
        start.result()
    except RegistrationError as exc:
        cause = account.endpoint.transport_errors.get(proxy)
        if cause is not None and exc.status in (408, 503):
            return _fail(cmd, 4, f"{cause} to {where} — is the server running?")
        if exc.status == 408:
            return _fail(cmd, 4, f"registration failed: no answer from {where} "
                                 f"(408 after 32 s) — is the server running?")
        hint = {401: " (check the account and password)",
                407: " (check the account and password)",
                403: " (the server does not serve this account or domain)"}
        code = 3 if exc.status in (401, 403, 407) else exit_code_for(exc.status)
        return _fail(cmd, code, f"registration failed: {exc.status} {exc.reason}"
                                f"{hint.get(exc.status, '')}")
    except OSError as exc:
        cause = account.endpoint.transport_errors.get(proxy)
        if cause is not None:
            return _fail(cmd, 4, f"{cause} to {where} — is the server running?")
        return _fail(cmd, 4, f"network error: {exc.strerror or exc}")
    finally:
        if probe is not None:
            probe.close()
    if register:
        log.info("registered as %s (contact %s>, %d s)", account.config.uri,
                 account.contact.split(">")[0], account.registration_expires)
    return None


# ---------------------------------------------------------------------------- agent

def safe_text(text: str) -> str:
    """``text`` as valid Unicode: bytes a peer sent that are not UTF-8 (kept by the SIP parser
    as lone surrogates, e.g. in a Call-ID) become visible ``\\xNN`` escapes, so the output is
    always valid UTF-8 (jq and Python's json read every line)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "backslashreplace")


def _json_safe(value: object) -> object:
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {safe_text(str(k)): _json_safe(v) for k, v in value.items()}
    return value


def event_json(ev: Event) -> str:
    """One ``--json`` line for ``ev``: valid JSON and valid UTF-8 whatever the peer sent."""
    return json.dumps(_json_safe(ev.to_json()), ensure_ascii=False)


def format_event(ev: Event) -> str:
    return safe_text(_format_event(ev))


def _format_event(ev: Event) -> str:
    """One human-readable line per event."""
    if isinstance(ev, MessageEvent):
        claim = (f" (unverified: the message claims to be from {ev.claimed_sender})"
                 if ev.claimed_sender else "")
        if ev.mode == "group-advertisement":
            # OMA §8.2.1 step 3: presented apart, by its Subject
            return f"[group-advertisement] {ev.sender}{claim}: {ev.subject or '(no subject)'}"
        return f"[message/{ev.mode}] {ev.sender}{claim}: {ev.text}"
    if isinstance(ev, SessionEvent):
        extra = f" ({ev.reason})" if ev.reason else ""
        return f"[session] {ev.kind} with {ev.peer} {ev.state}{extra}"
    if isinstance(ev, FileEvent):
        where = f" -> {ev.path}" if ev.path else ""
        h = "" if ev.hash_ok is None else (" hash ok" if ev.hash_ok else " HASH MISMATCH")
        return f"[{ev.kind}] {ev.file_name} ({ev.size} bytes) {ev.state}{where}{h}"
    if isinstance(ev, GroupMessageEvent):
        if ev.system is not None:
            return f"[group-message] {ev.group} [{ev.system}]: {ev.text}"
        return f"[group-message] {ev.group} {ev.sender}: {ev.text}"
    if isinstance(ev, ParticipantEvent):
        how = f" ({ev.method})" if ev.method else ""
        return f"[participant] {ev.group} {ev.participant} {ev.status}{how}"
    if isinstance(ev, ImdnEvent):
        return f"[imdn] {ev.message_id} {ev.status} by {ev.peer}"
    if isinstance(ev, FinalReportEvent):
        return f"[final-report] {ev.message_id} {_final_leg(ev)}"
    if isinstance(ev, ComposingEvent):
        return f"[composing] {ev.peer} is {'typing' if ev.state == 'active' else 'idle'}"
    if isinstance(ev, CapabilitiesEvent):
        return f"[capabilities] {ev.peer}: {ev.status} {' '.join(ev.services)}"
    if isinstance(ev, ErrorEvent):
        return f"[error] {ev.reason}"
    if isinstance(ev, HistoryEvent):
        who = f" {ev.sender}" if ev.sender else ""
        return f"[history/{ev.kind}] {ev.date or '-'}{who}: {ev.text}"
    if isinstance(ev, RegisteredEvent):
        return f"[{ev.name}] {ev.aor} as {ev.contact} for {ev.expires} s"
    if isinstance(ev, ReadyEvent):
        return f"[ready] {ev.aor} sip={ev.sip} msrp={ev.msrp}"
    return event_json(ev)


def run_agent(args: argparse.Namespace) -> int:
    default = "decline" if args.decline else "accept"
    policy = Policy(sessions=args.sessions or default, files=args.files or default,
                    images=args.images or default)
    extra: dict[str, Any] = {"policy_sessions": policy.sessions, "policy_files": policy.files,
                             "policy_images": policy.images}
    if args.download_dir:
        extra["download_dir"] = args.download_dir
    if args.max_file_size is not None:
        extra["max_file_size"] = args.max_file_size

    async def body(account: Account) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        if args.duration:
            loop.call_later(args.duration, stop.set)

        reactions: set[asyncio.Task[None]] = set()

        async def pump() -> None:
            async for ev in account.events:
                if args.json:
                    print(event_json(ev), flush=True)
                else:
                    print(format_event(ev), flush=True)
                if isinstance(ev, MessageEvent) and (args.auto_display or args.echo):
                    # Never wait for a reaction here: a display notification into a
                    # session that is closing can wait 30 s for its MSRP 200, and events
                    # would pile up unprinted meanwhile.
                    reaction = asyncio.ensure_future(_react(account, ev, args))
                    reactions.add(reaction)
                    reaction.add_done_callback(reactions.discard)

        task = asyncio.ensure_future(pump())
        if args.history:
            # C-CH-03: the items arrive as "history" events; a failure as an "error" one
            try:
                await account.history.fetch(args.history)
            except (SimpleImError, OSError) as exc:
                account.emit(ErrorEvent(f"history not retrieved: {exc}"))
        await stop.wait()
        for reaction in list(reactions):
            reaction.cancel()
        # De-register while the pump still prints: the documented "unregistered" event is
        # the last line (the stream ends when the account is closed).
        await account.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.shield(task)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return 0

    return _run("agent", args, body, **extra)


async def _react(account: Account, ev: MessageEvent, args: argparse.Namespace) -> None:
    session = account.sessions.get(ev.session_id or "")
    if args.auto_display and ev.message_id:
        with contextlib.suppress(SimpleImError, OSError):
            await account.mark_displayed(ev.message_id)
    if args.echo:
        with contextlib.suppress(SimpleImError, OSError):
            if isinstance(session, ChatSession):
                await session.send(f"echo: {ev.text}")
            else:
                account.spawn(account.pager.send(ev.sender, f"echo: {ev.text}"))


# ---------------------------------------------------------------------------- send

async def _wait_list_imdns(account: Account, message_id: str, count: int,
                           limit: float) -> None:
    """The aggregated IMDN of a list message: 'imdn STATUS RECIPIENT' per recipient."""
    seen = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit):
            async for ev in account.events:
                if isinstance(ev, ImdnEvent) and ev.message_id == message_id:
                    print(f"imdn {ev.status} {ev.peer}", flush=True)
                    seen += 1
                    if seen >= count:
                        break
                else:
                    _meanwhile("send", ev)


def _final_leg(ev: FinalReportEvent) -> str:
    """'STATUS RECIPIENT' (+ ' max-size=N' for 9999, OMA Appendix O.1)."""
    size = f" max-size={ev.max_size}" if ev.max_size is not None else ""
    return f"{ev.status} {ev.uri}{size}"


def _print_final_report(account: Account, message_id: str) -> None:
    """The legs of the final report the send waited for (already in the event queue)."""
    for ev in account.events.pending():
        if isinstance(ev, FinalReportEvent) and ev.message_id == message_id:
            print(f"final-report {_final_leg(ev)}", flush=True)
        else:
            _meanwhile("send", ev)


def run_send(args: argparse.Namespace) -> int:
    text = ""

    targets: list[str] = list(args.to)

    def check() -> None:
        nonlocal text
        for to in targets:
            check_address(to)
        text = check_text(sys.stdin.read() if args.text == "-" else args.text)

    async def body(account: Account) -> int:
        async with asyncio.timeout(args.timeout):
            if len(targets) > 1:
                # RFC 5365 URI list through the server's exploder (OMA IM §8.1.1)
                result = await account.pager.send_list(targets, text,
                                                       content_type=args.content_type,
                                                       final_report=args.final_report)
            else:
                result = await account.pager.send(targets[0], text,
                                                  content_type=args.content_type,
                                                  final_report=args.final_report)
        print(f"sent {result.mode} {result.message_id}", flush=True)
        if args.final_report:
            _print_final_report(account, result.message_id)
        if len(targets) > 1:
            if args.wait_imdn:
                await _wait_list_imdns(account, result.message_id, len(targets),
                                       args.wait_imdn)
            return 0
        if result.status == 202:
            # OMA SIMPLE IM §12.2.2.3: the server stored it for a recipient who is offline.
            print(f"{targets[0]} is not online: the server stored the message and delivers it "
                  f"when they register (202 Accepted)", flush=True)
        if args.wait_imdn:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.wait_imdn):
                    async for ev in account.events:
                        if isinstance(ev, ImdnEvent) and ev.message_id == result.message_id:
                            print(f"imdn {ev.status}", flush=True)
                            break
                        _meanwhile("send", ev)
        return 0

    return _run("send", args, body, check=check, one_shot=True)


# ---------------------------------------------------------------------------- chat

def run_chat(args: argparse.Namespace) -> int:
    async def body(account: Account) -> int:
        console = ChatConsole(account, args.to, timeout=args.timeout)
        return await console.run(sys.stdin.fileno())

    return _run("chat", args, body,
                check=lambda: check_address(args.to) if args.to is not None else None)


def run_group_chat(args: argparse.Namespace) -> int:
    async def body(account: Account) -> int:
        console = GroupConsole(account, list(args.members), timeout=args.timeout,
                               subject=args.subject, join=args.join, alias=args.alias,
                               anonymous=args.anonymous)
        return await console.run(sys.stdin.fileno())

    def check() -> None:
        if bool(args.members) == bool(args.join):
            raise ConfigError("give MEMBERs to invite or --join GROUP (one of them)")
        for member in [*args.members, *([args.join] if args.join else [])]:
            check_address(member)

    return _run("group-chat", args, body, check=check)


# ---------------------------------------------------------------------------- files

class _Bars:
    """rich progress bars, one per file: its name, bytes, rate and time left; when the bars
    close, one line per file with its size, time and mean rate (a transfer that ends between
    two redraws shows no rate in its bar)."""

    def __init__(self, enabled: bool, files: Sequence[Path] = ()) -> None:
        self.enabled = enabled
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}
        self._names: dict[str, str] = {}
        # (name, first progress at, last progress at, bytes at first, bytes at last, total)
        self._spans: dict[str, list[Any]] = {}
        # Without a name from the library (share-image): the first file not yet shown whose
        # size is the transfer's size.
        self._unnamed: list[tuple[str, int]] = []
        for f in files:
            with contextlib.suppress(OSError):
                self._unnamed.append((f.name, f.stat().st_size))

    def __enter__(self) -> _Bars:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     DownloadColumn(), TransferSpeedColumn(),
                                     TimeRemainingColumn(), transient=False,
                                     speed_estimate_period=5.0,
                                     console=_stderr_console())
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is None:
            return
        self.progress.__exit__(None, None, None)
        console = self.progress.console
        for name, start, end, first, last, total in self._spans.values():
            if last < total or total <= 0:
                continue            # not finished: the bar says how far it got
            took = max(end - start, 1e-3)
            moved = max(last - first, 0) or last
            console.print(f"{name}: {_human(total)} in {took:.2f} s "
                          f"({_human(moved / took)}/s)", highlight=False)

    def start(self, tid: str, name: str) -> None:
        """The library names transfer ``tid`` (``on_start``)."""
        self._names[tid] = name
        # the clock of its mean rate starts now, before the first byte
        self._spans[tid] = [name, time.monotonic(), time.monotonic(), 0, 0, 0]
        for i, (unnamed, _size) in enumerate(self._unnamed):
            if unnamed == name:
                del self._unnamed[i]
                break

    def _name(self, tid: str, total: int) -> str:
        named = self._names.get(tid)
        if named is not None:
            return named
        for i, (name, size) in enumerate(self._unnamed):
            if size == total:
                del self._unnamed[i]
                return name
        return tid[:12]

    def update(self, tid: str, done: int, total: int) -> None:
        if self.progress is None:
            return
        task = self.tasks.get(tid)
        now = time.monotonic()
        if task is None:
            name = self._name(tid, total)
            task = self.tasks[tid] = self.progress.add_task(name, total=total)
            self._spans.setdefault(tid, [name, now, now, done, done, total])
        span = self._spans[tid]
        span[2], span[4], span[5] = now, done, total
        self.progress.update(task, completed=done)


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _stderr_console() -> Any:
    from rich.console import Console
    return Console(stderr=True)


def run_send_file(args: argparse.Namespace) -> int:
    async def body(account: Account) -> int:
        paths = [Path(f) for f in args.files]
        with _Bars(not args.no_progress and sys.stderr.isatty(), paths) as bars:
            results = await account.files.send(
                args.to, paths, thumbnail=not args.no_thumbnail,
                progress=lambda tid, done, total: bars.update(tid, done, total),
                on_start=bars.start,
                timeout=args.timeout, tc1=0.0)   # OMA §10.2: no further file follows
        code = 0
        for r in results:
            print(f"{r.status} {r.name} {r.size}" + (f" resumed-from {r.resumed_from}"
                                                      if r.resumed_from else ""), flush=True)
            if r.status == "declined":
                code = code or 7
            elif r.status != "sent":
                code = 8
        return code

    def check() -> None:
        check_address(args.to)
        for f in args.files:
            check_readable_file(f)

    return _run("send-file", args, body, check=check, one_shot=True)


def run_share_image(args: argparse.Namespace) -> int:
    async def body(account: Account) -> int:
        path = Path(args.image)
        with _Bars(not args.no_progress and sys.stderr.isatty(), [path]) as bars:
            result = await account.images.share(
                args.to, path, title=args.title, timeout=args.timeout,
                progress=lambda tid, done, total: bars.update(tid, done, total))
        print(f"{result.status} {result.name} {result.size}", flush=True)
        return 0 if result.status == "sent" else 8

    def check() -> None:
        check_address(args.to)
        check_image(args.image)

    return _run("share-image", args, body, check=check, one_shot=True)


def run_capabilities(args: argparse.Namespace) -> int:
    async def body(account: Account) -> int:
        async with asyncio.timeout(args.timeout):
            result = await account.capabilities.query(args.to, use_cache=False)
        if args.json:
            print(json.dumps({"event": "capabilities", "peer": result.peer,
                              "status": result.status, "services": list(result.names)}),
                  flush=True)
        else:
            print(f"{result.peer}: {result.status} {' '.join(result.names)}".rstrip(),
                  flush=True)
        if result.status != 200:
            return exit_code_for(result.status)
        return 0

    return _run("capabilities", args, body, check=lambda: check_address(args.to),
                one_shot=True)

