"""Proxy relay benchmark: SIPp UAC -> proxy -> SIPp UAS, MESSAGE over UDP, simpleim vs Kamailio.

    .venv/bin/python benchmarks/proxy_relay.py [--quick] [--skip-kamailio] [--skip-memory]

1. Kamailio 5.6 (tests/interop/kamailio/kamailio.cfg without WITH_AUTH, ``-m 512 -M 16``) on
   127.0.0.1:5070, then ``simpleim server --no-auth --log-level warning`` on 127.0.0.1:5160; for
   each: a SIPp UAS (tests/interop/sipp/uas_message_load.xml) on 5080 registers as bob, a SIPp UAC
   (uac_message_cpim.xml, CPIM body) sends MESSAGEs to bob at stepped rates (full run: 500, 1000,
   1500, 2000, 3000, 4000, 6000/s for 5 s each; --quick: 1000 and 2000/s for 2 s). A step
   passes when every transaction succeeded (SIPp rc 0, no failed call) and the achieved rate
   is >= 85 % of the target. The figure is the highest passing rate; stepping stops at the
   first failing step. Before the steps, 300 MESSAGEs at 300/s warm up each proxy (not
   reported).
2. Memory per registration binding: 100,000 REGISTERs (--quick: 10,000) for distinct AORs are
   run through the server's Registrar + LocationService in-process (no store); the RSS delta is
   divided by the number of bindings. A second, tracemalloc-traced pass (20,000; --quick 3,000;
   tracing is slow and inflates RSS, hence separate) gives the exact Python allocation per
   binding.

Goals: simpleim >= 0.5x Kamailio's rate; <= 2 kB per binding. Last output line: JSON.
Loopback only; every peer is stopped by PID at the end (also on error or Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
import tempfile
import time
import tracemalloc
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
    PeerSet,
    Sipp,
    find_binary,
    port_plan_lock,
    start_kamailio,
    start_simpleim_server,
)

UAS_PORT = 5080
REGISTER_PORT = 5079
UAC_PORT = 5081


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    import resource

    return pages * resource.getpagesize()


def run_steps(
    sipp: Sipp, label: str, remote: str, rates: list[int], duration: float, grace: float
) -> list[dict[str, Any]]:
    """Register a UAS as bob at *remote*, then step the MESSAGE rate; returns one row per step."""
    uas = sipp.uas(f"{label}-uas", "uas_message_load.xml", port=UAS_PORT, trace_msg=False,
                   timeout=900, extra=("-max_recv_loops", "10000"))
    reg = sipp.run(
        f"{label}-register", "uac_register.xml", remote=remote, port=REGISTER_PORT,
        service="bob", keys={"domain": DOMAIN, "contact_port": UAS_PORT, "expires": 3600},
    )
    reg.expect_success(1)
    # warm-up (not reported): first requests pay for imports, caches and socket buffers
    warm = sipp.run(
        f"{label}-warmup", "uac_message_cpim.xml", remote=remote, port=UAC_PORT, service="bob",
        keys={"domain": DOMAIN, "from": "alice"}, calls=300, rate=300, timeout=15,
        trace_msg=False,
    )
    if warm.successful < 290:
        raise PeerError(f"{label}: warm-up failed\n{warm.diagnostics()}")
    time.sleep(1.0)
    rows: list[dict[str, Any]] = []
    for target in rates:
        calls = int(target * duration)
        t0 = time.monotonic()
        res = sipp.run(
            f"{label}-uac-{target}", "uac_message_cpim.xml", remote=remote, port=UAC_PORT,
            service="bob", keys={"domain": DOMAIN, "from": "alice"}, calls=calls, rate=target,
            limit=5000, timeout=duration + grace, trace_msg=False,
            extra=("-default_behaviors", "-bye", "-max_recv_loops", "10000"),
        )
        wall = time.monotonic() - t0
        achieved = res.call_rate
        ok = (res.rc == 0 and res.failed == 0 and res.successful == calls
              and achieved >= 0.85 * target)
        row = {
            "target_per_s": target, "calls": calls, "successful": res.successful,
            "failed": res.failed, "achieved_per_s": round(achieved, 1),
            "retransmissions": res.stat_int("Retransmissions(C)"),
            "rt_lt_1ms": res.stat_int("ResponseTimeRepartition1_<1"),
            "rt_lt_10ms": res.stat_int("ResponseTimeRepartition1_<10"),
            "wall_s": round(wall, 2), "rc": res.rc, "pass": ok,
            "failures": res.failure_reasons(),
        }
        rows.append(row)
        print(f"{label:9s} {target:6d}/s  ok={ok!s:5s} successful={res.successful} "
              f"failed={res.failed} achieved={achieved:,.0f}/s retrans={row['retransmissions']} "
              f"wall={wall:.1f}s", flush=True)
        if not ok:
            break
        time.sleep(1.0)  # let the UAS timewaits drain
    if not uas.alive():
        raise PeerError(f"the SIPp UAS died during the run\n{uas.describe()}")
    uas.stop()
    return rows


def best_rate(rows: list[dict[str, Any]]) -> int | None:
    passing = [r["target_per_s"] for r in rows if r["pass"]]
    return max(passing) if passing else None


async def _register_many(n: int, traced: bool) -> dict[str, Any]:
    """REGISTER n distinct AORs through Registrar + LocationService; memory delta per binding.

    With *traced* the delta is measured with tracemalloc (exact Python allocations, slow);
    without, as the RSS delta (includes allocator slack, no tracing overhead).
    """
    from simpleim.server.config import ServerConfig
    from simpleim.server.location import LocationService
    from simpleim.server.registrar import Registrar
    from simpleim.sip import parse_message
    from simpleim.transport.sip_addr import TransportAddr

    cfg = ServerConfig(domain=DOMAIN)
    location = LocationService(None)
    registrar = Registrar(cfg, location, is_local_domain=lambda uri: uri.host == DOMAIN)

    def ip(i: int) -> str:
        return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"

    def request(i: int) -> bytes:
        user = f"user{i:06d}"
        port = 10000 + i % 50000
        return (
            f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {ip(i)}:{port};branch=z9hG4bK{i:08x}reg;rport\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:{user}@{DOMAIN}>;tag={i:08x}\r\n"
            f"To: <sip:{user}@{DOMAIN}>\r\n"
            f"Call-ID: {i:08x}-4e1b-9f2a-reg@{ip(i)}\r\n"
            f"CSeq: 1 REGISTER\r\n"
            f"Contact: <sip:{user}@{ip(i)}:{port};transport=udp>;expires=3600\r\n"
            f"Content-Length: 0\r\n\r\n"
        ).encode()

    async def register(i: int) -> None:
        src = TransportAddr("udp", ip(i), 10000 + i % 50000)
        resp = await registrar.handle(parse_message(request(i)), src)
        if resp.status != 200:
            raise RuntimeError(f"REGISTER #{i} answered {resp.status} {resp.reason}")

    # warm up the code paths (caches, interned names), then drop those bindings again
    for i in range(n, n + 200):
        await register(i)
        await location.replace(f"user{i:06d}@{DOMAIN}", [])
    gc.collect()
    if traced:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
    else:
        base = _rss_bytes()
    t0 = time.perf_counter()
    for i in range(n):
        await register(i)
    elapsed = time.perf_counter() - t0
    gc.collect()
    if traced:
        delta = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
    else:
        delta = _rss_bytes() - base
    count = sum(len(location.lookup(a)) for a in location.aors())
    if count != n:
        raise RuntimeError(f"{count} bindings stored, expected {n}")
    kind = "tracemalloc" if traced else "rss"
    out: dict[str, Any] = {f"bytes_per_binding_{kind}": round(delta / n, 1),
                           f"bindings_{kind}": n}
    if not traced:
        out["registers_per_s_inprocess"] = round(n / elapsed, 1)
    return out


def memory_per_binding(n: int, n_traced: int) -> dict[str, Any]:
    out = asyncio.run(_register_many(n, traced=False))
    gc.collect()
    out.update(asyncio.run(_register_many(n_traced, traced=True)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (< 30 s)")
    ap.add_argument("--rates", default=None, help="comma-separated MESSAGE/s steps")
    ap.add_argument("--duration", type=float, default=None, help="seconds per step")
    ap.add_argument("--bindings", type=int, default=None)
    ap.add_argument("--skip-kamailio", action="store_true")
    ap.add_argument("--skip-simpleim", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, SIPp CSVs)")
    args = ap.parse_args(argv)
    rates = ([int(r) for r in args.rates.split(",")] if args.rates
             else [1000, 2000] if args.quick else [500, 1000, 1500, 2000, 3000, 4000, 6000])
    grace = 6.0 if args.quick else 10.0  # extra SIPp -timeout beyond the step duration
    duration = args.duration or (2.0 if args.quick else 5.0)
    n_bindings = args.bindings or (10000 if args.quick else 100000)
    n_traced = min(n_bindings, 3000 if args.quick else 20000)

    result: dict[str, Any] = {"bench": "proxy_relay", "quick": args.quick,
                              "duration_s": duration, "rates": rates}
    notes: dict[str, str] = {}
    workdir = Path(tempfile.mkdtemp(prefix="simpleim-bench-"))
    sipp_bin = find_binary("sipp")
    kam_bin = find_binary("kamailio")
    steps: dict[str, list[dict[str, Any]]] = {}
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(port_plan_lock())
        if sipp_bin is None:
            notes["relay"] = "sipp not installed (apt-get install sip-tester)"
        else:
            if not args.skip_kamailio:
                if kam_bin is None:
                    notes["kamailio"] = "kamailio not installed"
                else:
                    peers = PeerSet(workdir)
                    try:
                        start_kamailio(peers, kam_bin, auth=False, shm_mb=512)
                        steps["kamailio"] = run_steps(
                            Sipp(peers, sipp_bin), "kamailio", f"127.0.0.1:{KAMAILIO_PORT}",
                            rates, duration, grace)
                    except PeerError as exc:
                        notes["kamailio"] = str(exc)[:2000]
                    finally:
                        peers.stop_all()
            if not args.skip_simpleim:
                peers = PeerSet(workdir)
                try:
                    start_simpleim_server(peers, no_auth=True, log_level="warning",
                                          name="simpleim-bench")
                    steps["simpleim"] = run_steps(
                        Sipp(peers, sipp_bin), "simpleim", f"127.0.0.1:{SIMPLEIM_PORT}",
                        rates, duration, grace)
                except PeerError as exc:
                    notes["simpleim"] = str(exc)[:2000]
                finally:
                    peers.stop_all()
        if not args.skip_memory:
            try:
                result.update(memory_per_binding(n_bindings, n_traced))
            except ImportError as exc:
                notes["memory"] = f"server modules not importable yet: {exc}"
            except Exception as exc:  # noqa: BLE001 - reported in the JSON, not swallowed
                notes["memory"] = f"in-process registrar run failed: {type(exc).__name__}: {exc}"
    finally:
        stack.close()
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work dir kept: {workdir}", flush=True)

    ours = best_rate(steps.get("simpleim", []))
    kam = best_rate(steps.get("kamailio", []))
    result["simpleim_max_rate_per_s"] = ours
    result["kamailio_max_rate_per_s"] = kam
    result["ratio_kamailio"] = round(ours / kam, 3) if ours and kam else None
    # when Kamailio passes every step the ceiling is the SIPp pair / the step list, not Kamailio
    result["kamailio_passed_all_steps"] = bool(kam) and kam == max(rates)
    bpb = result.get("bytes_per_binding_tracemalloc")
    result["goal_rate_met"] = result["ratio_kamailio"] is not None and result[
        "ratio_kamailio"] >= 0.5
    rss_bpb = result.get("bytes_per_binding_rss")
    result["goal_memory_met"] = (bpb is not None and bpb <= 2048
                                 and rss_bpb is not None and rss_bpb <= 2048)
    result["steps"] = steps
    result["notes"] = notes
    result["machine"] = machine()
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
