"""Issue 11 §4: errors that name their cause, local input checked before the network.

Every test drives the real ``simpleim`` console script (subprocess) - against a real
``simpleim server`` subprocess on a free port where a server is needed."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from cli_helpers import clean_env, cli_server, run_cli
from client_helpers import free_port

USERS = {"alice": "alicepw", "carol": "carolpw"}


@pytest.fixture
def silent_proxy() -> Iterator[socket.socket]:
    """A UDP socket that receives but never answers: a command that sends anything to it
    before its usage error would leave a datagram here."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        yield sock


def _alice(tmp: Path, proxy: str) -> dict[str, str]:
    return clean_env(tmp, SIMPLEIM_ACCOUNT="alice@localhost", SIMPLEIM_PASSWORD="alicepw",
                     SIMPLEIM_PROXY=proxy)


@pytest.mark.parametrize(("argv", "words"), [
    (["send", "bob@@localhost", "hi"], "bad address 'bob@@localhost': more than one '@'"),
    (["send", "@localhost", "hi"], "bad address '@localhost': empty user part"),
    (["send", "bob@", "hi"], "empty domain"),
    (["send", "", "hi"], "empty address"),
    (["send", "bob", ""], "empty message"),
    (["send", "bob", "   "], "empty message"),
    (["chat", "bob@@localhost"], "more than one '@'"),
    (["capabilities", "sip:bob@"], "bad address"),
    (["send-file", "bob", "/nonexistent/report.pdf"], "no such file: /nonexistent/report.pdf"),
    (["share-image", "bob", "/nonexistent/cat.jpg"], "no such file: /nonexistent/cat.jpg"),
    (["share-image", "bob", "NOT_AN_IMAGE"], "is not a JPEG, GIF, PNG or BMP image"),
])
def test_local_input_errors_come_before_the_network(
    tmp_path: Path, silent_proxy: socket.socket, argv: list[str], words: str
) -> None:
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("plain text, named .jpg\n")
    argv = [str(not_image) if a == "NOT_AN_IMAGE" else a for a in argv]
    port = silent_proxy.getsockname()[1]
    done = run_cli(argv, env=_alice(tmp_path, f"udp:127.0.0.1:{port}"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    assert done.stderr.startswith(f"simpleim {argv[0]}: ")
    with pytest.raises(BlockingIOError):
        silent_proxy.recv(65535)            # nothing was sent: no REGISTER, no probe


def test_refused_tcp_connection_in_words(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))        # bound, not listening: connections are refused
        port = bound.getsockname()[1]
        done = run_cli(["send", "bob", "hi"], env=_alice(tmp_path, f"tcp:127.0.0.1:{port}"))
    assert done.returncode == 4
    assert done.stderr == (f"simpleim send: connection refused to tcp:127.0.0.1:{port} — is "
                           "the server running?\n")


def test_dead_udp_proxy_in_words(tmp_path: Path) -> None:
    port = free_port()                      # nothing listens there: ICMP port unreachable
    done = run_cli(["send", "bob", "hi"], env=_alice(tmp_path, f"127.0.0.1:{port}"))
    assert done.returncode == 4
    assert f"nothing listens at udp:127.0.0.1:{port}" in done.stderr
    assert "is the server running?" in done.stderr.splitlines()[-1]


def test_unresolvable_proxy_in_words(tmp_path: Path) -> None:
    # RFC 6761 §6.4: .invalid names never resolve
    done = run_cli(["send", "bob", "hi"], env=_alice(tmp_path, "sip.nonexistent.invalid"))
    assert done.returncode == 4
    assert done.stderr.startswith("simpleim send: cannot resolve sip.nonexistent.invalid")


def test_verbose_shows_the_sip_exchange_and_offline_peer_in_words(tmp_path: Path) -> None:
    with cli_server(tmp_path, USERS) as (port, _db):
        done = run_cli(["send", "carol", "are you there?", "-v"],
                       env=_alice(tmp_path, f"127.0.0.1:{port}"))
    # carol exists but is not registered: the server stores the message (202, OMA §12.2.2.3),
    # said in words (issue 11 §3)
    assert done.returncode == 0, done.stderr
    assert "carol is not online: the server stored the message and delivers it when they " \
        "register (202 Accepted)" in done.stdout
    err = done.stderr
    assert "-> REGISTER sip:localhost" in err and "<- 401 Unauthorized for REGISTER" in err
    assert "<- 200 OK for REGISTER" in err and "-> MESSAGE sip:carol@localhost" in err
    assert "<- 202 Accepted for MESSAGE" in err


def test_user_added_while_the_server_runs_registers_at_once(tmp_path: Path) -> None:
    with cli_server(tmp_path, USERS) as (port, db):
        bob = clean_env(tmp_path, SIMPLEIM_ACCOUNT="bob@localhost", SIMPLEIM_PASSWORD="bobpw",
                        SIMPLEIM_PROXY=f"127.0.0.1:{port}")
        first = run_cli(["send", "bob", "note to self"], env=bob)
        assert first.returncode == 3 and "registration failed: 401" in first.stderr
        added = run_cli(["user", "add", "bob", "--password", "bobpw", "--db", db],
                        env=clean_env(tmp_path))
        assert added.returncode == 0, added.stderr
        second = run_cli(["send", "bob", "note to self"], env=bob)
        assert second.returncode == 0, second.stderr
        assert second.stdout.startswith("sent pager ")


def test_server_says_which_default_port_it_uses(tmp_path: Path) -> None:
    # No port: 5060 is meant; the store path is broken on purpose so that nothing binds.
    done = run_cli(["server", "--listen", "127.0.0.1", "--db", "sqlite:////nonexistent/x.db"],
                   env=clean_env(tmp_path))
    assert done.returncode == 1
    assert ("simpleim server: --listen 127.0.0.1 has no port: using the default 5060"
            in done.stderr.splitlines())
    done = run_cli(["server", "--listen", "tls:[::1]", "--tls-cert", "c", "--tls-key", "k",
                    "--db", "sqlite:////nonexistent/x.db"], env=clean_env(tmp_path))
    assert "--listen tls:[::1] has no port: using the default 5061" in done.stderr


def test_server_bind_failure_says_why(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        done = run_cli(["server", "--listen", f"udp:127.0.0.1:{port}", "--db",
                        f"sqlite:///{tmp_path / 's.db'}"], env=clean_env(tmp_path))
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"simpleim server: cannot listen on udp:127.0.0.1:{port}: address already in use "
        "(another server on that port? choose one with --listen HOST:PORT)")


def test_image_check_accepts_real_images(tmp_path: Path, silent_proxy: socket.socket) -> None:
    """The share-image check passes a real PNG on to the network part (here: the account
    is missing, a usage error of its own that names the cause)."""
    img = tmp_path / "cat.png"
    Image.new("RGB", (8, 8), "red").save(img, "PNG")
    done = run_cli(["share-image", "bob", str(img)], env=clean_env(tmp_path))
    assert done.returncode == 2 and "account" in done.stderr
