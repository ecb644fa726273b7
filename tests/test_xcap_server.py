"""The XCAP server on the wire (RFC 4825) through ``simpleim server --xcap``, on SQLite and
PostgreSQL: statuses, ETag / Content-Type headers, RFC 4825 §11 error bodies, every selector
kind, preconditions, authorization, size bound, hostile input; the Appendix J deferred
metadata produced from the Deferred Messaging Function's store; curl as an independent
client."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from defusedxml import ElementTree as SafeET
from yarl import URL

from needs import unavailable
from simpleim.client.xcap import GroupSpec, XcapClient
from simpleim.errors import XcapError
from simpleim.server.config import ServerConfig
from simpleim.server.serve import serve
from simpleim.store import open_store
from simpleim.store.deferred import DeferredMessage
from simpleim.transport.sip_addr import ListenSpec

DOMAIN = "example.com"
STEP = 30.0
ALICE = "sip:alice@example.com"
RL = "urn:ietf:params:xml:ns:resource-lists"
ERR = "{urn:ietf:params:xml:ns:xcap-error}"
MIME_RL = "application/resource-lists+xml"

LISTS = f"""<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="{RL}" xmlns:x="urn:example:ext">
  <list name="friends">
    <entry uri="sip:bob@example.com"><display-name>Bob</display-name></entry>
    <entry uri="sip:carol@example.com"><display-name>Carol</display-name></entry>
  </list>
  <list name="work"/>
