"""Each client feature against a fake context (tests/client_fakes.py): no server, no second
account.  The tests read what the feature put on the wire (requests serialized and parsed
back) and what it emitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from client_fakes import FakeContext, fake_context, incoming
from simpleim.client.chats import Chats
from simpleim.client.events import CapabilitiesEvent, ImdnEvent, MessageEvent, SessionEvent
from simpleim.client.filetransfer import FileTransfers
from simpleim.client.imageshare import ImageShares
from simpleim.client.inbox import Inbox
from simpleim.client.invites import InviteFacts, InviteRouter
from simpleim.client.largemsg import LargeMessages
from simpleim.client.messages import PagerMessages
from simpleim.client.options import CapabilityQueries
from simpleim.client.pager import build_im, imdn_reply
from simpleim.client.session import SessionFailed
from simpleim.content.cpim import CpimDateTime, parse_cpim
from simpleim.content.imdn import NotificationType, Status, parse_imdn
from simpleim.sdp import MsrpMedia, SessionDescription
from simpleim.sip.message import SipRequest, SipResponse
from simpleim.transport.msrp_sdp import body_parts, sdp_of
from simpleim.transport.sip import IncomingRequest

BOB = "sip:bob@example.test"
ALICE = "sip:alice@example.test"


def status(code: int, **headers: str):  # noqa: ANN201 - an Answer
    def answer(req: SipRequest) -> SipResponse:
        resp = req.create_response(code, to_tag="peer")
        for k, v in headers.items():
            resp.headers.add(k.replace("_", "-"), v)
        return resp
    return answer


def pager(ctx: FakeContext) -> PagerMessages:
    inbox = Inbox(ctx)
    return PagerMessages(ctx, inbox, LargeMessages(ctx, inbox))


def the_offer(req: SipRequest) -> SessionDescription:
    offer = sdp_of(req)
    assert offer is not None
    return offer


# ---------------------------------------------------------------------------- pager

async def test_pager_send_puts_an_oma_message_on_the_wire(tmp_path: Path) -> None:
    """OMA §8.1.1: MESSAGE to the recipient with Accept-Contact *;+g.oma.sip-im and a CPIM
    body asking for IMDN (RFC 5438 §6.3); the Message-ID goes to the Tc2 tracker."""
    async with fake_context(tmp_path) as ctx:
        feature = pager(ctx)
        result = await feature.send("bob", "hi bob")
        [msg] = ctx.ua.requests("MESSAGE")
        assert str(msg.uri) == BOB
        assert str(msg.from_addr.uri) == ALICE and str(msg.to_addr.uri) == BOB
        assert msg.headers.get_all("Accept-Contact") == ["*;+g.oma.sip-im"]
        assert msg.content_type == "message/cpim"
        cpim = parse_cpim(msg.body)
        assert cpim.imdn_message_id == result.message_id
        assert set(cpim.disposition_notification) == {"positive-delivery", "display"}
        assert cpim.payload == b"hi bob"
        assert (result.mode, result.status) == ("pager", 200)
        assert result.message_id in feature.inbox.tracker


async def test_pager_send_falls_back_to_plain_text_on_415(tmp_path: Path) -> None:
    """RFC 3428 §11 / RFC 3261 §21.4.16: a 415 whose Accept lacks message/cpim -> the bare
    text/plain."""
    answers = iter([status(415, Accept="text/plain"), status(200)])
    async with fake_context(tmp_path, answer=lambda r: next(answers)(r)) as ctx:
        result = await pager(ctx).send("bob", "plain please")
        first, second = ctx.ua.requests("MESSAGE")
        assert first.content_type == "message/cpim"
        assert second.content_type == "text/plain" and second.body == b"plain please"
        assert result.mode == "pager-plain"


async def test_pager_send_raises_the_sip_status(tmp_path: Path) -> None:
    async with fake_context(tmp_path, answer=status(404)) as ctx:
        with pytest.raises(SessionFailed) as info:
            await pager(ctx).send("nobody", "hi")
        assert info.value.status == 404


async def test_pager_large_body_goes_in_a_large_message_invite(tmp_path: Path) -> None:
    """OMA §8.1 / §9.1.1.2: above pager_max the IM is sent in its own session: INVITE with
    +g.oma.sip-im.large-message, a=sendonly and the CPIM size in a=file-selector."""
    async with fake_context(tmp_path, answer=status(488)) as ctx:
        with pytest.raises(SessionFailed) as info:
            await pager(ctx).send("bob", "x" * 2000)
        assert info.value.status == 488
        assert ctx.ua.requests("MESSAGE") == []
        [inv] = ctx.ua.requests("INVITE")
        ac = inv.headers.get_all("Accept-Contact")[0]
        assert "+g.oma.sip-im" in ac and "+g.oma.sip-im.large-message" in ac
        media = MsrpMedia.from_media(the_offer(inv).media[0])
        assert media.direction.value == "sendonly"
        assert media.file is not None and media.file.selector.size is not None
        assert media.file.selector.size > 2000


def _cpim_message(text: str, imdn: tuple[str, ...]) -> bytes:
    return build_im(sender=BOB, recipient=ALICE, body=text.encode(), content_type="text/plain",
                    message_id="m-1", imdn=imdn,
                    date_time=CpimDateTime("2026-12-04T20:00:00Z")).to_bytes()


def _message_request(body: bytes, ctype: str = "message/cpim") -> IncomingRequest:
    inc, _ = incoming(
        f"MESSAGE {ALICE} SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bK1\n"
        f"From: <{BOB}>;tag=b1\nTo: <{ALICE}>\nCall-ID: c1\nCSeq: 1 MESSAGE\n"
        f"Max-Forwards: 70\nContent-Type: {ctype}\nContent-Length: {len(body)}\n\n"
        .encode() + body)
    return inc


async def test_incoming_message_is_presented_and_acknowledged_with_an_imdn(
        tmp_path: Path) -> None:
    """OMA §8.2.1: 200 with User-Agent; the message becomes an event; the delivery
    notification asked for goes back in a MESSAGE (RFC 5438 §7.2.1.1)."""
    async with fake_context(tmp_path) as ctx:
        feature = pager(ctx)
        body = _cpim_message("hello alice", ("positive-delivery",))
        inc, responses = incoming(_message_request(body).request.to_bytes())
        feature.on_message(inc)
        [resp] = responses
        assert resp.status == 200 and (resp.headers.get("User-Agent") or "").startswith(
            "IM-client/OMA1.0")
        [ev] = ctx.of_type(MessageEvent)
        assert (ev.sender, ev.text, ev.mode, ev.message_id) == (BOB, "hello alice", "pager",
                                                                "m-1")
        await ctx.settle()
        [imdn_msg] = ctx.ua.requests("MESSAGE")
        assert str(imdn_msg.uri) == BOB
        doc = parse_imdn(parse_cpim(imdn_msg.body).payload)
        assert (doc.message_id, doc.kind, doc.status) == ("m-1", NotificationType.DELIVERY,
                                                          Status.DELIVERED)


async def test_incoming_message_without_imdn_request_sends_none(tmp_path: Path) -> None:
    async with fake_context(tmp_path) as ctx:
        inc, responses = incoming(_message_request(_cpim_message("quiet", ())).request
                                  .to_bytes())
        pager(ctx).on_message(inc)
        await ctx.settle()
        assert [r.status for r in responses] == [200]
        assert len(ctx.of_type(MessageEvent)) == 1
        assert ctx.ua.requests("MESSAGE") == []


async def test_inbox_matches_an_imdn_to_the_sent_message(tmp_path: Path) -> None:
    """OMA §15.2: a notification for a Message-ID we track is 'expected'; others are not."""
    async with fake_context(tmp_path) as ctx:
        feature = pager(ctx)
        sent = await feature.send("bob", "track me")
        from simpleim.client.pager import decode_body
        original = decode_body("message/cpim", ctx.ua.sent[0].body, sender=ALICE)
        doc = imdn_reply(original, NotificationType.DELIVERY, Status.DELIVERED, me=BOB,
                         date_time=CpimDateTime("2026-12-04T20:00:01Z"))
        assert doc is not None
        inc, _ = incoming(_message_request(doc.to_bytes()).request.to_bytes())
        feature.on_message(inc)
        [ev] = ctx.of_type(ImdnEvent)
        assert (ev.message_id, ev.status, ev.expected) == (sent.message_id, "delivered", True)


# ---------------------------------------------------------------------------- chats

async def test_chat_invite_carries_the_oma_session_headers(tmp_path: Path) -> None:
    """OMA §7.1.1.1 / §7.1.1.2, seed 002: the INVITE's Request-URI, Accept-Contact, Contact,
    P-Preferred-Service, Supported/Session-Expires, Conversation-ID/Contribution-ID and the
    MSRP SDP offer; a 486 ends the attempt with the status."""
    async with fake_context(tmp_path, answer=status(486)) as ctx:
        chats = Chats(ctx, Inbox(ctx))
        with pytest.raises(SessionFailed) as info:
            await chats.start("bob")
        assert info.value.status == 486
        [inv] = ctx.ua.requests("INVITE")
        assert str(inv.uri) == BOB and str(inv.to_addr.uri) == BOB
        ac = inv.headers.get_all("Accept-Contact")
        assert len(ac) == 1 and ac[0].startswith("*;+g.oma.sip-im;")
        assert 'urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session' in ac[0]
        assert inv.headers.get("P-Preferred-Service") == \
            "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session"
        [contact] = inv.contacts
        assert str(contact.uri) == "sip:alice@127.0.0.1:5099"
        assert "+g.oma.sip-im" in contact.params
        assert "timer" in inv.supported
        assert inv.headers.get("Session-Expires") == "1800;refresher=uac"
        conv, contrib = inv.headers.get("Conversation-ID"), inv.headers.get("Contribution-ID")
        assert conv and contrib and conv != contrib
        offer = the_offer(inv)
        assert [m.media for m in offer.media] == ["message"]
        media = MsrpMedia.from_media(offer.media[0], offer)
        assert media.path and media.path[0].startswith(f"msrp://127.0.0.1:{ctx.msrp.port}/")
        assert "message/cpim" in media.accept_types
        # the failed attempt is gone from the registry and reported
        assert len(ctx.sessions) == 0
        assert [e.state for e in ctx.of_type(SessionEvent)] == ["ended"]


# ---------------------------------------------------------------------------- files / images

async def test_file_push_invite_describes_each_file(tmp_path: Path) -> None:
    """OMA §10.1 / RFC 5547 §8.2: one sendonly m-line per file with file-selector (name, type,
    size, sha-1), file-transfer-id; a message/cpim part with the IMDN request; 603 ->
    SessionFailed(603)."""
    a = tmp_path / "a.txt"
    a.write_text("first\n")
    b = tmp_path / "b.bin"
    b.write_bytes(b"\x00" * 100)
    async with fake_context(tmp_path, answer=status(603)) as ctx:
        files = FileTransfers(ctx, Inbox(ctx))
        with pytest.raises(SessionFailed) as info:
            await files.send("bob", [a, b])
        assert info.value.status == 603
        [inv] = ctx.ua.requests("INVITE")
        assert (inv.content_type or "").startswith("multipart/mixed")
        parts = body_parts(inv)
        cpim_part = next(p for p in parts if p.content_type == "message/cpim")
        cpim = parse_cpim(cpim_part.body)
        assert cpim.imdn_message_id and "positive-delivery" in cpim.disposition_notification
        offer = the_offer(inv)
        described = [MsrpMedia.from_media(m, offer) for m in offer.media]
        assert [d.direction.value for d in described] == ["sendonly", "sendonly"]
        sels = [d.file.selector for d in described if d.file is not None]
        assert [(s.name, s.size) for s in sels] == [("a.txt", 6), ("b.bin", 100)]
        assert all(s.hash is not None and s.hash.algorithm.lower() == "sha-1" for s in sels)
        ids = [d.file.transfer_id for d in described if d.file is not None]
        assert all(ids) and len(set(ids)) == 2


async def test_image_share_invite_follows_ir79(tmp_path: Path) -> None:
    """IR.79 §2.2/§2.4: Accept-Contact with the image share IARI, P-Preferred-Service, a
    sendonly m-line with file-selector type/size, file-disposition:render, i= title."""
    img = tmp_path / "p.png"
    img.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    async with fake_context(tmp_path, answer=status(603)) as ctx:
        images = ImageShares(ctx, FileTransfers(ctx, Inbox(ctx)))
        with pytest.raises(SessionFailed) as info:
            await images.share("bob", img, title="my picture")
        assert info.value.status == 603
        [inv] = ctx.ua.requests("INVITE")
        ac = inv.headers.get_all("Accept-Contact")[0]
        assert "+g.3gpp.cs-voice" in ac and "gsma-is" in ac
        assert inv.headers.get("P-Preferred-Service") == \
            "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.largemsg"
        offer = the_offer(inv)
        media = MsrpMedia.from_media(offer.media[0], offer)
        assert media.direction.value == "sendonly"
        assert media.file is not None and media.file.disposition == "render"
        assert (media.file.selector.type, media.file.selector.size) == ("image/png", 72)
        assert media.title == "my picture"


# ---------------------------------------------------------------------------- capabilities

async def test_capability_query_retries_480_and_caches(tmp_path: Path) -> None:
    """IR.79 §2.3: OPTIONS with Accept-Contact *;+g.3gpp.cs-voice; a 480 is retried; the
    answer is cached (the second query sends nothing)."""
    answers = iter([status(480), status(200)])
    async with fake_context(tmp_path, answer=lambda r: next(answers)(r),
                            options_retry_delay=0.0) as ctx:
        caps = CapabilityQueries(ctx)
        first = await caps.query("bob")
        assert first.status == 200
        sent = ctx.ua.requests("OPTIONS")
        assert len(sent) == 2
        assert all(r.headers.get_all("Accept-Contact") == ["*;+g.3gpp.cs-voice"] for r in sent)
        again = await caps.query("bob")
        assert again == first and len(ctx.ua.requests("OPTIONS")) == 2
        assert [e.cached for e in ctx.of_type(CapabilitiesEvent)] == [False, True]


# ---------------------------------------------------------------------------- INVITE router

SDP_CHAT = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=message 7394 TCP/MSRP *\r\na=accept-types:message/cpim\r\n"
            "a=path:msrp://127.0.0.1:7394/abc;tcp\r\n")
SDP_FILE = SDP_CHAT + "a=sendonly\r\na=file-selector:name:\"x.txt\" type:text/plain size:3\r\n"


def _invite(sdp: str | None, accept_contact: str = "*;+g.oma.sip-im",
            extra: str = "") -> tuple[IncomingRequest, list[SipResponse]]:
    body = (sdp or "").encode()
    ctype = "Content-Type: application/sdp\n" if sdp else ""
    return incoming(
        f"INVITE {ALICE} SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bK2\n"
        f"From: <{BOB}>;tag=b2\nTo: <{ALICE}>\nCall-ID: inv-1\nCSeq: 1 INVITE\n"
        f"Contact: <sip:bob@127.0.0.1:5098>\nMax-Forwards: 70\n"
        f"Accept-Contact: {accept_contact}\n{extra}{ctype}Content-Length: {len(body)}\n\n"
        .encode() + body)


async def test_router_sends_each_kind_to_its_feature_and_takes_new_routes(
        tmp_path: Path) -> None:
    """OMA §7.1.2 (C-ST-00): the request's tags / SDP decide the handler; a later feature
    (here a conference focus) plugs in with a route, no central if-chain is touched."""
    async with fake_context(tmp_path) as ctx:
        router = InviteRouter(ctx)
        seen: list[str] = []

        def record(kind: str):  # noqa: ANN202
            async def handler(inc: IncomingRequest, offer: SessionDescription) -> None:
                seen.append(kind)
            return handler

        inbox = Inbox(ctx)
        files = FileTransfers(ctx, inbox)
        for feature in (LargeMessages(ctx, inbox), ImageShares(ctx, files), files,
                        Chats(ctx, inbox)):
            feature.register(router)
        # the built-in features register their real handlers; re-point them to the recorder
        # to see the decision without running the sessions
        builtin = router.routes
        router = InviteRouter(ctx)
        for r in builtin:
            router.add(r.kind, r.matches, record(r.kind), priority=r.priority)
        router.add("conference", lambda f: "isfocus" in f.accept_contact, record("conference"),
                   priority=500)
        cases = [
            (_invite(SDP_CHAT), "chat"),
            (_invite(SDP_FILE), "file"),
            (_invite(SDP_CHAT, "*;+g.oma.sip-im;+g.oma.sip-im.large-message"), "large"),
            (_invite(SDP_FILE, '*;+g.3gpp.iari-ref="urn%3Aurn-7%3A3gpp-application.ims.iari'
                               '.gsma-is"'), "image"),
            (_invite(SDP_FILE, "*;+g.oma.sip-im",
                     "P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.largemsg\n"),
             "large"),
            (_invite(SDP_CHAT, "*;+g.oma.sip-im;isfocus"), "conference"),
        ]
        for (inc, responses), _kind in cases:
            router.on_invite(inc)
            assert [r.status for r in responses] == [100]
        await ctx.settle()
        assert seen == [kind for _inc, kind in cases]


async def test_router_refuses_what_no_feature_takes(tmp_path: Path) -> None:
    """RFC 3264 §4: no offer -> 488; RFC 4028 §8: Session-Expires below Min-SE -> 422 with
    Min-SE; no matching route -> 488; nothing is spawned for any of them."""
    async with fake_context(tmp_path) as ctx:
        router = InviteRouter(ctx)
        inc, responses = _invite(None)
        router.on_invite(inc)
        assert [r.status for r in responses] == [488]
        inc, responses = _invite(SDP_CHAT, extra="Session-Expires: 10\n")
        router.on_invite(inc)
        assert [r.status for r in responses] == [422]
        assert responses[0].headers.get("Min-SE") == str(int(ctx.config.timers.min_se))
        inc, responses = _invite(SDP_CHAT)          # no route registered at all
        router.on_invite(inc)
        assert [r.status for r in responses] == [488]
        assert ctx.tasks == []


def test_invite_facts_read_tags_service_and_contact() -> None:
    inc, _ = _invite(SDP_FILE, "*;+g.oma.sip-im",
                     'P-Asserted-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session\n')
    facts = InviteFacts.of(inc, None)
    assert facts.accept_contact == "*;+g.oma.sip-im"
    assert "oma.cpm.session" in facts.service
    assert facts.has_file is False and facts.contact_icsi == frozenset()


async def test_large_message_with_unacceptable_media_gets_488(tmp_path: Path) -> None:
    """C-LM-07 (OMA §9.2.1.2): an m-line we cannot take -> 488 Not Acceptable Here (after
    the 180); no 200, no session left.  (Any accept-types on an MSRP line is acceptable:
    a large message is taken whatever its type, LARGE_CAPS accepts '*'.)"""
    from simpleim.client.largemsg import LARGE_CAPS
    from simpleim.sdp import parse_sdp

    assert "*" in LARGE_CAPS.accept_types
    async with fake_context(tmp_path) as ctx:
        large = LargeMessages(ctx, Inbox(ctx))
        sdp_text = SDP_CHAT.replace("m=message 7394 TCP/MSRP *", "m=audio 7394 RTP/AVP 0")
        inc, responses = _invite(sdp_text, "*;+g.oma.sip-im;+g.oma.sip-im.large-message")
        await large.on_invite(inc, parse_sdp(sdp_text))
        assert [r.status for r in responses] == [180, 488]
        assert len(ctx.sessions) == 0


def test_policy_answer_timeout_from_the_config_file(tmp_path: Path) -> None:
    """The 408 deadline of an unanswered invitation (OMA §7.1.2.1) is configurable."""
    from simpleim.client.config import load_config
    from simpleim.errors import ConfigError

    good = tmp_path / "good.toml"
    good.write_text('account = "alice@example.test"\n[policy]\nsessions = "ask"\n'
                    'answer_timeout = 5\n')
    cfg = load_config(path=good, env={})
    assert (cfg.policy.sessions, cfg.policy.answer_timeout) == ("ask", 5.0)
    bad = tmp_path / "bad.toml"
    bad.write_text('account = "alice@example.test"\n[policy]\nanswer_timeout = "soon"\n')
    with pytest.raises(ConfigError):
        load_config(path=bad, env={})
    with pytest.raises(ConfigError):
        load_config(path=good, env={}).policy.__class__(answer_timeout=0)


def test_public_client_api_names_no_any() -> None:
    """Issue 8 §1: no ``Any`` in a public signature of the client package (the names in the
    ``__all__`` of each module: functions, public methods and properties, dataclass fields)."""
    import importlib
    import inspect
    import pkgutil
    import re

    import simpleim.client as package

    any_word = re.compile(r"\bAny\b")
    found: list[str] = []

    def check(where: str, annotations: dict[str, object]) -> None:
        for name, ann in annotations.items():
            if any_word.search(str(ann)):
                found.append(f"{where}:{name}")

    checked = 0
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"simpleim.client.{info.name}")
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                check(f"{info.name}.{name}", obj.__annotations__)
                checked += 1
            elif inspect.isclass(obj) and obj.__module__ == module.__name__:
                check(f"{info.name}.{name}", getattr(obj, "__annotations__", {}))
                for attr, member in vars(obj).items():
                    if attr.startswith("_") and attr != "__init__":
                        continue
                    func = member.fget if isinstance(member, property) else member
                    if inspect.isfunction(func):
                        check(f"{info.name}.{name}.{attr}", func.__annotations__)
                        checked += 1
    assert checked > 80
    assert found == []
