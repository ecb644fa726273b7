"""Fuzz campaign (issue 7): every parser plus the server's request path, on mutated real traffic.

    nice -n 19 .venv/bin/python benchmarks/fuzz.py --inputs 10000000 --jobs 2
    .venv/bin/python benchmarks/fuzz.py --quick              # 2,000 inputs per target

Targets and seeds live in tests/fuzz/fuzz_targets.py (shared with the CI fuzz tests).  Each
worker runs a tight loop: mutate a seed, parse, read every accessor; an exception outside the
target's typed error family is a crash - counted, its input written to ``--crash-dir`` (a
temporary directory by default, never the checkout).  The server target drives one in-process
ImServer (SQLite in memory, digest auth on) through its datagram entry point; an exception
reaching the event loop or an ERROR log record is a crash.

Output: one line per target, then a JSON line (inputs, crashes, seconds, inputs/s per target).
Bounded: every target stops after ``--inputs`` inputs (and ``--server-inputs`` for the server).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))

from fuzz_targets import TARGETS, ServerHarness, mutate  # noqa: E402

SERVER = "server-request"


def _crash(crash_dir: Path, name: str, data: bytes, exc: BaseException) -> dict[str, str]:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f"{tb[-1].filename}:{tb[-1].lineno}" if tb else "?"
    digest = hashlib.sha1(data).hexdigest()[:12]
    path = crash_dir / f"{name}-{digest}.bin"
    path.write_bytes(data)
    return {"target": name, "error": f"{type(exc).__name__}: {str(exc)[:200]}", "where": where,
            "input": str(path)}


def run_parser(name: str, count: int, seed: int, crash_dir: str) -> dict[str, Any]:
    target = TARGETS[name]
    seeds = target.seeds()
    allowed = target.allowed
    run = target.run
    rng = random.Random(seed)
    crashes: list[dict[str, str]] = []
    seen: set[str] = set()
    n_crash = 0
    t0 = time.perf_counter()
    for _ in range(count):
        data = mutate(rng, seeds)
        try:
            run(data)
        except allowed:
            pass
        except Exception as exc:  # noqa: BLE001 - a crash is whatever is not the typed family
            n_crash += 1
            info = _crash(Path(crash_dir), name, data, exc)
            if info["where"] not in seen and len(crashes) < 20:
                seen.add(info["where"])
                crashes.append(info)
    return {"target": name, "inputs": count, "crashes": n_crash, "unique": crashes,
            "seconds": time.perf_counter() - t0}


# ----------------------------------------------------------------------------- server path
def run_server(count: int, seed: int, crash_dir: str) -> dict[str, Any]:
    import asyncio

    seeds = TARGETS["sip-message"].seeds()
    rng = random.Random(seed)
    crashes: list[dict[str, str]] = []
    n_crash = 0
    logging.getLogger().setLevel(logging.WARNING)

    async def main() -> float:
        nonlocal n_crash
        async with ServerHarness() as h:
            t0 = time.perf_counter()
            for i in range(count):
                data = mutate(rng, seeds)
                err = await h.feed(data)
                if i % 64 == 0:
                    await h.drain()
                if err is not None:
                    n_crash += 1
                    if len(crashes) < 20:
                        crashes.append(_crash(Path(crash_dir), SERVER, data, RuntimeError(err)))
            return time.perf_counter() - t0

    seconds = asyncio.run(main())
    return {"target": SERVER, "inputs": count, "crashes": n_crash, "unique": crashes,
            "seconds": seconds}


def _job(args: tuple[str, int, int, str]) -> dict[str, Any]:
    name, count, seed, crash_dir = args
    if name == SERVER:
        return run_server(count, seed, crash_dir)
    return run_parser(name, count, seed, crash_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", type=int, default=100_000, help="inputs per parser target")
    ap.add_argument("--server-inputs", type=int, default=None,
                    help="inputs for the server request path (default: --inputs / 10)")
    ap.add_argument("--quick", action="store_true", help="2,000 inputs per target")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=250_000, help="inputs per work unit")
    ap.add_argument("--targets", default=",".join([*TARGETS, SERVER]))
    ap.add_argument("--seed", type=int, default=20261204)
    ap.add_argument("--crash-dir", default=None)
    ap.add_argument("--progress", default=None, help="append per-unit JSON results to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.inputs = 2000
    server_inputs = args.server_inputs if args.server_inputs is not None else args.inputs // 10
    crash_dir = args.crash_dir or tempfile.mkdtemp(prefix="simpleim-fuzz-")
    os.makedirs(crash_dir, exist_ok=True)
    names = [n for n in args.targets.split(",") if n]
    units: list[tuple[str, int, int, str]] = []
    for ti, name in enumerate(names):
        if name != SERVER and name not in TARGETS:
            ap.error(f"unknown target {name}")
        total = server_inputs if name == SERVER else args.inputs
        k = 0
        while total > 0:
            n = min(args.batch, total)
            units.append((name, n, args.seed * 1000 + ti * 100003 + k, crash_dir))
            total -= n
            k += 1
    # round-robin over the targets: a run cut short has covered every target alike
    units.sort(key=lambda u: (u[2] % 100003, names.index(u[0])))
    results: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        for r in pool.imap_unordered(_job, units):
            agg = results.setdefault(r["target"], {"inputs": 0, "crashes": 0, "seconds": 0.0,
                                                   "unique": []})
            agg["inputs"] += r["inputs"]
            agg["crashes"] += r["crashes"]
            agg["seconds"] += r["seconds"]
            agg["unique"] += [u for u in r["unique"]
                              if u["where"] not in {x["where"] for x in agg["unique"]}]
            if args.progress:
                with open(args.progress, "a") as f:
                    f.write(json.dumps({k: v for k, v in r.items() if k != "unique"}
                                       | {"unique": len(r["unique"])}) + "\n")
    wall = time.perf_counter() - t0
    for name in names:
        r = results[name]
        rate = r["inputs"] / r["seconds"] if r["seconds"] else 0.0
        print(f"{name:16s} {r['inputs']:>12,d} inputs  {r['crashes']:>6d} crashes  "
              f"{rate:>10,.0f} inputs/s/core")
        for u in r["unique"][:5]:
            print(f"    {u['error']} at {u['where']} ({u['input']})")
    summary = {
        "benchmark": "fuzz", "wall_seconds": round(wall, 1), "jobs": args.jobs,
        "crash_dir": crash_dir,
        "targets": {n: {"inputs": results[n]["inputs"], "crashes": results[n]["crashes"],
                        "cpu_seconds": round(results[n]["seconds"], 1),
                        "unique_crashes": results[n]["unique"][:5]} for n in names},
        "total_inputs": sum(r["inputs"] for r in results.values()),
        "total_crashes": sum(r["crashes"] for r in results.values()),
    }
    print(json.dumps(summary))
    return 1 if summary["total_crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
