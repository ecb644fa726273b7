"""One TLS-context loader (simpleim.transport.tls) for the server and the client."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from simpleim.errors import ConfigError
from simpleim.transport import tls
from tls_certs import self_signed_cert


def test_server_context_loads_the_chain(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    ctx = tls.server_context(str(cert), str(key))
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.get_ca_certs() == [] and ctx.verify_mode is ssl.CERT_NONE   # no client certs


def test_unreadable_files_are_config_errors_naming_them(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match="nope.pem"):
        tls.server_context(str(missing), str(missing))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match="junk.pem"):
        tls.client_context(str(junk))


def test_client_context_verifies_unless_insecure(tmp_path: Path) -> None:
    cert, _key = self_signed_cert(tmp_path)
    strict = tls.client_context(str(cert))
    assert strict.verify_mode is ssl.CERT_REQUIRED and strict.check_hostname
    assert any(c.get("subject") for c in strict.get_ca_certs())
    loose = tls.client_context(insecure=True)
    assert loose.verify_mode is ssl.CERT_NONE and not loose.check_hostname
