"""resource-lists (RFC 4826) and recipient lists (RFC 5364 / 5365 / 5366)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simpleim.content.resource_lists import (
    ANONYMOUS_URI,
    CopyControl,
    Entry,
    EntryRef,
    External,
    ResourceList,
    ResourceLists,
    build_recipient_list,
    parse_resource_lists,
    recipient_list_headers,
)
from simpleim.errors import ContentError

VECTOR = (Path(__file__).parent / "vectors" / "resource-lists" /
          "rfc5365-recipient-list.xml").read_bytes()


def test_rfc5365_recipient_list_vector() -> None:
    doc = parse_resource_lists(VECTOR)
    assert [(e.uri, e.copy_control) for e in doc.recipients()] == [
        ("sip:bill@example.com", CopyControl.TO),
        ("sip:joe@example.org", CopyControl.CC),
        ("sip:ted@example.net", CopyControl.BCC)]
    assert parse_resource_lists(doc.to_bytes()) == doc


def test_bcc_removed_and_anonymize_for_recipients() -> None:
    """RFC 5364: recipients never see bcc entries; anonymized entries are hidden."""
    doc = ResourceLists((ResourceList((Entry("sip:a@x", copy_control=CopyControl.TO),
                                       Entry("sip:b@x", copy_control=CopyControl.CC,
                                             anonymize=True),
                                       Entry("sip:c@x", copy_control=CopyControl.BCC))),))
    shown = doc.for_recipients()
    assert [e.uri for e in shown.entries()] == ["sip:a@x", ANONYMOUS_URI]
    assert b"sip:c@x" not in shown.to_bytes() and b"sip:b@x" not in shown.to_bytes()
    assert len(doc.recipients()) == 3


def test_nested_lists_refs_externals_and_duplicates() -> None:
    """RFC 4826 §3.2: nested lists, entry-ref, external; each recipient reached once."""
    xml = b"""<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
  <list name="friends">
    <display-name>Friends</display-name>
    <entry uri="sip:bill@example.com"><display-name>Bill Doe</display-name></entry>
    <entry-ref ref="resource-lists/users/sip:bill@example.com/index/~~/resource-lists/l1"/>
    <list name="close-friends">
      <entry uri="sip:joe@example.com"/>
      <entry uri="SIP:BILL@example.com"/>
    </list>
    <external anchor="http://xcap.example.org/resource-lists/users/sip:a@example.org/index"/>
    <unknown xmlns="urn:example:ext"/>
  </list>
</resource-lists>"""
    doc = parse_resource_lists(xml)
    (top,) = doc.lists
    assert top.name == "friends" and top.display_name == "Friends"
    assert isinstance(top.items[1], EntryRef) and isinstance(top.items[3], External)
    assert [e.uri for e in doc.recipients()] == ["sip:bill@example.com", "sip:joe@example.com"]
    assert doc.recipients()[0].display_name == "Bill Doe"
    assert parse_resource_lists(doc.to_bytes()) == doc


def test_build_recipient_list() -> None:
    doc = build_recipient_list(["sip:a@x"], cc=["sip:b@x"], bcc=["sip:c@x"])
    data = doc.to_bytes()
    assert b'xmlns:cp="urn:ietf:params:xml:ns:copycontrol"' in data
    assert b'cp:copyControl="bcc"' in data
    assert parse_resource_lists(data) == doc


@pytest.mark.parametrize("xml", [
    b"<resource-lists/>",
    b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list><entry/></list>'
    b"</resource-lists>",
    b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists" '
    b'xmlns:cp="urn:ietf:params:xml:ns:copycontrol"><list>'
    b'<entry uri="sip:a@x" cp:copyControl="xx"/></list></resource-lists>',
    b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists" '
    b'xmlns:cp="urn:ietf:params:xml:ns:copycontrol"><list>'
    b'<entry uri="sip:a@x" cp:count="-1"/></list></resource-lists>',
    b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list><entry-ref/></list>'
    b"</resource-lists>",
])
def test_invalid_documents(xml: bytes) -> None:
    with pytest.raises(ContentError) as exc:
        parse_resource_lists(xml)
    assert exc.value.status == 400


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_content_error(data: bytes) -> None:
    try:
        parse_resource_lists(data)
    except ContentError:
        pass


_uri = st.from_regex(r"\Asip:[a-z0-9]{1,8}@[a-z]{1,8}\.example\Z")


@settings(max_examples=100, deadline=None)
@given(st.lists(_uri, max_size=5), st.lists(_uri, max_size=5), st.lists(_uri, max_size=5))
def test_recipient_list_round_trip(to: list[str], cc: list[str], bcc: list[str]) -> None:
    doc = build_recipient_list(to, cc, bcc)
    assert parse_resource_lists(doc.to_bytes()) == doc


def test_recipient_list_part_headers() -> None:
    """RFC 5365 / RFC 5366: the list travels with Content-Disposition: recipient-list."""
    assert dict(recipient_list_headers()) == {
        "Content-Type": "application/resource-lists+xml",
        "Content-Disposition": "recipient-list"}
