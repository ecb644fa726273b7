"""Pager messages to a list of recipients end to end: simpleim accounts and the ``simpleim
send TO1 TO2 TEXT`` command through an in-process server's exploder (OMA SIMPLE IM §8.1.1,
§8.3; RFC 5365; the aggregated IMDN of RFC 5438 §8.3 as one ImdnEvent per recipient)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from client_helpers import DOMAIN, client_config, running_server, wait_event
from simpleim.client.account import Account
from simpleim.client.events import ImdnEvent, MessageEvent
from simpleim.content.cpim import parse_cpim
from simpleim.content.resource_lists import parse_resource_lists
from simpleim.sip.multipart import parse_multipart
from test_client_cli import LONG, _env
from wire import wired_pair


async def test_list_message_between_accounts_with_aggregated_imdn(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path, exploder_ts2=30.0) as (_server, port),
        Account(client_config("alice", port, tmp_path)) as alice,
        Account(client_config("bob", port, tmp_path)) as bob,
        Account(client_config("carol", port, tmp_path)) as carol,
    ):
        result = await alice.pager.send_list(["bob", "carol"], "hello both")
        assert result.mode == "pager-list" and result.status == 202
        for member in (bob, carol):
            ev = await wait_event(member, lambda e: isinstance(e, MessageEvent))
            assert isinstance(ev, MessageEvent)
            assert ev.text == "hello both" and ev.sender == f"sip:alice@{DOMAIN}"
            assert ev.message_id == result.message_id
        # the members' IMDNs went to the exploder (imdn.IMDN-Route); alice gets one
        # aggregated IMDN: an event per recipient
        got = {}
        while len(got) < 2:
            imdn = await wait_event(alice, lambda e: isinstance(e, ImdnEvent))
            assert isinstance(imdn, ImdnEvent) and imdn.message_id == result.message_id
            got[imdn.peer] = imdn.status
        assert got == {f"sip:bob@{DOMAIN}": "delivered", f"sip:carol@{DOMAIN}": "delivered"}


async def test_list_message_on_the_wire(tmp_path: Path) -> None:
    """C-PM-01 / IMSpec-PMM-C-002 (§8.1.1 step 5, RFC 5365 §3): a pager IM to more than
    one user is one MESSAGE to the URI-list exploder with ``Require:
    recipient-list-message``, Accept-Contact ``*;+g.oma.sip-im``, User-Agent, and a
    multipart/mixed body: the message/cpim IM (imdn.Message-ID, the delivery
    notification asked for) and the resource list with
    ``Content-Disposition: recipient-list``, one entry per recipient, duplicates dropped.
    The copy bob receives is the IM itself (message/cpim, same Message-ID), To bob."""
    async with wired_pair(tmp_path, server={"exploder_ts2": 30.0}) as (alice, bob, a_wire,
                                                                        b_wire):
        sent = await alice.pager.send_list(["bob", "carol", "bob"], "to you two")
        assert sent.status == 202                    # §8.3.1.1: accepted for the list
        *challenged, msg = a_wire.requests("MESSAGE")   # the last one, with credentials
        assert all(m.body == msg.body for m in challenged)
        assert str(msg.uri) == f"sip:Exploder@{DOMAIN}"
        assert msg.headers.get("Require") == "recipient-list-message"
        assert msg.headers.get_all("Accept-Contact") == ["*;+g.oma.sip-im"]
        assert (msg.headers.get("User-Agent") or "").startswith("IM-client/OMA1.0")
        mt = msg.media_type
        assert mt is not None and mt.mime == "multipart/mixed" and mt.boundary
        cpim_part, list_part = parse_multipart(msg.body, mt.boundary)
        assert cpim_part.content_type == "message/cpim"
        im = parse_cpim(cpim_part.body)
        assert im.imdn_message_id == sent.message_id and im.payload == b"to you two"
        assert "positive-delivery" in im.disposition_notification
        assert list_part.content_type == "application/resource-lists+xml"
        assert list_part.headers.get("Content-Disposition") == "recipient-list"
        assert [e.uri for e in parse_resource_lists(list_part.body).entries()] == \
            [f"sip:bob@{DOMAIN}", f"sip:carol@{DOMAIN}"]
        copy = await b_wire.request("MESSAGE", direction="in")
        assert str(copy.to_addr.uri) == f"sip:bob@{DOMAIN}"
        assert copy.content_type == "message/cpim"
        assert parse_cpim(copy.body).imdn_message_id == sent.message_id


async def test_cli_send_to_several(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as (_server, port),
        Account(client_config("bob", port, tmp_path)) as bob,
        Account(client_config("carol", port, tmp_path)) as carol,
    ):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simpleim", "send", "bob", "carol", "hi all",
            "--wait-imdn", "20", "--proxy", f"127.0.0.1:{port}",
            env=_env(tmp_path, "alice"), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(LONG):
            out, err = await proc.communicate()
        text = out.decode()
        assert proc.returncode == 0, err.decode()
        assert text.startswith("sent pager-list ")
        assert f"imdn delivered sip:bob@{DOMAIN}" in text
        assert f"imdn delivered sip:carol@{DOMAIN}" in text
        for member in (bob, carol):
            ev = await wait_event(member, lambda e: isinstance(e, MessageEvent))
            assert isinstance(ev, MessageEvent) and ev.text == "hi all"