</resource-lists>
""".encode()


@dataclass
class Xcap:
    root: str  # http://127.0.0.1:PORT/xcap-root
    db: str

    def doc(self, auid: str = "resource-lists", name: str = "index", user: str = ALICE,
            selector: str | None = None, query: str = "") -> str:
        url = f"{self.root}/{auid}/users/{quote(user, safe=':@')}/{name}"
        if selector is not None:
            url += "/~~/" + quote(selector, safe="/:@*")
        return url + (f"?{query}" if query else "")


@pytest.fixture
async def xcap(store_url: str) -> AsyncIterator[Xcap]:
    async with await open_store(store_url) as store:
        await store.add_user("alice", DOMAIN, "alicepw")
        await store.add_user("bob", DOMAIN, "bobpw")
    config = ServerConfig(domain=DOMAIN, listen=(ListenSpec("udp", "127.0.0.1", 0),),
                          db_url=store_url, xcap_listen="127.0.0.1:0", msrp_listen="off",
                          xcap_max_document=64 * 1024)
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(config, stop=stop, ready=ready.set_result))
    try:
        line = await asyncio.wait_for(asyncio.shield(ready), STEP)
        match = re.search(r" xcap=(http://127\.0\.0\.1:\d+/xcap-root)", line)
        assert match is not None, line
        yield Xcap(match.group(1), store_url)
    finally:
        stop.set()
        assert await asyncio.wait_for(task, STEP) == 0


def session(user: str = "alice", password: str = "alicepw") -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        middlewares=(aiohttp.DigestAuthMiddleware(login=user, password=password),))


def error_child(body: bytes) -> SafeET.Element:
    root = SafeET.fromstring(body)
    assert root.tag == f"{ERR}xcap-error"
    (child,) = list(root)
    return child


async def test_document_put_get_delete_with_etags(xcap: Xcap) -> None:
    async with session() as http:
        async with http.get(xcap.doc()) as r:
            assert r.status == 404
        async with http.put(xcap.doc(), data=LISTS,
                            headers={"Content-Type": MIME_RL}) as r:
            assert r.status == 201
            etag = r.headers["ETag"]
            assert re.fullmatch(r'"[0-9a-f]+"', etag)
        async with http.get(xcap.doc()) as r:
            assert r.status == 200 and r.headers["Content-Type"] == MIME_RL
            assert r.headers["ETag"] == etag and await r.read() == LISTS
        async with http.get(xcap.doc(), headers={"If-None-Match": etag}) as r:
            assert r.status == 304 and r.headers["ETag"] == etag
        # replace: 200 and a new entity tag; the old one is stale now
        async with http.put(xcap.doc(), data=LISTS, headers={
                "Content-Type": MIME_RL, "If-Match": etag}) as r:
            assert r.status == 200
            etag2 = r.headers["ETag"]
        assert etag2 != etag
        async with http.put(xcap.doc(), data=LISTS, headers={
                "Content-Type": MIME_RL, "If-Match": etag}) as r:
            assert r.status == 412
        async with http.put(xcap.doc(), data=LISTS, headers={
                "Content-Type": MIME_RL, "If-None-Match": "*"}) as r:
            assert r.status == 412
        async with http.delete(xcap.doc(), headers={"If-Match": etag}) as r:
            assert r.status == 412
        async with http.put(xcap.doc(), data=LISTS, headers={"Content-Type": "text/xml"}) as r:
            assert r.status == 415
        async with http.delete(xcap.doc(), headers={"If-Match": etag2}) as r:
            assert r.status == 200
        async with http.delete(xcap.doc()) as r:
            assert r.status == 404


async def test_two_writers_race_one_gets_412(xcap: Xcap) -> None:
    async with session() as http:
        async with http.put(xcap.doc(), data=LISTS, headers={"Content-Type": MIME_RL}) as r:
            etag = r.headers["ETag"]

        async def write(name: str) -> int:
            body = f'<entry xmlns="{RL}" uri="sip:{name}@example.com"/>'.encode()
            url = xcap.doc(selector=f'resource-lists/list[@name="work"]/entry'
                                    f'[@uri="sip:{name}@example.com"]')
            async with http.put(url, data=body, headers={
                    "Content-Type": "application/xcap-el+xml", "If-Match": etag}) as resp:
                return resp.status

        statuses = sorted(await asyncio.gather(write("dan"), write("erin")))
        assert statuses == [201, 412]


async def test_element_attribute_and_namespace_selectors(xcap: Xcap) -> None:
    async with session() as http:
        await (await http.put(xcap.doc(), data=LISTS, headers={"Content-Type": MIME_RL})).read()
        # element by attribute, by position, by name, and * with a position
        for sel in ('resource-lists/list[@name="friends"]/entry[@uri="sip:carol@example.com"]',
                    'resource-lists/list[1]/entry[2]', "resource-lists/*[1]/entry[2]",
                    'resource-lists/list[1][@name="friends"]/entry[2]'):
            async with http.get(xcap.doc(selector=sel)) as r:
                assert r.status == 200, sel
                assert r.headers["Content-Type"] == "application/xcap-el+xml"
                el = SafeET.fromstring(await r.read())
                assert el.tag == f"{{{RL}}}entry" and el.get("uri") == "sip:carol@example.com"
        # two entries match: not a single element
        async with http.get(xcap.doc(selector="resource-lists/list[1]/entry")) as r:
            assert r.status == 404
        # attribute selector
        async with http.get(xcap.doc(selector="resource-lists/list[2]/@name")) as r:
            assert r.status == 200 and await r.read() == b"work"
            assert r.headers["Content-Type"] == "application/xcap-att+xml"
        # namespace bindings (RFC 4825 §10)
        async with http.get(xcap.doc(selector="resource-lists/list[1]/namespace::*")) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "application/xcap-ns+xml"
            body = (await r.read()).decode()
            assert f'xmlns="{RL}"' in body and 'xmlns:x="urn:example:ext"' in body
        # a prefix bound by the xmlns() query, and an unbound one
        query = quote(f"xmlns(r={RL})", safe="()=:")
        async with http.get(xcap.doc(selector='r:resource-lists/r:list[@name="work"]',
                                     query=query)) as r:
            assert r.status == 200
        async with http.get(xcap.doc(selector="r:resource-lists")) as r:
            assert r.status == 400


async def test_element_and_attribute_put_delete(xcap: Xcap) -> None:
    el = "application/xcap-el+xml"
    async with session() as http:
        await (await http.put(xcap.doc(), data=LISTS, headers={"Content-Type": MIME_RL})).read()
        # insert a new entry: 201; the same PUT again replaces it: 200
        sel = 'resource-lists/list[@name="work"]/entry[@uri="sip:dan@example.com"]'
        body = b'<entry uri="sip:dan@example.com"><display-name>Dan</display-name></entry>'
        async with http.put(xcap.doc(selector=sel), data=body,
                            headers={"Content-Type": el}) as r:
            assert r.status == 201 and r.headers["ETag"]
        async with http.put(xcap.doc(selector=sel), data=body,
                            headers={"Content-Type": el}) as r:
            assert r.status == 200
        async with http.get(xcap.doc(selector=sel + "/display-name")) as r:
            assert r.status == 200 and b">Dan<" in await r.read()
        # the body does not match the selector: cannot-insert
        async with http.put(xcap.doc(selector=sel), data=b'<entry uri="sip:x@example.com"/>',
                            headers={"Content-Type": el}) as r:
            assert r.status == 409 and r.headers["Content-Type"] == "application/xcap-error+xml"
            assert error_child(await r.read()).tag == f"{ERR}cannot-insert"
        # no parent: <no-parent> names the closest existing ancestor
        async with http.put(xcap.doc(selector='resource-lists/list[@name="nope"]/entry'),
                            data=b'<entry uri="sip:x@example.com"/>',
                            headers={"Content-Type": el}) as r:
            assert r.status == 409
            child = error_child(await r.read())
            assert child.tag == f"{ERR}no-parent"
            ancestor = child.find(f"{ERR}ancestor")
            assert ancestor is not None and ancestor.text is not None
            assert ancestor.text.endswith("/index/~~/resource-lists")
        # a duplicate entry URI in one list: uniqueness-failure with the field
        async with http.put(xcap.doc(selector='resource-lists/list[@name="friends"]/entry[3]'),
                            data=b'<entry uri="sip:bob@example.com"/>',
                            headers={"Content-Type": el}) as r:
            assert r.status == 409
            child = error_child(await r.read())
            assert child.tag == f"{ERR}uniqueness-failure"
            exists = child.find(f"{ERR}exists")
            assert exists is not None and exists.get("field", "").endswith("entry/@uri")
        # a duplicate list name: the alt-value proposes a free one
        async with http.put(xcap.doc(selector="resource-lists/list[3]"),
                            data=b'<list name="work"/>', headers={"Content-Type": el}) as r:
            assert r.status == 409
            alt = error_child(await r.read()).find(f"{ERR}exists/{ERR}alt-value")
            assert alt is not None and alt.text == "work-2"
        # not one element
        async with http.put(xcap.doc(selector="resource-lists/list[3]"), data=b"<a/><b/>",
                            headers={"Content-Type": el}) as r:
            assert r.status == 409
            assert error_child(await r.read()).tag == f"{ERR}not-xml-frag"
        # attributes: create 201, replace 200, delete, then 404
        att = xcap.doc(selector='resource-lists/list[@name="work"]/@x:flag',
                       query=quote("xmlns(x=urn:example:ext)", safe="()=:"))
        hdr = {"Content-Type": "application/xcap-att+xml"}
        async with http.put(att, data=b"a &amp; b", headers=hdr) as r:
            assert r.status == 201
        async with http.get(att) as r:
            assert await r.read() == b"a &amp; b"
        async with http.put(att, data=b"c", headers=hdr) as r:
            assert r.status == 200
        async with http.put(att, data=b"<", headers=hdr) as r:
            assert r.status == 409
            assert error_child(await r.read()).tag == f"{ERR}not-xml-att-value"
        async with http.delete(att) as r:
            assert r.status == 200
        async with http.delete(att) as r:
            assert r.status == 404
        # delete an element; deleting by a position that another element would fill: 409
        async with http.delete(xcap.doc(selector=sel)) as r:
            assert r.status == 200
        async with http.get(xcap.doc(selector=sel)) as r:
            assert r.status == 404
        async with http.delete(xcap.doc(selector='resource-lists/list[1]/entry[1]')) as r:
            assert r.status == 409
            assert error_child(await r.read()).tag == f"{ERR}cannot-delete"
        # namespace bindings are read-only
        async with http.put(xcap.doc(selector="resource-lists/namespace::*"), data=b"x",
                            headers={"Content-Type": el}) as r:
            assert r.status == 405 and r.headers["Allow"] == "GET"


async def test_schema_errors_and_hostile_input(xcap: Xcap) -> None:
    async with session() as http:
        async def put(body: bytes, url: str | None = None) -> tuple[int, bytes]:
            async with http.put(url or xcap.doc(), data=body,
                                headers={"Content-Type": MIME_RL}) as r:
                return r.status, await r.read()

        status, body = await put(b"<resource-lists xmlns='urn:x'/>")
        assert status == 409 and error_child(body).tag == f"{ERR}schema-validation-error"
        status, body = await put(b"<resource-lists")
        assert status == 409 and error_child(body).tag == f"{ERR}not-well-formed"
        status, body = await put("<resource-lists xmlns='x'>\u00e9</resource-lists>"
                                 .encode("latin-1"))
        assert status == 409 and error_child(body).tag == f"{ERR}not-utf-8"
        bomb = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
                b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
                b"<resource-lists xmlns='" + RL.encode() + b"'>&b;</resource-lists>")
        status, body = await put(bomb)
        assert status == 409 and error_child(body).tag == f"{ERR}not-well-formed"
        xxe = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
               b"<resource-lists xmlns='" + RL.encode() + b"'>&e;</resource-lists>")
        status, body = await put(xxe)
        assert status == 409 and b"root:" not in body
        status, _ = await put(b"<a>" + b"x" * (64 * 1024) + b"</a>")
        assert status == 413
        # path traversal, malformed percent-encoding, unknown usage, no document
        for path, want in (("/resource-lists/users/sip:alice@example.com/%2e%2e/x", 400),
                           ("/resource-lists/users/sip:alice@example.com/a%zzb", 400),
                           ("/resource-lists/users/sip:alice@example.com/index/~~/a%2", 400),
                           ("/resource-lists/users/sip:alice@example.com/index/~~/a[", 400),
                           ("/no.such.auid/users/sip:alice@example.com/index", 404),
                           ("/resource-lists/users/sip:alice@example.com", 404)):
            async with http.get(URL(xcap.root + path, encoded=True)) as r:
                assert r.status == want, path
        async with http.request("POST", xcap.doc()) as r:
            assert r.status == 405 and "PUT" in r.headers["Allow"]


async def test_authentication_and_other_users_trees(xcap: Xcap) -> None:
    async with aiohttp.ClientSession() as anonymous, anonymous.get(xcap.doc()) as r:
        assert r.status == 401
        challenge = r.headers["WWW-Authenticate"]
        assert challenge.startswith("Digest ") and f'realm="{DOMAIN}"' in challenge
    async with session(password="wrong") as http, http.get(xcap.doc()) as r:
        assert r.status == 401
    async with session("bob", "bobpw") as http:
        async with http.get(xcap.doc()) as r:
            assert r.status == 403
        async with http.put(xcap.doc(), data=LISTS, headers={"Content-Type": MIME_RL}) as r:
            assert r.status == 403
        async with http.put(xcap.doc(user="sip:bob@example.com"), data=LISTS,
                            headers={"Content-Type": MIME_RL}) as r:
            assert r.status == 201
        # the global tree is read-only; xcap-caps lists the usages
        async with http.get(f"{xcap.root}/xcap-caps/global/index") as r:
            assert r.status == 200 and r.headers["Content-Type"] == "application/xcap-caps+xml"
            caps = SafeET.fromstring(await r.read())
            auids = [a.text for a in caps.iter("{urn:ietf:params:xml:ns:xcap-caps}auid")]
            assert "org.openmobilealliance.groups" in auids and "resource-lists" in auids
        async with http.put(f"{xcap.root}/xcap-caps/global/index", data=b"<x/>",
                            headers={"Content-Type": "application/xcap-caps+xml"}) as r:
            assert r.status == 405 and r.headers["Allow"] == "GET"


async def test_failed_authentications_lock_the_source_out(xcap: Xcap) -> None:
    """The SIP core's lockout (10 failures per source in 60 s) covers XCAP: then 403 with
    Retry-After, even for the right password."""
    async with session(password="wrong") as http:
        statuses = []
        for _ in range(11):
            async with http.get(xcap.doc()) as r:
                statuses.append(r.status)
        # at most 10 failed attempts (aiohttp may answer one challenge twice) then 403 only
        first = statuses.index(403)
        assert 5 <= first <= 10 and set(statuses[:first]) == {401}
        assert set(statuses[first:]) == {403}
        assert int(r.headers["Retry-After"]) > 0
    async with session() as http, http.get(xcap.doc()) as r:
        assert r.status == 403


async def test_groups_over_xcap_and_the_group_directory(xcap: Xcap) -> None:
    async with XcapClient(xcap.root, "alice@example.com", "alicepw") as alice:
        spec = GroupSpec("friends", "sip:friends@example.com", members=(
            ("sip:alice@example.com", "Alice"), ("sip:bob@example.com", "Bob")),
            subject="plans", max_participants=5, blocked=("sip:mallory@example.com",))
        resp = await alice.put_group(spec, create_only=True)
        assert resp.status == 201
        with pytest.raises(XcapError) as exc:
            await alice.put_group(spec, create_only=True)   # If-None-Match: *
        assert exc.value.status == 412
        assert await alice.group_names() == ["friends"]
    async with session("bob", "bobpw") as http:
        # the group URI is unique server-wide: bob cannot take it
        url = f"{xcap.root}/org.openmobilealliance.groups/users/sip:bob@example.com/g"
        async with http.put(url, data=(await _group_body(xcap)), headers={
                "Content-Type": "application/vnd.oma.poc.groups+xml"}) as r:
            assert r.status == 409
            alt = error_child(await r.read()).find(f"{ERR}exists/{ERR}alt-value")
            assert alt is not None and alt.text == "sip:friends-2@example.com"
    # the Controlling Function's view of the same stored document
    from simpleim.server.xdm import DocumentService, StoredGroupDirectory
    from simpleim.server.xdm.usages import USAGES
    async with await open_store(xcap.db) as store:
        directory = StoredGroupDirectory(DocumentService(store.xdm, USAGES, lambda: 0.0))
        group = await directory.group("sip:friends@example.com")
    assert group is not None and group.subject == "plans" and group.max_participants == 5
    assert group.display_name_of("sip:bob@example.com") == "Bob"
    assert group.permissions("sip:bob@example.com").allow_initiate_conference
    assert not group.permissions("sip:mallory@example.com").join_handling


async def _group_body(xcap: Xcap) -> bytes:
    async with session() as http, http.get(
            f"{xcap.root}/org.openmobilealliance.groups/users/{ALICE}/friends") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/vnd.oma.poc.groups+xml"
        return await r.read()


async def test_deferred_metadata_is_read_only_and_follows_the_store(xcap: Xcap) -> None:
    async with await open_store(xcap.db) as store:
        await store.deferred.add(DeferredMessage(
            "m1", "alice@example.com", "bob@example.com", 1, 1_700_000_000.0,
            1_700_600_000.0, "lunch?", b"MESSAGE sip:alice@example.com SIP/2.0\r\n\r\nhello"))
    url = xcap.doc("org.openmobilealliance.deferred-list", "deferred-list")
    async with session() as http:
        async with http.get(url) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "application/vnd.oma.im.deferred-list+xml"
            etag = r.headers["ETag"]
            root = SafeET.fromstring(await r.read())
        async with http.get(url, headers={"If-None-Match": etag}) as r:
            assert r.status == 304
        async with http.put(url, data=b"<x/>", headers={
                "Content-Type": "application/vnd.oma.im.deferred-list+xml"}) as r:
            assert r.status == 405
        async with http.get(xcap.doc("org.openmobilealliance.conv-history",
                                     "conv-history")) as r:
            assert r.status == 200 and b"<history-list" in await r.read()
    hl = "{urn:oma:xml:history-list}"
    (item,) = root.findall(f"{hl}history")
    assert item.get("history-reference") == "m1@example.com"
    assert item.findtext(f"{hl}subject") == "lunch?" and item.findtext(f"{hl}size") == "5"
    assert item.findtext(f"{hl}pager/{hl}from") == "bob@example.com"
    async with XcapClient(xcap.root, "alice@example.com", "alicepw") as alice:
        (listed,) = await alice.deferred_list()
        assert (listed.reference, listed.sender, listed.mode) == ("m1@example.com",
                                                                  "bob@example.com", "pager")
        # delivered or deleted (DM-10): the metadata follows the store, with a new ETag
        async with await open_store(xcap.db) as store:
            assert await store.deferred.remove("m1")
        resp = await alice.get(url, if_none_match=etag)
        assert resp.status == 200 and resp.etag != etag.strip('"')
        assert await alice.deferred_list() == []


@pytest.mark.interop
async def test_curl_drives_the_server(xcap: Xcap, tmp_path: Path) -> None:
    """curl (libcurl's own digest) as an independent XCAP client: PUT a document, GET an
    element, a conditional PUT with a stale ETag (412), DELETE."""
    curl = shutil.which("curl")
    if curl is None:
        unavailable("curl is not installed")
    doc = tmp_path / "lists.xml"
    doc.write_bytes(LISTS)

    def run(*args: str) -> tuple[int, str]:
        out = subprocess.run(
            [curl, "-s", "--digest", "-u", "alice:alicepw", "-o", str(tmp_path / "body"),
             "-D", str(tmp_path / "head"), "-w", "%{http_code}", *args],
            capture_output=True, text=True, timeout=STEP, check=False)
        return int(out.stdout or 0), (tmp_path / "head").read_text()

    def run_async(*args: str) -> asyncio.Future[tuple[int, str]]:
        return asyncio.get_running_loop().run_in_executor(None, lambda: run(*args))

    status, head = await run_async("-X", "PUT", "-H", f"Content-Type: {MIME_RL}",
                                   "--data-binary", f"@{doc}", xcap.doc())
    assert status == 201
    etag = re.search(r"(?im)^etag: (\S+)", head)
    assert etag is not None
    sel = xcap.doc(selector='resource-lists/list[@name="friends"]/entry[2]')
    status, head = await run_async(sel)
    assert status == 200 and "application/xcap-el+xml" in head
    assert b'uri="sip:carol@example.com"' in (tmp_path / "body").read_bytes()
    status, _ = await run_async("-X", "PUT", "-H", f"Content-Type: {MIME_RL}",
                                "-H", "If-Match: \"stale\"", "--data-binary", f"@{doc}",
                                xcap.doc())
    assert status == 412
    status, _ = await run_async("-X", "DELETE", "-H", f"If-Match: {etag.group(1)}",
                                xcap.doc())
    assert status == 200
