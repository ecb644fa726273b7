"""Operating the server: the TOML config file, --check-config, JSON logs, --log-file,
/healthz and Prometheus /metrics (issue 11 §6)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from simpleim.cli.main import build_parser
from simpleim.cli.server import config_from_args
from simpleim.errors import ConfigError
from simpleim.server.app import ImServer
from simpleim.server.config import ServerConfig
from simpleim.server.config_file import load_server_config_file
from simpleim.server.logging import JsonFormatter, TransactionLog, configure_logging
from simpleim.server.metrics import ServerMetrics, SessionTracker
from simpleim.server.serve import serve
from simpleim.sip.message import SipRequest
from simpleim.timers import Timers
from simpleim.transport.sip_addr import ListenSpec, TransportAddr
from test_server_helpers import DOMAIN, TestUA
from waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
SIMPLEIM = str(Path(sys.executable).with_name("simpleim"))
#: bound for one command / one awaited line: generous for a loaded 2-core CI box.
STEP = 30.0


def _doc_toml_example() -> str:
    """The first ```toml block of docs/server.md's "Configuration file" section."""
    text = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    section = text[text.index("### Configuration file"):]
    match = re.search(r"```toml\n(.*?)```", section, re.S)
    assert match is not None, "docs/server.md has no ```toml example under Configuration file"
    return match.group(1)


def _parse(*argv: str) -> ServerConfig:
    return config_from_args(build_parser().parse_args(["server", *argv]))


# ---------------------------------------------------------------------- config file


def test_doc_example_loads_every_section(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(_doc_toml_example(), encoding="utf-8")
    config = _parse("--config", str(path))
    assert config.domain == "example.com"
    assert config.aliases == ("im.example.com",)
    assert [str(s) for s in config.listen] == [
        "udp:127.0.0.1:5060", "tcp:127.0.0.1:5060", "udp:[::1]:5060"]
    assert config.auth is True and config.auth_algorithms == ("MD5",)
    assert (config.min_expires, config.max_expires, config.default_expires) == (60, 3600, 3600)
    assert config.log_format == "json" and config.log_level == "info"
    assert config.metrics_listen == "127.0.0.1:9090"
    assert config.timers == Timers(t1=0.5, timer_c=180.0)
    assert config.flow_timer == 120


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text('domain = "file.test"\nlisten = ["udp:127.0.0.1:5070"]\n'
                    '[log]\nlevel = "debug"\nformat = "json"\n'
                    '[registrar]\nmin_expires = 30\n', encoding="utf-8")
    config = _parse("--config", str(path), "--domain", "flag.test", "--log-level", "warning",
                    "--listen", "tcp:127.0.0.1:5080")
    assert config.domain == "flag.test"                          # flag wins
    assert [str(s) for s in config.listen] == ["tcp:127.0.0.1:5080"]
    assert config.log_level == "warning"
    assert config.log_format == "json"                           # from the file
    assert config.min_expires == 30                              # from the file


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('domian = "x"\n', "unknown key 'domian'"),
        ("[log]\nlevle = 'info'\n", "unknown key log.levle"),
        ("[registrar]\nmin_expires = '60'\n", "registrar.min_expires must be an integer"),
        ("[auth]\nenabled = 1\n", "auth.enabled must be true or false"),
        ('listen = ["example.com:5060"]\n', "listen host must be an IP address"),
        ("[timers]\nt9 = 1\n", "unknown key timers.t9"),
        ("[timers]\nt1 = -1\n", "timers.t1 must be a positive number"),
        ('[log]\nformat = "xml"\n', "unknown log format 'xml'"),
        ('[metrics]\nlisten = "127.0.0.1:99999"\n', "bad port"),
        ("domain = \n", "server.toml"),                       # TOML syntax error
        ('aliases = "a"\n[auth]\nalgorithms = ["md4"]\n', "unknown digest algorithm 'md4'"),
    ],
)
def test_bad_file_is_one_named_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "server.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        _parse("--config", str(path))
    assert message in str(info.value)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read /nonexistent/server.toml"):
        load_server_config_file("/nonexistent/server.toml")


