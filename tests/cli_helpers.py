"""Helpers for tests that drive the real ``simpleim`` console script (subprocesses) against
a real ``simpleim server`` subprocess on free loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from client_helpers import free_port

#: bound for one command: generous for a loaded 2-core CI box (never a timed assertion).
LONG = 90.0


def simpleim_bin() -> str:
    """The ``simpleim`` console script of the interpreter running the tests (the venv's)."""
    script = Path(sys.executable).with_name("simpleim")
    if script.exists():
        return str(script)
    which = shutil.which("simpleim")
    if which is None:
        raise AssertionError("the simpleim console script is not installed (pip install -e .)")
    return which


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment without the developer's SIMPLEIM_* settings, HOME in ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLEIM_")}
    env.update(HOME=str(tmp), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_cli(args: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None,
            stdin: str | None = None, timeout: float = LONG) -> subprocess.CompletedProcess[str]:
    return subprocess.run([simpleim_bin(), *args], env=dict(env), cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=timeout, check=False)


class Lines:
    """The lines of a subprocess pipe, read by a thread so that waiting for one is bounded
    (a plain readline() blocks for ever when the process stays silent)."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def until(self, needle: str, *, timeout: float = LONG) -> list[str]:
        """Lines up to and including the first containing ``needle``; fails when the
        stream ends or ``timeout`` passes first."""
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {needle!r} within {timeout} s: {got}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"stream ended before {needle!r}: {got}")
            got.append(line)
            self.seen.append(line)
            if needle in line:
                return got

    def rest(self, *, timeout: float = LONG) -> list[str]:
        """Every remaining line, until the stream ends (the process exited)."""
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                continue
            if line is None:
                return got
            got.append(line)
            self.seen.append(line)
        raise AssertionError(f"stream did not end within {timeout} s: {got}")


@contextlib.contextmanager
def cli_server(tmp: Path, users: Mapping[str, str], *, domain: str = "localhost",
               create: bool = True) -> Iterator[tuple[int, str]]:
    """``simpleim user add`` + ``simpleim server`` on a free port; yields (port, db URL)."""
    db = f"sqlite:///{tmp / 'server.db'}"
    env = clean_env(tmp)
    for i, (name, password) in enumerate(users.items()):
        extra = ["--create"] if create and i == 0 else []
        done = run_cli(["user", "add", name, "--domain", domain, "--password", password,
                        "--db", db, *extra], env=env)
        assert done.returncode == 0, done.stderr
    port = free_port()
    with (tmp / "server.err").open("w") as err:
        proc = subprocess.Popen(
            [simpleim_bin(), "server", "--domain", domain, "--listen", f"127.0.0.1:{port}",
             "--db", db, "--log-level", "warning"],
            env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        Lines(proc.stdout).until("simpleim server ready")
        yield port, db
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[str]) -> int:
    """SIGTERM, then SIGKILL if it does not exit in time; returns the exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=LONG)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


async def console(*args: str, env: Mapping[str, str]) -> asyncio.subprocess.Process:
    """``simpleim ARGS...`` with its stdin, stdout and stderr piped (an interactive console)."""
    return await asyncio.create_subprocess_exec(
        simpleim_bin(), *args, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def finish_console(proc: asyncio.subprocess.Process, last: bytes) -> int:
    """Type ``last`` (a line ending the console, e.g. ``/leave``) and wait for the exit."""
    assert proc.stdin is not None
    proc.stdin.write(last + b"\n")
    await proc.stdin.drain()
    async with asyncio.timeout(LONG):
        return await proc.wait()


async def reap(proc: asyncio.subprocess.Process) -> None:
    """A console subprocess a failed test left running: killed and waited for."""
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
