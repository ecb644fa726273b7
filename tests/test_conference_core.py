"""The sans-I/O pieces of group chat: the RFC 6665 notifier table (sip/subscription.py), the
focus core (server/controlling/conference.py: ad-hoc INVITE checks, participant table,
release policy, RFC 4575 documents, MSRP switch decisions) and the conference repository
on both store backends."""

from __future__ import annotations

import pytest

from simpleim.content.conference_info import (
    YOUROWN,
    ElementState,
    apply_notification,
    parse_conference_info,
)
from simpleim.content.cpim import CpimAddress, build_cpim
from simpleim.content.resource_lists import build_recipient_list
from simpleim.server.controlling.conference import (
    Conference,
    ConferenceLimits,
    ParticipantInput,
    ParticipantStatus,
    conference_document,
    parse_adhoc_invite,
    switch_targets,
)
from simpleim.server.controlling.privacy import (
    ChatAlias,
    anonymity_refusal,
    chat_alias,
    presented,
)
from simpleim.server.roles import Reply
from simpleim.sip.message import SipRequest, parse_message
from simpleim.sip.multipart import MultipartPart, build_multipart
from simpleim.sip.subscription import (
    TRANSITIONS,
    SubAction,
    SubInput,
    Subscription,
    SubState,
    check_subscribe,
)
from simpleim.store.base import Store
from simpleim.store.conferences import ConferenceRecord

LIMITS = ConferenceLimits("example.test", max_participants=4)
SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
      b"m=message 9 TCP/MSRP *\r\na=accept-types:message/cpim\r\n" \
      b"a=path:msrp://127.0.0.1:9/x;tcp\r\n"


# ------------------------------------------------------------------ RFC 6665 table


def test_subscription_table_rows() -> None:
    sub = Subscription("conference", "sip:c@x", "sip:a@x")
    sub, action = sub.step(SubInput.SUBSCRIBE, 100.0, 600)
    assert (sub.state, action, sub.deadline, sub.version) == (
        SubState.ACTIVE, SubAction.NOTIFY_FULL, 700.0, 1)
    assert sub.state_header(200.0) == "active;expires=500"
    sub, action = sub.step(SubInput.CHANGED, 150.0)
    assert (action, sub.version) == (SubAction.NOTIFY_PARTIAL, 2)
    sub, action = sub.step(SubInput.SUBSCRIBE, 160.0, 300)       # refresh
    assert (action, sub.deadline, sub.version) == (SubAction.NOTIFY_FULL, 460.0, 3)
    ended, action = sub.step(SubInput.UNSUBSCRIBE, 170.0)
    assert action is SubAction.NOTIFY_TERMINATED
    assert ended.state_header(170.0) == "terminated;reason=timeout"
    gone, _ = sub.step(SubInput.GONE, 170.0)
    assert gone.state_header(170.0) == "terminated;reason=noresource"
    assert gone.step(SubInput.SUBSCRIBE, 180.0, 60)[1] is SubAction.REJECT_481
    expired, action = sub.step(SubInput.EXPIRED, 500.0)
    assert action is SubAction.NOTIFY_TERMINATED and expired.state is SubState.TERMINATED
    # every (state, input) pair has a row
    assert len(TRANSITIONS) == len(SubState) * len(SubInput)


@pytest.mark.parametrize(("event", "expires", "status", "granted", "header"), [
    ("conference", None, 200, 3600, None),
    ("conference;id=1", "120", 200, 120, None),
    ("conference", "99999", 200, 7200, None),
    ("conference", "0", 200, 0, None),
    ("conference", "5", 423, 0, ("Min-Expires", "60")),
    ("presence", "60", 489, 0, ("Allow-Events", "conference")),
    (None, "60", 489, 0, ("Allow-Events", "conference")),
    ("conference", "soon", 400, 0, None),
])
def test_check_subscribe(event: str | None, expires: str | None, status: int, granted: int,
                         header: tuple[str, str] | None) -> None:
    check = check_subscribe(event, expires, ("conference",), default=3600, min_expires=60,
                            max_expires=7200)
    assert check.status == status and check.expires == granted
    if header is not None:
        assert header in check.headers


# ------------------------------------------------------------------ ad-hoc INVITE