async def _run_cli(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        SIMPLEIM, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(proc.communicate(), STEP)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_check_config_cli_ok_and_error(tmp_path: Path) -> None:
    good = tmp_path / "server.toml"
    good.write_text(_doc_toml_example(), encoding="utf-8")
    code, out, err = await _run_cli("server", "--config", str(good), "--check-config")
    assert (code, err) == (0, "")
    assert out.startswith("simpleim server: configuration OK (domain=example.com")
    bad = tmp_path / "bad.toml"
    bad.write_text('[registrar]\nmin_expires = 100\nmax_expires = 10\n', encoding="utf-8")
    code, out, err = await _run_cli("server", "--config", str(bad), "--check-config")
    assert code == 2 and out == ""
    assert err == "simpleim server: min_expires must be > 0 and <= max_expires\n"
    # a flag can repair the file (flags override it)
    code, _, _ = await _run_cli("server", "--config", str(bad), "--max-expires", "3600",
                                "--check-config")
    assert code == 0


async def test_check_config_loads_the_tls_files(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text('listen = ["tls:127.0.0.1:5061"]\n[tls]\n'
                    f'cert = "{tmp_path}/missing.pem"\nkey = "{tmp_path}/missing.key"\n',
                    encoding="utf-8")
    code, _, err = await _run_cli("server", "--config", str(path), "--check-config")
    assert code == 2
    assert err.startswith("simpleim server: cannot load the TLS certificate/key")
    assert err.count("\n") == 1


# ---------------------------------------------------------------------- logs


def _request() -> SipRequest:
    return SipRequest("MESSAGE", f"sip:bob@{DOMAIN}", [
        ("From", f'"Alice" <sip:alice@{DOMAIN}>;tag=1'), ("To", f"<sip:bob@{DOMAIN}>"),
        ("Call-ID", "c1"), ("CSeq", "1 MESSAGE"), ("Via", "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx"),
    ], b"")


def test_json_log_line_has_the_transaction_fields(tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("info", "json", str(log_file))
        TransactionLog().record(_request(), 202, 0.0034)
        logging.getLogger("simpleim.server").warning("unusable binding \"x\"\nsecond line")
        for handler in root.handlers:
            handler.flush()
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    lines = log_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2                        # one line per record, newlines escaped
    tx = json.loads(lines[0])
    assert tx["logger"] == "simpleim.server.tx" and tx["level"] == "info"
    assert {k: tx[k] for k in ("method", "from", "to", "status", "duration_ms")} == {
        "method": "MESSAGE", "from": f"sip:alice@{DOMAIN}", "to": f"sip:bob@{DOMAIN}",
        "status": 202, "duration_ms": 3.4}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", tx["ts"])
    other = json.loads(lines[1])
    assert other["msg"] == "unusable binding \"x\"\nsecond line" and "method" not in other


def test_json_formatter_carries_tracebacks() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    out = json.loads(JsonFormatter().format(record))
    assert out["msg"] == "failed" and "ValueError: boom" in out["exc"]


def test_log_file_that_cannot_be_opened() -> None:
    with pytest.raises(ConfigError, match="cannot open log file /nonexistent/dir/x.log"):
        configure_logging("info", "text", "/nonexistent/dir/x.log")


# ---------------------------------------------------------------------- metrics


def test_session_tracker_expires_and_is_bounded() -> None:
    tracker = SessionTracker(limit=2)
    tracker.established("a", now=0.0, lifetime=10.0)
    tracker.established("b", now=0.0, lifetime=100.0)
    tracker.established("c", now=1.0, lifetime=10.0)     # full: not counted
    assert tracker.count(5.0) == 2
    tracker.ended("b")
    assert tracker.count(11.0) == 0                      # a expired, b ended


def test_two_servers_do_not_share_metrics() -> None:
    one, two = ServerMetrics(), ServerMetrics()
    one.transaction("MESSAGE", 200)
    assert one.registry.get_sample_value(
        "simpleim_sip_transactions_total", {"method": "MESSAGE", "status": "200"}) == 1.0
    assert two.registry.get_sample_value(
        "simpleim_sip_transactions_total", {"method": "MESSAGE", "status": "200"}) is None


@asynccontextmanager
async def _served(tmp_path: Path, **cfg: object) -> AsyncIterator[tuple[str, str]]:
    """``serve()`` in-process (the CLI's path) with metrics on; yields (ready line, base URL)."""
    config = ServerConfig(domain=DOMAIN, listen=(ListenSpec("udp", "127.0.0.1", 0),
                                                 ListenSpec("tcp", "127.0.0.1", 0)),
                          db_url=f"sqlite:///{tmp_path / 'server.db'}",
                          metrics_listen="127.0.0.1:0", **cfg)  # type: ignore[arg-type]
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(config, stop=stop, ready=ready.set_result))
    try:
        line = await asyncio.wait_for(asyncio.shield(ready), STEP)
        match = re.search(r"metrics=(http://127\.0\.0\.1:\d+)/metrics$", line)
        assert match is not None, line
        yield line, match.group(1)
    finally:
        stop.set()
        assert await asyncio.wait_for(task, STEP) == 0


def _addr(line: str, transport: str) -> TransportAddr:
    match = re.search(rf"{transport}:127\.0\.0\.1:(\d+)", line)
    assert match is not None, line
    return TransportAddr(transport, "127.0.0.1", int(match.group(1)))


def _sample(text: str, name: str, labels: str = "") -> float | None:
    for row in text.splitlines():
        if row.startswith(f"{name}{labels} ") or (not labels and row.startswith(name + " ")):
            return float(row.rsplit(" ", 1)[1])
    return None


async def test_metrics_and_healthz_over_http(tmp_path: Path) -> None:
    async with _served(tmp_path, auth=False) as (line, base), aiohttp.ClientSession() as http:
        ua = await TestUA("alice", _addr(line, "udp")).start()
        try:
            resp = await ua.send(ua.request("OPTIONS", f"sip:{DOMAIN}"))
            assert resp.status == 200
            resp = await ua.register(expires=600)
            assert resp.status == 200
        finally:
            await ua.close()
        async with http.get(base + "/healthz") as health:
            assert health.status == 200
            assert health.headers["Content-Type"].startswith("application/json")
            assert await health.json() == {"status": "ok"}

        async def scraped() -> str:
            async with http.get(base + "/metrics") as got:
                assert got.status == 200
                assert got.headers["Content-Type"].startswith("text/plain; version=")
                return await got.text()

        text = await scraped()
        assert _sample(text, "simpleim_sip_transactions_total",
                       '{method="OPTIONS",status="200"}') == 1.0
        assert _sample(text, "simpleim_sip_transactions_total",
                       '{method="REGISTER",status="200"}') == 1.0
        assert _sample(text, "simpleim_registered_bindings") == 1.0
        assert _sample(text, "simpleim_registered_aors") == 1.0
        assert _sample(text, "simpleim_sessions_active") == 0.0
        # the REGISTER's binding was written through the timed store
        replace_count = _sample(text, "simpleim_store_seconds_count",
                                '{operation="replace_bindings"}')
        assert replace_count is not None and replace_count >= 1.0
        for name in ("simpleim_msrp_bytes_total", "simpleim_flows_dropped_total"):
            assert re.search(rf"^# TYPE {name.removesuffix('_total')}(_total)? counter$", text,
                             re.M), name
        async with http.get(base + "/nothing") as missing:
            assert missing.status == 404


async def test_sessions_active_counts_invite_until_bye(tmp_path: Path) -> None:
    metrics = ServerMetrics(CollectorRegistry())
    from simpleim.store import open_store

    store = await open_store("sqlite://:memory:")
    server = ImServer(ServerConfig(domain=DOMAIN, listen=(ListenSpec("udp", "127.0.0.1", 0),),
                                   db_url="sqlite://:memory:", auth=False,
                                   timers=Timers(t1=0.05, t2=0.4, t4=0.5,
                                                 timer_d_unreliable=0.5)),
                      store, metrics=metrics)
    bound = await server.start()
    alice = await TestUA("alice", bound[0]).start()
    bob = await TestUA("bob", bound[0]).start()
    try:
        assert (await bob.register(expires=600)).status == 200
        invite = alice.request("INVITE", f"sip:bob@{DOMAIN}", call_id="sess-1")
        ok = await alice.send(invite)
        assert ok.status == 200
        gauge = "simpleim_sessions_active"
        await wait_until(lambda: metrics.registry.get_sample_value(gauge) == 1.0, 10)
        # in-dialog: along the route set the proxy recorded (issue 7 item 2)
        bye = alice.request("BYE", f"sip:bob@{DOMAIN}", call_id="sess-1",
                            to=f"<sip:bob@{DOMAIN}>;tag=t1",
                            headers=[("Route", v) for v in
                                     reversed(ok.headers.get_all("Record-Route"))])
        assert (await alice.send(bye)).status == 200
        await wait_until(lambda: metrics.registry.get_sample_value(gauge) == 0.0, 10)
    finally:
        await alice.close()
        await bob.close()
        await server.close()
        await store.close()


async def test_healthz_503_when_the_store_fails(tmp_path: Path) -> None:
    from simpleim.store import open_store

    store = await open_store("sqlite://:memory:")
    metrics = ServerMetrics()
    server = ImServer(ServerConfig(domain=DOMAIN, listen=(ListenSpec("udp", "127.0.0.1", 0),),
                                   db_url="sqlite://:memory:"), store, metrics=metrics)
    await server.start()
    from simpleim.server.http import OpsHttpServer

    ops = OpsHttpServer(metrics.registry, server.health)
    host, port = await ops.start("127.0.0.1", 0)
    try:
        await store.close()               # the database goes away under the server
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://{host}:{port}/healthz") as resp:
            assert resp.status == 503
            body = await resp.json()
            assert body["status"] == "unavailable" and "store" in body["reason"]
    finally:
        await ops.close()
        await server.close()


async def test_cli_server_json_log_file_and_metrics(tmp_path: Path) -> None:
    """The real ``simpleim server`` command: config file + flags, JSON lines in --log-file,
    the metrics URL on the ready line."""
    config = tmp_path / "server.toml"
    log_file = tmp_path / "server.log"
    config.write_text(f'domain = "{DOMAIN}"\nlisten = ["udp:127.0.0.1:0"]\n'
                      f'db = "sqlite:///{tmp_path / "s.db"}"\n[auth]\nenabled = false\n'
                      '[log]\nformat = "json"\n', encoding="utf-8")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = await asyncio.create_subprocess_exec(
        SIMPLEIM, "server", "--config", str(config), "--log-file", str(log_file),
        "--metrics", "127.0.0.1:0", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, env=env)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), STEP)).decode()
        assert line.startswith(f"simpleim server ready: domain={DOMAIN}"), line
        ua = await TestUA("carol", _addr(line, "udp")).start()
        try:
            assert (await ua.send(ua.request("OPTIONS", f"sip:{DOMAIN}"))).status == 200
        finally:
            await ua.close()

        def logged() -> list[dict[str, object]]:
            if not log_file.exists():
                return []
            rows = [json.loads(r) for r in log_file.read_text("utf-8").splitlines()]
            return [r for r in rows if r.get("method") == "OPTIONS"]

        await wait_until(lambda: bool(logged()), STEP)
        row = logged()[0]
        assert row["status"] == 200 and row["from"] == f"sip:carol@{DOMAIN}"
        match = re.search(r"metrics=(http://[^ ]+)$", line.strip())
        assert match is not None
        async with aiohttp.ClientSession() as http, http.get(match.group(1)) as resp:
            text = await resp.text()
        assert _sample(text, "simpleim_sip_transactions_total",
                       '{method="OPTIONS",status="200"}') == 1.0
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), STEP)
    assert proc.returncode == 0, err.decode()
    assert err.decode() == ""                      # everything went to the log file
