"""Issue 11 §2: the README's five-minute tour runs as written, block by block, in three shells.

Each ``sh`` block of the tour is run by ``bash -e`` the way a user pastes it into a terminal,
in a scratch directory standing for the checkout.  What differs from a user's machine, and
nothing else:

* ``make install`` is a shim that checks the real Makefile has that target (``make -n``) - the
  tests already run inside the venv it makes - and ``. .venv/bin/activate`` puts that venv's
  ``bin`` first on PATH;
* the tour's port 5060 is a free port (``--listen`` added to the bare ``simpleim server``
  line, ``127.0.0.1:5060`` replaced elsewhere), ``/tmp/bob`` is a directory of the test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import LONG, Lines, clean_env
from client_helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def tour_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Five-minute tour")
    end = text.index("\n## ", start + 1)
    return [body for kind, body in _FENCE.findall(text[start:end]) if kind == "sh"]


class Terminal:
    """One pasted block in its own bash (own session, so that Ctrl-C is the group's SIGINT)."""

    def __init__(self, script: str, cwd: Path, env: dict[str, str], *,
                 stdin: bool = False) -> None:
        self.proc = subprocess.Popen(
            ["bash", "-e", "-c", script], cwd=cwd, env=env, text=True,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        assert self.proc.stdout is not None
        self.out = Lines(self.proc.stdout)

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def ctrl_d(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def ctrl_c(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self) -> int:
        return self.proc.wait(timeout=LONG)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    work = tmp_path / "checkout"
    (work / ".venv" / "bin").mkdir(parents=True)
    venv_bin = Path(sys.executable).parent
    (work / ".venv" / "bin" / "activate").write_text(f'export PATH="{venv_bin}:$PATH"\n')
    shims = tmp_path / "shims"
    shims.mkdir()
    make = shims / "make"
    make.write_text(f'#!/bin/sh\nexec "$(command -v -p make || echo /usr/bin/make)" '
                    f'-s -n -C "{ROOT}" "$@" >/dev/null\n')
    make.chmod(0o755)
    env = clean_env(tmp_path, PATH=f"{shims}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    env.pop("VIRTUAL_ENV", None)
    yield work, env


def _adapt(block: str, port: int, tmp: Path) -> str:
    lines = []
    for line in block.splitlines():
        if re.match(r"simpleim server(\s|$)", line):
            line = line.replace("simpleim server", f"simpleim server --listen 127.0.0.1:{port}",
                                1)
        lines.append(line.replace("127.0.0.1:5060", f"127.0.0.1:{port}")
                     .replace("/tmp/bob", str(tmp / "bob")))
    return "\n".join(lines) + "\n"


def _setup(block: str) -> str:
    """What an earlier block left in its shell: the venv activated, the exported variables."""
    return "".join(x + "\n" for x in block.splitlines()
                   if x.startswith((". .venv", "export ")))


def test_the_readme_tour_runs_as_written(checkout: tuple[Path, dict[str, str]],
                                         tmp_path: Path) -> None:
    work, env = checkout
    blocks = tour_blocks()
    assert len(blocks) == 5, blocks          # server, bob's agent, alice, bob's chat, alice's chat
    port = free_port()
    server, agent, alice_chat, bob_chat = (None, None, None, None)
    try:
        # Terminal 1: install, users, server (runs until Ctrl-C)
        server = Terminal(_adapt(blocks[0], port, tmp_path), work, env)
        server.out.until("simpleim server ready")
        assert (work / "simpleim.db").exists()
        assert any("alice@localhost" in x for x in server.out.seen)     # `user list`
        # Terminal 2: bob's agent, JSON events
        agent = Terminal(_adapt(blocks[1], port, tmp_path), work, env)
        agent.out.until('"registered"')
        # Terminal 3: alice, every command of the block, bash -e: each must exit 0
        alice = subprocess.run(["bash", "-e", "-c", _adapt(blocks[2], port, tmp_path)],
                               cwd=work, env=env, capture_output=True, text=True,
                               timeout=4 * LONG, check=False)
        said = alice.stdout + alice.stderr
        assert alice.returncode == 0, said
        assert "sip:bob@localhost: 200" in said                       # capabilities
        assert re.search(r"imdn (delivered|displayed)", said), said    # send --wait-imdn
        assert "sent report.txt" in said and "sent cat.jpg" in said, said
        events = [json.loads(x) for x in agent.out.until('"cat.jpg"') if x.startswith("{")]
        texts = [e.get("text") for e in events if e.get("event") == "message"]
        assert "hello bob" in texts and "hi" in texts and "see you" in texts, events
        assert (tmp_path / "bob" / "report.txt").read_text() == "quarterly numbers\n"
        # Ctrl-C on bob's agent: it says `unregistered`
        agent.ctrl_c()
        assert agent.wait() == 0
        assert any('"unregistered"' in x for x in agent.out.rest())
        # bob's chat console in terminal 2, alice's chat in terminal 3: the same shells as
        # before, so what they set up (activate, SIMPLEIM_* exports) still holds
        bob_chat = Terminal(_adapt(_setup(blocks[1]) + blocks[3], port, tmp_path), work, env,
                            stdin=True)
        bob_chat.out.until("waiting for chats and messages")
        alice_chat = Terminal(_adapt(_setup(blocks[2]) + blocks[4], port, tmp_path), work,
                              env, stdin=True)
        alice_chat.type("hello from alice")
        bob_chat.out.until("alice: hello from alice")
        bob_chat.type("hi alice")
        alice_chat.out.until("bob: hi alice")
        alice_chat.type("/quit")
        assert alice_chat.wait() == 0
        bob_chat.ctrl_d()
        assert bob_chat.wait() == 0
        server.ctrl_c()
        assert server.wait() == 0
    finally:
        for t in (alice_chat, bob_chat, agent, server):
            if t is not None:
                t.kill()
