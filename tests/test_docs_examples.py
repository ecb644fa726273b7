"""Issue 11 §7: every example in docs/client.md and docs/cli.md runs as written.

The fenced blocks are extracted from the Markdown and run - Python blocks as programs with
the interpreter of the tests, ``$ simpleim ...`` lines with the real console script - against
a real ``simpleim server`` on a free port holding the README tour's users (alice/alicepw,
bob/bobpw, carol/carolpw on ``localhost``).  The only change made to what the docs say is the
port: the tour's 127.0.0.1:5060 becomes the test server's."""

from __future__ import annotations

import ast
import json
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from cli_helpers import LONG, Lines, clean_env, cli_server, run_cli, simpleim_bin, stop
from simpleim.cli.main import build_parser

DOCS = Path(__file__).resolve().parent.parent / "docs"
TOUR_USERS = {"alice": "alicepw", "bob": "bobpw", "carol": "carolpw"}
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(doc: str, lang: str) -> list[str]:
    text = (DOCS / doc).read_text(encoding="utf-8")
    return [body for kind, body in _FENCE.findall(text) if kind == lang]


def test_the_docs_have_examples() -> None:
    assert len(blocks("client.md", "python")) >= 5
    assert len(blocks("cli.md", "sh")) >= 4


@pytest.mark.parametrize("doc", ["client.md", "cli.md"])
def test_every_python_block_is_a_program(doc: str) -> None:
    """No top-level ``await`` / ``async with`` / ``async for`` (a SyntaxError as written)."""
    for code in blocks(doc, "python"):
        ast.parse(code)


def test_every_command_line_parses() -> None:
    """Every ``$ simpleim ...`` line of docs/cli.md is accepted by the real option parser."""
    lines = _command_lines()
    assert len(lines) >= 8
    parser = build_parser()
    for line in lines:
        argv = shlex.split(line.partition(" < ")[0], comments=True)
        args = parser.parse_args(argv[1:])
        assert callable(args.func), line


def _command_lines() -> list[str]:
    out = []
    for body in blocks("cli.md", "sh"):
        for line in body.splitlines():
            if line.startswith("$ simpleim "):
                out.append(line[2:])
    return out


