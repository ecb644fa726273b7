"""The XCAP server (RFC 4825) of ``simpleim server --xcap HOST:PORT``: aiohttp on the server's
event loop, digest authentication against the same user store as SIP (RFC 7616 / RFC 4825
§13.3), per-user trees ``<root>/<auid>/users/<xui>/<document>[/~~/<node selector>]``, the
``global`` tree read-only.

* GET of a document, element, attribute or namespace bindings (§8.1; MIME types of §15:
  the usage's type, ``application/xcap-el+xml``, ``application/xcap-att+xml``,
  ``application/xcap-ns+xml``); ``If-None-Match`` → 304.
* PUT / DELETE of a document, element or attribute (§8.2, §8.3), written to the store before
  the 200/201 is sent; ``If-Match`` / ``If-None-Match`` → 412 when they fail (§7.11);
  409 with an ``application/xcap-error+xml`` body (§11); 413 above ``max_document``.
* A user reads and writes only the tree of its own XUI (``sip:<user>@<domain>``): 403
  otherwise.  Server-produced documents (``xcap-caps``, ``deferred-list``,
  ``conv-history``, ``xcap-directory``) are GET only: 405 with ``Allow: GET``.

Change notification (xcap-diff, RFC 5875) is not offered: clients re-read with
``If-None-Match`` (304 while nothing changed).
"""

from __future__ import annotations

import logging
import math
import ssl
import time
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import quote

from aiohttp import web
from lxml import etree

from simpleim.errors import StorageError, XcapError
from simpleim.server.auth import AuthDecision
from simpleim.server.guard import AuthGuard
from simpleim.server.xdm.api import GLOBAL_OWNER, DocumentRef, XdmDocument, normalize_uri
from simpleim.server.xdm.documents import check_preconditions
from simpleim.server.xdm.function import XdmFunction
from simpleim.server.xdm.metadata import content_etag, history_list
from simpleim.server.xdm.selector import (
    NodeSelector,
    XcapPath,
    delete_attribute,
    delete_element,
    namespace_bindings,
    parse_node_selector,
    parse_xcap_path,
    parse_xmlns_query,
    put_attribute,
    put_element,
    select,
)
from simpleim.server.xdm.usages import (
    AUID_CONV_HISTORY,
    AUID_DEFERRED,
    AUID_DIRECTORY,
    AUID_XCAP_CAPS,
    USAGES,
    XCAP_CAPS_NS,
    XCAP_DIRECTORY_NS,
    AppUsage,
)
from simpleim.server.xdm.xmldoc import parse_document, parse_fragment, serialize

__all__ = ["HttpAuthenticator", "XcapServer", "XCAP_ROOT", "error_body"]

log = logging.getLogger("simpleim.server.xdm")

#: the path of the XCAP root on this server (RFC 4825 §6.1)
XCAP_ROOT = "/xcap-root"
XCAP_ERROR_NS = "urn:ietf:params:xml:ns:xcap-error"
MIME_ELEMENT = "application/xcap-el+xml"
MIME_ATTRIBUTE = "application/xcap-att+xml"
MIME_NAMESPACES = "application/xcap-ns+xml"
MIME_ERROR = "application/xcap-error+xml"


class HttpAuthenticator(Protocol):
    """What the XCAP server needs from :class:`simpleim.server.auth.Authenticator`."""

    async def check(self, method: str, credential_values: Sequence[str], *, proxy: bool,
                    body: bytes = b"") -> AuthDecision: ...


