"""Server logging: setup and the one-line-per-transaction record.

The per-transaction line is only formatted when INFO is enabled, so ``--log-level warning``
keeps the per-message path free of logging work (benchmarks).
"""

from __future__ import annotations

import logging
import sys

from simpleim.sip.message import SipRequest

__all__ = ["configure_logging", "TransactionLog"]


def configure_logging(level: str) -> None:
    """Log to stderr with timestamps at ``level`` (debug/info/warning/error/critical)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())


class TransactionLog:
    """``method from to status duration`` at INFO for each completed server transaction."""

    __slots__ = ("_log",)

    def __init__(self, name: str = "simpleim.server.tx") -> None:
        self._log = logging.getLogger(name)

    @property
    def enabled(self) -> bool:
        return self._log.isEnabledFor(logging.INFO)

    def record(self, request: SipRequest, status: int, duration: float) -> None:
        if not self._log.isEnabledFor(logging.INFO):
            return
        h = request.headers
        self._log.info(
            "%s from=%s to=%s status=%d duration=%.1fms",
            request.method,
            _uri_of(h.get("From")),
            _uri_of(h.get("To")),
            status,
            duration * 1000.0,
        )


def _uri_of(value: str | None) -> str:
    if not value:
        return "-"
    start = value.find("<")
    if start >= 0:
        end = value.find(">", start)
        if end > start:
            return value[start + 1 : end]
    return value.split(";", 1)[0].strip()
