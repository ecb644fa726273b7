"""TLS contexts, loaded in one place for the server and the client.

* :func:`server_context` - a listener's context (SIP over TLS, RFC 3261 §26.2; MSRPS, RFC 4975
  §14.2) from a PEM certificate chain and key;
* :func:`client_context` - a connecting side's context: the peer's certificate is verified
  (RFC 3261 §26.2.1) against the system CAs plus ``cafile``; ``insecure`` turns verification
  off (test setups only).

A file that cannot be read or parsed is a :class:`~simpleim.errors.ConfigError` naming it.
"""

from __future__ import annotations

import ssl

from simpleim.errors import ConfigError

__all__ = ["client_context", "server_context"]


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """A server-side context presenting ``cert`` (PEM chain) with ``key``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate/key ({cert}, {key}): {exc}") from exc
    return ctx


def client_context(cafile: str | None = None, *, insecure: bool = False) -> ssl.SSLContext:
    """A client-side context verifying the peer (system CAs + ``cafile``)."""
    try:
        ctx = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS CA file {cafile}: {exc}") from exc
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
