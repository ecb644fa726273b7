"""Start, watch and stop the real peers of the interop tests (SIPp, Kamailio, tshark, simpleim).

Every process is started by this module with ``start_new_session=True`` and stopped by its PID
(SIGTERM, then SIGKILL after a bounded wait; a leftover child in the session the peer created,
e.g. a Kamailio worker, is then signalled through that process group id). Every wait is bounded.

Used by ``tests/interop/conftest.py`` (fixtures) and by ``benchmarks/proxy_relay.py``.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from capture import wait_capture_live

INTEROP_DIR = Path(__file__).resolve().parent
SIPP_DIR = INTEROP_DIR / "sipp"
KAMAILIO_CFG = INTEROP_DIR / "kamailio" / "kamailio.cfg"
PCAP_CHECK = INTEROP_DIR / "pcap_check.sh"
REPO_ROOT = INTEROP_DIR.parent.parent

LOOPBACK = "127.0.0.1"
DOMAIN = "example.test"
#: Users known to both tests/interop/kamailio/kamailio.cfg and the simpleim store of the tests.
PASSWORDS: dict[str, str] = {
    "alice": "alicepw",
    "bob": "bobpw",
    "carol": "carolpw",
    "dave": "davepw",
}

# Port plan (see tests/interop/README.md); the MSRP relay tests use 5270/2955 and other ports.
SIMPLEIM_PORT = 5160
KAMAILIO_PORT = 5070


class PeerError(RuntimeError):
    """A peer did not start, did not become ready in time, or misbehaved."""


def find_binary(name: str) -> str | None:
    """The absolute path of *name* on PATH (also /usr/sbin for kamailio), or None."""
    found = shutil.which(name)
    if found is None:
        for d in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
            candidate = Path(d) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return found


def simpleim_cli() -> Path:
    """The ``simpleim`` console script of the interpreter running the tests (the venv's)."""
    script = Path(sys.executable).with_name("simpleim")
    if script.exists():
        return script
    which = shutil.which("simpleim")
    if which is None:
        raise PeerError("the simpleim console script is not installed (pip install -e .)")
    return Path(which)


# --------------------------------------------------------------------------- ports


def _proc_net_ports(proto: str) -> set[int]:
    """Local ports in use on this host for *proto* ("udp" or "tcp"; TCP: LISTEN sockets only)."""
    ports: set[int] = set()
    for fam in ("", "6"):
        path = Path(f"/proc/net/{proto}{fam}")
        try:
            lines = path.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 4:
                continue
            if proto == "tcp" and parts[3] != "0A":  # 0A = LISTEN
                continue
            ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def port_in_use(proto: str, port: int) -> bool:
    return port in _proc_net_ports(proto)


def ensure_ports_free(ports: Iterable[tuple[str, int]], who: str) -> None:
    """Fail early and clearly when a port of the plan is taken by some other process."""
    busy = [f"{proto}/{port}" for proto, port in ports if port_in_use(proto, port)]
    if busy:
        raise PeerError(
            f"{who}: port(s) {', '.join(busy)} already in use on this host (another test run or "
            "a colleague's peer?); see the port plan in tests/interop/README.md"
        )


#: how deep this process holds the port-plan lock (the flock is per open file description, so
#: the lock is made re-entrant within one process by counting)
_LOCK_DEPTH = [0]


@contextlib.contextmanager
def _flock_bounded(fd: int, path: Path, timeout: float) -> None:
    """Take the exclusive flock on *fd*, waiting at most *timeout* seconds.

    In the main thread the wait is a blocking flock() cut by SIGALRM: the kernel wakes a
    blocked waiter as soon as the holder unlocks, so a run waiting here is not starved by a
    concurrent run that releases and re-takes the lock between its tests (a non-blocking poll
    almost never lands in that millisecond gap).  Elsewhere it falls back to polling."""
    def expired(_signum: int, _frame: object) -> None:
        raise PeerError(f"another interop run held {path} for more than {timeout:.0f}s")

    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                expired(0, None)
            time.sleep(0.1)


@contextlib.contextmanager
def port_plan_lock(timeout: float = 900.0) -> Iterator[None]:
    """Hold the host-wide lock of the fixed port plan (tests/interop/README.md).

    Two runs of the interop tests (or a test run and benchmarks/proxy_relay.py) on one host
    would take the same fixed ports; with this lock the second one waits (bounded) instead.
    """
    if _LOCK_DEPTH[0]:
        # already held by this process (an autouse fixture and the ``peers`` fixture of one
        # test): a second flock on a new descriptor would wait for ourselves
        _LOCK_DEPTH[0] += 1
        try:
            yield
        finally:
            _LOCK_DEPTH[0] -= 1
        return
    path = Path(tempfile.gettempdir()) / "simpleim-interop-ports.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _flock_bounded(fd, path, timeout)
        _LOCK_DEPTH[0] = 1
        try:
            yield
        finally:
            _LOCK_DEPTH[0] = 0
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- processes


@dataclass
class PeerProcess:
    """One started peer: its argv, log file and process (stopped by PID)."""

    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)
    #: for a tshark capture: (file, a TCP port of its filter) to probe
    capture: tuple[Path, int] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def describe(self) -> str:
        rc = self.proc.poll()
        state = "running" if rc is None else f"exited rc={rc}"
        return (
            f"{self.name} (pid {self.pid}, {state}): {' '.join(self.argv)}\n"
            f"--- last lines of {self.log_path} ---\n{self.log_tail()}"
        )

    def wait_log(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until the log matches *pattern*; raise PeerError if it exits or times out."""
        rx = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_text())
            if m is not None:
                return m
            if not self.alive():
                raise PeerError(
                    f"{self.name} exited before printing {pattern!r}\n{self.describe()}"
                )
            if time.monotonic() > deadline:
                raise PeerError(
                    f"{self.name}: no {pattern!r} within {timeout:.0f}s\n{self.describe()}"
                )
            time.sleep(0.05)

    def wait_ports(self, ports: Iterable[tuple[str, int]], timeout: float) -> None:
        """Wait until every (proto, port) is bound (UDP) / listening (TCP)."""
        wanted = list(ports)
        deadline = time.monotonic() + timeout
        while True:
            missing = [(p, n) for p, n in wanted if not port_in_use(p, n)]
            if not missing:
                return
            if not self.alive():
                raise PeerError(f"{self.name} exited before binding {missing}\n{self.describe()}")
            if time.monotonic() > deadline:
                raise PeerError(
                    f"{self.name}: {missing} not bound within {timeout:.0f}s\n{self.describe()}"
                )
            time.sleep(0.05)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the peer to exit by itself; raise PeerError (after stopping it) on timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise PeerError(
                f"{self.name} did not finish within {timeout:.0f}s\n{self.describe()}"
            ) from None

    def send_signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        """Stop the peer by PID: *sig*, then SIGKILL; reap leftovers of its own session."""
        if self.alive():
            self.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=5.0)
        # The peer was started as the leader of a new session/process group (pgid == pid):
        # workers it forked (Kamailio children) are stopped through that group id.
        self._reap_group()
        rc = self.proc.returncode
        return -999 if rc is None else rc

    def _reap_group(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                try:
                    os.killpg(self.pid, 0)
                except (ProcessLookupError, PermissionError):
                    return
                time.sleep(0.05)


class PeerSet:
    """The peers of one test (or one benchmark run); ``stop_all`` stops them in reverse order."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.peers: list[PeerProcess] = []

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdin_pipe: bool = False,
    ) -> PeerProcess:
        log_path = self.workdir / f"{name}.log"
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=str(cwd or self.workdir),
                start_new_session=True,
            )
        peer = PeerProcess(name=name, argv=list(argv), log_path=log_path, proc=proc)
        self.peers.append(peer)
        return peer

    def stop_all(self) -> list[str]:
        """Stop every peer (reverse start order); returns a description of any failure."""
        problems: list[str] = []
        for peer in reversed(self.peers):
            try:
                peer.stop()
            except Exception as exc:  # noqa: BLE001 - teardown must try every peer
                problems.append(f"stopping {peer.name} (pid {peer.pid}) failed: {exc!r}")
        self.peers.clear()
        return problems


