"""Issue 11 §3: ``send-file`` shows a progress bar naming the file with rate and time left,
and Ctrl-C ends a transfer cleanly (exit 130, one line, no traceback) - while the data flows
and while the receiver does not answer.  The real ``simpleim`` command against the
in-process server."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import signal
from pathlib import Path

from cli_helpers import LONG, clean_env, simpleim_bin
from client_helpers import DOMAIN, PASSWORDS, client_config, running_server, wait_event
from cuts import hold_msrp_after
from simpleim.client import Account
from simpleim.client.config import Policy
from simpleim.client.events import FileEvent, SessionEvent


def _env(tmp: Path, port: int) -> dict[str, str]:
    return clean_env(tmp, SIMPLEIM_ACCOUNT=f"alice@{DOMAIN}",
                     SIMPLEIM_PASSWORD=PASSWORDS["alice"], SIMPLEIM_PROXY=f"127.0.0.1:{port}",
                     COLUMNS="160")


async def _read_pty(fd: int, needle: bytes, seen: bytearray) -> None:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(LONG):
        while needle not in seen:
            chunk = await loop.run_in_executor(None, os.read, fd, 65536)
            if not chunk:
                raise AssertionError(f"no {needle!r} in {bytes(seen)!r}")
            seen += chunk


async def _next_render(fd: int, seen: bytearray) -> None:
    """Wait for the next bytes the progress display writes (rich redraws ~10 times/s)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(LONG):
        chunk = await loop.run_in_executor(None, os.read, fd, 65536)
    if not chunk:
        raise AssertionError(f"output ended: {bytes(seen)!r}")
    seen += chunk


async def test_progress_names_the_file_and_ctrl_c_mid_transfer(tmp_path: Path) -> None:
    """Bob reads 1 MiB of the 64 MiB stream, then only what the test lets through (512 KiB
    steps until the bar shows a rate, at most 16 MiB): the transfer is provably in flight
    when SIGINT comes, on a fast machine as on a loaded one - and bob's stalled socket is
    the 'receiver stalled' case of issue 11 §3."""
    big = tmp_path / "holiday-video.bin"
    big.write_bytes(os.urandom(64 * 1024 * 1024))
    async with running_server(tmp_path) as (_server, port), \
            Account(client_config("bob", port, tmp_path)) as bob:
        master, slave = pty.openpty()
        with hold_msrp_after(bob.msrp, 1024 * 1024) as valve:
            proc = await asyncio.create_subprocess_exec(
                simpleim_bin(), "send-file", "bob", str(big), env=_env(tmp_path, port),
                stdout=asyncio.subprocess.PIPE, stderr=slave)
            os.close(slave)
            seen = bytearray()
            try:
                await _read_pty(master, b"holiday-video.bin", seen)   # the bar names the file
                while b"/s" not in seen:                              # a rate (MB/s, kB/s)
                    assert valve.limit < 16 * 1024 * 1024, bytes(seen)[-2000:]
                    valve.allow(512 * 1024)
                    await _next_render(master, seen)
                assert valve.received < 64 * 1024 * 1024 and proc.returncode is None
                proc.send_signal(signal.SIGINT)
                async with asyncio.timeout(LONG):
                    code = await proc.wait()
                tail = bytearray()
                try:
                    await _read_pty(master, b"\x00never", tail)
                except (AssertionError, OSError):
                    pass
                text = (bytes(seen) + bytes(tail)).decode("utf-8", "replace")
                assert code == 130, text[-2000:]
                assert "Traceback" not in text and "interrupted" in text, text[-2000:]
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                os.close(master)
        ended = await wait_event(bob, lambda e: isinstance(e, FileEvent)
                                 and e.state == "failed" or isinstance(e, SessionEvent)
                                 and e.state == "ended", timeout=LONG)
        assert ended is not None


async def test_ctrl_c_while_the_receiver_does_not_answer(tmp_path: Path) -> None:
    doc = tmp_path / "report.txt"
    doc.write_text("numbers\n")
    async with running_server(tmp_path) as (_server, port), \
            Account(client_config("bob", port, tmp_path, policy=Policy(files="ask"))) as bob:
        proc = await asyncio.create_subprocess_exec(
            simpleim_bin(), "send-file", "bob", str(doc), "--no-progress",
            env=_env(tmp_path, port), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            offered = await wait_event(bob, lambda e: isinstance(e, FileEvent)
                                       and e.state == "offered", timeout=LONG)
            assert offered is not None                  # ringing; nobody decides
            proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(LONG):
                _out, err = await proc.communicate()
            assert proc.returncode == 130, err.decode(errors="replace")
            assert b"Traceback" not in err
            assert err.decode().strip().splitlines()[-1] == "simpleim send-file: interrupted"
            cancelled = await wait_event(bob, lambda e: isinstance(e, SessionEvent)
                                         and e.state == "cancelled", timeout=LONG)
            assert cancelled is not None                # CANCEL sent (RFC 3261 §9.1)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_bars_are_named_by_the_library_and_end_with_a_rate_line(tmp_path: Path) -> None:
    """Two files of the same size in one session: each bar is named by ``on_start`` (the
    transfer id the library chose for that file), not guessed from sizes; a transfer that
    ends between two redraws still gets its size, time and mean rate when the bars close."""
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    first.write_bytes(os.urandom(300_000))
    second.write_bytes(os.urandom(300_000))
    async with running_server(tmp_path) as (_server, port), \
            Account(client_config("bob", port, tmp_path)) as bob, \
            Account(client_config("alice", port, tmp_path)) as alice:
        started: dict[str, str] = {}
        results = await alice.files.send(
            f"bob@{DOMAIN}", [first, second], on_start=lambda t, n: started.update({t: n}),
            tc1=0.0)
        assert {r.transfer_id: r.name for r in results} == started
        assert sorted(started.values()) == ["first.bin", "second.bin"]
        for r in results:                          # bob saw the same id under the same name
            got = await wait_event(bob, lambda e, r=r: isinstance(e, FileEvent)
                                   and e.state == "received" and e.transfer_id == r.transfer_id,
                                   timeout=LONG)
            assert isinstance(got, FileEvent) and got.file_name == r.name

        master, slave = pty.openpty()
        proc = await asyncio.create_subprocess_exec(
            simpleim_bin(), "send-file", "bob", str(first), str(second),
            env=_env(tmp_path, port), stdout=asyncio.subprocess.PIPE, stderr=slave)
        os.close(slave)
        seen = bytearray()
        try:
            async with asyncio.timeout(LONG):
                out, _ = await proc.communicate()
            try:
                await _read_pty(master, b"\x00never", seen)
            except (AssertionError, OSError):
                pass                                # the pty ends with the process
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            os.close(master)
        text = bytes(seen).decode("utf-8", "replace")
        assert proc.returncode == 0, text[-2000:]
        assert out.decode().split() == ["sent", "first.bin", "300000",
                                        "sent", "second.bin", "300000"]
        for name in ("first.bin", "second.bin"):
            assert re.search(rf"{name}: 300\.0 kB in \d+\.\d\d s \([\d.]+ [kMG]?B/s\)", text), \
                text[-2000:]
