"""XDM documents in the store (schema v5) and the group model the Controlling Function
reads (GroupDirectory), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from simpleim.errors import XcapError
from simpleim.server.xdm import (
    DocumentRef,
    GroupActions,
    GroupUsage,
    HistoryEntry,
    StoredDeferredMetadata,
    StoredGroupDirectory,
    history_list,
    normalize_uri,
)
from simpleim.server.xdm.documents import DocumentService, check_preconditions
from simpleim.server.xdm.groups import parse_groups
from simpleim.server.xdm.usages import AUID_GROUP_USAGE, AUID_GROUPS, USAGES
from simpleim.store import Store
from simpleim.store.deferred import DeferredMessage
from simpleim.store.xdm import XdmRecord

ALICE = "sip:alice@example.com"
BOB = "sip:bob@example.com"

GROUP = b"""<?xml version="1.0" encoding="UTF-8"?>
<group xmlns="urn:oma:xml:poc:list-service"
       xmlns:rl="urn:ietf:params:xml:ns:resource-lists"
       xmlns:cp="urn:ietf:params:xml:ns:common-policy"
       xmlns:ocp="urn:oma:xml:xdm:common-policy">
  <list-service uri="sip:friends@example.com">
    <display-name>Friends</display-name>
    <subject>weekend plans</subject>
    <list>
      <entry uri="sip:alice@example.com"><rl:display-name>Alice</rl:display-name></entry>
      <entry uri="sip:bob@example.com"><rl:display-name>Bob</rl:display-name></entry>
    </list>
    <invite-members>true</invite-members>
    <max-participant-count>5</max-participant-count>
    <cp:ruleset>
      <cp:rule id="members">
        <cp:conditions><ocp:is-list-member/></cp:conditions>
        <cp:actions>
          <allow-initiate-conference>true</allow-initiate-conference>
          <join-handling>allow</join-handling>
          <allow-conference-state>true</allow-conference-state>
        </cp:actions>
      </cp:rule>
      <cp:rule id="guest">
        <cp:conditions><cp:identity><cp:one id="sip:carol@example.com"/></cp:identity>
        </cp:conditions>
        <cp:actions><join-handling>allow</join-handling></cp:actions>
      </cp:rule>
      <cp:rule id="mallory">
        <cp:conditions><cp:identity><cp:one id="sip:mallory@example.com"/></cp:identity>
        </cp:conditions>
        <cp:actions><join-handling>block</join-handling></cp:actions>
      </cp:rule>
    </cp:ruleset>
    <session-active-policy>
      <auto-release>true</auto-release>
      <number-of-remaining-participants>1</number-of-remaining-participants>
    </session-active-policy>
    <supported-services><service enabler="urn:oma:xml:im"/></supported-services>
  </list-service>
</group>
"""

USAGE_LIST = b"""<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"
                xmlns:ux="urn:oma:xml:xdm:extensions">
  <list name="oma_grouplist">
    <entry uri="sip:friends@example.com">
      <ux:uriusages><ux:imusage>chat</ux:imusage></ux:uriusages>
    </entry>
  </list>
