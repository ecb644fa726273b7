"""XCAP client (RFC 4825): read and write the user's XDM documents — pre-defined groups
(OMA Shared Group XDMS, Appendix Q), resource lists — and read the deferred-message metadata
(OMA SIMPLE IM §12.1.2, C-DM-02: fetched when offline delivery is off) and the history
metadata (§13.1.4) - and keep the user's blocked contacts: the OMA blocked-contacts list in
the user's resource lists and the access rule (OMA Shared Policy XDMS, Appendix S) that
makes the IM server refuse its members (§6.1.2.1 step 2: 403 + Warning 122).

```python
async with XcapClient("http://127.0.0.1:8080/xcap-root", "alice@example.com", "pw") as x:
    await x.put_group(GroupSpec("friends", "sip:friends@example.com",
                                members=(("sip:bob@example.com", "Bob"),)))
    for item in await x.deferred_list():
        print(item.reference, item.sender, item.subject)
```

Paths given to :meth:`XcapClient.get` / ``put`` / ``delete`` are full URLs, or paths below
the XCAP root where ``~`` stands for the user's own tree: ``resource-lists/~/index`` is
``resource-lists/users/sip:alice@example.com/index``.  Digest authentication is aiohttp's
(an implementation independent of the server's).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

import aiohttp
from defusedxml import ElementTree as SafeET

from simpleim.errors import ContentError, XcapError

__all__ = [
    "AUID_ACCESS_RULES",
    "AUID_CONV_HISTORY",
    "AUID_DEFERRED",
    "AUID_DIRECTORY",
    "AUID_GROUPS",
    "AUID_GROUP_USAGE",
    "GroupSpec",
    "HistoryItem",
    "XcapClient",
    "XcapResponse",
    "group_document",
    "parse_history_list",
]

AUID_GROUPS = "org.openmobilealliance.groups"
AUID_GROUP_USAGE = "org.openmobilealliance.group-usage-list"
AUID_DEFERRED = "org.openmobilealliance.deferred-list"
AUID_CONV_HISTORY = "org.openmobilealliance.conv-history"
AUID_DIRECTORY = "org.openmobilealliance.xcap-directory"
AUID_ACCESS_RULES = "org.openmobilealliance.access-rules"
MIME_ACCESS_RULES = "application/auth-policy+xml"
MIME_RESOURCE_LISTS = "application/resource-lists+xml"
MIME_ELEMENT = "application/xcap-el+xml"
#: the OMA blocked-contacts list in the user's resource-lists ``index`` document
BLOCKED_LIST = "oma_blockedcontacts"
#: the id of the access rule that rejects the members of that list
BLOCK_RULE = "simpleim-blocked-contacts"
MIME_GROUPS = "application/vnd.oma.poc.groups+xml"
MIME_GROUP_USAGE = "application/vnd.oma.group-usage-list+xml"
_LS = "urn:oma:xml:poc:list-service"
_RL = "urn:ietf:params:xml:ns:resource-lists"
_CP = "urn:ietf:params:xml:ns:common-policy"
_OCP = "urn:oma:xml:xdm:common-policy"
_HL = "{urn:oma:xml:history-list}"
_DIR = "{urn:oma:xml:xdm:xcap-directory}"
_SEGMENT_SAFE = ":@!$&'()*+,;=-._~"


@dataclass(frozen=True, slots=True)
class XcapResponse:
    status: int
    body: bytes
    content_type: str
    etag: str | None  # without quotes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """A pre-defined group as ``simpleim group create`` writes it (one document per group,
    named ``name``): the members may initiate and join it, the owner too."""

    name: str
    uri: str
    members: tuple[tuple[str, str | None], ...] = ()  # (URI, display name)
    display_name: str | None = None
    subject: str | None = None
    max_participants: int | None = None
    invite_members: bool = True
    chat: bool = False  # Appendix Q <imusage>chat</imusage>: a chat room anyone may join
    allow_invite: bool = True  # members may add users (allow-invite-users-dynamically)
    blocked: tuple[str, ...] = field(default=())  # URIs refused (join-handling block)
    anonymity: bool = False  # members may join anonymously (allow-anonymity, §7.2.3.2)
    private_messages: bool = True  # members may send private messages (§7.2.3.4)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def group_document(spec: GroupSpec, owner: str) -> bytes:
    """The group document (``urn:oma:xml:poc:list-service``) of ``spec``; ``owner``: the
    creator's URI, who is allowed everything members are."""
    entries = "".join(
        f"<entry uri={quoteattr(uri)}>"
        + (f"<rl:display-name>{escape(name)}</rl:display-name>" if name else "")
        + "</entry>" for uri, name in spec.members)
    actions = ("<allow-conference-state>true</allow-conference-state>"
               f"<allow-invite-users-dynamically>{_bool(spec.allow_invite)}"
               "</allow-invite-users-dynamically>"
               "<join-handling>allow</join-handling>"
               "<allow-initiate-conference>true</allow-initiate-conference>"
               f"<allow-anonymity>{_bool(spec.anonymity)}</allow-anonymity>"
               f"<allow-private-message>{_bool(spec.private_messages)}"
               "</allow-private-message>")
    rules = (f'<cp:rule id="members"><cp:conditions><ocp:is-list-member/></cp:conditions>'
             f"<cp:actions>{actions}</cp:actions></cp:rule>"
             f'<cp:rule id="owner"><cp:conditions><cp:identity><cp:one id={quoteattr(owner)}/>'
             f"</cp:identity></cp:conditions><cp:actions>{actions}</cp:actions></cp:rule>")
    if spec.chat:
        rules += ('<cp:rule id="anyone"><cp:conditions><ocp:other-identity/></cp:conditions>'
                  "<cp:actions><allow-conference-state>true</allow-conference-state>"
                  "<join-handling>allow</join-handling></cp:actions></cp:rule>")
    if spec.blocked:
        ones = "".join(f"<cp:one id={quoteattr(u)}/>" for u in spec.blocked)
        rules += (f'<cp:rule id="blocked"><cp:conditions><cp:identity>{ones}</cp:identity>'
                  "</cp:conditions><cp:actions><join-handling>block</join-handling>"
                  "</cp:actions></cp:rule>")
    parts = [
        f"<display-name>{escape(spec.display_name or spec.name)}</display-name>",
        f"<subject>{escape(spec.subject)}</subject>" if spec.subject else "",
        f"<list>{entries}</list>",
        f"<invite-members>{_bool(spec.invite_members)}</invite-members>",
        (f"<max-participant-count>{spec.max_participants}</max-participant-count>"
         if spec.max_participants else ""),
        f"<cp:ruleset>{rules}</cp:ruleset>",
        '<supported-services><service enabler="urn:oma:xml:im"/></supported-services>',
    ]
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<group xmlns="{_LS}" xmlns:rl="{_RL}" '
            f'xmlns:cp="{_CP}" xmlns:ocp="{_OCP}">\n  <list-service uri={quoteattr(spec.uri)}>'
            + "".join(parts) + "</list-service>\n</group>\n").encode()


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One ``<history>`` of a history-list (Appendix J)."""

    reference: str
    date: str
    size: int | None
    expiry: str | None
    subject: str
    mode: str  # pager / large-message / session
    timestamp: str | None
    sender: str
    recipient: str


def parse_history_list(body: bytes) -> list[HistoryItem]:
    """The items of a ``urn:oma:xml:history-list`` document; ContentError if malformed."""
    try:
        root = SafeET.fromstring(body)
    except (SafeET.ParseError, ValueError) as exc:
        raise ContentError(f"bad history-list: {exc}") from None
    out = []
    for h in root.findall(f"{_HL}history"):
        mode_el = next((c for c in h if c.tag in (f"{_HL}pager", f"{_HL}large-message",
                                                  f"{_HL}session")), None)

        def text(el: object, name: str) -> str:
            found = getattr(el, "find", lambda _n: None)(f"{_HL}{name}")
            return (found.text or "").strip() if found is not None else ""

        size = text(h, "size")
        out.append(HistoryItem(
            reference=h.get("history-reference", ""), date=h.get("date", ""),
            size=int(size) if size.isdigit() else None, expiry=text(h, "expiry") or None,
            subject=text(h, "subject"),
            mode=mode_el.tag.removeprefix(_HL) if mode_el is not None else "",
            timestamp=text(mode_el, "time-stamp") or None if mode_el is not None else None,
            sender=text(mode_el, "from") if mode_el is not None else "",
            recipient=text(mode_el, "to") if mode_el is not None else ""))
    return out


class XcapClient:
    """An XCAP client for one user.  ``root``: the XCAP root URI
    (``http://host:port/xcap-root``); ``user``: ``alice@example.com``."""

    def __init__(self, root: str, user: str, password: str, *, timeout: float = 30.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        """``ssl_context``: how an ``https://`` root's certificate is checked (None: the
        system's CAs)."""
        self.root = root.rstrip("/")
        self._ssl = ssl_context
        self.user = user.removeprefix("sip:")
        self.xui = f"sip:{self.user}"
        self._login = self.user.split("@", 1)[0]
        self._password = password
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> XcapClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            digest = aiohttp.DigestAuthMiddleware(login=self._login, password=self._password)
            connector = aiohttp.TCPConnector(ssl=self._ssl) if self._ssl is not None else None
            self._session = aiohttp.ClientSession(
                middlewares=(digest,), timeout=aiohttp.ClientTimeout(total=self._timeout),
                connector=connector)
        return self._session

    def url(self, path: str) -> str:
        """A full URL for ``path`` (a URL, or a path below the root with ``~`` for our
        own tree, e.g. ``org.openmobilealliance.groups/~/friends``)."""
        if path.startswith(("http://", "https://")):
            return path
        parts = path.lstrip("/").split("/")
        if len(parts) >= 2 and parts[1] == "~":
            parts[1:2] = ["users", quote(self.xui, safe=_SEGMENT_SAFE)]
        return f"{self.root}/" + "/".join(parts)

    def document_url(self, auid: str, document: str, selector: str | None = None,
                     namespaces: Mapping[str, str] | None = None) -> str:
        """The URL of one of our documents, optionally with a node selector (percent-
        encoded here) and ``xmlns()`` bindings for its prefixes (RFC 4825 §6.4)."""
        url = (f"{self.root}/{quote(auid, safe='')}/users/{quote(self.xui, safe=_SEGMENT_SAFE)}/"
               + "/".join(quote(s, safe=_SEGMENT_SAFE) for s in document.split("/")))
        if selector is not None:
            url += "/~~/" + quote(selector, safe="/:@*=")
        if namespaces:
            url += "?" + "".join(quote(f"xmlns({p}={ns})", safe="()=:")
                                 for p, ns in namespaces.items())
        return url

    async def request(self, method: str, path: str, body: bytes | None = None, *,
                      content_type: str | None = None, if_match: str | None = None,
                      if_none_match: str | None = None) -> XcapResponse:
        headers = {}
        if content_type:
            headers["Content-Type"] = content_type
        if if_match:
            headers["If-Match"] = if_match if if_match == "*" else _quoted(if_match)
        if if_none_match:
            headers["If-None-Match"] = (if_none_match if if_none_match == "*"
                                        else _quoted(if_none_match))
        async with self._http().request(method, self.url(path), data=body,
                                        headers=headers) as resp:
            data = await resp.read()
            etag = resp.headers.get("ETag")
            return XcapResponse(resp.status, data, resp.headers.get("Content-Type", ""),
                                etag.strip('"') if etag else None)

    async def get(self, path: str, *, if_none_match: str | None = None) -> XcapResponse:
        return await self.request("GET", path, if_none_match=if_none_match)

    async def put(self, path: str, body: bytes, content_type: str, *,
                  if_match: str | None = None, if_none_match: str | None = None) -> XcapResponse:
        return await self.request("PUT", path, body, content_type=content_type,
                                  if_match=if_match, if_none_match=if_none_match)

    async def delete(self, path: str, *, if_match: str | None = None) -> XcapResponse:
        return await self.request("DELETE", path, if_match=if_match)

    # ---- groups (Shared Group XDMS) and Appendix Q

    async def put_group(self, spec: GroupSpec, *, create_only: bool = False) -> XcapResponse:
        """Write the group document (and its ``<imusage>`` in our Group Usage List)."""
        resp = await self.put(self.document_url(AUID_GROUPS, spec.name),
                              group_document(spec, self.xui), MIME_GROUPS,
                              if_none_match="*" if create_only else None)
        _raise_for(resp)
        await self._set_usage(spec.uri, "chat" if spec.chat else "predefined")
        return resp

    async def _set_usage(self, uri: str, usage: str | None) -> None:
        """Add / replace / remove (None) the group's entry in our Group Usage List by an
        element PUT / DELETE (RFC 4825 §8.2.3): the document is created when missing."""
        doc = self.document_url(AUID_GROUP_USAGE, "index")
        sel = f'resource-lists/list[@name="oma_grouplist"]/entry[@uri={quoteattr(uri)}]'
        if usage is None:
            resp = await self.delete(self.document_url(AUID_GROUP_USAGE, "index", sel))
            if resp.status not in (200, 404):
                _raise_for(resp)
            return
        entry = (f'<entry xmlns="{_RL}" xmlns:ux="urn:oma:xml:xdm:extensions" '
                 f"uri={quoteattr(uri)}><ux:uriusages><ux:imusage>{usage}</ux:imusage>"
                 "</ux:uriusages></entry>").encode()
        resp = await self.put(self.document_url(AUID_GROUP_USAGE, "index", sel), entry,
                              "application/xcap-el+xml")
        if resp.status == 409:  # no document or no list yet: write the whole document
            current = await self.get(doc)
            if current.status == 404:
                body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<resource-lists xmlns="{_RL}">'
                        '<list name="oma_grouplist"/></resource-lists>\n').encode()
                _raise_for(await self.put(doc, body, MIME_GROUP_USAGE, if_none_match="*"))
            else:
                lst = (f'<list xmlns="{_RL}" name="oma_grouplist"/>').encode()
                _raise_for(await self.put(self.document_url(
                    AUID_GROUP_USAGE, "index", 'resource-lists/list[@name="oma_grouplist"]'),
                    lst, "application/xcap-el+xml"))
            resp = await self.put(self.document_url(AUID_GROUP_USAGE, "index", sel), entry,
                                  "application/xcap-el+xml")
        _raise_for(resp)

    async def get_group(self, name: str) -> XcapResponse:
        return await self.get(self.document_url(AUID_GROUPS, name))

    async def add_member(self, name: str, uri: str,
                         display_name: str | None = None) -> XcapResponse:
        """Add ``uri`` to the stored group ``name`` by an element PUT of its ``<entry>``
        (RFC 4825 §8.2.3): 201 added, 200 already a member (entry replaced, e.g. a new
        display name); XcapError 409 (``<no-parent>``, RFC 4825 §8.2.1) when there is no such
        group."""
        entry = (f'<entry xmlns="{_LS}" xmlns:rl="{_RL}" uri={quoteattr(uri)}>'
                 + (f"<rl:display-name>{escape(display_name)}</rl:display-name>"
                    if display_name else "") + "</entry>").encode()
        resp = await self.put(self.document_url(AUID_GROUPS, name, _member_selector(uri)),
                              entry, "application/xcap-el+xml")
        _raise_for(resp)
        return resp

    async def remove_member(self, name: str, uri: str) -> XcapResponse:
        """Remove ``uri`` from the stored group ``name`` (element DELETE, RFC 4825 §8.3);
        XcapError 404 when it is not a member or there is no such group."""
        resp = await self.delete(self.document_url(AUID_GROUPS, name, _member_selector(uri)))
        _raise_for(resp)
        return resp

    async def delete_group(self, name: str) -> XcapResponse:
        current = await self.get_group(name)
        resp = await self.delete(self.document_url(AUID_GROUPS, name))
        if resp.ok and current.ok:
            uri = _group_uri(current.body)
            if uri:
                await self._set_usage(uri, None)
        return resp

    async def group_names(self) -> list[str]:
        """Our group documents, from the OMA xcap-directory."""
        resp = await self.get(self.document_url(AUID_DIRECTORY, "directory.xml"))
        _raise_for(resp)
        root = SafeET.fromstring(resp.body)
        prefix = f"/{AUID_GROUPS}/users/"
        names = []
        for folder in root.findall(f"{_DIR}folder"):
            if folder.get("auid") != AUID_GROUPS:
                continue
            for entry in folder.findall(f"{_DIR}entry"):
                uri = entry.get("uri", "")
                _, _, rest = uri.partition(prefix)
                names.append(rest.split("/", 1)[1] if "/" in rest else rest)
        return names

    # ---- blocked contacts (OMA Shared Policy XDMS, Appendix S)

    def _blocked_url(self, uri: str | None = None) -> str:
        sel = f'resource-lists/list[@name="{BLOCKED_LIST}"]'
        if uri is not None:
            sel += f"/entry[@uri={quoteattr(uri)}]"
        return self.document_url("resource-lists", "index", sel)

    async def block(self, uri: str) -> bool:
        """Refuse everything from ``uri`` (§6.1.2.1 step 2): its ``<entry>`` in our
        blocked-contacts list (an element PUT, RFC 4825 §8.2.3; the list or the document
        is created when missing) and the access rule that rejects the list's members.
        True when newly blocked, False when it already was."""
        entry = f'<entry xmlns="{_RL}" uri={quoteattr(uri)}/>'
        resp = await self.put(self._blocked_url(uri), entry.encode(), MIME_ELEMENT)
        if resp.status == 409:          # <no-parent>: no list yet, or no document
            lst = f'<list xmlns="{_RL}" name="{BLOCKED_LIST}">{entry}</list>'
            resp = await self.put(self._blocked_url(), lst.encode(), MIME_ELEMENT)
            if resp.status == 409:
                doc = (f'<?xml version="1.0" encoding="UTF-8"?>\n<resource-lists '
                       f'xmlns="{_RL}">{lst}</resource-lists>\n')
                resp = await self.put(self.document_url("resource-lists", "index"),
                                      doc.encode(), MIME_RESOURCE_LISTS, if_none_match="*")
        _raise_for(resp)
        await self._block_rule()
        return resp.status == 201

    async def _block_rule(self) -> None:
        """The rule (element PUT, idempotent; the document when there is none): the
        members of our blocked-contacts list are rejected for every IM medium."""
        anchor = (f"{self.root}/resource-lists/users/{quote(self.xui, safe=_SEGMENT_SAFE)}"
                  f"/index/~~/resource-lists/list%5b@name=%22{BLOCKED_LIST}%22%5d")
        rule = (f'<rule xmlns="{_CP}" xmlns:ocp="{_OCP}" id="{BLOCK_RULE}"><conditions>'
                f'<ocp:external-list><ocp:entry anc={quoteattr(anchor)}/></ocp:external-list>'
                f'</conditions><actions><allow-reject-invite>true</allow-reject-invite>'
                f'</actions></rule>')
        sel = f'ruleset/rule[@id="{BLOCK_RULE}"]'
        resp = await self.put(self.document_url(AUID_ACCESS_RULES, "index", sel),
                              rule.encode(), MIME_ELEMENT)
        if resp.status == 409:
            doc = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ruleset xmlns="{_CP}">{rule}'
                   f'</ruleset>\n')
            resp = await self.put(self.document_url(AUID_ACCESS_RULES, "index"),
                                  doc.encode(), MIME_ACCESS_RULES, if_none_match="*")
        _raise_for(resp)

    async def unblock(self, uri: str) -> None:
        """Take ``uri`` off our blocked-contacts list (element DELETE); XcapError 404 when
        it is not on it."""
        _raise_for(await self.delete(self._blocked_url(uri)))

    async def blocked(self) -> list[str]:
        """The URIs on our blocked-contacts list (none when there is no list)."""
        resp = await self.get(self._blocked_url())
        if resp.status == 404:
            return []
        _raise_for(resp)
        try:
            root = SafeET.fromstring(resp.body)
        except (SafeET.ParseError, ValueError) as exc:
            raise ContentError(f"blocked-contacts list unreadable: {exc}") from exc
        return [e.get("uri", "") for e in root.iter(f"{{{_RL}}}entry") if e.get("uri")]

    # ---- metadata (read-only)

    async def deferred_list(self) -> list[HistoryItem]:
        """C-DM-02 (§12.1.2): the deferred-message metadata."""
        resp = await self.get(self.document_url(AUID_DEFERRED, "deferred-list"))
        _raise_for(resp)
        return parse_history_list(resp.body)

    async def history_list(self) -> list[HistoryItem]:
        """§13.1.4: the conversation history metadata."""
        resp = await self.get(self.document_url(AUID_CONV_HISTORY, "conv-history"))
        _raise_for(resp)
        return parse_history_list(resp.body)


def _member_selector(uri: str) -> str:
    """The node selector of a group member's ``<entry>`` (RFC 4825 §6.3)."""
    return f"group/list-service/list/entry[@uri={quoteattr(uri)}]"


def _quoted(tag: str) -> str:
    return tag if tag.startswith('"') else f'"{tag}"'


def _group_uri(body: bytes) -> str | None:
    try:
        root = SafeET.fromstring(body)
    except (SafeET.ParseError, ValueError):
        return None
    service = root.find(f"{{{_LS}}}list-service")
    return service.get("uri") if service is not None else None


def _raise_for(resp: XcapResponse) -> None:
    if not resp.ok:
        raise XcapError(resp.body.decode("utf-8", "replace").strip()[:300]
                        or f"XCAP request failed ({resp.status})", status=resp.status)
