"""``simpleim server --xcap`` with ``simpleim group|xcap|deferred list`` as a new user runs
them: groups defined from the CLI over XCAP, read back, listed, deleted; a raw element PUT
and GET; the deferred-message metadata (C-DM-02) of a message stored while offline."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from cli_helpers import Lines, clean_env, run_cli, simpleim_bin, stop
from client_helpers import free_port


def _server(tmp: Path) -> tuple[subprocess.Popen[str], str, int, dict[str, str]]:
    db = f"sqlite:///{tmp / 'server.db'}"
    env = clean_env(tmp)
    for name in ("alice", "bob"):
        done = run_cli(["user", "add", name, "--domain", "localhost", "--password",
                        f"{name}pw", "--db", db] + (["--create"] if name == "alice" else []),
                       env=env)
        assert done.returncode == 0, done.stderr
    err = (tmp / "server.err").open("w")
    port = free_port()
    proc = subprocess.Popen(
        [simpleim_bin(), "server", "--domain", "localhost", "--listen",
         f"127.0.0.1:{port}", "--db", db, "--xcap", "127.0.0.1:0", "--msrp-listen",
         "off", "--log-level", "warning"], env=env, stdout=subprocess.PIPE, stderr=err,
        text=True)
    assert proc.stdout is not None
    line = Lines(proc.stdout).until("simpleim server ready")[-1]
    match = re.search(r" xcap=(http://127\.0\.0\.1:\d+/xcap-root)", line)
    assert match is not None, line
    return proc, match.group(1), port, env


def test_group_and_xcap_commands(tmp_path: Path) -> None:
    proc, root, port, env = _server(tmp_path)
    env = {**env, "SIMPLEIM_XCAP_ROOT": root, "SIMPLEIM_PASSWORD": "alicepw"}
    acct = ["--account", "alice@localhost"]
    try:
        done = run_cli(["group", "create", "friends", "bob", "Carol=sip:carol@localhost",
                        "--subject", "weekend", "--max", "10", *acct], env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "group friends sip:friends@localhost created"
        # a second create refuses to overwrite (If-None-Match: *): 412, exit 1
        done = run_cli(["group", "create", "friends", *acct], env=env)
        assert done.returncode == 1 and "412" in done.stderr
        done = run_cli(["group", "list", *acct], env=env)
        assert done.returncode == 0 and done.stdout.split() == ["friends"]
        done = run_cli(["group", "show", "friends", *acct], env=env)
        assert done.returncode == 0
        assert '<list-service uri="sip:friends@localhost">' in done.stdout
        assert '<entry uri="sip:carol@localhost"><rl:display-name>Carol' in done.stdout
        assert "<max-participant-count>10</max-participant-count>" in done.stdout
        # a raw element read and write through the same tree
        sel = ("org.openmobilealliance.groups/~/friends/~~/group/list-service/list/"
               'entry[@uri="sip:dave@localhost"]')
        done = run_cli(["xcap", "put", sel, "-", *acct], env=env,
                       stdin='<entry uri="sip:dave@localhost"/>')
        assert done.returncode == 0 and done.stdout.startswith("201 etag "), done.stderr
        done = run_cli(["xcap", "get", sel, "--etag", *acct], env=env)
        assert done.returncode == 0 and 'uri="sip:dave@localhost"' in done.stdout
        assert re.search(r"etag [0-9a-f]+", done.stderr)
        # group add / remove: one element PUT / DELETE each, the rest of the document kept
        done = run_cli(["group", "add", "friends", "Erin=sip:erin@localhost", "carol", *acct],
                       env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["sip:erin@localhost added to friends",
                                            "sip:carol@localhost updated in friends"]
        done = run_cli(["group", "remove", "friends", "bob", *acct], env=env)
        assert done.returncode == 0 and done.stdout.strip() == \
            "sip:bob@localhost removed from friends"
        done = run_cli(["group", "show", "friends", *acct], env=env)
        assert '<entry uri="sip:erin@localhost"><rl:display-name>Erin' in done.stdout
        assert 'uri="sip:bob@localhost"' not in done.stdout
        assert "<max-participant-count>10</max-participant-count>" in done.stdout
        assert done.stdout.count('uri="sip:carol@localhost"') == 1
        done = run_cli(["group", "remove", "friends", "bob", *acct], env=env)
        assert done.returncode == 5 and "404" in done.stderr          # not a member
        done = run_cli(["group", "add", "nope", "bob", *acct], env=env)
        # no such group: RFC 4825 §8.2.1 409 <no-parent> (exit 1)
        assert done.returncode == 1 and "no-parent" in done.stderr
        # bob cannot read alice's tree (403 -> exit 9); a missing document is exit 5
        done = run_cli(["xcap", "get", "org.openmobilealliance.groups/users/"
                        "sip:alice@localhost/friends", "--account", "bob@localhost",
                        "--password", "bobpw"], env=env)
        assert done.returncode == 9 and "403" in done.stderr
        done = run_cli(["group", "show", "nope", *acct], env=env)
        assert done.returncode == 5
        done = run_cli(["deferred", "list", *acct], env=env)
        assert done.returncode == 0 and done.stdout.strip() == "0 deferred message(s)"
        # bob records his messages (hist-activation), then writes to alice, who is not
        # registered: stored (202), listed in the metadata
        bob = ["--account", "bob@localhost", "--password", "bobpw"]
        done = run_cli(["history", "on", "--messages", *bob, "--proxy", f"127.0.0.1:{port}"],
                       env=env)
        assert done.returncode == 0, done.stderr
        done = run_cli(["send", "alice@localhost", "see you at noon", *bob, "--proxy",
                        f"127.0.0.1:{port}"], env=env)
        assert done.returncode == 0, done.stderr
        # C-CH-04 §13.1.4: bob's history metadata from the IM XDMS over XCAP
        done = run_cli(["history", "metadata", *bob], env=env)
        assert done.returncode == 0, done.stderr
        row, count = done.stdout.strip().splitlines()
        assert count == "1 history(ies)"
        _date, mode, sender, recipient, ref, _size, _subj = row.split("\t")
        assert (mode, sender, recipient) == ("pager", "bob@localhost", "alice@localhost")
        assert ref.endswith("@localhost")
        done = run_cli(["deferred", "list", *acct], env=env)
        assert done.returncode == 0, done.stderr
        first, last = done.stdout.strip().splitlines()
        assert last == "1 deferred message(s)"
        stamp, sender, reference, _size, _subject = first.split("\t")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\dZ", stamp)
        assert sender == "bob@localhost" and reference.endswith("@localhost")
        done = run_cli(["group", "delete", "friends", *acct], env=env)
        assert done.returncode == 0 and done.stdout.strip() == "group friends deleted"
        done = run_cli(["group", "list", *acct], env=env)
        assert done.returncode == 0 and done.stdout.split() == []
        # a wrong password is exit 3; no XCAP root is exit 2
        done = run_cli(["group", "list", *acct, "--password", "bad"], env=env)
        assert done.returncode == 3
        done = run_cli(["group", "list", *acct],
                       env={k: v for k, v in env.items() if k != "SIMPLEIM_XCAP_ROOT"})
        assert done.returncode == 2 and "--xcap-root" in done.stderr
    finally:
        assert stop(proc) == 0


def test_block_commands_make_the_server_refuse(tmp_path: Path) -> None:
    """``simpleim block``: alice's blocked-contacts list and access rule written over XCAP;
    the server then answers bob's message 403 + Warning 122 (§6.1.2.1 step 2) - exit 9
    with the warning in words - until alice unblocks him."""
    proc, root, port, env = _server(tmp_path)
    env = {**env, "SIMPLEIM_XCAP_ROOT": root, "SIMPLEIM_PASSWORD": "alicepw"}
    acct = ["--account", "alice@localhost"]
    bob = ["--account", "bob@localhost", "--password", "bobpw", "--proxy",
           f"127.0.0.1:{port}"]
    try:
        done = run_cli(["block", "list", *acct], env=env)
        assert done.returncode == 0 and done.stdout.strip() == "0 blocked", done.stderr
        done = run_cli(["block", "add", "bob", *acct], env=env)
        assert done.returncode == 0 and done.stdout.strip() == "sip:bob@localhost blocked", \
            done.stderr
        done = run_cli(["block", "add", "bob@localhost", *acct], env=env)
        assert done.stdout.strip() == "sip:bob@localhost was already blocked"
        done = run_cli(["block", "list", *acct], env=env)
        assert done.stdout.splitlines() == ["sip:bob@localhost", "1 blocked"]
        done = run_cli(["xcap", "get", "org.openmobilealliance.access-rules/~/index", *acct],
                       env=env)
        assert done.returncode == 0 and 'id="simpleim-blocked-contacts"' in done.stdout
        assert "<allow-reject-invite>true</allow-reject-invite>" in done.stdout
        done = run_cli(["send", "alice@localhost", "let me in", *bob], env=env)
        assert done.returncode == 9, done.stderr
        assert "refused by the server (403 Forbidden: 122 Function not allowed)" in done.stderr
        done = run_cli(["block", "remove", "bob", *acct], env=env)
        assert done.returncode == 0 and done.stdout.strip() == "sip:bob@localhost unblocked"
        done = run_cli(["send", "alice@localhost", "let me in", *bob], env=env)
        assert done.returncode == 0, done.stderr          # alice is offline: stored (202)
        done = run_cli(["block", "remove", "bob", *acct], env=env)
        assert done.returncode == 5 and "404" in done.stderr        # not on the list
    finally:
        assert stop(proc) == 0


DOCS = Path(__file__).resolve().parent.parent / "docs"


def _console_lines() -> list[str]:
    """The ``$ simpleim`` lines of docs/cli.md's console blocks (the XCAP section)."""
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    out = []
    for body in re.findall(r"^```console\n(.*?)^```", text, re.S | re.M):
        out += [line[2:] for line in body.splitlines() if line.startswith("$ simpleim ")]
    return out


def test_cli_md_xcap_examples_run(tmp_path: Path) -> None:
    """Every XCAP example of docs/cli.md runs as written (the XCAP root from the
    environment) and prints the words its comment quotes."""
    proc, root, _port, env = _server(tmp_path)
    env = {**env, "SIMPLEIM_XCAP_ROOT": root, "SIMPLEIM_ACCOUNT": "alice@localhost",
           "SIMPLEIM_PASSWORD": "alicepw"}
    (tmp_path / "lists.xml").write_text(
        '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">'
        '<list name="friends"/></resource-lists>')
    lines = _console_lines()
    assert len(lines) >= 8
    try:
        for line in lines:
            argv = shlex.split(line, comments=True)
            done = run_cli(argv[1:], env=env, cwd=tmp_path)
            assert done.returncode == 0, f"{line}: {done.stderr}"
            want = re.search(r'#\s*"([^"]+)"', line)
            assert want is not None, line
            assert want.group(1) in done.stdout, f"{line}: {done.stdout!r}"
    finally:
        assert stop(proc) == 0