def _esc(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def error_body(exc: XcapError) -> bytes:
    """The ``<xcap-error>`` document of RFC 4825 §11.2 for a 409."""
    cond = exc.condition or "constraint-failure"
    phrase = f' phrase="{_esc(exc.reason[:200])}"'
    if cond == "uniqueness-failure":
        alts = "".join(f"<alt-value>{_esc(a)}</alt-value>" for a in exc.alt_values)
        inner = f'<exists field="{_esc(exc.field or "")}">{alts}</exists>'
        element = f"<{cond}{phrase}>{inner}</{cond}>"
    elif cond == "no-parent" and exc.ancestor:
        element = f"<{cond}{phrase}><ancestor>{_esc(exc.ancestor)}</ancestor></{cond}>"
    else:
        element = f"<{cond}{phrase}/>"
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<xcap-error xmlns="{XCAP_ERROR_NS}">'
            f"{element}</xcap-error>\n").encode()


def _xcap_caps() -> bytes:
    auids = "".join(f"<auid>{a}</auid>" for a in sorted(USAGES))
    namespaces = "".join(f"<namespace>{n}</namespace>"
                         for n in sorted({u.namespace for u in USAGES.values()}))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<xcap-caps xmlns="{XCAP_CAPS_NS}">'
            f"<auids>{auids}</auids><extensions/><namespaces>{namespaces}</namespaces>"
            "</xcap-caps>\n").encode()


def _quote_segment(text: str) -> str:
    return quote(text, safe=":@!$&'()*+,;=-._~")


