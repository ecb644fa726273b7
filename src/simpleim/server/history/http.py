"""The history HTTP endpoint (beyond the spec: searchable history), on a listener of its own
(``[history] http_listen``; off by default).

Every request is authenticated with HTTP digest (RFC 7616) against the same user store as
SIP; a user only ever sees their own history.  JSON, UTF-8:

* ``GET /history?limit=N&offset=K`` - the stored histories (newest last):
  ``{"histories": [{"reference", "kind", "peer", "subject", "filename", "call_id",
  "started", "ended", "size"}], "next_offset": K+N | null}``
* ``GET /history/search?peer=P&since=T&until=T&text=W&limit=N&offset=K`` - stored items
  (messages and session messages) matching every given filter, oldest first; ``peer`` and
  ``text`` are case-insensitive substrings, ``since`` / ``until`` an ISO 8601 time or epoch
  seconds: ``{"items": [{"reference", "kind", "direction", "peer", "received",
  "call_id", "message_id", "content_type", "text"}], "next_offset": ... }``
* ``GET /history/metadata`` - the history metadata document (XML, §13.3.2).

Errors: 401 with a digest challenge, 403 with Retry-After while the source or the user is
locked out after failed authentications (the same counters and limits as SIP), 400 for a
bad parameter (JSON ``{"error": ...}``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from simpleim.errors import StorageError
from simpleim.server.history.function import HistoryFunction
from simpleim.store.history import HistoryItem, HistoryQuery, HistoryRecord

__all__ = ["HistoryHttpServer", "HttpAuth", "HttpAuthResult"]

log = logging.getLogger("simpleim.server.history")

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class HttpAuthResult:
    """``user``: the authenticated user name (None: answer ``status`` with ``headers``)."""

    user: str | None
    status: int = 401
    headers: tuple[tuple[str, str], ...] = ()


#: digest check of one request: (method, Authorization values, source host, source port)
#: -> the outcome
HttpAuth = Callable[[str, Sequence[str], str, int], Awaitable[HttpAuthResult]]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def _time(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"bad time {value!r}: ISO 8601 or epoch seconds") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _int(value: str | None, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"{number} outside {low}..{high}")
    return number


def _record_json(r: HistoryRecord, host: str) -> dict[str, object]:
    return {"reference": f"{r.id}@{host}", "kind": r.kind.value, "peer": r.peer,
            "subject": r.subject, "filename": r.filename, "call_id": r.call_id,
            "started": _iso(r.started_at), "ended": _iso(r.ended_at), "size": r.size}


def _item_json(r: HistoryRecord, i: HistoryItem, host: str) -> dict[str, object]:
    return {"reference": f"{r.id}@{host}", "kind": i.kind.value, "direction": i.direction,
            "peer": r.peer, "received": _iso(i.received_at), "call_id": i.call_id,
            "message_id": i.message_id, "content_type": i.content_type, "text": i.text}


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False),
                        content_type="application/json", charset="utf-8")


class HistoryHttpServer:
    """aiohttp application with the history endpoints, bound to ``host:port``."""

    def __init__(self, function: HistoryFunction, auth: HttpAuth, domain: str) -> None:
        self._fn = function
        self._auth = auth
        self._domain = domain
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/history", self._list)
        app.router.add_get("/history/search", self._search)
        app.router.add_get("/history/metadata", self._metadata)
        self._app = app

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen; the bound (host, port) (port 0 picks a free one)."""
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
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

    async def _owner(self, request: web.Request) -> str | web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        host = request.remote or ""
        port = int(peer[1]) if isinstance(peer, tuple) and len(peer) > 1 else 0
        result = await self._auth(request.method, request.headers.getall("Authorization", []),
                                  host, port)
        if result.user is None:
            resp = _json({"error": "authentication required"}, result.status)
            for name, value in result.headers:
                resp.headers.add(name, value)
            return resp
        return f"{result.user}@{self._domain}".lower()

    async def _list(self, request: web.Request) -> web.Response:
        owner = await self._owner(request)
        if isinstance(owner, web.Response):
            return owner
        try:
            limit = _int(request.query.get("limit"), 100, 1, MAX_PAGE)
            offset = _int(request.query.get("offset"), 0, 0, 10**9)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        try:
            records = await self._fn.repo.of(owner, limit=limit + 1, offset=offset)
        except StorageError as exc:
            log.error("history store failure: %s", exc)
            return _json({"error": "store failure"}, 500)
        more = len(records) > limit
        return _json({"histories": [_record_json(r, self._domain) for r in records[:limit]],
                      "next_offset": offset + limit if more else None})

    async def _search(self, request: web.Request) -> web.Response:
        owner = await self._owner(request)
        if isinstance(owner, web.Response):
            return owner
        q = request.query
        try:
            limit = _int(q.get("limit"), 50, 1, MAX_PAGE)
            offset = _int(q.get("offset"), 0, 0, 10**9)
            query = HistoryQuery(owner, peer=q.get("peer") or None, since=_time(q.get("since")),
                                 until=_time(q.get("until")), text=q.get("text") or None,
                                 limit=limit + 1, offset=offset)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        try:
            found = await self._fn.search(query)
        except StorageError as exc:
            log.error("history store failure: %s", exc)
            return _json({"error": "store failure"}, 500)
        more = len(found) > limit
        return _json({"items": [_item_json(r, i, self._domain) for r, i in found[:limit]],
                      "next_offset": offset + limit if more else None})

    async def _metadata(self, request: web.Request) -> web.Response:
        owner = await self._owner(request)
        if isinstance(owner, web.Response):
            return owner
        try:
            body = await self._fn.metadata(owner)
        except StorageError as exc:
            log.error("history store failure: %s", exc)
            return _json({"error": "store failure"}, 500)
        return web.Response(body=body, content_type="application/xml", charset="utf-8")
