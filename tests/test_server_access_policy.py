"""The served user's access policy (OMA SIMPLE IM §6.1.2.1 step 2, Appendix S): a ruleset
(RFC 4745 with the OMA extensions) stored in the user's XDM tree under
``org.openmobilealliance.access-rules`` makes the terminating Participating Function answer
403 + Warning 122 to the senders and media it names - on the wire, on SQLite and
PostgreSQL; the rules evaluated as a pure function; hostile documents refused with a 409."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simpleim.content.poc_settings import ServiceSettings
from simpleim.errors import XcapError
from simpleim.server.settings import build_settings
from simpleim.server.xdm import DocumentRef
from simpleim.server.xdm.access import (
    AUID_ACCESS_RULES,
    AccessRules,
    parse_access_rules,
    resource_lists_members,
)
from simpleim.server.xdm.api import PolicyMedia
from test_server_deferred import IM, message, publish, received, server_on
from test_server_helpers import DOMAIN
from test_server_pf import assert_pf_answer, invite, sdp, warning
from test_xcap_server import Xcap, error_child, session, xcap  # noqa: F401, F811

CP = "urn:ietf:params:xml:ns:common-policy"
OCP = "urn:oma:xml:xdm:common-policy"
OXE = "urn:oma:xml:xdm:extensions"
RL = "urn:ietf:params:xml:ns:resource-lists"


def ruleset(*rules: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<cp:ruleset xmlns:cp="{CP}" '
            f'xmlns:ocp="{OCP}" xmlns:oxe="{OXE}">{"".join(rules)}</cp:ruleset>').encode()


def rule(rid: str, conditions: str, reject: str = "true") -> str:
    return (f'<cp:rule id="{rid}"><cp:conditions>{conditions}</cp:conditions>'
            f'<cp:actions><allow-reject-invite>{reject}</allow-reject-invite></cp:actions>'
            f'</cp:rule>')


def one(user: str) -> str:
    return f'<cp:identity><cp:one id="sip:{user}@{DOMAIN}"/></cp:identity>'


PAGER_ONLY = "<oxe:media-list><oxe:pager-mode-message/></oxe:media-list>"
IM_SERVICE = '<ocp:service-list><ocp:service featuretag="+g.oma-sip-im"/></ocp:service-list>'


def anchor(owner: str, name: str) -> str:
    path = (f"http://xcap.{DOMAIN}/xcap-root/resource-lists/users/sip:{owner}@{DOMAIN}/index"
            f'/~~/resource-lists/list[@name="{name}"]')
    return quote(path, safe=":/@~")


def rules_of(doc: bytes, lists: dict[str, frozenset[str]] | None = None) -> AccessRules:
    return AccessRules(parse_access_rules(doc), lists)


# ---------------------------------------------------------------- the rules as a function


def test_identity_media_and_service_conditions() -> None:
    alice, carol = f"sip:alice@{DOMAIN}", f"sip:carol@{DOMAIN}"
    policy = rules_of(ruleset(rule("a", one("alice") + PAGER_ONLY + IM_SERVICE)))
    assert policy.rejects(alice, PolicyMedia.PAGER)
    assert policy.rejects(f"<sip:alice@{DOMAIN.upper()};transport=tcp>", PolicyMedia.PAGER)
    assert not policy.rejects(alice, PolicyMedia.SESSION)          # only pager media
    assert not policy.rejects(carol, PolicyMedia.PAGER)
    # a domain with an exception; <many/> is anyone
    many = rules_of(ruleset(rule("d", '<cp:identity><cp:many domain="spam.test">'
                                      '<cp:except id="sip:ok@spam.test"/></cp:many>'
                                      '</cp:identity>')))
    assert many.rejects("sip:x@spam.test", PolicyMedia.FILE_TRANSFER)
    assert not many.rejects("sip:ok@spam.test", PolicyMedia.SESSION)
    assert not many.rejects(alice, PolicyMedia.SESSION)
    anyone = rules_of(ruleset(rule("n", "<cp:identity><cp:many/></cp:identity>")))
    assert anyone.rejects(carol, PolicyMedia.SESSION)
    # allow-reject-invite false rejects nobody; a service that is not IM does not apply
    assert not rules_of(ruleset(rule("f", one("alice"), "false"))).rejects(
        alice, PolicyMedia.PAGER)
    other = ('<ocp:service-list><ocp:service featuretag="+g.poc.talkburst"/>'
             '</ocp:service-list>')
    assert not rules_of(ruleset(rule("p", one("alice") + other))).rejects(
        alice, PolicyMedia.PAGER)
    # a condition this server cannot evaluate makes the rule apply to nobody
    validity = "<cp:validity><cp:from>2020-01-01T00:00:00Z</cp:from></cp:validity>"
    assert not rules_of(ruleset(rule("v", one("alice") + validity))).rejects(
        alice, PolicyMedia.PAGER)
    # anonymous requests only
    anon = rules_of(ruleset(rule("x", "<ocp:anonymous-request/>")))
    assert anon.rejects(alice, PolicyMedia.PAGER, anonymous=True)
    assert not anon.rejects(alice, PolicyMedia.PAGER)


def test_external_list_names_the_users_blocked_contacts() -> None:
    doc = ruleset(rule("b", f'<ocp:external-list><ocp:entry anc="{anchor("bob", "oma_blocked")}"'
                            f'/></ocp:external-list>'))
    (r,) = parse_access_rules(doc)
    assert r.lists == ("oma_blocked",)
    lists_doc = (f'<resource-lists xmlns="{RL}"><list name="oma_blocked">'
                 f'<entry uri="sip:carol@{DOMAIN}"/></list><list name="friends">'
                 f'<entry uri="sip:alice@{DOMAIN}"/></list></resource-lists>').encode()
    members = resource_lists_members(lists_doc, frozenset({"oma_blocked"}))
    assert members == {"oma_blocked": frozenset({f"sip:carol@{DOMAIN}"})}
    policy = rules_of(doc, members)
    assert policy.rejects(f"sip:carol@{DOMAIN}", PolicyMedia.SESSION)
    assert not policy.rejects(f"sip:alice@{DOMAIN}", PolicyMedia.SESSION)
    # an anchor that is not into the user's resource lists resolves to nobody
    elsewhere = ruleset(rule("e", '<ocp:external-list><ocp:entry anc="http://x.test/a"/>'
                                  '</ocp:external-list>'))
    assert not rules_of(elsewhere, members).rejects(f"sip:carol@{DOMAIN}",
                                                    PolicyMedia.PAGER)


@pytest.mark.parametrize(("doc", "condition"), [
    (b"<x/>", "schema-validation-error"),
    (ruleset('<cp:rule><cp:conditions/></cp:rule>'), "schema-validation-error"),
    (ruleset(rule("a", ""), rule("a", "")), "uniqueness-failure"),
    (ruleset(rule("a", "", "maybe")), "schema-validation-error"),
    (ruleset(rule("a", "<cp:identity><cp:one/></cp:identity>")), "schema-validation-error"),
    (b"<!DOCTYPE r [<!ENTITY a 'aaaa'>]><r>&a;</r>", None),
    (b"\xff\xfe garbage", None),
])
def test_bad_documents_are_refused_with_a_condition(doc: bytes, condition: str | None) -> None:
    with pytest.raises(XcapError) as info:
        parse_access_rules(doc)
    assert info.value.status in (400, 409)
    if condition is not None:
        assert info.value.condition == condition


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: ruleset(t)))
def test_any_input_is_a_ruleset_or_an_xcap_error(doc: bytes) -> None:
    try:
        rules = parse_access_rules(doc)
    except XcapError:
        return
    AccessRules(rules).rejects(f"sip:a@{DOMAIN}", PolicyMedia.PAGER)


# ---------------------------------------------------------------- on the wire


async def test_access_policy_rejects_named_senders_on_the_wire(store_url: str) -> None:
    """Bob's rules: alice may not send him pager messages; the senders of his blocked
    list may not reach him at all.  The PF answers 403 + Warning 122 with Server (and Allow
    to an INVITE); other senders and media pass; the rules survive a restart and a DELETE
    lifts them."""
    rules_ref = DocumentRef(AUID_ACCESS_RULES, f"sip:bob@{DOMAIN}", "index")
    lists_ref = DocumentRef("resource-lists", f"sip:bob@{DOMAIN}", "index")
    doc = ruleset(rule("no-pager-from-alice", one("alice") + PAGER_ONLY + IM_SERVICE),
                  rule("blocked", '<ocp:external-list><ocp:entry anc="'
                                  f'{anchor("bob", "oma_blockedcontacts")}"/>'
                                  '</ocp:external-list>'))
    blocked = (f'<resource-lists xmlns="{RL}"><list name="oma_blockedcontacts">'
               f'<entry uri="sip:carol@{DOMAIN}"/></list></resource-lists>').encode()
    offer = sdp("m=message 9 TCP/MSRP *", "a=accept-types:message/cpim")
    async with server_on(store_url) as srv:
        assert srv.server.roles is not None
        documents = srv.server.roles.xdm.documents
        await documents.put(rules_ref, doc)
        bob = await srv.ua("bob")
        await bob.register()
        alice = await srv.ua("alice")
        resp = await alice.send(message(alice, "bob", b"hi"))  # type: ignore[arg-type]
        assert_pf_answer(resp, 403, invite=False)
        assert warning(resp) == f'399 {DOMAIN} "122 Function not allowed"'
        resp = await alice.send(invite(alice, "bob", offer))
        assert resp.status == 200                                   # sessions are allowed
        carol = await srv.ua("carol")
        resp = await carol.send(message(carol, "bob", b"hi"))  # type: ignore[arg-type]
        assert resp.status == 200                                   # not blocked yet
        await documents.put(lists_ref, blocked)                     # the list is read anew
        resp = await carol.send(message(carol, "bob", b"hi"))  # type: ignore[arg-type]
        assert_pf_answer(resp, 403, invite=False)
        resp = await carol.send(invite(carol, "bob", offer))
        assert_pf_answer(resp, 403)                                 # every medium
        assert warning(resp) == f'399 {DOMAIN} "122 Function not allowed"'
    async with server_on(store_url) as srv:                         # a restart loads them
        bob = await srv.ua("bob")
        await bob.register()
        alice = await srv.ua("alice")
        resp = await alice.send(message(alice, "bob", b"hi"))  # type: ignore[arg-type]
        assert resp.status == 403
        assert srv.server.roles is not None
        assert await srv.server.roles.xdm.documents.delete(rules_ref)
        resp = await alice.send(message(alice, "bob", b"hi"))  # type: ignore[arg-type]
        assert resp.status == 200


GA = "application/vnd.poc.group-advertisement+xml"
GA_ONLY = "<oxe:media-list><oxe:group-advertisement/></oxe:media-list>"
ADVERT = (b'<?xml version="1.0" encoding="UTF-8"?>\n<group-advertisement>'
          b'<group uri="sip:friends@example.com"/></group-advertisement>')


def test_group_advertisement_is_a_medium_of_its_own() -> None:
    """Appendix S: the ``<group-advertisement>`` media element names extended group
    advertisements (§6.1.2.6) and nothing else; a pager rule does not cover them."""
    alice = f"sip:alice@{DOMAIN}"
    policy = rules_of(ruleset(rule("no-ads", one("alice") + GA_ONLY)))
    assert policy.rejects(alice, PolicyMedia.GROUP_ADVERTISEMENT)
    assert not policy.rejects(alice, PolicyMedia.PAGER)
    assert not rules_of(ruleset(rule("p", one("alice") + PAGER_ONLY))).rejects(
        alice, PolicyMedia.GROUP_ADVERTISEMENT)


async def test_group_advertisement_checked_against_the_access_policy(store_url: str) -> None:
    """PT-12 (§6.1.2.6, IMSpec-GA-S-001): a MESSAGE carrying a group advertisement from a
    sender whose ``<group-advertisement>`` rule says ``<allow-reject-invite>true`` gets 403
    (Server, Warning 122); the same sender's text message still passes; another sender's
    advertisement reaches the user as sent (Content-Type, Subject, body).  Incoming pager
    barring (``ipab``) does not stop an advertisement: only the access policy governs it."""
    rules_ref = DocumentRef(AUID_ACCESS_RULES, f"sip:bob@{DOMAIN}", "index")
    subject = ("Subject", "You were added to Friends")
    async with server_on(store_url) as srv:
        assert srv.server.roles is not None
        await srv.server.roles.xdm.documents.put(
            rules_ref, ruleset(rule("no-ads-from-alice", one("alice") + GA_ONLY)))
        bob = await srv.ua("bob")
        await bob.register()
        alice = await srv.ua("alice")
        resp = await alice.send(message(alice, "bob", ADVERT, GA,  # type: ignore[arg-type]
                                        headers=(IM, subject)))
        assert_pf_answer(resp, 403, invite=False)
        assert warning(resp) == f'399 {DOMAIN} "122 Function not allowed"'
        resp = await alice.send(message(alice, "bob", b"hi"))  # type: ignore[arg-type]
        assert resp.status == 200
        await received(bob, 1)
        barred = build_settings(ServiceSettings(incoming_pager_barring=True), "bob")
        assert (await bob.send(publish(bob, barred))).status == 200  # type: ignore[arg-type]
        carol = await srv.ua("carol")
        resp = await carol.send(message(carol, "bob", b"hi"))  # type: ignore[arg-type]
        assert resp.status == 403                                   # barred: pager
        resp = await carol.send(message(carol, "bob", ADVERT, GA,  # type: ignore[arg-type]
                                        headers=(IM, subject)))
        assert resp.status == 200
        (got,) = await received(bob, 1)
        assert got.request.content_type == GA
        assert got.request.headers.get("Subject") == subject[1]
        assert got.request.body == ADVERT
        assert got.request.from_addr.uri.user == "carol"  # type: ignore[union-attr]


# ---------------------------------------------------------------- over XCAP


async def test_access_rules_usage_over_xcap(xcap: Xcap) -> None:  # noqa: F811
    """RFC 4825 over HTTP for the usage: PUT 201 with the usage's MIME type back on GET,
    a duplicate rule id 409 <uniqueness-failure>, another root element 409
    <schema-validation-error>; the rule as an element (the default namespace is
    common-policy's)."""
    url = xcap.doc(AUID_ACCESS_RULES)
    doc = ruleset(rule("r1", one("bob")))
    async with session() as http:
        async with http.put(url, data=doc,
                            headers={"Content-Type": "application/auth-policy+xml"}) as r:
            assert r.status == 201
        async with http.get(url) as r:
            assert r.status == 200 and r.content_type == "application/auth-policy+xml"
            assert await r.read() == doc
        async with http.get(xcap.doc(AUID_ACCESS_RULES, selector='ruleset/rule[@id="r1"]')
                            ) as r:
            assert r.status == 200 and b'id="r1"' in await r.read()
        for bad, condition in ((ruleset(rule("a", ""), rule("a", "")), "uniqueness-failure"),
                               (b'<ruleset xmlns="urn:x"/>', "schema-validation-error")):
            async with http.put(url, data=bad, headers={
                    "Content-Type": "application/auth-policy+xml"}) as r:
                assert r.status == 409
                assert error_child(await r.read()).tag.endswith(condition)
