"""The Deferred Messaging Function (OMA SIMPLE IM §12.2): store, deliver, retrieve, delete,
expire.  See :mod:`simpleim.server.deferred.function`."""

from __future__ import annotations

from simpleim.server.deferred.function import Courier, DeferredConfig, DeferredMessagingFunction
from simpleim.server.deferred.large import is_large_message
from simpleim.server.deferred.message import DEFERRED_ID_HEADER, history_list

__all__ = [
    "DEFERRED_ID_HEADER",
    "Courier",
    "DeferredConfig",
    "DeferredMessagingFunction",
    "history_list",
    "is_large_message",
]
