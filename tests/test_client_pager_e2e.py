"""End-to-end through an in-process simpleim server: registration, pager, large message."""

from __future__ import annotations

from pathlib import Path

import pytest

from client_helpers import client_config, pair, running_server, wait_event
from simpleim.client.account import Account
from simpleim.client.events import ImdnEvent, MessageEvent, RegisteredEvent
from simpleim.client.session import SessionFailed


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_register_and_pager_with_imdn(tmp_path: Path, transport: str) -> None:
    async with pair(tmp_path, transport) as (alice, bob):
        reg = await wait_event(alice, lambda e: isinstance(e, RegisteredEvent))
        assert isinstance(reg, RegisteredEvent) and reg.expires > 0
        # the simpleim registrar supports "pref" (RFC 3840 option tag): no 420, no retry without it
        assert alice._require_pref
        result = await alice.pager.send("bob", "hello bob")
        assert result.mode == "pager" and result.status == 200
        ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(ev, MessageEvent)
        assert ev.text == "hello bob" and ev.mode == "pager"
        assert ev.sender == "sip:alice@example.test"
        assert ev.message_id == result.message_id
        imdn = await wait_event(alice, lambda e: isinstance(e, ImdnEvent))
        assert isinstance(imdn, ImdnEvent)
        assert imdn.message_id == result.message_id and imdn.status == "delivered"
        assert imdn.expected


async def test_large_message(tmp_path: Path) -> None:
    async with pair(tmp_path) as (alice, bob):
        text = "x" * 5000
        result = await alice.pager.send("bob", text)
        assert result.mode == "large"
        ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(ev, MessageEvent)
        assert ev.mode == "large" and ev.text == text


async def test_unknown_user_and_offline(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as (_server, port),
        Account(client_config("alice", port, tmp_path)) as alice,
    ):
        with pytest.raises(SessionFailed) as err:
            await alice.pager.send("nobody", "hi")
        assert err.value.status == 404
        # carol exists but is offline: the server defers the message (OMA §12.2.2.3)
        sent = await alice.pager.send("carol", "hi")
        assert sent.status == 202


async def test_wrong_password(tmp_path: Path) -> None:
    from simpleim.client.account import RegistrationError

    async with running_server(tmp_path) as (_server, port):
        acc = Account(client_config("alice", port, tmp_path, password="wrong"))
        with pytest.raises(RegistrationError) as err:
            await acc.start()
        await acc.close()
        assert err.value.status in (401, 403)


async def test_deregistration_on_close(tmp_path: Path) -> None:
    async with pair(tmp_path) as (alice, bob):
        await alice.close()          # OMA §5.2.3: REGISTER with Expires: 0
        # no contact left: the server defers the message (202) instead of 480
        sent = await bob.pager.send("alice", "still there?")
        assert sent.status == 202


async def test_pager_display_notification(tmp_path: Path) -> None:
    async with pair(tmp_path) as (alice, bob):
        sent = await alice.pager.send("bob", "read me")
        msg = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(msg, MessageEvent) and msg.message_id == sent.message_id
        assert await bob.mark_displayed(sent.message_id)     # RFC 5438 §7.2.1.2 via MESSAGE
        displayed = await wait_event(
            alice, lambda e: isinstance(e, ImdnEvent) and e.status == "displayed")
        assert isinstance(displayed, ImdnEvent) and displayed.message_id == sent.message_id
        assert not await bob.mark_displayed("unknown-id")
