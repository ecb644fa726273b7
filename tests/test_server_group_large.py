"""Large message mode to a group at the Controlling Function (OMA SIMPLE IM §9.3.1.1-9.3.1.3,
§9.3.2.1, §9.4.4; IMSpec-LMM-S-001..008): a large-message INVITE with a URI list (to the
conference factory or the exploder) or to a pre-defined group's URI is answered by the
server, which sends each recipient a large message session of its own with the sender's
message unchanged; offline members get it deferred (DM-04) and delivered on registration;
CANCEL and BYE are relayed; refusals carry the status and Warning of §7.2.1.2 / §7.2.1.3 -
asserted on the wire, on SQLite and PostgreSQL where the store is involved."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from client_helpers import DOMAIN, client_config, running_server, wait_event
from simpleim.client import Account
from simpleim.client.events import MessageEvent
from simpleim.client.largemsg import LargeMessages
from simpleim.client.pager import build_im, new_message_id
from simpleim.client.session import SessionFailed
from simpleim.client.xcap import GroupSpec, group_document
from simpleim.content.cpim import parse_cpim
from simpleim.content.poc_settings import ServiceSettings
from simpleim.msrp import MsrpRequest
from simpleim.sdp import parse_sdp
from simpleim.server.app import ImServer
from simpleim.server.controlling.large import (
    LargeTarget,
    group_large_target,
    member_headers,
    offered_size,
    size_refusal,
)
from simpleim.server.media import msrp_offer
from simpleim.server.xdm.groups import parse_groups
from simpleim.sip.message import SipRequest, parse_message
from simpleim.transport.sip import IncomingRequest
from test_server_groups import define
from waiting import wait_until
from wire import MsrpWire, SipWire

ALICE, BOB, CAROL = (f"sip:{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))
TEAM = f"sip:team@{DOMAIN}"
BIG = "a large message for the group " * 150            # ~4.5 kB: large mode (> 1300)
LARGE_TAG = "+g.oma.sip-im.large-message"


@contextlib.asynccontextmanager
async def accounts(tmp: Path, users: tuple[str, ...], *,
                   client: dict[str, dict[str, Any]] | None = None, **server: Any
                   ) -> AsyncIterator[tuple[ImServer, int, list[Account], list[SipWire]]]:
    """``client``: ClientConfig fields per user; ``server``: ServerConfig fields."""
    async with running_server(tmp, **server) as (srv, port):
        accs = [Account(client_config(u, port, tmp, "tcp", **(client or {}).get(u, {})))
                for u in users]
        wires = [SipWire(a) for a in accs]
        async with contextlib.AsyncExitStack() as stack:
            for a in accs:
                await a.start()
                stack.push_async_callback(a.close)
            yield srv, port, accs, wires


def _sends(msrp: MsrpWire, account: Account) -> list[MsrpRequest]:
    return [r for r in msrp.requests(account.msrp) if r.body]


def _invite(body: bytes = b"", headers: str = "") -> SipRequest:
    raw = (f"INVITE {TEAM} SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
           f"From: <{ALICE}>;tag=1\r\nTo: <{TEAM}>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
           f"Contact: <sip:alice@127.0.0.1:5>\r\n"
           f"Accept-Contact: *;+g.oma.sip-im;{LARGE_TAG}\r\n{headers}"
           f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n"
           ).encode() + body
    req = parse_message(raw)
    assert isinstance(req, SipRequest)
    return req


SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=message 7 TCP/MSRP *\r\na=accept-types:message/cpim\r\n"
       b"a=path:msrp://127.0.0.1:7/abc;tcp\r\na=sendonly\r\n"
       b"a=file-selector:size:5000\r\n")


def _group(**kw: Any) -> Any:
    spec = GroupSpec("team", TEAM, subject="plans",
                     members=((ALICE, None), (BOB, None), (CAROL, None)), **kw)
    return parse_groups(group_document(spec, ALICE), ALICE, "team", "e")[0]


def test_member_headers_size_and_group_decisions() -> None:
    """§9.3.2.1 / §7.2.2.1: the member INVITE's headers (ad-hoc: the sender asserted; a
    group: the group asserted, the sender in Referred-By, the group's Subject; anonymity:
    Privacy: id and no identity); §7.2.1.2 step 7: the size bound; §7.2.1.3: the group's
    policy (403 + 127, 403 + 119)."""
    req = _invite(SDP, "Conversation-ID: conv1\r\n")
    adhoc = dict(member_headers(req, LargeTarget(ALICE, (BOB,))))
    assert LARGE_TAG in adhoc["Accept-Contact"]
    assert adhoc["P-Asserted-Identity"] == f"<{ALICE}>" == adhoc["Referred-By"]
    assert adhoc["Supported"] == "timer" and adhoc["Conversation-ID"] == "conv1"
    group = _group()
    target = group_large_target(group, req, ALICE, DOMAIN)
    assert isinstance(target, LargeTarget) and target.recipients == (BOB, CAROL)
    hdrs = dict(member_headers(req, target))
    assert hdrs["P-Asserted-Identity"] == f"<{TEAM}>" and hdrs["Referred-By"] == f"<{ALICE}>"
    assert hdrs["Subject"] == "plans"
    anon = dict(member_headers(req, LargeTarget(ALICE, (BOB,), anonymous=True)))
    assert anon["Privacy"] == "id" and "P-Asserted-Identity" not in anon \
        and "Referred-By" not in anon
    # §7.2.1.3 step 3: not allowed to initiate (not a member) -> 403 + 127
    refused = group_large_target(group, req, f"sip:dave@{DOMAIN}", DOMAIN)  # no member
    assert not isinstance(refused, LargeTarget) and refused.status == 403
    assert "127 Service not authorised" in dict(refused.headers)["Warning"]
    # Privacy: id without <allow-anonymity> -> 403 + 119
    refused = group_large_target(group, _invite(SDP, "Privacy: id\r\n"), ALICE, DOMAIN)
    assert not isinstance(refused, LargeTarget) and refused.status == 403
    assert "119 Anonymity not allowed" in dict(refused.headers)["Warning"]
    remote = msrp_offer(req)
    assert remote is not None and offered_size(remote) == 5000
    assert size_refusal(remote, 5000, DOMAIN) is None
    too_big = size_refusal(remote, 4999, DOMAIN)
    assert too_big is not None and too_big.status == 488
    assert "5000 bytes above 4999 bytes" in dict(too_big.headers)["Warning"]


async def test_large_message_to_a_uri_list(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """§9.1.1.2 step 3 / §9.3.1.1 step 1 / §9.3.2.1 step 2: one INVITE with the list to the
    conference factory; each listed user gets a session of its own from the sender, the
    MSRP SEND unchanged; the sender's BYE, then the server's BYE to each (§9.3.1.3)."""
    msrp = MsrpWire(monkeypatch)
    async with accounts(tmp_path, ("alice", "bob", "carol")) as (
            _srv, _port, (alice, bob, carol), (a_w, b_w, c_w)):
        for acc in (alice, bob, carol):
            msrp.watch(acc.msrp)
        result = await alice.pager.send_list(["bob", "carol"], BIG)
        assert result.mode == "large-list" and result.status == 200
        sent = a_w.requests("INVITE")[-1]
        assert str(sent.uri) == f"sip:Conference-Factory@{DOMAIN}"
        assert LARGE_TAG in " ".join(sent.headers.get_all("Accept-Contact"))
        assert "recipient-list-invite" in (sent.headers.get("Require") or "")
        # §9.1.1.2 step 3 a/c, step 6 a: multipart/mixed with the list, the offer sendonly
        assert (sent.content_type or "").startswith("multipart/mixed")
        assert b"Content-Disposition: recipient-list" in sent.body and b"a=sendonly" in sent.body
        assert b"bob@" in sent.body and b"carol@" in sent.body
        ok = a_w.responses("INVITE", 200, direction="in")[-1]
        assert parse_sdp(ok.body).media[0].has("recvonly")
        copies = []
        for acc, wire in ((bob, b_w), (carol, c_w)):
            ev = await wait_event(acc, lambda e: isinstance(e, MessageEvent))
            assert isinstance(ev, MessageEvent) and ev.text == BIG and ev.mode == "large"
            assert ev.sender == ALICE
            inv = wire.requests("INVITE", "in")[-1]
            assert str(inv.uri).startswith(str(acc.config.uri).split("@")[0])
            assert str(inv.from_addr.uri) == ALICE and inv.call_id != sent.call_id
            assert inv.headers.get("P-Asserted-Identity") == f"<{ALICE}>"
            assert inv.headers.get("Referred-By") == f"<{ALICE}>"
            assert LARGE_TAG in " ".join(inv.headers.get_all("Accept-Contact"))
            assert b"resource-lists" not in inv.body
            (copy,) = _sends(msrp, acc)
            copies.append(copy.body)
            # the sender's CPIM message unchanged: its Message-ID, From and content
            assert copy.content_type == "message/cpim"
            cpim = parse_cpim(copy.body or b"")
            assert cpim.imdn_message_id == result.message_id
            assert str(cpim.from_addr.uri) == ALICE and cpim.body == BIG.encode()  # type: ignore[union-attr]
            (m,) = parse_sdp(inv.body).media
            assert m.has("sendonly")
            assert (m.get("file-selector") or "").endswith(f"size:{len(copy.body or b'')}")
            # §9.3.1.3: the server releases the member's session once alice's BYE came
            await wire.request("BYE", "in")
        assert copies[0] == copies[1]
        assert a_w.requests("BYE", "out")


async def test_large_message_to_the_exploder_too(tmp_path: Path) -> None:
    """The same INVITE to ``sip:Exploder@DOMAIN`` (the URI-list service) is taken alike."""
    async with accounts(tmp_path, ("alice", "bob")) as (_srv, _port, (alice, bob), (_a, b_w)):
        cpim = build_im(sender=ALICE, recipient=BOB, body=BIG.encode(),
                        content_type="text/plain", message_id=new_message_id(),
                        imdn=alice.config.imdn, date_time=alice.now_cpim()).to_bytes()
        status = await alice.large.send(f"sip:Exploder@{DOMAIN}", cpim, "m1",
                                        recipients=[BOB])
        assert status == 200
        ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(ev, MessageEvent) and ev.text == BIG
        assert str(b_w.requests("INVITE", "in")[-1].from_addr.uri) == ALICE


async def test_large_message_to_a_group_with_an_offline_member(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str) -> None:
    """§9.1.1.2 step 4 / §9.3.1.1 step 2 / §9.3.2.1 step 3: to the group's URI; bob (online)
    gets it with the group asserted and alice in Referred-By; carol (offline) gets it
    stored by the DMF with the INVITE she would have got, delivered on registration."""
    msrp = MsrpWire(monkeypatch)
    async with accounts(tmp_path, ("alice", "bob"), store_url=store_url) as (
            srv, port, (alice, bob), (a_w, b_w)):
        msrp.watch(alice.msrp)
        msrp.watch(bob.msrp)
        await define(srv, GroupSpec("team", TEAM, subject="plans",
                                    members=((ALICE, None), (BOB, None), (CAROL, None))))
        result = await alice.pager.send("team", BIG)
        assert result.mode == "large" and result.status == 200
        assert str(a_w.requests("INVITE")[-1].uri) == TEAM
        ev = await wait_event(bob, lambda e: isinstance(e, MessageEvent))
        assert isinstance(ev, MessageEvent) and ev.text == BIG
        assert ev.sender == ALICE and ev.group == TEAM
        inv = b_w.requests("INVITE", "in")[-1]
        assert inv.headers.get("P-Asserted-Identity") == f"<{TEAM}>"
        assert inv.headers.get("Referred-By") == f"<{ALICE}>"
        assert inv.headers.get("Subject") == "plans"
        (copy,) = _sends(msrp, bob)
        cpim = parse_cpim(copy.body or b"")
        assert cpim.imdn_message_id == result.message_id and cpim.body == BIG.encode()
        roles = srv.roles
        assert roles is not None
        (stored,) = await roles.deferred.stored(f"carol@{DOMAIN}")
        assert stored.sender == f"alice@{DOMAIN}"
        kept = parse_message(stored.request)
        assert isinstance(kept, SipRequest) and kept.method == "INVITE"
        assert kept.headers.get("To") == f"<{CAROL}>"
        carol = Account(client_config("carol", port, tmp_path, "tcp"))
        c_wire = SipWire(carol)
        await carol.start()
        try:
            ev = await wait_event(carol, lambda e: isinstance(e, MessageEvent))
            assert isinstance(ev, MessageEvent) and ev.text == BIG and ev.deferred
            assert ev.sender == ALICE
            msg = await c_wire.request("MESSAGE", "in")
            assert msg.headers.get("Deferred-Message-ID")
            await wait_until(lambda: not roles.deferred.has_pending(f"carol@{DOMAIN}"), 10,
                             what="carol's store emptied")
        finally:
            await carol.close()


async def test_refusals_on_the_wire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """§7.2.1.2 step 8: too many -> 486 + 102; §7.2.1.2 step 7: above the server's bound ->
    488 + Warning; every recipient refused (bob declines 603, nobody is no user: 480, not
    deferred) -> their lowest status (§9.3.1.1)."""
    async with accounts(tmp_path, ("alice", "bob"), conference_max_participants=2,
                        media_max_message=3000) as (_srv, _port, (alice, _bob), (a_w, _b)):
        with pytest.raises(SessionFailed) as info:
            await alice.pager.send_list(["bob", "carol"], BIG)
        assert info.value.status == 486
        warning = a_w.responses("INVITE", 486, direction="in")[-1].headers.get("Warning")
        assert "102" in (warning or "")
        with pytest.raises(SessionFailed) as info:
            await alice.pager.send_list(["bob"], BIG)
        assert info.value.status == 488
        warning = a_w.responses("INVITE", 488, direction="in")[-1].headers.get("Warning")
        assert "above 3000 bytes" in (warning or "")

    async def decline(self: LargeMessages, inc: IncomingRequest, offer: object) -> None:
        inc.reply(603)

    monkeypatch.setattr(LargeMessages, "on_invite", decline)
    async with accounts(tmp_path, ("alice", "bob", "carol")) as (
            srv, _port, (alice, _bob, carol), (_a, b_w, c_w)):
        with pytest.raises(SessionFailed) as info:
            await alice.pager.send_list(["bob", "nobody"], BIG)
        assert info.value.status == 480
        assert b_w.responses("INVITE", 603, direction="out")
        assert srv.roles is not None
        assert await srv.roles.deferred.stored(f"nobody@{DOMAIN}") == []
        # PT-01 for each member: carol bars incoming messages (ipab) -> not invited, 403
        assert await carol.settings.publish(ServiceSettings(incoming_pager_barring=True)) \
            == 200
        with pytest.raises(SessionFailed) as info:
            await alice.pager.send_list(["carol"], BIG)
        assert info.value.status == 403
        assert not c_w.requests("INVITE", "in")


async def test_cancel_reaches_the_invited_members(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """§9.3.1.2: the sender's CANCEL before any final response cancels the server's
    pending INVITEs (bob sees the CANCEL; alice gets 487)."""
    ringing: asyncio.Event = asyncio.Event()

    async def ring_only(self: LargeMessages, inc: IncomingRequest, offer: object) -> None:
        inc.reply(180)
        ringing.set()

    monkeypatch.setattr(LargeMessages, "on_invite", ring_only)
    async with accounts(tmp_path, ("alice", "bob")) as (_srv, _port, (alice, _bob),
                                                         (a_w, b_w)):
        cpim = build_im(sender=ALICE, recipient=BOB, body=BIG.encode(),
                        content_type="text/plain", message_id=new_message_id(),
                        imdn=alice.config.imdn, date_time=alice.now_cpim()).to_bytes()
        send = asyncio.ensure_future(alice.large.send(
            f"sip:Conference-Factory@{DOMAIN}", cpim, "m2", recipients=[BOB], timeout=30))
        await asyncio.wait_for(ringing.wait(), 10)
        attempt = next(s for s in alice.sessions.values() if s.kind == "large-message"
                       ).attempt
        assert attempt is not None
        attempt.cancel()
        with pytest.raises(SessionFailed):
            await send
        await b_w.request("CANCEL", "in")
        await b_w.response("INVITE", 487, direction="out")
        await a_w.response("INVITE", 487, direction="in")