@pytest.fixture
def tour(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with cli_server(tmp_path, TOUR_USERS) as (port, _db):
        env = clean_env(tmp_path, SIMPLEIM_ACCOUNT="alice@localhost",
                        SIMPLEIM_PASSWORD="alicepw", SIMPLEIM_PROXY=f"127.0.0.1:{port}")
        yield port, env


def _script(tmp: Path, code: str, name: str) -> tuple[Path, Path]:
    work = tmp / name
    work.mkdir()
    script = work / f"{name}.py"
    script.write_text(code)
    return work, script


def test_client_md_programs_run(tmp_path: Path, tour: tuple[int, dict[str, str]]) -> None:
    port, env = tour
    programs = blocks("client.md", "python")
    ran = 0
    for i, code in enumerate(programs):
        work, script = _script(tmp_path, code, f"example{i}")
        if "waiting for files" in code:
            _run_file_answerer(script, work, env, port)        # runs until Ctrl-C
        elif "KeyboardInterrupt" in code:
            _run_listener(script, work, env)                   # runs until Ctrl-C
        else:
            done = subprocess.run([sys.executable, str(script)], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=LONG, check=False)
            assert done.returncode == 0, f"example {i}:\n{code}\n{done.stderr[-3000:]}"
            if "send_files" in code and "pull_file" in code:
                out = done.stdout
                assert "sent a.txt 11" in out and "sent b.txt 12" in out, out
                assert "received a.txt hash ok: True" in out and "sent photo.jpg" in out, out
                assert (work / "bob-downloads" / "a.txt").read_text() == "first file\n"
        ran += 1
    assert ran == len(programs)


def _run_listener(script: Path, work: Path, env: dict[str, str]) -> None:
    proc = subprocess.Popen([sys.executable, str(script)], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = Lines(proc.stdout)
        first = lines.until('"registered"')
        assert json.loads(first[-1])["aor"] == "sip:alice@localhost"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=LONG) == 0
    finally:
        stop(proc)


def _run_file_answerer(script: Path, work: Path, env: dict[str, str], port: int) -> None:
    proc = subprocess.Popen([sys.executable, str(script)], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = Lines(proc.stdout)
        lines.until("waiting for files")
        report = work / "report.txt"
        report.write_text("quarterly numbers\n")
        bob = clean_env(work, SIMPLEIM_ACCOUNT="bob@localhost", SIMPLEIM_PASSWORD="bobpw",
                        SIMPLEIM_PROXY=f"127.0.0.1:{port}")
        sent = run_cli(["send-file", "alice", str(report), "--no-progress"], env=bob)
        assert sent.returncode == 0, sent.stderr
        assert lines.until("accepted report.txt")
        saved = lines.until("saved ")[-1]
        assert saved.rstrip().endswith("hash ok: True")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=LONG) == 0
    finally:
        stop(proc)


def test_cli_md_commands_run(tmp_path: Path, tour: tuple[int, dict[str, str]]) -> None:
    """The examples that need no TLS server run for real (bob's agent as in the doc), and
    print what the doc shows."""
    port, env = tour
    lines = [line for line in _command_lines() if "192.0.2." not in line]
    agent_line = next(line for line in lines if line.startswith("simpleim agent"))
    work = tmp_path / "cli"
    work.mkdir()
    (work / "report.pdf").write_bytes(b"%PDF-1.4 not really\n" * 100)
    Image.new("RGB", (64, 48), "blue").save(work / "photo.jpg")
    (work / "long-report.txt").write_text("many words " * 300)
    agent_argv = _argv(agent_line, port, work)
    agent = subprocess.Popen(agent_argv, cwd=work, env=clean_env(tmp_path),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert agent.stdout is not None
        events = Lines(agent.stdout)
        events.until('"registered"')
        for line in lines:
            if line.startswith(("simpleim agent", "simpleim chat")):
                continue
            text = line
            stdin = None
            if " - < " in line:
                text, _, path = line.partition(" < ")
                stdin = (work / path.split()[0]).read_text()
            argv = _argv(text, port, work)
            done = subprocess.run(argv, cwd=work, env=env, input=stdin, capture_output=True,
                                  text=True, timeout=LONG, check=False)
            expected = _documented_output(line)
            if "carol" in line:      # the doc shows carol offline: 480, exit code 6
                assert done.returncode == 6, done.stderr
            else:
                assert done.returncode == 0, f"{line}: {done.stderr}"
            for want in expected:
                assert want in done.stdout, f"{line}: {done.stdout!r} lacks {want!r}"
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=LONG) == 0
        names = {json.loads(x)["event"] for x in events.rest()}
        assert "unregistered" in names
    finally:
        stop(agent)


def _argv(line: str, port: int, work: Path) -> list[str]:
    argv = shlex.split(line.replace("127.0.0.1:5060", f"127.0.0.1:{port}"), comments=True)
    argv[0] = simpleim_bin()
    return [str(work / "dl") if a == "/tmp/dl" else a for a in argv]


def _documented_output(line: str) -> list[str]:
    """The fixed words of the output the doc shows for ``line``."""
    comment = line.partition("#")[2]
    m = re.search(r'"([^"<]+)', comment)
    words = [m.group(1).strip()] if m else []
    if line.startswith("simpleim send-file"):
        words += ["sent report.pdf 2000", "sent photo.jpg"]
    elif line.startswith("simpleim share-image"):
        words.append("sent photo.jpg")
    elif line.startswith("simpleim capabilities") and "--json" not in line:
        words.append("sip:bob@localhost: 200 im session")
    elif line.startswith("simpleim capabilities"):
        words.append('"status": 480')
    return words
