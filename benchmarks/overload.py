"""Overload benchmark: SIPp MESSAGE ramp with digest auth through the proxy, simpleim vs Kamailio.

    .venv/bin/python benchmarks/overload.py [--quick] [--skip-kamailio] [--step S]

For each proxy - ``simpleim server`` (127.0.0.1:5160, default limits, ``--log-level warning``)
and Kamailio 5.6 with tests/interop/kamailio/kamailio.cfg ``-A WITH_AUTH`` (127.0.0.1:5070) -
a SIPp UAS (uas_message_load.xml, port 5080) registers as bob with digest auth, then a SIPp UAC
(uac_message_overload.xml: MESSAGE from alice, answers the 407 once, a 503 is logged as SHED
and not counted as a failure) sends MESSAGEs to bob:

1. capacity: rising steps (full: 250, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000, 4000/s
   for 5 s; --quick: 500, 1000, 1500, 2000, 3000/s for 2 s); the zero-failure rate is the
   highest step where every call succeeded without a 503 and >= 85 % of the target rate was reached.
2. ramp: steps at 0.5x, 1x, 2x, 3x, 1x, 0.5x of *simpleim's* zero-failure rate (the same
   absolute rates for Kamailio), --step seconds each (full 20 s, --quick 3 s). Per step:
   goodput (successful, not shed, per second of the step), 503s, failures, retransmissions.
3. recovery: after the 3x step, 1 s probes at 0.5x capacity until one runs clean (no failure,
   no 503); recovery_s = time from the end of the 3x step to the end of that probe (cap 60 s).
4. RSS of the proxy (all its processes) before and after.

Goal (issue 7 item 7): goodput at 2x >= 90 % of the zero-failure rate, recovery after.
Last output line: JSON. Loopback only; every peer is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
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
USERS = {"alice": "alicepw", "bob": "bobpw"}
RAMP = (0.5, 1.0, 2.0, 3.0, 1.0, 0.5)


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and its children (Kamailio forks workers), in KiB."""
    pids = {pid}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            pids.add(int(proc.name))
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


class Runner:
    def __init__(self, sipp: Sipp, label: str, remote: str, workdir: Path) -> None:
        self.sipp = sipp
        self.label = label
        self.remote = remote
        self.workdir = workdir
        self.n = 0

    def step(self, rate: float, seconds: float) -> dict[str, Any]:
        """One SIPp UAC run of ``rate`` MESSAGE/s for ``seconds``."""
        self.n += 1
        name = f"{self.label}-{self.n:02d}-{int(rate)}"
        log_file = self.workdir / f"{name}.log.txt"
        calls = max(1, int(rate * seconds))
        t0 = time.monotonic()
        res = self.sipp.run(
            name, "uac_message_overload.xml", remote=self.remote, port=UAC_PORT,
            service="bob", keys={"domain": DOMAIN, "from": "alice"},
            auth=("alice", USERS["alice"]), auth_uri=f"bob@{DOMAIN}", calls=calls, rate=rate,
            limit=20000, timeout=seconds + 12, trace_msg=False,
            extra=("-default_behaviors", "-bye", "-max_recv_loops", "10000",
                   "-trace_logs", "-log_file", str(log_file)),
        )
        wall = time.monotonic() - t0
        try:
            shed = log_file.read_text(errors="replace").count("SHED ")
        except OSError:
            shed = 0
        good = max(0, res.successful - shed)
        row = {
            "rate_per_s": int(rate), "calls": calls, "successful": good, "shed_503": shed,
            "failed": res.failed, "goodput_per_s": round(good / seconds, 1),
            "retransmissions": res.stat_int("Retransmissions(C)"), "wall_s": round(wall, 1),
            "failures": res.failure_reasons(),
        }
        row["clean"] = (res.failed == 0 and shed == 0 and good == calls
                        and res.call_rate >= 0.85 * rate)
        print(f"{self.label:9s} {int(rate):6d}/s x{seconds:g}s good={good} shed={shed} "
              f"failed={res.failed} goodput={row['goodput_per_s']}/s "
              f"retrans={row['retransmissions']} wall={wall:.1f}s", flush=True)
        return row


def measure(runner: Runner, pid: int, capacity_rates: list[int], step_s: float,
            cap_s: float, ramp_base: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"rss_kib_start": rss_kib(pid)}
    capacity_rows = []
    capacity = None
    for rate in capacity_rates:
        row = runner.step(rate, cap_s)
        capacity_rows.append(row)
        if not row["clean"]:
            break
        capacity = rate
        time.sleep(1.0)
    out["capacity_steps"] = capacity_rows
    out["zero_failure_rate_per_s"] = capacity
    base = ramp_base or capacity
    if not base:
        return out
    time.sleep(4.5)  # the UAS's timewaits drain
    ramp = []
    end_of_overload = None
    for factor in RAMP:
        row = runner.step(base * factor, step_s)
        row["factor"] = factor
        ramp.append(row)
        if factor == 3.0:
            end_of_overload = time.monotonic()
            break
    recovery = None
    probes = 0
    if end_of_overload is not None:
        while time.monotonic() - end_of_overload < 60:
            probes += 1
            row = runner.step(base * 0.5, 1.0)
            if row["clean"]:
                recovery = round(time.monotonic() - end_of_overload, 1)
                break
    for factor in RAMP[4:]:
        row = runner.step(base * factor, step_s)
        row["factor"] = factor
        ramp.append(row)
    out["ramp"] = ramp
    out["recovery_s"] = recovery
    out["recovery_probes"] = probes
    two = [r for r in ramp if r["factor"] == 2.0]
    if two:
        out["goodput_at_2x_per_s"] = two[0]["goodput_per_s"]
        out["goodput_at_2x_ratio"] = round(two[0]["goodput_per_s"] / base, 3)
    out["shed_503_total"] = sum(r["shed_503"] for r in ramp)
    out["rss_kib_end"] = rss_kib(pid)
    return out


