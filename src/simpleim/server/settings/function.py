"""The PUBLISH side of the service settings (§6.1.1.5, RFC 3903) and the per-user lookup.

Settings are written to the store before the 200 OK (write before acknowledge) and kept
in memory for the Participating Function's per-request checks; the memory copy is loaded
from the store at start, so a restart keeps every unexpired publication.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from simpleim.content.poc_settings import (
    CONTENT_TYPE,
    EVENT,
    ServiceSettings,
    parse_settings,
    settings_from_json,
    settings_to_json,
)
from simpleim.errors import ContentError, ProtocolError
from simpleim.server.roles import W_SERVICE_NOT_AUTHORISED, Reply, im_warning
from simpleim.sip.message import SipRequest
from simpleim.store.settings import SettingsRecord, SettingsRepository

__all__ = ["PublishOutcome", "ServiceSettingsFunction", "SettingsConfig", "SettingsLookup"]

log = logging.getLogger("simpleim.server.settings")
DEFAULTS = ServiceSettings()


class SettingsLookup(Protocol):
    """What other roles ask of this one."""

    def settings_of(self, aor: str, now: float) -> ServiceSettings: ...


@dataclass(frozen=True, slots=True)
class SettingsConfig:
    host: str  # for Warning headers
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    reply: Reply
    aor: str | None = None  # whose settings were stored (None: nothing stored)
    settings: ServiceSettings | None = None


class ServiceSettingsFunction:
    def __init__(self, repository: SettingsRepository, config: SettingsConfig,
                 clock: Callable[[], float]) -> None:
        self._repo = repository
        self._config = config
        self._clock = clock
        # aor -> (settings, etag, expires_at): the memory copy of the store
        self._cache: dict[str, tuple[ServiceSettings, str, float]] = {}

    async def load(self) -> int:
        """Load the unexpired stored publications (at start); how many were found."""
        now = self._clock()
        found = 0
        for record in await self._repo.load_all(now):
            aor = record.aor
            try:
                settings = settings_from_json(record.settings)
            except ContentError as exc:
                log.error("ignoring corrupt settings of %s: %s", aor, exc.detail)
                continue
            self._cache[aor] = (settings, record.etag, record.expires_at)
            found += 1
        return found

    async def purge_expired(self) -> int:
        """Forget expired publications (RFC 3903 §4.1: the state ends with its expiry)."""
        now = self._clock()
        for aor in [a for a, entry in self._cache.items() if entry[2] <= now]:
            del self._cache[aor]
        return await self._repo.purge_expired(now)

    def settings_of(self, aor: str, now: float) -> ServiceSettings:
        entry = self._cache.get(aor)
        if entry is None or entry[2] <= now:
            return DEFAULTS
        return entry[0]

    async def publish(self, req: SipRequest, publisher: str | None,
                      target: str) -> PublishOutcome:
        """Handle a PUBLISH (§6.1.1.5 steps 2-6); StorageError propagates (-> 500, nothing
        acknowledged).  ``publisher``: the authenticated AOR, ``target``: the R-URI AOR."""
        cfg = self._config
        event = (req.headers.get("Event") or "").split(";", 1)[0].strip().lower()
        if event != EVENT:
            # §6.1.1.5 step 2 / RFC 3903 §6 step 2: 489 Bad Event with Allow-Events.
            return PublishOutcome(Reply(489, headers=(("Allow-Events", EVENT),)))
        if publisher is None or publisher != target:
            # step 3: only the user publishes their own settings -> 403 + Warning 127.
            return PublishOutcome(Reply(403, headers=(
                ("Warning", im_warning(cfg.host, W_SERVICE_NOT_AUTHORISED)),)))
        try:
            expires = req.expires
        except ProtocolError:
            return PublishOutcome(Reply(400, "Bad Expires"))
        if expires is None:
            expires = cfg.default_expires
        if 0 < expires < cfg.min_expires:
            # RFC 3903 §6 step 5: too brief -> 423 with Min-Expires.
            return PublishOutcome(Reply(423, headers=(("Min-Expires", str(cfg.min_expires)),)))
        expires = min(expires, cfg.max_expires)
        now = self._clock()
        if_match = req.headers.get("SIP-If-Match")
        current = self._cache.get(target)
        if if_match is not None and (current is None or current[1] != if_match.strip()
                                     or current[2] <= now):
            # RFC 3903 §6 step 4: unknown entity tag -> 412 Conditional Request Failed.
            return PublishOutcome(Reply(412))
        if expires == 0:
            # RFC 3903 §4.5: removal of the publication.
            await self._repo.remove(target)
            self._cache.pop(target, None)
            return PublishOutcome(Reply(200, headers=(("Expires", "0"),)), target, DEFAULTS)
        if req.body:
            ctype = req.content_type
            if ctype != CONTENT_TYPE:
                # RFC 3903 §6 step 6 / RFC 3261 §21.4.13: 415 with what we accept.
                return PublishOutcome(Reply(415, headers=(("Accept", CONTENT_TYPE),)))
            try:
                settings = parse_settings(req.body)
            except ContentError as exc:
                return PublishOutcome(Reply(400, headers=(
                    ("Warning", im_warning(cfg.host, exc.reason)),)))
            document = req.body.decode("utf-8", "replace")
        elif current is not None and if_match is not None:
            settings = current[0]  # RFC 3903 §4.2: refresh without a body
            document = ""
        else:
            # RFC 3903 §6 step 7: an initial publication needs a body.
            return PublishOutcome(Reply(400, "Missing Body"))
        etag = secrets.token_hex(8)
        record = SettingsRecord(target, etag, now + expires, settings_to_json(settings),
                                document)
        await self._repo.put(record)  # durable before the 200 (write before acknowledge)
        self._cache[target] = (settings, etag, now + expires)
        return PublishOutcome(Reply(200, headers=(("SIP-ETag", etag),
                                                  ("Expires", str(expires)))),
                              target, settings)
