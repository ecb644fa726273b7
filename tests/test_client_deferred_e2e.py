"""Deferred messages and service settings end to end: simpleim clients through an in-process
``simpleim server`` (issue 9 §7), and the ``simpleim deferred`` / ``settings`` commands."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from client_helpers import DOMAIN, client_config, running_server, wait_event
from simpleim.client.account import Account
from simpleim.client.events import ImdnEvent, MessageEvent
from simpleim.client.session import SessionFailed
from simpleim.content.poc_settings import ServiceSettings
from test_client_cli import LONG, _env


async def test_offline_bob_gets_three_messages_in_order_with_delivery_imdns(
        tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as (server, port),
        Account(client_config("alice", port, tmp_path)) as alice,
    ):
        texts = ["one \u00e9", "two \U0001f600", "three"]
        sent = []
        for text in texts:
            result = await alice.pager.send("bob", text)
            assert result.status == 202  # OMA §12.2.2.3: stored, then 202 Accepted
            sent.append(result.message_id)
        async with Account(client_config("bob", port, tmp_path)) as bob:
            got = []
            for _ in texts:
                ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
                assert isinstance(ev, MessageEvent)
                got.append(ev)
            assert [e.text for e in got] == texts
            assert [e.message_id for e in got] == sent
            for ev in got:
                assert ev.deferred and ev.deferred_id and ev.deferred_id.startswith("sip:")
                assert ev.datetime  # the original CPIM DateTime
                assert ev.sender == f"sip:alice@{DOMAIN}"
            # C-DM-04: the delivery IMDN of each deferred message reaches alice
            delivered: set[str] = set()
            while delivered != set(sent):
                imdn = await wait_event(alice, lambda e: isinstance(e, ImdnEvent))
                assert isinstance(imdn, ImdnEvent) and imdn.status == "delivered"
                delivered.add(imdn.message_id)


async def test_settings_barring_and_delete(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as (server, port),
        Account(client_config("alice", port, tmp_path)) as alice,
        Account(client_config("bob", port, tmp_path)) as bob,
    ):
        assert await bob.settings.publish(ServiceSettings(incoming_pager_barring=True)) \
            == 200
        with pytest.raises(SessionFailed) as err:
            await alice.pager.send("bob", "barred?")
        assert err.value.status == 403  # PT-01 step 1
        assert await bob.settings.publish(ServiceSettings()) == 200
        assert (await alice.pager.send("bob", "not barred")).status == 200
        # carol is offline: two messages stored; alice cannot delete carol's (403)
        for text in ("x", "y"):
            assert (await alice.pager.send("carol", text)).status == 202
        assert server.roles is not None
        first, _second = await server.roles.deferred.stored(f"carol@{DOMAIN}")
        assert await alice.deferred.delete([first.id]) == [403]
        carol = Account(client_config("carol", port, tmp_path))
        await carol.start(register=False)  # delete without registering (no delivery)
        try:
            assert await carol.deferred.delete([first.id]) == [200]
            assert await carol.deferred.delete([first.id]) == [404]
            assert await carol.deferred.delete_all() == 200
        finally:
            await carol.close()
        assert not server.roles.deferred.has_pending(f"carol@{DOMAIN}")


async def test_delete_several_in_one_multiple_refer(tmp_path: Path) -> None:
    """C-DM-03 (§12.1.3.3): several stored messages in one REFER to sip:Delete@DOMAIN -
    RFC 5368 multiple-refer (Require, Refer-To cid: = the Content-ID of a resource-lists body
    of the Message-ID URIs, Refer-Sub: false); all of them go or none (someone else's: 403);
    and ``simpleim deferred delete ID ID`` sends it."""
    from simpleim.client.multirefer import delete_refer
    from simpleim.content.resource_lists import parse_resource_lists

    async with (
        running_server(tmp_path) as (server, port),
        Account(client_config("alice", port, tmp_path)) as alice,
    ):
        for text in ("one", "two", "three", "four"):
            assert (await alice.pager.send("carol", text)).status == 202
        assert server.roles is not None
        one, two, three, four = await server.roles.deferred.stored(f"carol@{DOMAIN}")
        carol = Account(client_config("carol", port, tmp_path))
        await carol.start(register=False)  # no registration: nothing is delivered
        try:
            uris = [carol.deferred.message_uri(m.id) for m in (one, three)]
            req = delete_refer(carol, uris)
            assert str(req.uri) == f"sip:Delete@{DOMAIN}"
            assert req.headers.get("Require") == "multiple-refer"
            assert req.headers.get("Refer-Sub") == "false"
            cid = (req.headers.get("Refer-To") or "").strip("<>")
            assert cid.startswith("cid:")
            assert req.headers.get("Content-ID") == f"<{cid[4:]}>"
            assert req.content_type == "application/resource-lists+xml"
            listed = [e.uri for e in parse_resource_lists(req.body).entries()]
            assert listed == [f"sip:{one.id}@{DOMAIN}", f"sip:{three.id}@{DOMAIN}"]
            # not alice's to delete: 403, nothing removed
            assert await alice.deferred.delete_many([one.id, three.id]) == 403
            assert await carol.deferred.delete_many([one.id, three.id]) == 200
            left = await server.roles.deferred.stored(f"carol@{DOMAIN}")
            assert [m.id for m in left] == [two.id, four.id]
        finally:
            await carol.close()
        # the CLI: one REFER for both; one unknown id -> none deleted (404), exit != 0
        # (--no-register: a registration would have the stored messages delivered)
        code, out, _err = await _simpleim(tmp_path, "carol", port, "deferred", "delete",
                                          "--no-register", two.id, "nosuchid")
        assert code != 0
        assert f"not deleted {two.id} (404)" in out and "not deleted nosuchid (404)" in out
        code, out, err = await _simpleim(tmp_path, "carol", port, "deferred", "delete",
                                         "--no-register", two.id, four.id)
        assert code == 0, err
        assert f"deleted {two.id} (200)" in out and f"deleted {four.id} (200)" in out
        assert not server.roles.deferred.has_pending(f"carol@{DOMAIN}")


async def test_deferred_metadata_fetched_after_registering_with_offline_delivery_off(
        tmp_path: Path) -> None:
    """C-DM-02 / C-SET-01 (§5.2.4, §12.1.2): after the settings PUBLISH with offline-delivery
    off the client reads the Deferred Metadata from the IM XDMS by itself (a
    DeferredListEvent); with offline-delivery on, or without an XDMS, it does not."""
    from dataclasses import replace as dc_replace

    from simpleim.client.deferred_meta import fetch_deferred_metadata
    from simpleim.client.events import DeferredListEvent
    from simpleim.server.xdm.http import XCAP_ROOT, XcapServer

    async with running_server(tmp_path) as (server, port):
        assert server.roles is not None
        xcap = XcapServer(server.roles.xdm, DOMAIN, server.auth, guard=server.auth_guard)
        host, xport = await xcap.start("127.0.0.1", 0)
        root = f"http://{host}:{xport}{XCAP_ROOT}"
        try:
            async with Account(client_config("alice", port, tmp_path)) as alice:
                for text in ("first", "second"):
                    assert (await alice.pager.send("carol", text)).status == 202
            stored = await server.roles.deferred.stored(f"carol@{DOMAIN}")
            cfg = client_config("carol", port, tmp_path, xcap_root=root,
                                offline_delivery=False)
            # what the account reads: the App. J metadata of carol's stored messages
            listed = await fetch_deferred_metadata(cfg)
            assert isinstance(listed, DeferredListEvent)
            assert listed.references == tuple(f"{m.id}@{DOMAIN}" for m in stored)
            assert listed.senders == (f"alice@{DOMAIN}",) * 2
            # carol comes online with offline delivery off (the E.1 default) and an XDMS:
            # the account reads the metadata by itself after its settings PUBLISH (this
            # server also re-sends the stored messages on registration, so the list may
            # already be shorter when it is read)
            async with Account(cfg) as carol:
                ev = await wait_event(carol, lambda e: isinstance(e, DeferredListEvent))
                assert isinstance(ev, DeferredListEvent)
                assert ev.to_json()["event"] == "deferred-list"
                assert set(ev.references) <= set(listed.references)
            # no XDMS configured: nothing fetched
            assert await fetch_deferred_metadata(dc_replace(cfg, xcap_root=None)) is None
        finally:
            await xcap.close()


async def _simpleim(tmp: Path, user: str, port: int, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simpleim", *args, "--proxy", f"127.0.0.1:{port}",
        env=_env(tmp, user), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(LONG):
        out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_deferred_fetch_delete_and_settings(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as (_server, port),
        Account(client_config("alice", port, tmp_path)) as alice,
    ):
        assert (await alice.pager.send("carol", "kept for you")).status == 202
        code, out, err = await _simpleim(tmp_path, "carol", port, "deferred", "fetch")
        assert code == 0, err
        assert "kept for you" in out and "1 deferred message(s)" in out
        code, out, err = await _simpleim(tmp_path, "carol", port, "settings", "set",
                                         "--bar-messages", "on")
        assert code == 0 and "bar-messages=on" in out, err
        with pytest.raises(SessionFailed) as failed:
            await alice.pager.send("carol", "barred")
        assert failed.value.status == 403
        code, out, err = await _simpleim(tmp_path, "carol", port, "deferred", "delete",
                                         "nosuchid")
        assert code != 0 and "not deleted nosuchid (404)" in out
        code, out, err = await _simpleim(tmp_path, "carol", port, "settings", "set",
                                         "--bar-messages", "maybe")
        assert code == 2


async def test_cli_settings_show_and_set_keep_the_rest(tmp_path: Path) -> None:
    """``simpleim settings show``: what this account published last and whether the server
    still holds it (a refresh with the entity-tag: 200 / 412); ``settings set`` changes only
    the options given; the settings survive a server restart (stored before the 200)."""
    async with running_server(tmp_path) as (_server, port):
        code, out, err = await _simpleim(tmp_path, "carol", port, "settings", "show")
        assert code == 0, err
        assert "not published from here yet" in out
        code, out, err = await _simpleim(tmp_path, "carol", port, "settings", "set",
                                         "--invisible", "on", "--bar-sessions", "on")
        assert code == 0 and "invisible=on" in out and "bar-sessions=on" in out, err
        code, out, err = await _simpleim(tmp_path, "carol", port, "settings", "set",
                                         "--bar-sessions", "off")
        assert code == 0, err
        assert "invisible=on" in out and "bar-sessions=off" in out  # the rest kept
    async with running_server(tmp_path) as (server, port):
        assert server.roles is not None
        assert not server.roles.settings.settings_of(f"carol@{DOMAIN}", time.time()).visible
        code, out, err = await _simpleim(tmp_path, "carol", port, "settings", "show")
        assert code == 0, err
        assert "invisible=on" in out and "stored on the server (expires in" in out
        # C-REG-01: any client command publishes after registering (the same settings)
        code, out, err = await _simpleim(tmp_path, "carol", port, "deferred", "delete",
                                         "--all")
        assert code == 0, err
        assert not server.roles.settings.settings_of(f"carol@{DOMAIN}", time.time()).visible


async def test_system_message_presented_apart_and_answered(tmp_path: Path) -> None:
    """OMA §8.2.1 step 2: a MESSAGE with +g.oma.sip-im.system-message is a MessageEvent with
    mode "system"; answering it (a message to System@DOMAIN, §5.4 / Ts1) lifts the block
    of §6.1.1.1 step 2."""
    from simpleim.store.system import SystemMessageRecord

    async with (
        running_server(tmp_path) as (server, port),
        Account(client_config("bob", port, tmp_path)) as bob,
    ):
        assert server.roles is not None
        await server.store.system_messages.add(SystemMessageRecord(  # type: ignore[union-attr]
            "sm1", f"bob@{DOMAIN}", "New terms: reply OK", "text/plain;charset=utf-8",
            time.time(), 0.0))
        assert await server.roles.system.dispatch() == 1
        ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(ev, MessageEvent)
        assert ev.mode == "system" and ev.sender == f"sip:System@{DOMAIN}"
        assert ev.text == "New terms: reply OK"
        with pytest.raises(SessionFailed) as blocked:
            await bob.pager.send("carol", "before answering")
        assert blocked.value.status == 403
        assert (await bob.pager.send("System", "OK")).status == 200
        assert (await bob.pager.send("carol", "after answering")).status == 202


async def test_group_advertisement_presented_apart_by_its_subject(tmp_path: Path) -> None:
    """OMA §8.2.1 step 3 (C-PM-02): a MESSAGE of type
    application/vnd.poc.group-advertisement+xml is a MessageEvent with mode
    "group-advertisement" and the SIP Subject; the CLI line shows the Subject, not the XML;
    the document itself is kept as received (step 4)."""
    from simpleim.cli.client_run import format_event

    advert = b'<group-advertisement><group uri="sip:friends@example.com"/></group-advertisement>'
    async with (
        running_server(tmp_path) as (server, port),
        Account(client_config("alice", port, tmp_path)) as alice,
        Account(client_config("bob", port, tmp_path)) as bob,
    ):
        status = await alice.pager.send_raw(
            "bob", advert, "application/vnd.poc.group-advertisement+xml",
            extra=(("Subject", "You are in Friends now"),))
        assert status == 200
        ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(ev, MessageEvent)
        assert ev.mode == "group-advertisement" and ev.subject == "You are in Friends now"
        assert ev.text.encode() == advert and ev.sender == f"sip:alice@{DOMAIN}"
        assert format_event(ev) == (f"[group-advertisement] sip:alice@{DOMAIN}: "
                                    "You are in Friends now")
        # an ordinary pager message: mode "pager", its Subject (if any) carried along
        assert (await alice.pager.send("bob", "hello")).status == 200
        ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(ev, MessageEvent) and ev.mode == "pager" and ev.subject is None