def run_proxy(label: str, sipp_bin: str, kam_bin: str | None, workdir: Path,
              capacity_rates: list[int], step_s: float, cap_s: float,
              ramp_base: int | None) -> dict[str, Any]:
    peers = PeerSet(workdir)
    try:
        if label == "kamailio":
            assert kam_bin is not None
            proc = start_kamailio(peers, kam_bin, auth=True, shm_mb=512)
            remote = f"127.0.0.1:{KAMAILIO_PORT}"
        else:
            proc = start_simpleim_server(peers, users=USERS, log_level="warning",
                                         name="simpleim-overload")
            remote = f"127.0.0.1:{SIMPLEIM_PORT}"
        sipp = Sipp(peers, sipp_bin)
        uas = sipp.uas(f"{label}-uas", "uas_message_load.xml", port=UAS_PORT,
                       trace_msg=False, timeout=1800, extra=("-max_recv_loops", "10000"))
        reg = sipp.run(f"{label}-register", "uac_register.xml", remote=remote,
                       port=REGISTER_PORT, service="bob", auth=("bob", USERS["bob"]),
                       keys={"domain": DOMAIN, "contact_port": UAS_PORT, "expires": 3600})
        reg.expect_success(1)
        runner = Runner(sipp, label, remote, workdir)
        warm = runner.step(200, 1.5)  # warm-up (not reported)
        if warm["successful"] < 0.9 * warm["calls"]:
            raise PeerError(f"{label}: warm-up failed: {warm}")
        time.sleep(1.0)
        out = measure(runner, proc.proc.pid, capacity_rates, step_s, cap_s, ramp_base)
        if not uas.alive():
            raise PeerError(f"the SIPp UAS died during the run\n{uas.describe()}")
        return out
    finally:
        peers.stop_all()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run")
    ap.add_argument("--step", type=float, default=None, help="seconds per ramp step")
    ap.add_argument("--rates", default=None, help="comma-separated capacity steps (/s)")
    ap.add_argument("--skip-kamailio", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, SIPp CSVs)")
    args = ap.parse_args(argv)
    capacity_rates = ([int(r) for r in args.rates.split(",")] if args.rates
                      else [500, 1000, 1500, 2000, 3000] if args.quick
                      else [250, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000, 4000])
    step_s = args.step or (3.0 if args.quick else 20.0)
    cap_s = 2.0 if args.quick else 5.0
    result: dict[str, Any] = {"bench": "overload", "quick": args.quick, "step_s": step_s,
                              "capacity_rates": capacity_rates}
    notes: dict[str, str] = {}
    workdir = Path(tempfile.mkdtemp(prefix="simpleim-overload-"))
    sipp_bin = find_binary("sipp")
    kam_bin = find_binary("kamailio")
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(port_plan_lock())
        if sipp_bin is None:
            notes["sipp"] = "sipp not installed (apt-get install sip-tester)"
        else:
            try:
                result["simpleim"] = run_proxy("simpleim", sipp_bin, None, workdir,
                                               capacity_rates, step_s, cap_s, None)
            except PeerError as exc:
                notes["simpleim"] = str(exc)[:2000]
            base = result.get("simpleim", {}).get("zero_failure_rate_per_s")
            if args.skip_kamailio:
                pass
            elif kam_bin is None:
                notes["kamailio"] = "kamailio not installed"
            else:
                try:
                    result["kamailio"] = run_proxy("kamailio", sipp_bin, kam_bin, workdir,
                                                   capacity_rates, step_s, cap_s, base)
                except PeerError as exc:
                    notes["kamailio"] = str(exc)[:2000]
    finally:
        stack.close()
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work dir kept: {workdir}", flush=True)
    ours = result.get("simpleim", {})
    kam = result.get("kamailio", {})
    ratio = ours.get("goodput_at_2x_ratio")
    result["goal_goodput_at_2x_met"] = ratio is not None and ratio >= 0.9
    result["goal_recovery_met"] = ours.get("recovery_s") is not None
    z_ours, z_kam = ours.get("zero_failure_rate_per_s"), kam.get("zero_failure_rate_per_s")
    result["zero_failure_ratio_kamailio"] = (round(z_ours / z_kam, 3)
                                             if z_ours and z_kam else None)
    result["notes"] = notes
    result["machine"] = machine()
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
