"""The Participating Function (OMA SIMPLE IM §6.1)."""

from __future__ import annotations

from simpleim.server.participating.function import (
    ParticipatingFunction,
    PfConfig,
    UserSettings,
    UserSettingsLookup,
)
from simpleim.server.participating.policy import SessionPolicy, UserAgentPolicy

__all__ = ["PfConfig", "ParticipatingFunction", "SessionPolicy", "UserAgentPolicy",
           "UserSettings", "UserSettingsLookup"]
