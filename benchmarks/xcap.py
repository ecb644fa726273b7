"""XCAP throughput of ``simpleim server --xcap`` (issue 12 §5): GET and PUT of a 200-entry
group document per second with concurrent clients, and element PUTs (one member added by a
node selector), on SQLite and on PostgreSQL, with the server's CPU seconds per request.

The server is a real ``simpleim server`` process (its CPU is read from /proc); the clients
are aiohttp sessions in this process with digest authentication (preemptive after the first
challenge), each working on its own user's group document, so no request fails on an ETag.
There is no other XCAP server installed here to run side by side (OpenXCAP is not packaged
for this machine): the figures are absolute, with the machine line.

    .venv/bin/python benchmarks/xcap.py [--quick] [--clients N] [--seconds S]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, machine  # noqa: E402

from simpleim.client.xcap import GroupSpec, XcapClient, group_document  # noqa: E402
from simpleim.store import open_store  # noqa: E402

DOMAIN = "bench.test"
PG = os.environ.get("SIMPLEIM_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
MIME = "application/vnd.oma.poc.groups+xml"
ELEMENT = "application/xcap-el+xml"


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _start(db: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    simpleim = str(Path(sys.executable).with_name("simpleim"))
    proc = subprocess.Popen(
        [simpleim, "server", "--domain", DOMAIN, "--listen", "udp:127.0.0.1:0", "--db", db,
         "--xcap", "127.0.0.1:0", "--msrp-listen", "off", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=(tmp / "server.err").open("wb"))
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
    match = re.search(rb" xcap=(\S+)", line)
    if match is None:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, match.group(1).decode()


async def _phase(name: str, clients: list[XcapClient], seconds: float, pid: int,
                 request: Any) -> dict[str, Any]:
    count = 0
    errors = 0
    stop_at = time.monotonic() + seconds

    async def worker(i: int, client: XcapClient) -> None:
        nonlocal count, errors
        n = 0
        while time.monotonic() < stop_at:
            status = await request(i, n, client)
            n += 1
            if status in (200, 201):
                count += 1
            else:
                errors += 1

    cpu0, t0 = _cpu(pid), time.monotonic()
    await asyncio.gather(*(worker(i, c) for i, c in enumerate(clients)))
    elapsed, cpu = time.monotonic() - t0, _cpu(pid) - cpu0
    return {"phase": name, "requests": count, "errors": errors,
            "per_s": round(count / elapsed, 1),
            "server_cpu_ms_per_request": round(1000 * cpu / max(count, 1), 3)}


async def _backend(name: str, db: str, clients_n: int, seconds: float,
                   tmp: Path) -> dict[str, Any]:
    users = [f"u{i}" for i in range(clients_n)]
    async with await open_store(db) as store:
        for u in users:
            await store.add_user(u, DOMAIN, "pw", replace=True)
    proc, root = await _start(db, tmp)
    try:
        clients = [XcapClient(root, f"{u}@{DOMAIN}", "pw") for u in users]
        specs = [GroupSpec("big", f"sip:big-{u}@{DOMAIN}", tuple(
            (f"sip:m{k}@{DOMAIN}", f"Member {k}") for k in range(200))) for u in users]
        bodies = [group_document(s, c.xui) for s, c in zip(specs, clients, strict=True)]
        for c, body in zip(clients, bodies, strict=True):
            resp = await c.put(c.document_url("org.openmobilealliance.groups", "big"), body,
                               MIME)
            if resp.status not in (200, 201):
                raise SystemExit(f"setup PUT failed: {resp.status} {resp.body[:200]!r}")
        size = len(bodies[0])

        async def get(i: int, n: int, c: XcapClient) -> int:
            return (await c.get(c.document_url("org.openmobilealliance.groups", "big"))).status

        async def put(i: int, n: int, c: XcapClient) -> int:
            return (await c.put(c.document_url("org.openmobilealliance.groups", "big"),
                                bodies[i], MIME)).status

        async def element(i: int, n: int, c: XcapClient) -> int:
            sel = f'group/list-service/list/entry[@uri="sip:x{n}@{DOMAIN}"]'
            url = c.document_url("org.openmobilealliance.groups", "big", sel)
            body = f'<entry uri="sip:x{n}@{DOMAIN}"/>'.encode()
            return (await c.put(url, body, ELEMENT)).status

        phases = [await _phase("get", clients, seconds, proc.pid, get),
                  await _phase("put", clients, seconds, proc.pid, put),
                  await _phase("element-put", clients, seconds, proc.pid, element)]
        for c in clients:
            await c.close()
        return {"backend": name, "clients": clients_n, "document_bytes": size,
                "phases": phases}
    finally:
        proc.terminate()
        proc.wait(30)


async def _pg_ok() -> bool:
    try:
        async with await open_store(PG):
            return True
    except Exception:  # noqa: BLE001 - any failure means: no PostgreSQL here
        return False


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 s per phase")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=None)
    args = ap.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        results.append(await _backend("sqlite", f"sqlite:///{path / 'x.db'}", args.clients,
                                      seconds, path))
        if await _pg_ok():
            schema = f"xcapbench{os.getpid()}"
            results.append(await _backend("postgresql", f"{PG}?schema={schema}",
                                          args.clients, seconds, path))
    for r in results:
        for p in r["phases"]:
            print(f"{r['backend']:10} {p['phase']:12} {p['per_s']:8.1f}/s  "
                  f"{p['server_cpu_ms_per_request']:.3f} ms CPU/request  errors={p['errors']}",
                  flush=True)
    emit({"benchmark": "xcap", "seconds_per_phase": seconds, "machine": machine(),
          "results": results})


if __name__ == "__main__":
    asyncio.run(main())
