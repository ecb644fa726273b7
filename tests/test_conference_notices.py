"""System messages from an IM conference (OMA SIMPLE IM §7.2.3.5, checklist CF-54), on the
wire: the operator queues one (``simpleim admin system-message CONF TEXT --type ...``); the
running focus sends one MSRP SEND per participant whose CPIM ``To`` is that participant and
whose ``From`` is the conference with the service type as display name; the client reports it
as the conference's own message."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from cli_helpers import clean_env, run_cli
from client_helpers import wait_event
from simpleim.client.events import GroupMessageEvent
from simpleim.content.cpim import parse_cpim
from simpleim.store import open_store
from simpleim.store.system import SystemMessageRecord
from test_server_conference import _joined, trio
from wire import MsrpWire


async def test_system_message_into_a_running_conference(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    msrp = MsrpWire(monkeypatch)
    async with trio(tmp_path) as (srv, (alice, bob, carol), _wires):
        for account in (alice, bob, carol):
            msrp.watch(account.msrp)
        chat = await alice.groups.start(["bob", "carol"])
        await _joined(bob)
        await _joined(carol)
        # the IM Session Identity in our domain (the client keeps the Contact form)
        user = chat.conference.split(";", 1)[0].strip("<>").removeprefix("sip:")
        conference = f"sip:{user.rpartition('@')[0]}@example.test"
        store = srv.store
        assert store is not None and srv.roles is not None
        record = SystemMessageRecord(secrets.token_hex(8), conference.removeprefix("sip:"),
                                     "the server restarts at noon", "text/plain",
                                     time.time(), service_type="Announcement")
        gone = SystemMessageRecord(secrets.token_hex(8), "conf~gone@example.test", "lost",
                                   "text/plain", time.time(), service_type="SysAdmin")
        await store.system_messages.add(record)       # type: ignore[attr-defined]
        await store.system_messages.add(gone)         # type: ignore[attr-defined]
        await srv.roles.system.dispatch()
        for account in (alice, bob, carol):
            ev = await wait_event(account, lambda e: isinstance(e, GroupMessageEvent)
                                  and e.system is not None, timeout=15)
            assert isinstance(ev, GroupMessageEvent)
            assert ev.system == "Announcement" and ev.text == "the server restarts at noon"
            # on the wire: CPIM From = the conference with the service type, To = the user
            (send,) = [r for r in msrp.requests(account.msrp)
                       if r.body and b"restarts at noon" in r.body]
            assert send.content_type == "message/cpim"
            cpim = parse_cpim(send.body or b"")
            assert cpim.from_addr is not None
            assert cpim.from_addr.display_name == "Announcement"
            assert cpim.from_addr.uri == conference
            assert [str(a.uri) for a in cpim.to_addrs] == [account.config.uri]
        sent = await store.system_messages.of(record.aor)  # type: ignore[attr-defined]
        assert sent[0].sent_at is not None
        # a conference that is not running: dropped (marked sent), never retried
        dropped = await store.system_messages.of(gone.aor)  # type: ignore[attr-defined]
        assert dropped[0].sent_at is not None
        assert await srv.roles.system.dispatch() == 0


def test_admin_queues_a_conference_system_message(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    env = clean_env(tmp_path)
    done = run_cli(["user", "add", "alice", "--domain", "example.test", "--password", "pw",
                    "--db", db, "--create"], env=env)
    assert done.returncode == 0, done.stderr
    done = run_cli(["admin", "system-message", "sip:conf~abc@example.test", "maintenance",
                    "--type", "SysAdmin", "--db", db], env=env)
    assert done.returncode == 0, done.stderr
    assert "queued SysAdmin message" in done.stdout and "sip:conf~abc@example.test" in \
        done.stdout
    done = run_cli(["admin", "system-message", "sip:conf~abc@example.test", "x",
                    "--type", "two words", "--db", db], env=env)
    assert done.returncode == 2 and "--type" in done.stderr
    done = run_cli(["admin", "system-message", "sip:conf~abc@example.test", "x",
                    "--type", "SysAdmin", "--respond-within", "5", "--db", db], env=env)
    assert done.returncode == 2


async def test_admin_record_is_read_back(tmp_path: Path) -> None:
    """The queued row keeps its service type (schema version 8)."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    async with await open_store(url) as store:
        rec = SystemMessageRecord("id1", "conf~x@example.test", "hi", "text/plain", 1.0,
                                  service_type="Advertisement")
        await store.system_messages.add(rec)
        assert await store.system_messages.of("conf~x@example.test") == [rec]
        assert (await store.system_messages.unsent())[0].service_type == "Advertisement"