</resource-lists>
"""


def clock() -> float:
    return 1_700_000_000.0


async def test_repository_conditional_writes_and_uri_index(store: Store) -> None:
    repo = store.xdm
    rec = XdmRecord(AUID_GROUPS, ALICE, "friends", "e1", "<a/>", 1.0)
    assert await repo.write(rec, expect=None, uris=["sip:g@example.com"])
    # a second create of the same document loses (If-None-Match: * semantics)
    assert not await repo.write(XdmRecord(AUID_GROUPS, ALICE, "friends", "e9", "<b/>", 2.0),
                                expect=None)
    assert await repo.claimed_by("sip:g@example.com") == (AUID_GROUPS, ALICE, "friends")
    # a stale entity tag changes nothing, not even the URI index
    stale = XdmRecord(AUID_GROUPS, ALICE, "friends", "e3", "<c/>", 3.0)
    assert not await repo.write(stale, expect="nope", uris=["sip:h@example.com"])
    assert await repo.claimed_by("sip:h@example.com") is None
    got = await repo.get(AUID_GROUPS, ALICE, "friends")
    assert got is not None and got.etag == "e1" and got.content == "<a/>"
    # the current tag wins and moves the index
    assert await repo.write(stale, expect="e1", uris=["sip:h@example.com"])
    assert await repo.claimed_by("sip:g@example.com") is None
    found = await repo.find("sip:h@example.com")
    assert found is not None and found.content == "<c/>" and found.etag == "e3"
    assert [r.name for r in await repo.documents(AUID_GROUPS, ALICE)] == ["friends"]
    assert not await repo.delete(AUID_GROUPS, ALICE, "friends", expect="e1")
    assert await repo.delete(AUID_GROUPS, ALICE, "friends", expect="e3")
    assert await repo.get(AUID_GROUPS, ALICE, "friends") is None
    assert await repo.claimed_by("sip:h@example.com") is None


async def test_two_writers_with_one_etag_one_gets_412(store: Store) -> None:
    svc = DocumentService(store.xdm, USAGES, clock)
    ref = DocumentRef(AUID_GROUPS, ALICE, "friends")
    doc, created = await svc.put(ref, GROUP)
    assert created
    tag = f'"{doc.etag}"'
    second = GROUP.replace(b"weekend plans", b"monday")
    results = await asyncio.gather(
        svc.put(ref, GROUP.replace(b"weekend plans", b"sunday"), if_match=tag),
        svc.put(ref, second, if_match=tag), return_exceptions=True)
    errors = [r for r in results if isinstance(r, XcapError)]
    assert len(errors) == 1 and errors[0].status == 412
    oks = [r for r in results if not isinstance(r, BaseException)]
    assert len(oks) == 1 and oks[0][1] is False


async def test_group_uri_unique_server_wide_with_alt_value(store: Store) -> None:
    svc = DocumentService(store.xdm, USAGES, clock)
    await svc.put(DocumentRef(AUID_GROUPS, ALICE, "friends"), GROUP)
    with pytest.raises(XcapError) as exc:
        await svc.put(DocumentRef(AUID_GROUPS, BOB, "mine"), GROUP)
    assert exc.value.status == 409 and exc.value.condition == "uniqueness-failure"
    assert exc.value.alt_values == ("sip:friends-2@example.com",)
    # the same owner rewriting its own document keeps the URI
    await svc.put(DocumentRef(AUID_GROUPS, ALICE, "friends"), GROUP)


async def test_group_directory_reads_policy_members_and_imusage(store: Store) -> None:
    svc = DocumentService(store.xdm, USAGES, clock)
    directory = StoredGroupDirectory(svc)
    assert await directory.group("sip:friends@example.com") is None
    await svc.put(DocumentRef(AUID_GROUPS, ALICE, "friends"), GROUP)
    group = await directory.group("<sip:friends@EXAMPLE.com;transport=tcp>")
    assert group is not None
    assert group.usage is GroupUsage.PREDEFINED  # Appendix Q default
    assert group.owner == ALICE and group.display_name == "Friends"
    assert group.subject == "weekend plans"
    assert [m.uri for m in group.members] == [ALICE, BOB]
    assert group.display_name_of("sip:bob@example.com") == "Bob"
    assert group.invite_members and group.max_participants == 5 and group.supports_im
    assert group.session_active_policy is not None
    assert group.session_active_policy.auto_release is True
    assert group.session_active_policy.remaining_participants == 1
    member = group.permissions("sip:bob@example.com")
    assert member.allow_initiate_conference and member.join_handling
    assert member.allow_conference_state and not member.allow_invite_users_dynamically
    guest = group.permissions("sip:carol@example.com")
    assert guest.join_handling and not guest.allow_initiate_conference
    assert group.permissions("sip:mallory@example.com") == GroupActions()
    assert group.permissions("sip:eve@example.com") == GroupActions()
    await svc.put(DocumentRef(AUID_GROUP_USAGE, ALICE, "index"), USAGE_LIST)
    chat = await directory.group("sip:friends@example.com")
    assert chat is not None and chat.usage is GroupUsage.CHAT
    assert [g.uri for g in await directory.groups_of("alice@example.com")] == [
        "sip:friends@example.com"]
    assert await directory.groups_of(BOB) == []


@pytest.mark.parametrize(("body", "condition"), [
    (b"<group xmlns='urn:oma:xml:poc:list-service'><list-service/></group>",
     "schema-validation-error"),
    (GROUP.replace(b"<max-participant-count>5", b"<max-participant-count>many"),
     "schema-validation-error"),
    (GROUP.replace(b"<join-handling>allow", b"<join-handling>maybe"),
     "schema-validation-error"),
    (GROUP.replace(b'"sip:bob@example.com"><rl:d', b'"sip:alice@example.com"><rl:d'),
     "uniqueness-failure"),
    (b"<group xmlns='urn:oma:xml:poc:list-service'>", "not-well-formed"),
    (b"<resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'/>",
     "schema-validation-error"),
    (b'<?xml version="1.0"?><!DOCTYPE g [<!ENTITY a "aaaa">]><group>&a;</group>',
     "not-well-formed"),
    ("<group xmlns='urn:oma:xml:poc:list-service'>\u00e9</group>".encode("latin-1"),
     "not-utf-8"),
])
async def test_group_document_checks(body: bytes, condition: str) -> None:
    with pytest.raises(XcapError) as exc:
        parse_groups(body, ALICE, "x", "e")
    assert exc.value.status == 409 and exc.value.condition == condition


def test_preconditions() -> None:
    assert check_preconditions(None, None, "*") is None
    assert check_preconditions("a", None, "*") == 412
    assert check_preconditions("a", '"b", "a"', None) is None
    assert check_preconditions("a", '"b"', None) == 412
    assert check_preconditions(None, "*", None) == 412
    assert check_preconditions("a", None, '"a"', read=True) == 304
    assert normalize_uri("Alice@Example.COM") == "sip:Alice@example.com"


async def test_deferred_metadata_is_an_appendix_j_history_list(store: Store) -> None:
    await store.deferred.add(DeferredMessage(
        "32098d", "charlie@example.com", "alice@example.org", 1, 963177180.0,
        963695580.0, "carpool tomorrow?", b"MESSAGE sip:charlie@example.com SIP/2.0\r\n\r\nhi"))
    meta = StoredDeferredMetadata(store.deferred, "example.com")
    entries = await meta.deferred_entries("charlie@example.com")
    assert entries == [HistoryEntry("32098d@example.com", 963177180.0, 2,
                                    "alice@example.org", "charlie@example.com",
                                    "carpool tomorrow?", 963695580.0)]
    doc = history_list(entries).decode()
    assert '<history-list xmlns="urn:oma:xml:history-list">' in doc
    assert '<history date="2000-07-09" history-reference="32098d@example.com">' in doc
    assert "<size>2</size><expiry>2000-07-15T21:13:00.0Z</expiry>" in doc
    assert ("<pager><time-stamp>2000-07-09T21:13:00.0Z</time-stamp>"
            "<from>alice@example.org</from><to>charlie@example.com</to></pager>") in doc
