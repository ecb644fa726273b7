"""Overload shedding on raw request bytes (issue 7 item 7): no parse, no transaction.

While the server is overloaded, a retransmission of a request still being handled is dropped
(RFC 3261 §17.2.2: the server transaction would only absorb it) and a new request outside a
dialog is answered ``503 Service Unavailable`` with ``Retry-After`` (RFC 3261 §21.5.4) built
from the raw bytes; ACK, CANCEL and in-dialog requests pass (they finish accepted work).
"""

from __future__ import annotations

import enum
import re

from simpleim.errors import TransactionError
from simpleim.transport.sip_errors import error_response_bytes

__all__ = ["Shed", "overload_response", "shed_verdict"]

# The top Via's branch (the first Via line, long or compact name) and a To tag.
_TOP_BRANCH = re.compile(
    rb"(?im)^(?:via|v)[ \t]*:[^\r\n]*?;[ \t]*branch[ \t]*=[ \t]*([^;,\s]+)")
_TO_TAG = re.compile(rb"(?im)^(?:to|t)[ \t]*:[^\r\n]*;[ \t]*tag[ \t]*=")
_CREDENTIALS = re.compile(rb"(?im)^(?:proxy-)?authorization[ \t]*:")
_HEAD = 4096


class Shed(enum.Enum):
    RETRANSMISSION = "retransmission"  # drop: the request is being handled
    PASS = "pass"  # process normally
    REJECT = "reject"  # answer 503


def shed_verdict(data: bytes, pending_branches: set[str], hard: bool = True) -> Shed:
    """What to do with the request ``data`` under overload; unless ``hard``, a request with
    credentials passes too (it completes an exchange whose challenge was already paid)."""
    match = _TOP_BRANCH.search(data, 0, _HEAD)
    if match is not None and match.group(1).decode("ascii", "replace") in pending_branches:
        return Shed.RETRANSMISSION
    if data.startswith((b"ACK ", b"CANCEL ")) or _TO_TAG.search(data, 0, _HEAD):
        return Shed.PASS
    if not hard and _CREDENTIALS.search(data, 0, _HEAD):
        return Shed.PASS
    return Shed.REJECT


def overload_response(data: bytes, agent: str, retry_after: int) -> bytes | None:
    """503 + Retry-After for ``data`` (None when it cannot be answered)."""
    return error_response_bytes(data, TransactionError("overloaded", status=503), agent,
                                (("Retry-After", str(retry_after)),))
