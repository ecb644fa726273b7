"""The IM service settings role (OMA SIMPLE IM §5.2.4, §6.1.1.5, Appendix E).

:class:`ServiceSettingsFunction` answers PUBLISH ``Event: poc-settings`` (RFC 3903), keeps
one publication per user in the store, and tells the others what a user's settings are
(:class:`SettingsLookup`, used by the Participating Function).
"""

from __future__ import annotations

from simpleim.content.poc_settings import (
    CONTENT_TYPE,
    EVENT,
    ServiceSettings,
    build_settings,
    parse_settings,
)
from simpleim.server.settings.function import (
    PublishOutcome,
    ServiceSettingsFunction,
    SettingsConfig,
    SettingsLookup,
)

__all__ = [
    "CONTENT_TYPE",
    "EVENT",
    "PublishOutcome",
    "ServiceSettings",
    "ServiceSettingsFunction",
    "SettingsConfig",
    "SettingsLookup",
    "build_settings",
    "parse_settings",
]