# --------------------------------------------------------------------------- SIPp


@dataclass(frozen=True)
class LoggedSipMessage:
    """One message of a SIPp ``-trace_msg`` log."""

    direction: str  # "sent" | "received"
    transport: str  # "UDP" | "TCP"
    text: str

    @property
    def start_line(self) -> str:
        return self.text.split("\r\n", 1)[0].split("\n", 1)[0].strip()

    @property
    def is_response(self) -> bool:
        return self.start_line.startswith("SIP/2.0 ")

    @property
    def method(self) -> str:
        """Request method, or the CSeq method of a response."""
        if not self.is_response:
            return self.start_line.split(" ", 1)[0]
        cseq = self.header("CSeq")
        return cseq[0].split()[-1] if cseq else ""

    @property
    def status(self) -> int | None:
        return int(self.start_line.split()[1]) if self.is_response else None

    @property
    def body(self) -> str:
        text = self.text.replace("\r\n", "\n")
        return text.split("\n\n", 1)[1] if "\n\n" in text else ""

    def header(self, name: str) -> list[str]:
        """Values of header *name* (case-insensitive, compact forms for the usual ones)."""
        compact = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
                   "c": "content-type", "l": "content-length"}
        want = name.lower()
        out: list[str] = []
        head = self.text.replace("\r\n", "\n").split("\n\n", 1)[0]
        for line in head.split("\n")[1:]:
            if ":" not in line:
                continue
            key, value = line.split(":", 1)
            key = key.strip().lower()
            key = compact.get(key, key)
            if key == want:
                out.append(value.strip())
        return out


