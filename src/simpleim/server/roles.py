"""What every IM application-server role shares (not a role itself).

* the ``Server`` / ``User-Agent`` product of the IM server (Appendix F.1: ``IM-serv/OMA1.0``);
* the §5.6 warning texts (``<code> <explanatory text>`` in a 399 Warning);
* :class:`Reply`: a role's answer to a request, which the core puts on the wire.

Roles never import each other (``server/participating``, ``server/deferred``,
``server/settings``); each one names what it needs from the others as a small Protocol in
its own package, and :func:`simpleim.server.app.build_roles` wires them together.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from simpleim.sip.headers import Headers

__all__ = [
    "ALLOW_METHODS",
    "SERVER_PRODUCT",
    "Reply",
    "W_ANONYMITY_NOT_ALLOWED",
    "W_FUNCTION_NOT_ALLOWED",
    "W_NO_MESSAGES",
    "W_SERVICE_NOT_AUTHORISED",
    "im_warning",
    "server_request_headers",
]

#: Appendix F.1: the first server-val is ``IM-serv/OMA1.0``, then our own product.
SERVER_PRODUCT = "IM-serv/OMA1.0 simpleim/0.1"
#: §6.1.1.1: Allow lists every supported method.
ALLOW_METHODS = ("INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, REGISTER, SUBSCRIBE, NOTIFY, "
                 "REFER, PUBLISH, INFO, UPDATE, PRACK")

# §5.6.2 / [OMA-POC-CP]: the warning texts this server uses.
W_ANONYMITY_NOT_ALLOWED = "119 Anonymity not allowed"
W_FUNCTION_NOT_ALLOWED = "122 Function not allowed"
W_NO_MESSAGES = "125 No messages"
W_SERVICE_NOT_AUTHORISED = "127 Service not authorised"


def im_warning(host: str, text: str) -> str:
    """§5.6.1: the text in a Warning with code 399 and the server's host name."""
    clean = "".join(c if c.isprintable() else " " for c in text)
    clean = clean.replace("\\", "\\\\").replace('"', '\\"')[:200]
    return f'399 {host} "{clean}"'


@dataclass(frozen=True, slots=True)
class Reply:
    """A final answer a role gives to a request; the core sends it (with ``Server``)."""

    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


def server_request_headers(method: str, from_uri: str, to_uri: str, host: str) -> Headers:
    """The header fields every out-of-dialog request a role originates starts with (RFC 3261
    §8.1.1): Max-Forwards, From (the role's URI, a new tag), To, a new Call-ID, CSeq 1."""
    h = Headers()
    h.add("Max-Forwards", "70")
    h.add("From", f"<{from_uri}>;tag={secrets.token_hex(6)}")
    h.add("To", f"<{to_uri}>")
    h.add("Call-ID", f"{secrets.token_hex(10)}@{host}")
    h.add("CSeq", f"1 {method}")
    return h
