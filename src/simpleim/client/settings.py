"""The IM service settings on the client (OMA SIMPLE IM §5.2.2, §5.2.4, Appendix E; RFC 3903).

:class:`ServiceSettingsFeature` publishes the settings (C-SET-01): PUBLISH to our own address
with ``Event: poc-settings``, ``Accept-Contact: *;+g.oma.sip-im``, User-Agent, Expires and
an Appendix E document, and refreshes the publication before it expires with a body-less
PUBLISH carrying ``SIP-If-Match`` (RFC 3903 §4.2; a 412 means the server lost it: the whole
document is published again).

C-REG-01: :meth:`ServiceSettingsFeature.after_registration` runs after each successful initial
registration (``publish_settings`` in the config).  What is published: the settings last
published from this account (kept in ``state_dir``, e.g. by ``simpleim settings set``), else
the E.1 defaults; the config's ``offline_delivery`` / ``bar_sessions`` / ``bar_messages`` /
``invisible`` override them when given.

What the server holds is checked with :meth:`ServiceSettingsFeature.fetch`: a refresh of the
publication we know of (its entity-tag is kept in ``state_dir`` too).  A 200 proves that the
server still holds exactly the document we published (RFC 3903 §4.1: the entity-tag names
one publication); a 412 means it holds none of ours (expired, or replaced by another device's
publication), and the E.1 defaults are what applies unless another device published.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from simpleim.content.poc_settings import CONTENT_TYPE, EVENT, ServiceSettings, build_settings
from simpleim.errors import SimpleImError
from simpleim.sip.message import SipRequest
from simpleim.timers import refresh_delay

from .context import ClientContext
from .pager import build_request, new_call_id, new_tag

__all__ = ["ServerSettings", "ServiceSettingsFeature", "configured_settings"]

log = logging.getLogger("simpleim.client.settings")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """What :meth:`ServiceSettingsFeature.fetch` found: ``stored`` (the server holds our
    publication ``settings`` for ``expires`` more seconds) or not."""

    stored: bool
    settings: ServiceSettings
    expires: int = 0
    status: int = 0


def configured_settings(base: ServiceSettings, offline_delivery: bool | None,
                        bar_sessions: bool | None, bar_messages: bool | None,
                        invisible: bool | None) -> ServiceSettings:
    """``base`` with the values a config gives (None: keep ``base``'s)."""
    out = base
    if offline_delivery is not None:
        out = replace(out, offline_delivery=offline_delivery)
    if bar_sessions is not None:
        out = replace(out, incoming_session_barring=bar_sessions)
    if bar_messages is not None:
        out = replace(out, incoming_pager_barring=bar_messages)
    if invisible is not None:
        out = replace(out, visible=not invisible)
    return out


class ServiceSettingsFeature:
    """PUBLISH of the IM service settings (OMA §5.2.4) and its refresh (RFC 3903 §4.2)."""

    def __init__(self, ctx: ClientContext) -> None:
        self.ctx = ctx
        self.current = ServiceSettings()
        self.etag: str | None = None
        self.expires_at = 0.0  # wall clock
        self._refresher: asyncio.Task[None] | None = None
        self._load()

    # ------------------------------------------------------------------ state file
    @property
    def state_file(self) -> Path | None:
        state_dir = self.ctx.config.state_dir
        if not state_dir:
            return None
        return Path(state_dir).expanduser() / f"settings-{self.ctx.config.user}@" \
            f"{self.ctx.config.domain}.json"

    def _load(self) -> None:
        path = self.state_file
        if path is None or not path.is_file():
            return
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            known = {f.name for f in fields(ServiceSettings)}
            self.current = ServiceSettings(**{k: bool(v) for k, v in raw["settings"].items()
                                              if k in known})
            self.etag = raw.get("etag") or None
            self.expires_at = float(raw.get("expires_at", 0.0))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring the settings state %s: %s", path, exc)

    def _save(self) -> None:
        path = self.state_file
        if path is None:
            return
        data = {"settings": asdict(self.current), "etag": self.etag,
                "expires_at": self.expires_at}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot keep the settings state in %s: %s", path, exc)

    # ------------------------------------------------------------------ PUBLISH
    def _request(self, body: bytes | None, expires: int, if_match: str | None) -> SipRequest:
        cfg = self.ctx.config
        extra: list[tuple[str, str]] = [("Event", EVENT), ("Expires", str(expires))]
        if if_match is not None:
            extra.append(("SIP-If-Match", if_match))
        return build_request(
            "PUBLISH", target=cfg.uri, from_uri=cfg.uri, from_tag=new_tag(),
            call_id=new_call_id(self.ctx.host), body=body or b"",
            content_type=CONTENT_TYPE if body else None, extra=tuple(extra))

    async def _send(self, body: bytes | None, expires: int, if_match: str | None
                    ) -> tuple[int, str | None, int]:
        req = self._request(body, expires, if_match)
        resp = await self.ctx.ua.request(req)
        granted = resp.headers.get("Expires") or ""
        return (resp.status, resp.headers.get("SIP-ETag"),
                int(granted) if granted.strip().isdigit() else expires)

    async def publish(self, settings: ServiceSettings | None = None, *,
                      expires: int | None = None) -> int:
        """Publish ``settings`` (default: the last ones); the final status (200: stored)."""
        cfg = self.ctx.config
        settings = settings or self.current
        exp = cfg.expires if expires is None else expires
        status, etag, granted = await self._send(build_settings(settings, cfg.uri), exp, None)
        if 200 <= status < 300:
            self.current = settings
            self.etag = etag
            self.expires_at = time.time() + granted if exp else 0.0
            self._save()
        return status

    async def refresh(self) -> int:
        """RFC 3903 §4.2: refresh our publication (no body, ``SIP-If-Match``); 412 when
        the server holds no publication with our entity-tag (0 when we know of none)."""
        if self.etag is None:
            return 0
        exp = self.ctx.config.expires
        status, etag, granted = await self._send(None, exp, self.etag)
        if 200 <= status < 300:
            self.etag = etag or self.etag
            self.expires_at = time.time() + granted
            self._save()
        elif status == 412:
            self.etag = None
            self.expires_at = 0.0
            self._save()
        return status

    async def fetch(self) -> ServerSettings:
        """What the server holds of ours (see the module text)."""
        status = await self.refresh()
        if 200 <= status < 300:
            left = max(0, round(self.expires_at - time.time()))
            return ServerSettings(True, self.current, left, status)
        return ServerSettings(False, self.current, 0, status)

    # ------------------------------------------------------------------ C-REG-01
    def effective(self) -> ServiceSettings:
        cfg = self.ctx.config
        return configured_settings(self.current, cfg.offline_delivery, cfg.bar_sessions,
                                   cfg.bar_messages, cfg.invisible)

    async def after_registration(self, timeout: float = 10.0) -> int:
        """C-REG-01 (OMA §5.2.2): publish after a successful initial registration, then keep
        the publication refreshed.  Failures are logged, never raised: a SIP/IP core
        without an IM server answers 405 / 489 / 501 and the account works on."""
        status = 0
        try:
            async with asyncio.timeout(timeout):
                status = await self.publish(self.effective())
        except (SimpleImError, OSError, TimeoutError) as exc:
            log.info("publishing the IM service settings failed: %s", exc)
            return status
        if not 200 <= status < 300:
            log.info("the IM service settings were not stored: PUBLISH answered %d", status)
            return status
        if self._refresher is None or self._refresher.done():
            self._refresher = self.ctx.spawn(self._refresh_loop())
        return status

    async def _refresh_loop(self) -> None:
        while self.etag is not None:
            left = max(2.0, self.expires_at - time.time())
            await asyncio.sleep(refresh_delay(int(left)))
            with contextlib.suppress(SimpleImError, OSError):
                if await self.refresh() == 412:
                    # RFC 3903 §4.2: the server lost it: publish the whole document again
                    await self.publish(self.current)

    def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
