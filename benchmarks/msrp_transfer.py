"""MSRP file transfer over loopback vs a plain asyncio TCP copy of the same bytes.

    python benchmarks/msrp_transfer.py            # 1 GiB, chunks 2 KiB / 64 KiB / 1 MiB
    python benchmarks/msrp_transfer.py --quick    # 64 MiB (under 30 s)

Each case runs in its own subprocess (so the peak RSS is the case's own): both ends live in one
process, file -> socket -> file, like the raw copy.  The MSRP side is what a client does: default
``MsrpEndpoint`` settings, ``send_file`` with the default ``Failure-Report: yes`` (every chunk is
its own SEND transaction and gets a 200, RFC 4975 §7.2), the same for every chunk size.
Reported: MB/s (10^6 bytes/s), CPU seconds per GiB (user+sys of the process), peak RSS
(``resource.ru_maxrss``), SHA-1 equality.
Each case runs ``--repeat`` times (best kept; default 2, 3 with --quick) in tmpfs when possible.
The last output line is JSON for the 64 KiB case (the goal: ours >= 0.6 x raw).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

READ = 256 * 1024


def make_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        written = 0
        i = 0
        while written < size:
            piece = (i.to_bytes(8, "big") + block[8:])[: size - written]
            f.write(piece)
            written += len(piece)
            i += 1


def sha1_file(path: Path) -> str:
    h = hashlib.sha1()  # noqa: S324 - integrity check, not security
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


async def raw_copy(src: Path, dst: Path) -> None:
    done = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with open(dst, "wb", buffering=0) as f:
            while True:
                data = await reader.read(READ)
                if not data:
                    break
                f.write(data)
        writer.close()
        done.set_result(None)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=READ * 2)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=READ * 2)
    with open(src, "rb", buffering=0) as f:
        while True:
            data = f.read(READ)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    writer.close()
    await done
    server.close()
    await server.wait_closed()


async def msrp_copy(src: Path, dst_dir: Path, chunk: int) -> Path:
    from simpleim.transport.msrp import MsrpEndpoint

    a, b = MsrpEndpoint(), MsrpEndpoint()
    await a.start()
    await b.start()
    sb = b.new_session()
    sa = a.new_session(sb.local_path, chunk_size=chunk)
    sb.set_remote_path(sa.local_path)
    sb.receive_into(dst_dir)
    await a.connect(sa)
    await sa.send_file(src)
    msg = await sb.receive(timeout=600)
    await a.close()
    await b.close()
    return dst_dir / msg.message_id


def run_case(case: str, src: Path, chunk: int) -> dict[str, object]:
    out_dir = Path(tempfile.mkdtemp(prefix="msrpbench-", dir=src.parent))
    import simpleim.transport.msrp  # noqa: F401 - import cost is not transfer cost
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if case == "raw":
        dst = out_dir / "raw.bin"
        asyncio.run(raw_copy(src, dst))
    else:
        dst = asyncio.run(msrp_copy(src, out_dir, chunk))
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    size = src.stat().st_size
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    ok = dst.stat().st_size == size
    res = {
        "case": case, "chunk": chunk, "bytes": size, "seconds": round(dt, 3),
        "mb_s": round(size / dt / 1e6, 1), "cpu_s_per_gib": round(cpu / (size / (1 << 30)), 2),
        "peak_rss_mib": round(r1.ru_maxrss / 1024, 1), "size_ok": ok, "sha1": sha1_file(dst),
        "user_s": round(r1.ru_utime - r0.ru_utime, 3), "sys_s": round(r1.ru_stime - r0.ru_stime, 3),
    }
    dst.unlink()
    out_dir.rmdir()
    return res


def sub(case: str, src: Path, chunk: int) -> dict[str, object]:
    cp = subprocess.run([sys.executable, __file__, "--case", case, "--src", str(src),
                         "--chunk", str(chunk)], capture_output=True, text=True, check=True,
                        timeout=1800)
    return json.loads(cp.stdout.strip().splitlines()[-1])


def best(case: str, src: Path, chunk: int, repeat: int) -> dict[str, object]:
    """Best of ``repeat`` runs (the machine is shared: the best run is the least disturbed).
    A failed run is reported and retried (at most ``repeat`` extra attempts)."""
    runs: list[dict[str, object]] = []
    for _ in range(2 * repeat):
        try:
            runs.append(sub(case, src, chunk))
        except subprocess.CalledProcessError as exc:
            print(f"run {case}/{chunk} failed: {exc.stderr[-500:]}", file=sys.stderr)
        if len(runs) == repeat:
            break
    if not runs:
        raise RuntimeError(f"every {case} run failed for chunk {chunk}")
    return max(runs, key=lambda r: float(r["mb_s"]))  # type: ignore[arg-type]


def work_dir(size: int) -> str | None:
    """tmpfs when it has room: the benchmark measures the protocol, not the disk."""
    shm = Path("/dev/shm")
    try:
        st = os.statvfs(shm)
    except OSError:
        return None
    return str(shm) if st.f_bavail * st.f_frsize > 3 * size else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--size-mib", type=int, default=None)
    ap.add_argument("--case", choices=["raw", "msrp"])
    ap.add_argument("--src")
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--repeat", type=int, default=None, help="runs per case (best is kept)")
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, Path(args.src), args.chunk)))
        return 0
    size = (args.size_mib or (64 if args.quick else 1024)) << 20
    chunks = [2048, 65536, 1 << 20]
    repeat = args.repeat or (3 if args.quick else 2)
    with tempfile.TemporaryDirectory(prefix="msrpbench-", dir=work_dir(size)) as tmp:
        src = Path(tmp) / "src.bin"
        make_file(src, size)
        want = sha1_file(src)
        results: dict[int, tuple[dict[str, object], dict[str, object]]] = {}
        for chunk in chunks:
            raw = best("raw", src, chunk, repeat)
            ours = best("msrp", src, chunk, repeat)
            results[chunk] = (raw, ours)
            ratio = float(ours["mb_s"]) / float(raw["mb_s"])  # type: ignore[arg-type]
            print(f"chunk {chunk:>8}: ours {ours['mb_s']:>7} MB/s "
                  f"({ours['cpu_s_per_gib']} CPU s/GiB, "
                  f"{ours['peak_rss_mib']} MiB RSS, sha1 {'ok' if ours['sha1'] == want else 'BAD'})"
                  f" | raw {raw['mb_s']:>7} MB/s ({raw['cpu_s_per_gib']} CPU s/GiB, "
                  f"{raw['peak_rss_mib']} MiB RSS) | ratio {ratio:.2f}", flush=True)
    summary = []
    for chunk, (raw, ours) in results.items():
        summary.append({
            "bench": "msrp_transfer", "chunk": chunk, "bytes": size,
            "ours_mb_s": ours["mb_s"], "raw_mb_s": raw["mb_s"],
            "ratio": round(float(ours["mb_s"]) / float(raw["mb_s"]), 3),  # type: ignore[arg-type]
            "ours_cpu_s_per_gib": ours["cpu_s_per_gib"], "raw_cpu_s_per_gib": raw["cpu_s_per_gib"],
            "ours_peak_rss_mib": ours["peak_rss_mib"], "raw_peak_rss_mib": raw["peak_rss_mib"],
            "sha1_ok": ours["sha1"] == want and raw["sha1"] == want,
        })
    main_row = next(r for r in summary if r["chunk"] == 65536)
    main_row = dict(main_row, goal_ratio=0.6, goal_met=main_row["ratio"] >= 0.6,
                    all=[{k: r[k] for k in ("chunk", "ours_mb_s", "raw_mb_s", "ratio")}
                         for r in summary])
    print(json.dumps(main_row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
