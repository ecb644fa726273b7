"""The one error family of simpleim.

Every error raised on purpose by simpleim derives from :class:`SimpleImError`.
Errors caused by a peer are :class:`RemoteProtocolError`: they know the status
the receiving side should answer with (``status``), the protocol it belongs to,
and *what* was wrong and *where* (header name, line, byte offset...).  Errors
caused by our own API user are :class:`LocalProtocolError`.

Servers turn a ``RemoteProtocolError`` into a wire response (SIP ``400 Bad
Request`` with a ``Warning``, MSRP ``400``/``413``/``415``..., SIP ``488`` for
an SDP that cannot be answered) and keep running.
"""

from __future__ import annotations

__all__ = [
    "SimpleImError",
    "ProtocolError",
    "RemoteProtocolError",
    "LocalProtocolError",
    "SipParseError",
    "MsrpParseError",
    "SdpError",
    "ContentError",
    "TransactionError",
    "DialogError",
    "AuthError",
    "ConfigError",
    "StorageError",
    "RegistrationError",
    "XcapError",
]


class SimpleImError(Exception):
    """Base of every error simpleim raises on purpose."""


class ProtocolError(SimpleImError):
    """A protocol rule was broken.

    ``status`` is the wire status code the other side should be answered with
    (SIP or MSRP, per ``protocol``); ``reason`` a short human text; ``where``
    names the place (a header name, ``"request-line"``, ``"byte 132"``...).
    """

    default_status: int = 400
    protocol: str = "sip"

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        where: str | None = None,
        protocol: str | None = None,
    ) -> None:
        self.reason = reason
        self.status = self.default_status if status is None else status
        self.where = where
        if protocol is not None:
            self.protocol = protocol
        text = f"{reason} (at {where})" if where else reason
        super().__init__(f"{self.status} {text}")

    @property
    def detail(self) -> str:
        """The reason with its place, fit for a SIP Warning or MSRP comment."""
        return f"{self.reason} (at {self.where})" if self.where else self.reason


class RemoteProtocolError(ProtocolError):
    """The peer sent something that breaks the protocol; answer with ``status``."""


class LocalProtocolError(ProtocolError):
    """Our own caller misused the API (e.g. sent a request in the wrong state)."""

    default_status = 500


class SipParseError(RemoteProtocolError):
    """A SIP message could not be parsed (400, 505, 513, 416, ... per case)."""


class MsrpParseError(RemoteProtocolError):
    """An MSRP frame could not be parsed."""

    protocol = "msrp"


class SdpError(RemoteProtocolError):
    """An SDP body is malformed (400) or cannot be answered (488)."""

    default_status = 488


class ContentError(RemoteProtocolError):
    """A message body (CPIM, IMDN, XML, multipart) is malformed or not supported."""

    default_status = 415


class TransactionError(ProtocolError):
    """A transaction could not continue (no match: 481; timeout: 408)."""

    default_status = 481


class DialogError(ProtocolError):
    """A request does not fit its dialog (481 unknown dialog, 500 CSeq out of order)."""

    default_status = 481


class AuthError(ProtocolError):
    """Digest authentication failed or a challenge could not be answered."""

    default_status = 403


class XcapError(RemoteProtocolError):
    """An XCAP request that cannot be done (RFC 4825 §11): ``status`` is the HTTP status;
    for a 409, ``condition`` names the ``<xcap-error>`` child (``not-well-formed``,
    ``schema-validation-error``, ``uniqueness-failure``, ``no-parent``, ...), ``field`` and
    ``alt_values`` fill a uniqueness failure, ``ancestor`` a no-parent."""

    default_status = 409
    protocol = "http"

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        condition: str | None = None,
        field: str | None = None,
        alt_values: tuple[str, ...] = (),
        ancestor: str | None = None,
    ) -> None:
        self.condition = condition
        self.field = field
        self.alt_values = alt_values
        self.ancestor = ancestor
        super().__init__(reason, status=status)


class ConfigError(SimpleImError):
    """Invalid configuration given by the user."""


class StorageError(SimpleImError):
    """The server's database failed or refused an operation."""


class RegistrationError(SimpleImError):
    """A REGISTER was refused or not answered: ``status`` and ``reason`` are the final
    response's (a locally made 408 / 503 when the registrar was not reached, RFC 3261
    §8.1.3.1)."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"registration failed: {status} {reason}")
