"""``simpleim history ...`` end to end through ``simpleim server`` as a new user runs it:
turn recording on, get messages recorded, list / search them over the history HTTP endpoint,
show them (retrieved over SIP/MSRP) and delete them (OMA SIMPLE IM §13.1)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from cli_helpers import LONG, simpleim_bin
from client_helpers import DOMAIN, client_config, running_server
from simpleim.client import Account, ChatSession
from simpleim.client.groupchat import GroupChat
from test_cli_chat import _env, _until
from test_client_deferred_e2e import _simpleim
from test_server_conference import _joined


async def test_cli_history_on_list_search_show_delete(tmp_path: Path) -> None:
    async with running_server(tmp_path, history_http_listen="127.0.0.1:0") as (server,
                                                                               port):
        assert server.services is not None and server.services.history_http_addr
        host, http_port = server.services.history_http_addr
        url = f"http://{host}:{http_port}/history"
        code, out, err = await _simpleim(tmp_path, "carol", port, "history", "on",
                                         "--messages")
        assert code == 0 and "messages=on" in out and "sessions=off" in out, err
        async with Account(client_config("alice", port, tmp_path)) as alice:
            # carol is offline: stored for later delivery and recorded in her history
            for text in ("hello carol", "are you there?"):
                assert (await alice.pager.send("carol", text)).status == 202
        code, out, err = await _simpleim(tmp_path, "carol", port, "history", "list",
                                         "--history-url", url)
        assert code == 0, err
        rows = [line.split("\t") for line in out.splitlines() if "\t" in line]
        assert len(rows) == 2 and all(r[1] == "pager" for r in rows)
        assert rows[0][3] == f"alice@{DOMAIN}" and "2 history(ies)" in out
        refs = [r[0] for r in rows]
        code, out, err = await _simpleim(tmp_path, "carol", port, "history", "search",
                                         "THERE", "--history-url", url)
        assert code == 0 and "are you there?" in out and "hello carol" not in out, err
        code, out, err = await _simpleim(tmp_path, "carol", port, "history", "fetch", *refs)
        assert code == 0, err
        items = [json.loads(line) for line in out.splitlines()]
        assert [i["text"] for i in items] == ["hello carol", "are you there?"]
        assert all(i["kind"] == "message" and i["call_id"] for i in items)
        code, out, err = await _simpleim(tmp_path, "carol", port, "history", "show", refs[0])
        assert code == 0 and "hello carol" in out and "1 item(s)" in out, err
        # agent --history: the items as "history" events
        code, out, err = await _simpleim(tmp_path, "carol", port, "agent", "--json",
                                         "--history", refs[1], "--duration", "1")
        assert code == 0, err
        events = [json.loads(line) for line in out.splitlines()]
        (item,) = [e for e in events if e["event"] == "history"]
        assert item["kind"] == "message" and item["text"] == "are you there?"
        assert item["sender"] == f"sip:alice@{DOMAIN}" and item["date"]
        code, out, err = await _simpleim(tmp_path, "carol", port, "history", "delete",
                                         refs[0], "nosuch")
        assert code != 0 and f"not deleted {refs[0]} (404)" in out, err   # all or nothing
        code, out, err = await _simpleim(tmp_path, "carol", port, "history", "delete",
                                         refs[0])
        assert code == 0 and f"deleted {refs[0]} (200)" in out, err
        code, out, err = await _simpleim(tmp_path, "carol", port, "history", "delete",
                                         "--all")
        assert code == 0 and "deleted all (200)" in out, err
        code, out, err = await _simpleim(tmp_path, "carol", port, "history", "list",
                                         "--history-url", url)
        assert code == 0 and "0 history(ies)" in out, err
        # no endpoint configured: a clear error, exit 2
        code, out, err = await _simpleim(tmp_path, "carol", port, "history", "list")
        assert code == 2 and "history_url" in err


async def test_chat_record_start_and_stop(tmp_path: Path) -> None:
    """``/record start NAME`` and ``/record stop`` inside ``simpleim chat`` (C-CH-01/02): the
    1-1 chat (relayed by the server's B2BUA) is extended to a conference listing
    sip:History@DOMAIN at once (§13.1.1 1a: its answer had no isfocus), the recording
    stopped by REFER method=BYE to the conference (§13.1.2); only what was said in
    between is recorded, under NAME."""
    async with running_server(tmp_path, pf_media="b2bua") as (server, port), \
            Account(client_config("alice", port, tmp_path)) as alice:
        proc = await asyncio.create_subprocess_exec(
            simpleim_bin(), "chat", env=_env(tmp_path, "bob", port),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, keyboard = proc.stdout, proc.stdin
        assert keyboard is not None and out is not None
        try:
            await _until(out, b"waiting for chats and messages")
            chat: ChatSession | GroupChat = await alice.chats.start("bob")
            for line, wanted in ((None, b"alice: not recorded"),
                                 (b"/record start trip\n", b"(recording started)"),
                                 (None, b"alice: recorded line"),
                                 (b"/record stop\n", b"(recording stopped)")):
                if line is None:
                    await chat.send(wanted.decode().split(": ", 1)[1])
                else:
                    keyboard.write(line)
                    await keyboard.drain()
                await _until(out, wanted)
                if line == b"/record start trip\n":
                    # §13.1.1 1a: bob's 1-1 chat became a conference listing History@;
                    # alice's client took the focus's INVITE with Replaces over it
                    chat = await _joined(alice)
            keyboard.close()                                     # Ctrl-D
            async with asyncio.timeout(LONG):
                assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert server.store is not None
        history = server.store.history  # type: ignore[attr-defined]
        (rec,) = await history.of(f"bob@{DOMAIN}")
        assert rec.filename == "trip" and rec.ended_at is not None
        items = await history.items(rec.id)
        assert items[0].content.decode().startswith("INVITE sip:Conference-Factory@")
        texts = [i.text for i in items if i.kind.value == "send"]
        assert texts == ["recorded line"]