def _invite(members: list[str], *, require: bool = True, privacy: bool = False,
            list_body: bytes | None = None) -> SipRequest:
    listing = list_body if list_body is not None else \
        build_recipient_list(members).to_bytes()
    body, ctype = build_multipart([
        MultipartPart.create("application/sdp", SDP),
        MultipartPart.create("application/resource-lists+xml", listing,
                             (("Content-Disposition", "recipient-list"),))])
    head = ("INVITE sip:Conference-Factory@example.test SIP/2.0\r\n"
            "Via: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKx\r\n"
            "From: <sip:alice@example.test>;tag=a\r\nTo: <sip:Conference-Factory@example.test>"
            "\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1>\r\n"
            + ("Require: recipient-list-invite\r\n" if require else "")
            + ("Privacy: id\r\n" if privacy else "")
            + f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    msg = parse_message(head + body)
    assert isinstance(msg, SipRequest)
    return msg


def test_adhoc_invite_accepted_without_the_inviter() -> None:
    got = parse_adhoc_invite(_invite(["sip:bob@example.test", "sip:alice@example.test",
                                      "sip:carol@example.test"]), LIMITS)
    assert not isinstance(got, Reply)
    assert [e.uri for e in got.recipients] == ["sip:bob@example.test",
                                               "sip:carol@example.test"]


@pytest.mark.parametrize(("kwargs", "status", "warning"), [
    ({"require": False}, 400, "recipient-list-invite"),
    ({"list_body": b"<not-xml"}, 400, "bad recipient list"),
    ({"members": ["sip:alice@example.test"]}, 400, "empty recipient list"),
    ({"members": [f"sip:u{i}@example.test" for i in range(4)]}, 486,
     "102 too many participants"),
    ({"members": ["tel:+123"]}, 400, "not a SIP user URI"),
])
def test_adhoc_invite_refusals(kwargs: dict[str, object], status: int, warning: str) -> None:
    members = kwargs.pop("members", ["sip:bob@example.test"])
    got = parse_adhoc_invite(_invite(members, **kwargs), LIMITS)  # type: ignore[arg-type]
    assert isinstance(got, Reply) and got.status == status
    assert warning in dict(got.headers)["Warning"]


def test_anonymity_refused_when_not_allowed() -> None:
    limits = ConferenceLimits("example.test", allow_anonymity=False)
    got = parse_adhoc_invite(_invite(["sip:bob@example.test"], privacy=True), limits)
    assert isinstance(got, Reply) and got.status == 403
    assert "119 Anonymity not allowed" in dict(got.headers)["Warning"]


# ------------------------------------------------------------------ state and documents


def _conf() -> Conference:
    conf = Conference("sip:conf~1@example.test", "sip:alice@example.test")
    conf, _ = conf.step("sip:alice@example.test", ParticipantInput.JOINED)
    for who in ("sip:bob@example.test", "sip:carol@example.test"):
        conf, _ = conf.step(who, ParticipantInput.INVITED)
        conf, _ = conf.step(who, ParticipantInput.ANSWERED)
    return conf


def test_participant_table_and_release_policy() -> None:
    conf = _conf()
    assert [p.status for p in conf.participants] == [ParticipantStatus.CONNECTED] * 3
    assert conf.release_reason(LIMITS) is None
    same, changed = conf.step("sip:bob@example.test", ParticipantInput.ANSWERED)
    assert changed is None and same is conf                 # no such row
    conf, bob = conf.step("sip:bob@example.test", ParticipantInput.LEFT)
    assert bob is not None and bob.method == "departed"
    assert conf.release_reason(LIMITS) is None
    conf2, carol = conf.step("sip:carol@example.test", ParticipantInput.REMOVED)
    assert carol is not None and carol.method == "booted"
    assert "1d" in (conf2.release_reason(LIMITS) or "")     # only alice left
    conf3, _ = conf.step("sip:alice@example.test", ParticipantInput.LEFT)
    assert "1a" in (conf3.release_reason(LIMITS) or "")     # the initiator left
    conf4, again = conf.step("sip:bob@example.test", ParticipantInput.JOINED)
    assert again is not None and again.method == "dialed-in"   # rejoin
    assert Conference.from_json(conf4.uri, conf4.to_json()) == conf4


def test_documents_full_then_partial_fold_on_the_client() -> None:
    conf = _conf()
    full = parse_conference_info(conference_document(conf, 1, "sip:bob@example.test"))
    assert full.state is ElementState.FULL and full.version == 1
    assert full.conference_state is not None and full.conference_state.user_count == 3
    me = full.user("sip:bob@example.test")
    assert me is not None and (YOUROWN, "true") in me.extra_attributes
    assert all(not u.extra_attributes for u in full.users if u is not me)
    conf, left = conf.step("sip:carol@example.test", ParticipantInput.LEFT)
    assert left is not None
    raw = conference_document(conf, 2, "sip:bob@example.test", changed=(left,))
    partial = parse_conference_info(raw)
    assert partial.state is ElementState.PARTIAL and partial.version == 2
    assert [u.entity for u in partial.users] == ["sip:carol@example.test"]
    assert b"<disconnection-method>departed</disconnection-method>" in raw
    folded = apply_notification(full, partial)
    carol = folded.user("sip:carol@example.test")
    assert carol is not None and carol.endpoints[0].status == "disconnected"
    # the partial document grows with what changed, not with the conference
    assert len(raw) < len(conference_document(conf, 2, None))


def _cpim(frm: str, to: str, *, notification: bool = False) -> bytes:
    return build_cpim(from_addr=CpimAddress(frm), to=[CpimAddress(to)], body=b"x",
                      content_type="text/plain",
                      content_disposition="notification" if notification else None
                      ).to_bytes()


def test_switch_decisions() -> None:
    conf = _conf()
    alice, bob, carol = (p.uri for p in conf.participants)
    to_all = switch_targets(conf, alice, "message/cpim", _cpim(alice, conf.uri))
    assert set(to_all.to) == {bob, carol}
    # the conference as written in the focus's Contact (address instead of domain)
    via_contact = switch_targets(conf, alice, "message/cpim",
                                 _cpim(alice, "sip:conf~1@127.0.0.1:5060;transport=tcp"))
    assert set(via_contact.to) == {bob, carol}
    spoofed = switch_targets(conf, alice, "message/cpim", _cpim(bob, conf.uri))
    assert spoofed.refuse == 403 and not spoofed.to          # §7.2.3.3 step 1
    private = switch_targets(conf, alice, "message/cpim", _cpim(alice, carol))
    assert private.to == (carol,)                            # §7.2.3.4
    imdn = switch_targets(conf, bob, "message/cpim", _cpim(bob, alice, notification=True))
    assert imdn.to == (alice,)
    composing = switch_targets(conf, carol, "application/im-iscomposing+xml", b"<x/>")
    assert set(composing.to) == {alice, bob}
    assert switch_targets(conf, alice, "message/cpim", b"garbage").refuse == 400
    assert private.private and not to_all.private
    # §7.2.3.4 a): private messages not allowed -> MSRP 403, messages to all still go
    assert switch_targets(conf, alice, "message/cpim", _cpim(alice, carol),
                          private_allowed=False).refuse == 403
    assert not switch_targets(conf, alice, "message/cpim", _cpim(alice, conf.uri),
                              private_allowed=False).refuse


def test_chat_alias_mapping_table() -> None:
    """§7.2.3.2: an anonymous participant's unique alias and anonymous identity; its From
    in the copies, found by that identity only; stored state of before aliases loads."""
    conf = _conf()
    alice, bob, carol = (p.uri for p in conf.participants)
    conf, _ = conf.step(alice, ParticipantInput.LEFT)
    entry = chat_alias(conf, alice, None, True)
    assert entry == ChatAlias("Anonymous", "sip:anonymous-1@anonymous.invalid")
    conf, _ = conf.step(alice, ParticipantInput.JOINED, display=entry.display,
                        shown=entry.shown)
    # the same alias asked by another: made unique; the identity is its own
    other = chat_alias(conf, carol, "anonymous", True)
    assert other == ChatAlias("anonymous-2", "sip:anonymous-2@anonymous.invalid")
    assert chat_alias(conf, carol, "Caz", False) == ChatAlias("Caz")
    assert chat_alias(conf, alice, "A", True).shown == entry.shown      # kept on rejoin
    assert presented(conf, alice) == (entry.shown, "Anonymous")
    assert presented(conf, bob) == (bob, None)
    shown = entry.shown or ""
    copy = switch_targets(conf, alice, "message/cpim", _cpim(alice, conf.uri))
    assert copy.body is not None and f'From: "Anonymous" <{shown}>'.encode() in copy.body
    assert alice.encode() not in copy.body
    assert switch_targets(conf, alice, "message/cpim", _cpim(shown, conf.uri)).to
    assert switch_targets(conf, bob, "message/cpim", _cpim(bob, alice)).to == ()
    assert switch_targets(conf, bob, "message/cpim", _cpim(bob, shown)).to == (alice,)
    doc = parse_conference_info(conference_document(conf, 1, alice))
    (me,) = [u for u in doc.users if (YOUROWN, "true") in u.extra_attributes]
    assert (me.entity, me.display_text) == (shown, "Anonymous")
    assert alice not in [u.entity for u in doc.users]
    again = Conference.from_json(conf.uri, conf.to_json())
    assert again.participant(alice) == conf.participant(alice)
    old = conf.to_json().replace(f', "{shown}"]', "]")
    assert Conference.from_json(conf.uri, old).participant(alice).shown is None  # type: ignore[union-attr]
    assert anonymity_refusal(None, alice, ConferenceLimits("example.test")) is None
    refusal = anonymity_refusal(None, alice, ConferenceLimits("example.test",
                                                              allow_anonymity=False))
    assert refusal is not None and refusal.status == 403


async def test_conference_repository(store: Store) -> None:
    repo = store.conferences
    await repo.put(ConferenceRecord("sip:conf~1@x", "sip:a@x", "active", 10.0, "{}"))
    await repo.put(ConferenceRecord("sip:conf~2@x", "sip:a@x", "released", 10.0, "{}"))
    await repo.put(ConferenceRecord("sip:conf~1@x", "sip:a@x", "active", 20.0, '{"v": 2}'))
    got = await repo.get("sip:conf~1@x")
    assert got is not None and got.updated == 20.0 and got.state == '{"v": 2}'
    assert [r.uri for r in await repo.active()] == ["sip:conf~1@x"]
    assert await repo.delete_before(15.0) == 1
    assert await repo.get("sip:conf~2@x") is None
    assert await repo.get("sip:conf~9@x") is None
