"""The Conversation History Function (OMA SIMPLE IM §13.2, §13.3)."""

from __future__ import annotations

from simpleim.server.history.content import history_document
from simpleim.server.history.function import (
    HISTORY_USER,
    HistoryConfig,
    HistoryFunction,
    HistorySettings,
    HistorySettingsLookup,
    Owner,
    StorageFullNotice,
)
from simpleim.server.history.recorder import RecordOutcome, RoomSource, SessionRecorder

__all__ = ["HISTORY_USER", "HistoryConfig", "HistoryFunction", "HistorySettings",
           "HistorySettingsLookup", "Owner", "RecordOutcome", "RoomSource", "SessionRecorder",
           "StorageFullNotice", "history_document"]