_SIPP_SEPARATOR = re.compile(r"^-{20,} \d{4}-\d\d-\d\d [\d:.]+\s*$", re.MULTILINE)
_SIPP_HEADLINE = re.compile(
    r"^\s*(UDP|TCP|TLS|SCTP) message (sent|received)\b[^\n]*\n", re.IGNORECASE
)


def parse_sipp_message_log(text: str) -> list[LoggedSipMessage]:
    out: list[LoggedSipMessage] = []
    for chunk in _SIPP_SEPARATOR.split(text):
        m = _SIPP_HEADLINE.match(chunk)
        if m is None:
            continue
        body = chunk[m.end():].lstrip("\n")
        out.append(LoggedSipMessage(m.group(2).lower(), m.group(1).upper(), body))
    return out


@dataclass
class SippResult:
    name: str
    argv: list[str]
    rc: int
    output: str
    stats: dict[str, str]
    messages: list[LoggedSipMessage]
    errors: str

    def stat_int(self, key: str) -> int:
        value = self.stats.get(key, "")
        try:
            return int(float(value))
        except ValueError:
            return -1

    @property
    def successful(self) -> int:
        return self.stat_int("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return self.stat_int("FailedCall(C)")

    @property
    def call_rate(self) -> float:
        try:
            return float(self.stats.get("CallRate(C)", "nan"))
        except ValueError:
            return float("nan")

    def failure_reasons(self) -> dict[str, int]:
        return {
            k: self.stat_int(k)
            for k in self.stats
            if k.startswith("Failed") and k.endswith("(C)") and self.stat_int(k) > 0
        }

    def diagnostics(self) -> str:
        tail = "\n".join(self.output.splitlines()[-45:])
        return (
            f"SIPp {self.name}: rc={self.rc} successful={self.successful} failed={self.failed} "
            f"reasons={self.failure_reasons()}\nargv: {' '.join(self.argv)}\n"
            f"--- errors ---\n{self.errors[-3000:]}\n--- screen ---\n{tail}"
        )

    def expect_success(self, calls: int) -> None:
        if self.rc != 0 or self.successful != calls or self.failed != 0:
            raise AssertionError(f"expected {calls} successful call(s)\n{self.diagnostics()}")

    def sent(self, method: str | None = None) -> list[LoggedSipMessage]:
        return [
            m for m in self.messages
            if m.direction == "sent" and (method is None or (m.method == method))
        ]

    def received(self, method: str | None = None) -> list[LoggedSipMessage]:
        return [
            m for m in self.messages
            if m.direction == "received" and (method is None or (m.method == method))
        ]


def read_sipp_stats(path: Path) -> dict[str, str]:
    """The last row of a SIPp ``-trace_stat`` CSV as a dict (empty if absent)."""
    try:
        with open(path, newline="", errors="replace") as fh:
            rows = [r for r in csv.reader(fh, delimiter=";") if r]
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


class Sipp:
    """Runs SIPp scenarios from tests/interop/sipp/ (UAC in the foreground, UAS as a peer)."""

    def __init__(self, peers: PeerSet, binary: str) -> None:
        self.peers = peers
        self.binary = binary
        self._n = 0

    def _files(self, name: str) -> tuple[Path, Path, Path]:
        d = self.peers.workdir
        return d / f"{name}.msg.log", d / f"{name}.stat.csv", d / f"{name}.err.log"

    def _argv(
        self,
        name: str,
        scenario: str,
        *,
        port: int,
        transport: str,
        remote: str | None,
        service: str | None,
        keys: Mapping[str, str | int],
        auth: tuple[str, str] | None,
        auth_uri: str | None,
        calls: int | None,
        rate: float | None,
        limit: int | None,
        timeout: float,
        trace_msg: bool,
        extra: Sequence[str],
    ) -> list[str]:
        msg_log, stat_csv, err_log = self._files(name)
        argv = [self.binary]
        if remote:
            argv.append(remote)
        argv += [
            "-sf", str(SIPP_DIR / scenario),
            "-i", LOOPBACK, "-p", str(port), "-mi", LOOPBACK,
            "-t", transport,
            "-nostdin",
            "-trace_stat", "-stf", str(stat_csv), "-fd", "1",
            "-trace_err", "-error_file", str(err_log),
            "-timeout", f"{max(1, int(timeout))}s", "-timeout_error",
        ]
        if trace_msg:
            argv += ["-trace_msg", "-message_file", str(msg_log)]
        if service:
            argv += ["-s", service]
        for k, v in keys.items():
            argv += ["-key", k, str(v)]
        if auth:
            argv += ["-au", auth[0], "-ap", auth[1]]
        if auth_uri:
            argv += ["-auth_uri", auth_uri]
        if calls is not None:
            argv += ["-m", str(calls)]
        if rate is not None:
            argv += ["-r", f"{rate:g}"]
        if limit is not None:
            argv += ["-l", str(limit)]
        return argv + list(extra)

    def result(self, peer: PeerProcess) -> SippResult:
        msg_log, stat_csv, err_log = self._files(peer.name)
        try:
            msgs = parse_sipp_message_log(msg_log.read_text(errors="replace"))
        except OSError:
            msgs = []
        try:
            errors = err_log.read_text(errors="replace")
        except OSError:
            errors = ""
        rc = peer.proc.returncode
        return SippResult(
            name=peer.name, argv=peer.argv, rc=-999 if rc is None else rc,
            output=peer.log_text(), stats=read_sipp_stats(stat_csv), messages=msgs,
            errors=errors,
        )

    def uas(
        self,
        name: str,
        scenario: str,
        *,
        port: int,
        transport: str = "u1",
        keys: Mapping[str, str | int] | None = None,
        calls: int | None = None,
        timeout: float = 60.0,
        trace_msg: bool = True,
        extra: Sequence[str] = (),
    ) -> PeerProcess:
        """Start a UAS in the background and wait until its port is bound."""
        proto = "tcp" if transport.startswith("t") else "udp"
        ensure_ports_free([(proto, port)], f"SIPp {name}")
        argv = self._argv(
            name, scenario, port=port, transport=transport, remote=None, service=None,
            keys=keys or {}, auth=None, auth_uri=None, calls=calls, rate=None, limit=None,
            timeout=timeout, trace_msg=trace_msg, extra=extra,
        )
        peer = self.peers.spawn(name, argv)
        peer.wait_ports([(proto, port)], timeout=10.0)
        return peer

    def run(
        self,
        name: str,
        scenario: str,
        *,
        remote: str,
        port: int,
        transport: str = "u1",
        service: str | None = None,
        keys: Mapping[str, str | int] | None = None,
        auth: tuple[str, str] | None = None,
        auth_uri: str | None = None,
        calls: int = 1,
        rate: float | None = 10,
        limit: int | None = None,
        timeout: float = 10.0,
        trace_msg: bool = True,
        extra: Sequence[str] = ("-default_behaviors", "-bye"),
    ) -> SippResult:
        """Run a UAC to completion (bounded by SIPp's -timeout and a hard process timeout)."""
        proto = "tcp" if transport.startswith("t") else "udp"
        if proto == "udp":
            ensure_ports_free([("udp", port)], f"SIPp {name}")
        argv = self._argv(
            name, scenario, port=port, transport=transport, remote=remote, service=service,
            keys=keys or {}, auth=auth, auth_uri=auth_uri, calls=calls, rate=rate, limit=limit,
            timeout=timeout, trace_msg=trace_msg, extra=extra,
        )
        peer = self.peers.spawn(name, argv)
        peer.wait_exit(timeout + 15.0)
        return self.result(peer)

    def start(
        self,
        name: str,
        scenario: str,
        *,
        remote: str,
        port: int,
        transport: str = "u1",
        keys: Mapping[str, str | int] | None = None,
        auth: tuple[str, str] | None = None,
        auth_uri: str | None = None,
        timeout: float = 30.0,
    ) -> PeerProcess:
        """Start a UAC in the background (one call); :meth:`finish` collects its results."""
        proto = "tcp" if transport.startswith("t") else "udp"
        if proto == "udp":
            ensure_ports_free([("udp", port)], f"SIPp {name}")
        argv = self._argv(
            name, scenario, port=port, transport=transport, remote=remote, service=None,
            keys=keys or {}, auth=auth, auth_uri=auth_uri, calls=1, rate=None, limit=None,
            timeout=timeout, trace_msg=True, extra=(),
        )
        return self.peers.spawn(name, argv)

    def finish(self, peer: PeerProcess, timeout: float = 10.0) -> SippResult:
        """Wait for a UAS started with ``calls=N`` to exit by itself, then read its results."""
        peer.wait_exit(timeout)
        return self.result(peer)


# --------------------------------------------------------------------------- Kamailio


def start_kamailio(
    peers: PeerSet,
    binary: str,
    *,
    auth: bool = True,
    shm_mb: int | None = None,
    name: str = "kamailio",
    ready_timeout: float = 15.0,
) -> PeerProcess:
    """Kamailio registrar/proxy for example.test on 127.0.0.1:5070 (UDP+TCP)."""
    ensure_ports_free([("udp", KAMAILIO_PORT), ("tcp", KAMAILIO_PORT)], "kamailio")
    rundir = peers.workdir / name
    rundir.mkdir(parents=True, exist_ok=True)
    ctl = rundir / "ctl"
    if len(str(ctl)) > 100:
        raise PeerError(f"kamailio ctl socket path too long for AF_UNIX: {ctl}")
    argv = [binary, "-f", str(KAMAILIO_CFG), "-DD", "-E", "-Y", str(rundir),
            "-P", str(rundir / "kamailio.pid")]
    if auth:
        argv += ["-A", "WITH_AUTH"]
    if shm_mb:
        argv += ["-m", str(shm_mb), "-M", "16"]
    peer = peers.spawn(name, argv, env={"SIMPLEIM_KAM_CTL": f"unix:{ctl}"})
    peer.wait_ports([("udp", KAMAILIO_PORT), ("tcp", KAMAILIO_PORT)], timeout=ready_timeout)
    # the ctl socket is created by the main process after the listeners: all children are up
    deadline = time.monotonic() + ready_timeout
    while not ctl.exists():
        if not peer.alive():
            raise PeerError(f"kamailio exited during start\n{peer.describe()}")
        if time.monotonic() > deadline:
            raise PeerError(f"kamailio ctl socket {ctl} not created\n{peer.describe()}")
        time.sleep(0.05)
    return peer


# --------------------------------------------------------------------------- simpleim server


def run_cli(args: Sequence[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    cmd = [str(simpleim_cli()), *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PeerError(f"{' '.join(cmd)} did not finish within {timeout}s") from exc
    if done.returncode != 0:
        raise PeerError(
            f"{' '.join(cmd)} failed rc={done.returncode}\n"
            f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-3000:]}"
        )
    return done


def start_simpleim_server(
    peers: PeerSet,
    *,
    port: int = SIMPLEIM_PORT,
    users: Mapping[str, str] | None = None,
    no_auth: bool = False,
    log_level: str = "info",
    name: str = "simpleim-server",
    ready_timeout: float = 20.0,
    extra: Sequence[str] = (),
) -> PeerProcess:
    """``simpleim server`` for example.test on 127.0.0.1:PORT (UDP+TCP), SQLite in the workdir."""
    ensure_ports_free([("udp", port), ("tcp", port)], "simpleim server")
    db = f"sqlite:///{peers.workdir / (name + '.db')}"
    for user, password in (users or {}).items():
        run_cli(["user", "add", user, "--domain", DOMAIN, "--password", password, "--db", db,
                 "--create"])
    argv = [str(simpleim_cli()), "server", "--domain", DOMAIN,
            "--listen", f"{LOOPBACK}:{port}", "--db", db, "--log-level", log_level]
    if no_auth:
        argv.append("--no-auth")
    argv += list(extra)
    peer = peers.spawn(name, argv, env={"PYTHONUNBUFFERED": "1"})
    peer.wait_log(r"simpleim server ready", timeout=ready_timeout)
    peer.wait_ports([("udp", port), ("tcp", port)], timeout=5.0)
    return peer


# --------------------------------------------------------------------------- tshark


def capture_filter(ports: Iterable[int]) -> str:
    return " or ".join(f"port {p}" for p in sorted(set(ports)))


def start_capture(
    peers: PeerSet, binary: str, pcap: Path, ports: Iterable[int], name: str = "tshark"
) -> PeerProcess:
    """tshark on lo, restricted to *ports*; returns once the capture is running."""
    ports = sorted(set(ports))
    argv = [binary, "-i", "lo", "-B", "64", "-f", capture_filter(ports), "-w", str(pcap), "-q"]
    peer = peers.spawn(name, argv)
    peer.wait_log(r"Capturing on", timeout=20.0)
    # the banner precedes the real start of the capture slightly: probe until frames arrive
    wait_capture_live(pcap, ports[0])
    peer.capture = (pcap, ports[0])
    return peer


def stop_capture(peer: PeerProcess) -> None:
    if peer.capture is not None:
        # frames are captured in order: once a later probe is in the file, the run's are too
        wait_capture_live(*peer.capture)
    rc = peer.stop(sig=signal.SIGINT, timeout=10.0)
    if rc not in (0, -signal.SIGINT):
        raise PeerError(f"tshark ended with rc={rc}\n{peer.describe()}")


def pcap_check(pcap: Path, msrp_ports: Iterable[int] = (), timeout: float = 120.0) -> tuple[
    int, str
]:
    """Run tests/interop/pcap_check.sh; returns (exit code, output)."""
    cmd = ["sh", str(PCAP_CHECK), str(pcap), *[str(p) for p in msrp_ports]]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    return done.returncode, done.stdout + done.stderr
