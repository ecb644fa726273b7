"""File transfer in group chat (OMA CPM 2.0 CR "File Transfer in Group Chat"; checklist
GFT-*): the focus records each participant's FT capability from its Contact (Change 1), an
FT INVITE to the IM Session Identity goes only to the capable participants in sessions of
their own (Change 3), the chat goes on independently (Change 6); the client sends the file
to the conference with the chat's Conversation-ID / Contribution-ID (Change 4) - asserted
on the wire, the received bytes equal."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from client_helpers import wait_event
from simpleim.client.events import FileEvent, GroupMessageEvent, ParticipantEvent
from simpleim.client.features import IARI_IM, contact_params
from simpleim.client.session import SessionFailed
from simpleim.content.resource_lists import RESOURCE_LISTS_CONTENT_TYPE
from simpleim.sdp import parse_sdp
from simpleim.server.controlling.groupft import (
    FtSupport,
    ft_support,
    ft_targets,
    is_file_transfer,
)
from simpleim.sip.message import parse_message
from test_server_conference import _joined, trio
from waiting import wait_until

ALICE, BOB, CAROL = (f"sip:{u}@example.test" for u in ("alice", "bob", "carol"))


def test_ft_capability_from_the_contact() -> None:
    ft = '<sip:b@h>;+g.3gpp.iari-ref="urn%3Aurn-7%3A3gpp-application.ims.iari.rcse.ft,' \
         'urn%3Aurn-7%3A3gpp-application.ims.iari.rcse.im"'
    im = '<sip:c@h>;+g.3gpp.iari-ref="urn%3Aurn-7%3A3gpp-application.ims.iari.rcse.im"'
    assert ft_support([ft]) is FtSupport.CAPABLE
    assert ft_support([im]) is FtSupport.CHAT_ONLY
    assert ft_support(["<sip:d@h>;+g.oma.sip-im"]) is FtSupport.UNKNOWN
    support = {ALICE: FtSupport.CAPABLE, BOB: FtSupport.CAPABLE, CAROL: FtSupport.CHAT_ONLY}
    # Change 3 steps 1-3 (policy a): capable ones only, never the sender, unknown skipped
    assert ft_targets([ALICE, BOB, CAROL, "sip:dave@example.test"], support, ALICE) == (BOB,)
    raw = (b"INVITE sip:conf~1@h SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
           b"From: <sip:a@h>;tag=1\r\nTo: <sip:conf~1@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
           b'Accept-Contact: *;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.'
           b'cpm.filetransfer"\r\nContent-Length: 0\r\n\r\n')
    req = parse_message(raw)
    assert is_file_transfer(req)  # type: ignore[arg-type]


async def test_file_to_the_group_reaches_the_capable_members(tmp_path: Path) -> None:
    async with trio(tmp_path) as (srv, (alice, bob, carol), (a_w, b_w, c_w)):
        # carol's client takes chat only (Change 2 step 9: only the rcse.im IARI)
        carol.contact = carol.contact.split(">", 1)[0] + ">" + str(contact_params(
            iari=(IARI_IM,)))
        chat = await alice.groups.start(["bob", "carol"])
        b_chat, c_chat = await _joined(bob), await _joined(carol)
        src = tmp_path / "report.bin"
        data = os.urandom(200_000)          # above 64 KiB: switched chunk by chunk
        src.write_bytes(data)
        result = await chat.send_file(src)
        assert result.status == "sent" and result.size == len(data)
        got = await wait_event(bob, lambda e: isinstance(e, FileEvent)
                               and e.state == "received")
        assert isinstance(got, FileEvent) and got.path is not None
        assert hashlib.sha256(Path(got.path).read_bytes()).digest() == \
            hashlib.sha256(data).digest()
        assert got.hash_ok is not False and got.peer == ALICE
        # Change 4: to the IM Session Identity, the chat's identifiers, no recipient list
        sent = [r for r in a_w.requests("INVITE") if "conf~" in str(r.uri)][-1]
        assert sent.headers.get("Conversation-ID") == chat.conversation_id
        assert sent.headers.get("Contribution-ID") == chat.contribution_id
        assert RESOURCE_LISTS_CONTENT_TYPE.encode() not in sent.body
        # Change 3: bob's copy comes from alice, in a session of its own
        ft_in = [r for r in b_w.requests("INVITE", "in") if b"file-selector" in r.body]
        assert len(ft_in) == 1
        inv = ft_in[0]
        assert "alice@example.test" in (inv.headers.get("P-Asserted-Identity") or "")
        assert "alice@example.test" in (inv.headers.get("Referred-By") or "")
        assert "cpm.filetransfer" in " ".join(inv.headers.get_all("Accept-Contact"))
        assert inv.headers.get("Conversation-ID") == chat.conversation_id
        assert inv.call_id != b_chat.call_id
        (m,) = parse_sdp(inv.body).media
        assert m.get("file-selector") is not None and b"recipient-list" not in inv.body
        # Change 1 step 3: the focus's Contact names the FT service it relays
        group_inv = [r for r in b_w.requests("INVITE", "in") if b"file-selector" not in r.body]
        assert "iari.rcse.ft" in (group_inv[0].headers.get("Contact") or "")
        # ... and carol (chat only) gets no file INVITE
        assert not [r for r in c_w.requests("INVITE", "in") if b"file-selector" in r.body]
        # Change 6: the chat goes on after the transfer
        await chat.send("did you get it?")
        for acc in (bob, carol):
            ev = await wait_event(acc, lambda e: isinstance(e, GroupMessageEvent)
                                  and e.text == "did you get it?")
            assert isinstance(ev, GroupMessageEvent)
        # bob leaves: nobody left who takes files -> 480 with the reason
        await b_chat.leave()
        await wait_event(alice, lambda e: isinstance(e, ParticipantEvent)
                         and e.participant == BOB and e.status == "disconnected")
        with pytest.raises(SessionFailed) as info:
            await chat.send_file(src, timeout=10)
        assert info.value.status == 480
        refused = a_w.responses("INVITE", 480, direction="in")[-1]
        assert "no other participant takes file transfer" in (
            refused.headers.get("Warning") or "")
        await wait_until(lambda: not c_chat.ended.is_set(), 5, what="carol still in")
