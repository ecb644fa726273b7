"""Server logging: setup and the one-line-per-transaction record.

The per-transaction line is only formatted when INFO is enabled, so ``--log-level warning``
keeps the per-message path free of logging work (benchmarks).

Two formats: ``text`` (``TIME LEVEL LOGGER: message``) and ``json`` (one JSON object per
line: ``ts``, ``level``, ``logger``, ``msg`` and, on transaction lines, the fields
``method``, ``from``, ``to``, ``status``, ``duration_ms``).  Both go to stderr or, with a
file, to a :class:`logging.handlers.WatchedFileHandler` (reopened when logrotate moves it).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import UTC, datetime

from simpleim.errors import ConfigError
from simpleim.sip.message import SipRequest

__all__ = ["configure_logging", "JsonFormatter", "TransactionLog", "TX_FIELDS"]

# The structured fields of a transaction line (``extra`` of the log record).
TX_FIELDS = ("method", "from", "to", "status", "duration_ms")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, keys ``ts`` (UTC, ISO 8601), ``level``, ``logger``,
    ``msg``, the transaction fields when present, and ``exc`` for a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "simpleim", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def configure_logging(level: str, fmt: str = "text", file: str | None = None) -> None:
    """Log at ``level`` (debug/info/warning/error/critical) in ``fmt`` (text/json) to
    ``file`` (appended) or stderr.  Raises ConfigError when the file cannot be opened."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    handler: logging.Handler
    if file is not None:
        try:
            handler = logging.handlers.WatchedFileHandler(file, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot open log file {file}: {exc.strerror or exc}") from exc
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT_FORMAT))
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
        from_uri = _uri_of(h.get("From"))
        to_uri = _uri_of(h.get("To"))
        ms = round(duration * 1000.0, 1)
        self._log.info(
            "%s from=%s to=%s status=%d duration=%.1fms",
            request.method, from_uri, to_uri, status, ms,
            extra={"simpleim": {"method": request.method, "from": from_uri, "to": to_uri,
                                "status": status, "duration_ms": ms}},
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
