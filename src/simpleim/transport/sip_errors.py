"""Stateless error responses to requests that could not be parsed or validated.

RFC 3261 §8.2 / RFC 4475 §3: a malformed request is answered with 400 (or 505, 513, ...)
carrying a Warning (RFC 3261 §20.43: ``399 host "text"``) when enough of it is readable to
build a response: a request line and at least one Via.  Anything else (responses, ACKs,
garbage) is dropped (RFC 3261 §18.1.2 / §17.1.1.3: no response to a response or an ACK).
"""

from __future__ import annotations

import re
import secrets

from simpleim.errors import ProtocolError
from simpleim.sip.message import REASON_PHRASES

__all__ = ["error_response_bytes", "warning_value"]

_FOLD = re.compile(r"\r\n[ \t]+")
# Compact forms (RFC 3261 §7.3.3) of the headers a response copies (§8.2.6.2).
_COPIED = {
    "via": "Via", "v": "Via",
    "from": "From", "f": "From",
    "to": "To", "t": "To",
    "call-id": "Call-ID", "i": "Call-ID",
    "cseq": "CSeq",
}
_MAX_HEAD = 16384
_VIA_SPLIT = re.compile(r',(?=(?:[^"]*"[^"]*")*[^"]*$)')
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")


def warning_value(agent: str, text: str) -> str:
    """``399 agent "text"`` (RFC 3261 §20.43: 399 = miscellaneous warning)."""
    clean = "".join(c if c.isprintable() else " " for c in text)
    clean = clean.replace("\\", "\\\\").replace('"', '\\"')[:200]
    return f'399 {agent} "{clean}"'


def error_response_bytes(
    data: bytes, exc: ProtocolError, agent: str,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes | None:
    """The wire bytes of an error response to ``data`` (with the ``extra`` headers), or None
    when it must be dropped."""
    head_end = data.find(b"\r\n\r\n")
    head_bytes = data[: head_end if head_end >= 0 else _MAX_HEAD][:_MAX_HEAD]
    head = head_bytes.decode("utf-8", "replace").lstrip("\r\n")
    head = _FOLD.sub(" ", head)
    lines = head.split("\r\n")
    # Only requests are answered; the request line may itself be the broken part (RFC 4475
    # §3.1.2.8-10: extra spaces), so only the method and the version are required.
    parts = lines[0].split()
    if len(parts) < 3 or not parts[-1].upper().startswith("SIP/") or parts[0] == "ACK":
        return None
    if lines[0].startswith("SIP/") or not _TOKEN.fullmatch(parts[0]):
        return None
    copied: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            continue
        canon = _COPIED.get(name.strip(" \t").lower())
        if canon is None:
            continue
        value = value.strip(" \t")
        if "\r" in value or "\n" in value:
            continue
        if canon == "Via" and "," in value:
            # one Via per line (issue 7 item 14); commas inside quoted strings are kept
            copied += [("Via", part.strip(" \t")) for part in _VIA_SPLIT.split(value)
                       if part.strip(" \t")]
            continue
        if canon == "To" and ";tag=" not in value.replace(" ", "").lower():
            # RFC 3261 §8.2.6.2: a UAS adds a To tag to non-100 responses.
            value = f"{value};tag={secrets.token_hex(6)}"
        copied.append((canon, value))
    if not any(name == "Via" for name, _ in copied):
        return None
    status = exc.status if 300 <= exc.status <= 699 else 400
    reason = REASON_PHRASES.get(status, "Bad Request")
    out = [f"SIP/2.0 {status} {reason}"]
    out += [f"{name}: {value}" for name, value in copied]
    out += [f"{name}: {value}" for name, value in extra]
    out.append(f"Warning: {warning_value(agent, exc.detail)}")
    out.append("Content-Length: 0")
    out.append("\r\n")
    return "\r\n".join(out).encode("utf-8", "replace")
