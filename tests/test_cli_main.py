"""The ``simpleim`` command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from simpleim.cli.main import build_parser, main
from simpleim.cli.server import config_from_args


def test_help_lists_server(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "server" in out


def test_server_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["server", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--domain", "--listen", "--db", "--tls-cert", "--tls-key", "--log-level",
                   "--realm", "--no-auth"):
        assert option in out


def test_no_command_exits_nonzero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2


def test_bad_option_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["server", "--bogus"])
    assert info.value.code == 2


def test_bad_listen_one_line_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "--listen", "udp:nohost.example:5060"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simpleim server:") and "\n" not in err


def test_tls_needs_cert(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "--listen", "tls:127.0.0.1:0"]) == 2
    assert "--tls-cert" in capsys.readouterr().err


def test_config_from_args_defaults() -> None:
    args = build_parser().parse_args(["server"])
    config = config_from_args(args)
    assert config.domain == "localhost"
    assert [str(s) for s in config.listen] == ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
    assert config.db_url == "sqlite:///simpleim.db"
    assert config.auth is True


def test_config_from_args_full() -> None:
    args = build_parser().parse_args([
        "server", "--domain", "example.test", "--listen", "udp:127.0.0.1:5360",
        "--listen", "[::1]:5361", "--no-auth", "--realm", "r", "--log-level", "warning",
    ])
    config = config_from_args(args)
    assert [str(s) for s in config.listen] == [
        "udp:127.0.0.1:5360", "udp:[::1]:5361", "tcp:[::1]:5361"]
    assert config.auth is False and config.realm == "r" and config.log_level == "warning"


def test_python_dash_m_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "simpleim", "server", "--help"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0
    assert "--listen" in proc.stdout


def _server_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "simpleim", "server", *args]


def test_server_runs_prints_ready_and_stops_on_sigterm(tmp_path: object) -> None:
    import signal
    from pathlib import Path

    db = Path(str(tmp_path)) / "s.db"
    proc = subprocess.Popen(
        _server_cmd("--listen", "udp:127.0.0.1:0", "--listen", "tcp:127.0.0.1:0",
                    "--db", f"sqlite:///{db}", "--log-level", "warning"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("simpleim server ready: domain=localhost listening udp:127.0.0.1:")
        assert " tcp:127.0.0.1:" in line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_server_port_in_use_fails_with_one_line(tmp_path: object) -> None:
    import socket
    from pathlib import Path

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        db = Path(str(tmp_path)) / "s.db"
        proc = subprocess.run(
            _server_cmd("--listen", f"udp:127.0.0.1:{port}", "--db", f"sqlite:///{db}",
                        "--log-level", "error"),
            capture_output=True, text=True, timeout=30, check=False,
        )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot listen" in lines[0]


def test_server_bad_db_url() -> None:
    proc = subprocess.run(
        _server_cmd("--listen", "udp:127.0.0.1:0", "--db", "mysql://x", "--log-level", "error"),
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("simpleim server:")


def test_server_tls_listener_from_cli(tmp_path: object) -> None:
    import signal
    from pathlib import Path

    from tls_certs import self_signed_cert

    tmp = Path(str(tmp_path))
    cert, key = self_signed_cert(tmp)
    proc = subprocess.Popen(
        _server_cmd("--listen", "tls:127.0.0.1:0", "--tls-cert", str(cert), "--tls-key",
                    str(key), "--db", f"sqlite:///{tmp / 's.db'}", "--log-level", "warning"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening tls:127.0.0.1:" in line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_server_bad_tls_key(tmp_path: object) -> None:
    from pathlib import Path

    tmp = Path(str(tmp_path))
    (tmp / "c.pem").write_text("not a cert")
    proc = subprocess.run(
        _server_cmd("--listen", "tls:127.0.0.1:0", "--tls-cert", str(tmp / "c.pem"),
                    "--tls-key", str(tmp / "c.pem"), "--db", f"sqlite:///{tmp / 's.db'}"),
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert proc.returncode == 1
    assert "TLS certificate" in proc.stderr


def test_auth_algorithms_option(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert config_from_args(parser.parse_args(["server"])).auth_algorithms == ("MD5",)
    args = parser.parse_args(["server", "--auth-algorithms", "sha-256,md5"])
    assert config_from_args(args).auth_algorithms == ("SHA-256", "MD5")
    assert main(["server", "--auth-algorithms", "sha-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simpleim server:") and "sha-1" in err
    with pytest.raises(SystemExit):
        main(["server", "--help"])
    assert "--auth-algorithms" in capsys.readouterr().out