class XcapServer:
    """The XCAP HTTP endpoint over the XDM role; ``auth`` None: no authentication (tests,
    ``--no-auth``): every request acts as the owner of the tree it names."""

    def __init__(self, xdm: XdmFunction, domain: str, auth: HttpAuthenticator | None, *,
                 max_document: int = 1024 * 1024, guard: AuthGuard | None = None) -> None:
        self._xdm = xdm
        self._domain = domain
        self._auth = auth
        # the SIP core's failed-authentication lockouts apply to XCAP too (same passwords)
        self._guard = guard
        self._max = max_document
        self._runner: web.AppRunner | None = None
        app = web.Application(client_max_size=max_document)
        app.router.add_route("*", XCAP_ROOT + "/{tail:.*}", self._handle)
        self._app = app

    async def start(self, host: str, port: int,
                    ssl_context: ssl.SSLContext | None = None) -> tuple[str, int]:
        """Listen (HTTPS with ``ssl_context``); the bound (host, port) (port 0: a free
        one)."""
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        addr = runner.addresses[0]
        return str(addr[0]), int(addr[1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ request

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except XcapError as exc:
            return self._error(exc)
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text=f"larger than {self._max} bytes\n")
        except StorageError as exc:
            log.warning("XCAP %s %s: store failure: %s", request.method, request.path, exc)
            return web.Response(status=503, text="store unavailable\n",
                                headers={"Retry-After": "5"})

    def _error(self, exc: XcapError) -> web.Response:
        if exc.status == 409:
            return web.Response(status=409, body=error_body(exc),
                                headers={"Content-Type": MIME_ERROR})
        headers = {"Allow": "GET"} if exc.status == 405 else {}
        text = "" if exc.status in (304, 412) else exc.reason + "\n"
        return web.Response(status=exc.status, text=text or None, headers=headers)

    async def _authenticate(self, request: web.Request) -> str | web.Response | None:
        """The authenticated user name, a 401/400 response, or None without auth."""
        if self._auth is None:
            return None
        host = request.remote or ""
        guard = self._guard
        left = guard.locked_source(host) if guard is not None else 0.0
        if left <= 0:
            decision = await self._auth.check(request.method,
                                              request.headers.getall("Authorization", []),
                                              proxy=False)
            if guard is not None and decision.username:
                left = guard.locked_user(decision.username)
        if left > 0:
            # a locked-out source or user gets 403 whatever it sends (no more guesses)
            return web.Response(status=403, text="too many failed authentications\n",
                                headers={"Retry-After": str(math.ceil(left))})
        if guard is not None and decision.failed:
            guard.failure(host, 0, "http", decision.username, request.method)
        if decision.ok and decision.username:
            return decision.username
        headers = [(k, v) for k, v in decision.headers]
        resp = web.Response(status=decision.status, text=decision.reason + "\n")
        for k, v in headers:
            resp.headers.add(k, v)
        return resp

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "PUT", "DELETE"):
            return web.Response(status=405, headers={"Allow": "GET, PUT, DELETE"})
        user = await self._authenticate(request)
        if isinstance(user, web.Response):
            return user
        raw_path, _, query = request.raw_path.partition("?")
        path = parse_xcap_path(raw_path[len(XCAP_ROOT) + 1:])
        usage = USAGES.get(path.auid)
        if usage is None:
            raise XcapError(f"no application usage {path.auid!r}", status=404)
        owner = GLOBAL_OWNER
        if path.owner is not None:
            owner = normalize_uri(path.owner)
            if user is not None and owner != normalize_uri(f"sip:{user}@{self._domain}"):
                raise XcapError("this is another user's tree", status=403)
        if request.content_length is not None and request.content_length > self._max:
            raise XcapError(f"larger than {self._max} bytes", status=413)
        selector = None
        if path.selector is not None:
            selector = parse_node_selector(path.selector, parse_xmlns_query(query),
                                           usage.namespace)
        ref = DocumentRef(path.auid, owner, path.document)
        if request.method == "GET":
            return await self._get(request, usage, ref, selector)
        if not usage.writable or path.owner is None:
            raise XcapError("this document is read-only", status=405)
        body = await request.read() if request.method == "PUT" else b""
        if selector is not None and selector.namespaces:
            raise XcapError("namespace bindings are read-only", status=405)
        return await self._write(request, usage, ref, path, selector, body)

    # ------------------------------------------------------------------ GET

    async def _produced(self, usage: AppUsage, ref: DocumentRef) -> bytes | None:
        """The content of a server-produced document, None if there is no such one."""
        if usage.auid == AUID_XCAP_CAPS:
            return _xcap_caps() if ref.owner == GLOBAL_OWNER and ref.name == "index" else None
        if ref.owner == GLOBAL_OWNER or ref.name != usage.document:
            return None
        aor = ref.owner.partition(":")[2]
        if usage.auid == AUID_DEFERRED:
            return history_list(await self._xdm.deferred.deferred_entries(aor))
        if usage.auid == AUID_CONV_HISTORY:
            return history_list(await self._xdm.history.history_entries(aor))
        if usage.auid == AUID_DIRECTORY:
            return await self._directory(ref.owner)
        return None

    async def _directory(self, owner: str) -> bytes:
        """OMA XDM xcap-directory: every document of ``owner`` per application usage."""
        root = etree.fromstring(f'<xcap-directory xmlns="{XCAP_DIRECTORY_NS}"/>'.encode())
        for auid, usage in sorted(USAGES.items()):
            if not usage.writable:
                continue
            folder = etree.SubElement(root, f"{{{XCAP_DIRECTORY_NS}}}folder", auid=auid)
            for doc in await self._xdm.documents.documents(auid, owner):
                uri = "/".join((XCAP_ROOT, auid, "users", _quote_segment(owner),
                                *(_quote_segment(s) for s in doc.ref.name.split("/"))))
                entry = etree.SubElement(folder, f"{{{XCAP_DIRECTORY_NS}}}entry")
                entry.set("uri", uri)
                entry.set("etag", doc.etag)
                entry.set("last-modified", time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                         time.gmtime(doc.updated)))
        return serialize(root, declaration=True)

    async def _load(self, usage: AppUsage, ref: DocumentRef) -> XdmDocument | None:
        if usage.writable:
            return await self._xdm.documents.get(ref)
        content = await self._produced(usage, ref)
        if content is None:
            return None
        return XdmDocument(ref, content_etag(content), content, time.time())

    async def _get(self, request: web.Request, usage: AppUsage, ref: DocumentRef,
                   selector: NodeSelector | None) -> web.Response:
        doc = await self._load(usage, ref)
        if doc is None:
            raise XcapError("no such document", status=404)
        status = check_preconditions(doc.etag, request.headers.get("If-Match"),
                                     request.headers.get("If-None-Match"), read=True)
        etag = {"ETag": f'"{doc.etag}"'}
        if status == 304:
            return web.Response(status=304, headers=etag)
        if status is not None:
            raise XcapError("precondition failed", status=status)
        if selector is None:
            return web.Response(body=doc.content, headers={**etag, "Content-Type": usage.mime})
        root = parse_document(doc.content)
        el, _ = select(root, selector.steps)
        if el is None:
            raise XcapError("no such element", status=404)
        if selector.namespaces:
            body, mime = namespace_bindings(el), MIME_NAMESPACES
        elif selector.attribute is not None:
            value = el.get(selector.attribute)
            if value is None:
                raise XcapError("no such attribute", status=404)
            body, mime = _esc(value).encode(), MIME_ATTRIBUTE
        else:
            body, mime = serialize(el), MIME_ELEMENT
        return web.Response(body=body, headers={**etag, "Content-Type": mime})

    # ------------------------------------------------------------------ PUT / DELETE

    def _ancestor(self, request: web.Request, path: XcapPath, depth: str | None,
                  sel: NodeSelector | None) -> str:
        """The URI of the closest existing ancestor (§11.2 ``<no-parent>``)."""
        base = f"{request.scheme}://{request.host}{XCAP_ROOT}/{_quote_segment(path.auid)}"
        tree = f"{base}/users/{_quote_segment(path.owner or '')}"
        if depth is None or sel is None:
            return tree
        doc = tree + "/" + "/".join(_quote_segment(s) for s in path.document.split("/"))
        n = int(depth)
        if n == 0:
            return doc
        return doc + "/~~/" + "/".join(quote(s.text, safe="") for s in sel.steps[:n])

    async def _write(self, request: web.Request, usage: AppUsage, ref: DocumentRef,
                     path: XcapPath, selector: NodeSelector | None,
                     body: bytes) -> web.Response:
        method = request.method
        mime = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if method == "PUT":
            expected = (usage.mime if selector is None else
                        MIME_ATTRIBUTE if selector.attribute is not None else MIME_ELEMENT)
            if mime != expected:
                raise XcapError(f"the body must be {expected}", status=415)
        created = False

        def transform(current: XdmDocument | None) -> bytes | None:
            nonlocal created
            if selector is None:
                created = current is None
                return body if method == "PUT" else None
            if current is None:
                if method == "DELETE":
                    raise XcapError("no such document", status=404)
                raise XcapError("the document does not exist", condition="no-parent",
                                ancestor=self._ancestor(request, path, None, None))
            root = parse_document(current.content)
            try:
                if method == "DELETE":
                    if selector.attribute is not None:
                        delete_attribute(root, selector)
                    else:
                        delete_element(root, selector)
                elif selector.attribute is not None:
                    created = put_attribute(root, selector, body)
                else:
                    created = put_element(root, selector, parse_fragment(body, {
                        k: v for k, v in _parent_nsmap(root, selector).items()}))
            except XcapError as exc:
                if exc.condition == "no-parent":
                    exc.ancestor = self._ancestor(request, path, exc.ancestor, selector)
                raise
            return serialize(root, declaration=True)

        doc, _ = await self._xdm.documents.update(
            ref, transform, if_match=request.headers.get("If-Match"),
            if_none_match=request.headers.get("If-None-Match"))
        headers = {"ETag": f'"{doc.etag}"'} if doc is not None else {}
        return web.Response(status=201 if created else 200, headers=headers)


def _parent_nsmap(root: etree._Element, sel: NodeSelector) -> dict[str | None, str]:
    """The namespace bindings in scope where the new element goes (the deepest element
    the selector's parent steps reach)."""
    el, _ = select(root, sel.steps[:-1]) if len(sel.steps) > 1 else (root, 1)
    scope = el if el is not None else root
    return dict(scope.nsmap)
