"""Deferred store benchmark: simpleim's Deferred Messaging Function vs Kamailio msilo.

    .venv/bin/python benchmarks/deferred_store.py [--quick] [--skip-kamailio] [--skip-postgres]

For each store backend (SQLite file, PostgreSQL) and each server (``simpleim server --no-auth``
on 127.0.0.1:5160; Kamailio 5.6 with msilo on db_sqlite / db_postgres, benchmarks/kamailio/
msilo.cfg, on 127.0.0.1:5070), on the same scenario:

1. Acceptance: a SIPp UAC (tests/interop/sipp/uac_message_offline.xml) sends text/plain
   MESSAGEs to bob, who is not registered, at stepped rates (full run: 100, 200, 400, 800,
   1600/s for 5 s each; --quick: 100, 200, 400/s for 2 s). A step passes when every MESSAGE
   got **202 Accepted** (SIPp rc 0, no failed call, achieved rate >= 85 % of the target). The
   figure is the highest passing rate (zero failures); stepping stops at the first failing
   step. Afterwards the store must hold exactly as many messages as there were 202s.
2. Redelivery: a SIPp UAS (uas_message_load.xml) registers as bob; the time from the REGISTER
   until the store is empty (every stored MESSAGE delivered and acknowledged with 200) gives
   messages per second. simpleim sends them one at a time in order; msilo's m_dump sends them
   all at once.

Both servers write each message durably before the 202 (simpleim: SQLite WAL synchronous=FULL /
a committed PostgreSQL transaction; msilo: an autocommitted INSERT). Kamailio's PostgreSQL
tables go in a database of their own (created and dropped here), simpleim's in a random schema.
Goal (issue 9): simpleim >= 1x msilo's zero-failure rate on the same backend. Last output line:
JSON. Loopback only; every peer is stopped by PID at the end (also on error or Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))  # waiting.py, used by the harness
sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "interop"))

from _common import emit, machine  # noqa: E402
from interop_harness import (  # noqa: E402
    DOMAIN,
    KAMAILIO_PORT,
    SIMPLEIM_PORT,
    PeerError,
    PeerProcess,
    PeerSet,
    Sipp,
    find_binary,
    port_plan_lock,
    run_cli,
    simpleim_cli,
)

PG_BASE = "postgresql://root@127.0.0.1:5432/test"
KAM_SQL = Path("/usr/share/kamailio")
UAS_PORT = 5080
REGISTER_PORT = 5079
UAC_PORT = 5081


# ----------------------------------------------------------------------------- stores


def _pg(sql: str, *, url: str = PG_BASE, fetch: bool = False) -> Any:
    import asyncpg

    async def run() -> Any:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            if fetch:
                return await conn.fetchval(sql)
            return await conn.execute(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


class Backend:
    """Where one server keeps its messages, and how to count them."""

    def __init__(self, url: str, count_sql: str, cleanup: Callable[[], None] | None = None,
                 sqlite_path: Path | None = None, pg_url: str | None = None) -> None:
        self.url = url
        self._count_sql = count_sql
        self._cleanup = cleanup
        self._sqlite = sqlite_path
        self._pg_url = pg_url

    def count(self) -> int:
        if self._sqlite is not None:
            conn = sqlite3.connect(self._sqlite, timeout=10)
            try:
                return int(conn.execute(self._count_sql).fetchone()[0])
            finally:
                conn.close()
        return int(_pg(self._count_sql, url=self._pg_url or PG_BASE, fetch=True))

    def cleanup(self) -> None:
        if self._cleanup is not None:
            self._cleanup()


def simpleim_backend(kind: str, work: Path) -> Backend:
    if kind == "sqlite":
        path = work / "simpleim.db"
        return Backend(f"sqlite:///{path}", "SELECT COUNT(*) FROM deferred_messages",
                       sqlite_path=path)
    schema = "bench_" + secrets.token_hex(6)
    url = f"{PG_BASE}?schema={schema}"
    return Backend(url, f'SELECT COUNT(*) FROM "{schema}".deferred_messages',
                   cleanup=lambda: _pg(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def kamailio_backend(kind: str, work: Path) -> Backend:
    scripts = ("standard-create.sql", "msilo-create.sql")
    if kind == "sqlite":
        path = work / "msilo.db"
        conn = sqlite3.connect(path)
        for script in scripts:
            conn.executescript((KAM_SQL / "db_sqlite" / script).read_text())
        conn.commit()
        conn.close()
        return Backend(f"sqlite://{path}", "SELECT COUNT(*) FROM silo", sqlite_path=path)
    db = "kam_bench_" + secrets.token_hex(6)
    _pg(f'CREATE DATABASE "{db}"')
    url = f"postgresql://root@127.0.0.1:5432/{db}"
    for script in scripts:
        _pg((KAM_SQL / "postgres" / script).read_text(), url=url)

    def drop() -> None:
        _pg(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    return Backend(f"postgres://root@127.0.0.1:5432/{db}", "SELECT COUNT(*) FROM silo",
                   cleanup=drop, pg_url=url)


# ----------------------------------------------------------------------------- servers


def start_simpleim(peers: PeerSet, backend: Backend, name: str) -> PeerProcess:
    run_cli(["user", "add", "bob", "--create", "--domain", DOMAIN, "--password", "bobpw",
             "--db", backend.url])
    argv = [str(simpleim_cli()), "server", "--domain", DOMAIN, "--listen",
            f"127.0.0.1:{SIMPLEIM_PORT}", "--db", backend.url, "--no-auth",
            "--log-level", "warning"]
    peer = peers.spawn(name, argv, env={"PYTHONUNBUFFERED": "1"})
    peer.wait_log(r"simpleim server ready", timeout=30)
    return peer


def start_msilo(peers: PeerSet, backend: Backend, kind: str, name: str) -> PeerProcess:
    binary = find_binary("kamailio")
    if binary is None:
        raise PeerError("kamailio not installed")
    rundir = peers.workdir / name
    rundir.mkdir(parents=True, exist_ok=True)
    cfg = (BENCH_DIR / "kamailio" / "msilo.cfg").read_text()
    cfg = (cfg.replace("@DBURL@", backend.url)
           .replace("@DBMOD@", "db_sqlite.so" if kind == "sqlite" else "db_postgres.so")
           .replace("@PORT@", str(KAMAILIO_PORT)))
    cfg_path = rundir / "msilo.cfg"
    cfg_path.write_text(cfg)
    argv = [binary, "-f", str(cfg_path), "-DD", "-E", "-Y", str(rundir),
            "-P", str(rundir / "kamailio.pid"), "-m", "512", "-M", "16"]
    peer = peers.spawn(name, argv)
    peer.wait_ports([("udp", KAMAILIO_PORT)], timeout=15)
    time.sleep(0.5)  # children finish their module init after the listener is bound
    return peer


# ----------------------------------------------------------------------------- measuring


def accept_steps(sipp: Sipp, label: str, remote: str, rates: list[int],
                 duration: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for target in rates:
        calls = int(target * duration)
        t0 = time.monotonic()
        res = sipp.run(
            f"{label}-uac-{target}", "uac_message_offline.xml", remote=remote, port=UAC_PORT,
            service="bob", keys={"domain": DOMAIN, "from": "alice"}, calls=calls, rate=target,
            limit=5000, timeout=duration + 15, trace_msg=False,
            extra=("-default_behaviors", "-bye", "-max_recv_loops", "10000"),
        )
        wall = time.monotonic() - t0
        achieved = res.call_rate
        ok = (res.rc == 0 and res.failed == 0 and res.successful == calls
              and achieved >= 0.85 * target)
        row = {"target_per_s": target, "calls": calls, "successful": res.successful,
               "failed": res.failed, "achieved_per_s": round(achieved, 1),
               "retransmissions": res.stat_int("Retransmissions(C)"),
               "wall_s": round(wall, 2), "pass": ok, "failures": res.failure_reasons()}
        rows.append(row)
        print(f"{label:20s} {target:5d}/s ok={ok!s:5s} 202s={res.successful} "
              f"failed={res.failed} achieved={achieved:,.0f}/s "
              f"retrans={row['retransmissions']}", flush=True)
        if not ok:
            break
        time.sleep(1.0)
    return rows


def redeliver(sipp: Sipp, label: str, remote: str, backend: Backend,
              timeout: float = 300.0) -> dict[str, Any]:
    stored = backend.count()
    uas = sipp.uas(f"{label}-uas", "uas_message_load.xml", port=UAS_PORT, trace_msg=False,
                   timeout=timeout + 30, extra=("-max_recv_loops", "10000"))
    t0 = time.monotonic()
    reg = sipp.run(f"{label}-register", "uac_register.xml", remote=remote, port=REGISTER_PORT,
                   service="bob", keys={"domain": DOMAIN, "contact_port": UAS_PORT,
                                        "expires": 3600})
    reg.expect_success(1)
    left = stored
    while left > 0 and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
        left = backend.count()
    elapsed = time.monotonic() - t0
    uas.stop()
    rate = (stored - left) / elapsed if elapsed > 0 else 0.0
    print(f"{label:20s} redelivered {stored - left}/{stored} in {elapsed:.2f}s "
          f"= {rate:,.0f}/s", flush=True)
    return {"stored": stored, "delivered": stored - left, "seconds": round(elapsed, 2),
            "per_s": round(rate, 1), "complete": left == 0}


def best(rows: list[dict[str, Any]]) -> int | None:
    passing = [r["target_per_s"] for r in rows if r["pass"]]
    return max(passing) if passing else None


def run_one(sipp: Sipp, peers: PeerSet, system: str, kind: str, rates: list[int],
            duration: float) -> dict[str, Any]:
    label = f"{system}-{kind}"
    work = peers.workdir / label
    work.mkdir(exist_ok=True)
    backend = (simpleim_backend if system == "simpleim" else kamailio_backend)(kind, work)
    try:
        if system == "simpleim":
            server = start_simpleim(peers, backend, label)
            remote = f"127.0.0.1:{SIMPLEIM_PORT}"
        else:
            server = start_msilo(peers, backend, kind, label)
            remote = f"127.0.0.1:{KAMAILIO_PORT}"
        try:
            rows = accept_steps(sipp, label, remote, rates, duration)
            accepted = sum(r["successful"] for r in rows)
            stored = backend.count()
            if stored != accepted:
                print(f"{label}: {accepted} x 202 but {stored} stored", flush=True)
            delivery = redeliver(sipp, label, remote, backend)
        finally:
            server.stop()
    finally:
        backend.cleanup()
    return {"steps": rows, "zero_failure_rate_per_s": best(rows), "accepted": accepted,
            "stored_after": stored, "lost": max(0, accepted - stored),
            "redelivery": delivery}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-kamailio", action="store_true")
    ap.add_argument("--skip-postgres", action="store_true")
    args = ap.parse_args(argv)
    rates = [100, 200, 400] if args.quick else [100, 200, 400, 800, 1600]
    duration = 2.0 if args.quick else 5.0
    sipp_bin = find_binary("sipp")
    if sipp_bin is None:
        print("sipp not installed (Debian package sip-tester)", file=sys.stderr)
        return 2
    kinds = ["sqlite"] if args.skip_postgres else ["sqlite", "postgresql"]
    systems = ["simpleim"] if args.skip_kamailio else ["simpleim", "kamailio"]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="simpleim-dm-") as tmp:
        for kind in kinds:
            for system in systems:
                # the host-wide port plan is held per server run (about a minute with
                # --quick), not for the whole benchmark: interop tests of parallel runs
                # wait at most 240 s for it
                with port_plan_lock():
                    peers = PeerSet(Path(tmp))
                    sipp = Sipp(peers, sipp_bin)
                    try:
                        results[f"{system}_{kind}"] = run_one(sipp, peers, system, kind,
                                                              rates, duration)
                    finally:
                        problems = peers.stop_all()
                        if problems:
                            print("; ".join(problems), file=sys.stderr)
    ratios: dict[str, Any] = {}
    for kind in kinds:
        s, k = results.get(f"simpleim_{kind}"), results.get(f"kamailio_{kind}")
        if s and k:
            sr, kr = s["zero_failure_rate_per_s"], k["zero_failure_rate_per_s"]
            ratios[f"accept_{kind}"] = round(sr / kr, 2) if sr and kr else None
            sd, kd = s["redelivery"]["per_s"], k["redelivery"]["per_s"]
            ratios[f"redelivery_{kind}"] = round(sd / kd, 2) if sd and kd else None
    emit({"benchmark": "deferred_store", "quick": args.quick, "rates": rates,
          "step_seconds": duration, "results": results, "simpleim_over_msilo": ratios,
          "machine": machine()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
