"""conference-info (RFC 4575): parse, build, partial notifications, version ordering."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simpleim.content.conference_info import (
    ConferenceDescription,
    ConferenceInfo,
    ConferenceState,
    ConferenceVersionError,
    ElementState,
    Endpoint,
    Media,
    User,
    apply_notification,
    parse_conference_info,
)
from simpleim.errors import ContentError

FULL = (Path(__file__).parent / "vectors" / "conference-info" / "rfc4575-full.xml").read_bytes()
NS = 'xmlns="urn:ietf:params:xml:ns:conference-info"'


def test_rfc4575_full_state_example() -> None:
    """RFC 4575 §6 full-state example (rcsjta's shortened transcription)."""
    ci = parse_conference_info(FULL)
    assert ci.entity == "sips:conf233@example.com" and ci.version == 1
    assert ci.state is ElementState.FULL
    assert ci.description is not None
    assert ci.description.subject is not None and ci.description.subject.startswith("Agenda")
    assert ci.description.maximum_user_count == 50
    assert ci.description.service_uris[0].purpose == "web-page"
    assert ci.conference_state == ConferenceState(user_count=33)
    bob = ci.user("sip:bob@example.com")
    assert bob is not None and bob.display_text == "Bob Hoskins"
    ep = bob.endpoints[0]
    assert ep.status == "disconnected" and ep.disconnection_method == "departed"
    assert ep.disconnection_info is not None
    assert ep.disconnection_info.reason == "bad voice quality"
    assert ep.media == (Media("1", "main audio", "audio", "34567", "432424", "sendrecv"),)
    alice = ci.user("sip:alice@example.com")
    assert alice is not None
    assert alice.endpoints[0].joining_method == "dialed-out"
    assert alice.endpoints[0].media[0].src_id == "534232"
    assert parse_conference_info(ci.to_bytes()) == ci


def _partial(version: int, users: str, users_state: str = "partial") -> bytes:
    return (f'<conference-info {NS} entity="sips:conf233@example.com" state="partial" '
            f'version="{version}"><users state="{users_state}">{users}</users>'
            f"</conference-info>").encode()


def test_partial_notification_adds_updates_and_deletes() -> None:
    """RFC 4575 §6 partial-state example pattern: a user joins / changes / leaves."""
    full = parse_conference_info(FULL)
    add = _partial(2, '<user entity="sip:carol@example.com" state="full">'
                      '<display-text>Carol</display-text>'
                      '<endpoint entity="sip:carol@pc.example.com"><status>connected</status>'
                      '</endpoint></user>')
    s2 = apply_notification(full, parse_conference_info(add))
    assert s2.version == 2 and s2.user("sip:carol@example.com") is not None
    assert s2.description == full.description
    change = _partial(3, '<user entity="sip:bob@example.com" state="partial">'
                         '<endpoint entity="sip:bob@pc33.example.com" state="partial">'
                         '<status>connected</status></endpoint></user>')
    s3 = apply_notification(s2, parse_conference_info(change))
    bob = s3.user("sip:bob@example.com")
    assert bob is not None and bob.display_text == "Bob Hoskins"
    assert bob.endpoints[0].status == "connected"
    assert bob.endpoints[0].media == full.user("sip:bob@example.com").endpoints[0].media  # type: ignore[union-attr]
    gone = _partial(4, '<user entity="sip:alice@example.com" state="deleted"/>')
    s4 = apply_notification(s3, parse_conference_info(gone))
    assert s4.user("sip:alice@example.com") is None and len(s4.users) == 2
    # stale and duplicate versions are ignored
    assert apply_notification(s4, parse_conference_info(change)) is s4
    # a gap asks for a full refresh
    with pytest.raises(ConferenceVersionError):
        apply_notification(s4, parse_conference_info(_partial(9, "")))
    # a newer full state replaces everything
    newer = ConferenceInfo("sips:conf233@example.com", version=10, users=(User("sip:z@x"),))
    assert apply_notification(s4, newer) == newer


def test_partial_without_full_state_and_other_conference() -> None:
    with pytest.raises(ConferenceVersionError):
        apply_notification(None, parse_conference_info(_partial(1, "")))
    other = ConferenceInfo("sip:other@example.com", version=5)
    with pytest.raises(ContentError):
        apply_notification(parse_conference_info(FULL), other)


def test_endpoint_delete_and_media_update() -> None:
    base = ConferenceInfo("sip:c@x", version=1, users=(
        User("sip:u@x", endpoints=(Endpoint("sip:u@pc1", media=(Media("1", type="message"),)),
                                   Endpoint("sip:u@pc2"))),))
    upd = ConferenceInfo("sip:c@x", ElementState.PARTIAL, 2, users_state=ElementState.PARTIAL,
                         users=(User("sip:u@x", ElementState.PARTIAL, endpoints=(
                             Endpoint("sip:u@pc1", ElementState.PARTIAL,
                                      media=(Media("1", type="message", status="recvonly"),)),
                             Endpoint("sip:u@pc2", ElementState.DELETED))),))
    out = apply_notification(base, parse_conference_info(upd.to_bytes()))
    (user,) = out.users
    assert [e.entity for e in user.endpoints] == ["sip:u@pc1"]
    assert user.endpoints[0].media[0].status == "recvonly"


def test_oma_yourown_attribute_is_kept() -> None:
    xml = (f'<conference-info {NS} xmlns:oma="urn:oma:xml:im" entity="sip:c@x" state="full" '
           f'version="1"><users><user entity="sip:me@x" oma:yourown="true"/></users>'
           f"</conference-info>").encode()
    (me,) = parse_conference_info(xml).users
    assert me.extra_attributes == (("{urn:oma:xml:im}yourown", "true"),)


@pytest.mark.parametrize("xml", [
    b"<conference-info/>",
    f'<conference-info {NS}/>'.encode(),
    f'<conference-info {NS} entity="x" version="v"/>'.encode(),
    f'<conference-info {NS} entity="x" state="weird"/>'.encode(),
    f'<conference-info {NS} entity="x"><users><user/></users></conference-info>'.encode(),
    f'<conference-info {NS} entity="x"><conference-state><active>maybe</active>'
    f"</conference-state></conference-info>".encode(),
])
def test_invalid_documents(xml: bytes) -> None:
    with pytest.raises(ContentError) as exc:
        parse_conference_info(xml)
    assert exc.value.status == 400


def test_build_round_trip_with_everything() -> None:
    ci = ConferenceInfo("sip:c@x", version=7, description=ConferenceDescription(
        display_text="Chat", subject="s & t", maximum_user_count=5),
        conference_state=ConferenceState(2, True, False),
        users=(User("sip:a@x", display_text="A", roles=("participant",), endpoints=(
            Endpoint("sip:a@pc", status="connected", joining_method="dialed-in"),)),))
    assert parse_conference_info(ci.to_bytes()) == ci


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_content_error(data: bytes) -> None:
    try:
        parse_conference_info(data)
    except ContentError:
        pass
