"""The Participating Function (OMA SIMPLE IM §6.1)."""

from __future__ import annotations

from simpleim.server.participating.function import (
    ParticipatingFunction,
    PfConfig,
    UserSettings,
    UserSettingsLookup,
)

__all__ = ["PfConfig", "ParticipatingFunction", "UserSettings", "UserSettingsLookup"]
