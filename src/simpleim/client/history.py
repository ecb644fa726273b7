"""Conversation history on the client (OMA SIMPLE IM §13.1; C-CH-01..C-CH-05).

* :meth:`HistoryFeature.fetch` (C-CH-03, §13.1.3): an INVITE to ``sip:History@DOMAIN`` with
  an ``a=recvonly`` MSRP offer and the URI list of the wanted history references
  (multipart/mixed: SDP + ``application/resource-lists+xml``); the server answers
  ``a=sendonly``, sends one MSRP SEND per stored item and BYEs.  Each SEND becomes a
  :class:`HistoryEntry`: a pager MESSAGE (``multipart/mixed`` with ``message/sip``), a
  session message (``message/msrp``) or session headers (``message/sipfrag``).
* :meth:`~HistoryFeature.delete` / :meth:`~HistoryFeature.delete_all` (C-CH-05, §13.1.5,
  §13.1.7): REFER to ``sip:Delete@DOMAIN`` with Refer-To the history reference, or
  ``sip:History@DOMAIN`` for all.  ``Refer-Sub: false`` (RFC 4488): the outcome is the
  final response.
* :meth:`~HistoryFeature.record` (C-CH-01 / C-CH-02, §13.1.1-§13.1.2): REFER to
  ``sip:History@DOMAIN[;historyfilename=NAME]`` with Refer-To the IM Session Identity with
  ``method=INVITE`` (start) or ``method=BYE`` (stop); with ``subscribe`` the NOTIFY
  (message/sipfrag) reports the outcome, else (``Refer-Sub: false``) the final response.
  For a 1-1 session through the server's B2BUA the identity is the session's Call-ID in
  the Refer-To (``<sip:History@DOMAIN;method=INVITE?Call-ID=...>``); for a group chat it is
  the conference URI the focus gave (§13.1.1 step 2c).  Extending a 1-1 session to a
  conference first (the §13.1.1 1a path, §7.1.1.6 with Replaces) is not done.
* :meth:`~HistoryFeature.search` / :meth:`~HistoryFeature.histories`: listing and searching
  use the server's history HTTP endpoint (``history_url``, digest with the account's
  credentials; docs/server.md "Conversation history"), not SIP.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from simpleim.content.cpim import parse_cpim
from simpleim.content.resource_lists import Entry, ResourceList, ResourceLists
from simpleim.errors import ConfigError, ProtocolError, SimpleImError
from simpleim.sdp import chat_stream
from simpleim.sdp.msrp import Direction
from simpleim.sip.header_values import MediaType
from simpleim.sip.message import SipRequest, SipResponse, parse_message
from simpleim.sip.multipart import MultipartPart, parse_multipart

from .context import ClientContext
from .events import HistoryEvent
from .features import SIP_IM
from .groupchat import GroupChat
from .invites import establish
from .multirefer import delete_refer
from .pager import build_request, new_call_id, new_tag
from .session import InviteSession, SessionFailed, receive_until_ended

__all__ = ["DELIVERY_TYPES", "HistoryEntry", "HistoryFeature", "HistoryPage", "decode_entry"]

#: what a retrieval offer accepts (§13.3.3: multipart/mixed with message/sip,
#: message/msrp, message/sipfrag)
DELIVERY_TYPES = ("multipart/mixed", "message/msrp", "message/sipfrag", "message/sip")


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One delivered history item."""

    kind: str             # "message" (pager), "large" (large message), "send" (session
    #                       message), "headers" (INVITE / 200 / BYE headers, sipfrag)
    sender: str           # From of the MESSAGE / CPIM From of the SEND ("" when unknown)
    text: str             # the message text (CPIM unwrapped), or the sipfrag lines
    date: str             # the server's receive timestamp (Date) or the CPIM DateTime
    call_id: str          # the original Call-ID
    message_id: str       # the original MSRP Message-ID (session messages)
    content_type: str     # the Content-Type of the SEND that carried it
    raw: bytes            # the SEND's body as received


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of the history HTTP endpoint: its rows (JSON objects of strings, numbers
    and nulls) and the offset of the next page (None: the last one)."""

    rows: tuple[dict[str, object], ...]
    next_offset: int | None


class HistorySession(InviteSession):
    kind = "history"


def _text(ctype: str, body: bytes) -> tuple[str, str, str]:
    """(text, sender, date) of a message body (CPIM unwrapped)."""
    base = ctype.split(";", 1)[0].strip().lower()
    if base == "message/cpim":
        try:
            cpim = parse_cpim(body)
        except SimpleImError:
            return body.decode("utf-8", "replace"), "", ""
        try:
            frm = cpim.from_addr
            stamp = cpim.datetime
        except SimpleImError:
            frm, stamp = None, None
        sender = frm.uri if frm is not None else ""
        date = stamp.text if stamp is not None else ""
        return cpim.body.decode("utf-8", "replace"), sender, date
    return body.decode("utf-8", "replace"), "", ""


def _msrp_fields(data: bytes) -> tuple[dict[str, str], bytes]:
    """Headers and body of an RFC 4975 SEND carried as message/msrp."""
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")[1:]
    fields: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        fields.setdefault(name.strip().lower(), value.strip())
    end = rest.rfind(b"\r\n-------")
    return fields, rest[:end] if end >= 0 else rest


def decode_entry(content_type: str, body: bytes) -> HistoryEntry:
    """What a retrieval SEND carries (§13.3.3), as a :class:`HistoryEntry`."""
    mt = MediaType.parse(content_type)
    base = mt.mime
    if base == "multipart/mixed" and mt.boundary:
        for part in parse_multipart(body, mt.boundary):
            part_type = (part.content_type or "").split(";", 1)[0].strip().lower()
            if part_type == "message/msrp":
                # a large message (§13.3.3.1: the stored SEND as message/msrp)
                found = decode_entry("message/msrp", part.body)
                return HistoryEntry("large", found.sender, found.text, found.date, "",
                                    found.message_id, content_type, body)
            if part_type != "message/sip":
                continue
            msg = parse_message(part.body)
            if not isinstance(msg, SipRequest):
                continue
            text, cpim_from, cpim_date = _text(msg.content_type or "text/plain", msg.body)
            return HistoryEntry("message", cpim_from or str(msg.from_addr.uri), text,
                                msg.headers.get("Date") or cpim_date, msg.call_id, "",
                                content_type, body)
        raise ProtocolError("multipart history item without message/sip", status=415)
    if base == "message/msrp":
        fields, inner = _msrp_fields(body)
        text, sender, date = _text(fields.get("content-type", "text/plain"), inner)
        return HistoryEntry("send", sender, text, date, "", fields.get("message-id", ""),
                            content_type, body)
    if base in ("message/sipfrag", "message/sip"):
        text = body.decode("utf-8", "replace").strip()
        fields = {}
        for line in text.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            fields.setdefault(name.strip().lower(), value.strip())
        return HistoryEntry("headers", fields.get("from", ""), text, fields.get("date", ""),
                            fields.get("call-id", ""), "", content_type, body)
    raise ProtocolError(f"unexpected history item type {content_type}", status=415)


class HistoryFeature:
    """Retrieving, deleting and recording conversation history (§13.1)."""

    def __init__(self, ctx: ClientContext) -> None:
        self.ctx = ctx

    def reference_uri(self, reference: str) -> str:
        """``ID``, ``ID@host`` or ``sip:ID@host`` -> the history reference URI."""
        text = reference.strip().strip("<>")
        if text.startswith("sip:"):
            return text
        if "@" not in text:
            text = f"{text}@{self.ctx.config.domain}"
        return "sip:" + text

    @property
    def service_uri(self) -> str:
        return f"sip:History@{self.ctx.config.domain}"

    async def fetch(self, references: Sequence[str], *,
                    timeout: float = 60.0) -> list[HistoryEntry]:
        """C-CH-03: retrieve the stored items of ``references`` in the server's order (each
        also a :class:`~simpleim.client.events.HistoryEvent`); raises
        :class:`~simpleim.client.session.SessionFailed` with the SIP status."""
        if not references:
            raise SessionFailed(400, "no history reference given")
        ctx = self.ctx
        doc = ResourceLists((ResourceList(tuple(Entry(self.reference_uri(r))
                                                for r in references)),))
        part = MultipartPart.create("application/resource-lists+xml", doc.to_bytes())
        session = HistorySession(ctx, self.service_uri, is_uac=True,
                                 call_id=f"{new_tag()}{new_tag()}@{ctx.msrp.host}")
        await establish(ctx, session, self.service_uri,
                        lambda i, local: chat_stream(local, accept_types=DELIVERY_TYPES,
                                                     accept_wrapped_types=("*",),
                                                     direction=Direction.RECVONLY),
                        1, accept_contact=f"*;{SIP_IM}", parts_after=[part], timeout=timeout)
        entries: list[HistoryEntry] = []

        def take(msg: object) -> None:
            sink = getattr(msg, "sink", None)
            data = bytes(sink.data) if sink is not None and hasattr(sink, "data") else b""
            ctype = getattr(msg, "content_type", None) or ""
            with contextlib.suppress(SimpleImError, ValueError):
                entry = decode_entry(ctype, data)
                entries.append(entry)
                ctx.emit(HistoryEvent(entry.kind, entry.sender, entry.text, entry.date,
                                      entry.call_id, entry.message_id, entry.content_type))

        # §13.3.3: the items, then the server's BYE
        await receive_until_ended(session, take, timeout)
        return entries

    async def _get(self, path: str, params: dict[str, str], key: str) -> HistoryPage:
        import aiohttp

        cfg = self.ctx.config
        if not cfg.history_url:
            raise ConfigError("no history_url configured (the server's history HTTP "
                              "endpoint, e.g. http://HOST:8090/history)")
        user = cfg.aor.removeprefix("sip:").split("@", 1)[0]
        digest = aiohttp.DigestAuthMiddleware(user, cfg.password)
        url = cfg.history_url.rstrip("/") + path
        try:
            async with aiohttp.ClientSession(middlewares=(digest,)) as http, \
                    http.get(url, params=params) as resp:
                data = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, ValueError) as exc:
            raise SessionFailed(503, f"history endpoint: {exc}") from exc
        if status != 200 or not isinstance(data, dict):
            why = data.get("error") if isinstance(data, dict) else None
            raise SessionFailed(status if status >= 400 else 500,
                                str(why or "history endpoint failed"))
        rows = data.get(key)
        nxt = data.get("next_offset")
        return HistoryPage(tuple(r for r in rows if isinstance(r, dict))
                           if isinstance(rows, list) else (),
                           nxt if isinstance(nxt, int) else None)

    async def histories(self, *, limit: int = 100, offset: int = 0) -> HistoryPage:
        """The stored histories (metadata) from the HTTP endpoint, oldest first."""
        return await self._get("", {"limit": str(limit), "offset": str(offset)},
                               "histories")

    async def search(self, *, peer: str | None = None, since: str | None = None,
                     until: str | None = None, text: str | None = None, limit: int = 50,
                     offset: int = 0) -> HistoryPage:
        """Stored messages matching every given filter (HTTP endpoint), oldest first."""
        params = {"limit": str(limit), "offset": str(offset)}
        for name, value in (("peer", peer), ("since", since), ("until", until),
                            ("text", text)):
            if value:
                params[name] = value
        return await self._get("/search", params, "items")

    async def _refer(self, target: str, refer_to: str, *,
                     subscribe: bool = False) -> SipResponse:
        cfg = self.ctx.config
        extra: tuple[tuple[str, str], ...] = (("Refer-To", f"<{refer_to}>"),)
        if not subscribe:
            extra += (("Refer-Sub", "false"),)      # RFC 4488: no implicit subscription
        req = build_request(
            "REFER", target=target, from_uri=cfg.uri, from_tag=new_tag(),
            call_id=new_call_id(self.ctx.host), contact=self.ctx.contact,
            accept_contact=f"*;{SIP_IM}", extra=extra)
        return await self.ctx.ua.request(req)

    async def delete(self, references: Sequence[str]) -> list[int]:
        """C-CH-05 (§13.1.5): one REFER per history; its final status (200: deleted,
        403: not ours, 404: unknown)."""
        delete_uri = f"sip:Delete@{self.ctx.config.domain}"
        return [(await self._refer(delete_uri, self.reference_uri(r))).status
                for r in references]

    async def delete_many(self, references: Sequence[str]) -> int:
        """C-CH-05 (§13.1.6): one REFER for several histories - a resource-lists body with
        their references, Refer-To a ``cid:`` pointing at it, ``Require: multiple-refer``
        and ``Refer-Sub: false`` (RFC 5368, RFC 4488); its final status."""
        req = delete_refer(self.ctx, [self.reference_uri(r) for r in references])
        return (await self.ctx.ua.request(req)).status

    async def delete_all(self) -> int:
        """§13.1.7: Refer-To sip:History@DOMAIN deletes every stored history."""
        resp = await self._refer(f"sip:Delete@{self.ctx.config.domain}", self.service_uri)
        return resp.status

    async def record(self, session: InviteSession, *, start: bool = True,
                     filename: str | None = None, subscribe: bool = False) -> int:
        """C-CH-01 / C-CH-02: start (``method=INVITE``) or stop (``method=BYE``) recording
        ``session``; the REFER's final status (202: done, 404: the server does not relay
        that session, 486: storage full)."""
        target = self.service_uri
        if filename:
            target += f";historyfilename={quote(filename, safe='')}"
        method = "INVITE" if start else "BYE"
        if isinstance(session, GroupChat):
            # §13.1.1 step 2c / §13.1.2 step 3: the conference's IM Session Identity
            identity = f"{session.conference};method={method}"
        else:
            identity = (f"sip:History@{self.ctx.config.domain};method={method}"
                        f"?Call-ID={quote(session.call_id, safe='')}")
        return (await self._refer(target, identity, subscribe=subscribe)).status
