"""The test suite checks itself: every skip goes through ``tests/needs.py`` (so that CI=true turns
a missing peer / root / PostgreSQL into a failure)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _sources() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if p.name != Path(__file__).name)


def test_every_skip_goes_through_needs() -> None:
    pattern = re.compile(r"pytest\.skip\(|\bskipif\b|importorskip|pytest\.mark\.skip\b")
    offenders = [
        f"{path.relative_to(TESTS)}:{n}: {line.strip()}"
        for path in _sources() if path.name != "needs.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == [], "skip via needs.unavailable() instead:\n" + "\n".join(offenders)


#: The only sleeps tests/ may contain, each with why it is not a wait for a duration.
SLEEP_ALLOWED: dict[str, list[tuple[str, str]]] = {
    "waiting.py": [
        ("await asyncio.sleep(interval)", "the poll interval of wait_until (fails on timeout)"),
        ("time.sleep(interval)", "the poll interval of wait_until_sync (fails on timeout)"),
    ],
    # The peer-process harness is shared with benchmarks/ (which catch its PeerError): its
    # waits are its own wait-until loops, each bounded, checking the process is alive and
    # raising PeerError on timeout.
    # The fuzz server harness yields to the event loop (sleep(0), no duration) so that the
    # tasks a datagram spawned run; drain() is bounded (200 yields).
    "fuzz/fuzz_targets.py": [
        ("await asyncio.sleep(0)", "yield to the loop after each fuzz datagram (no duration)"),
        ("await asyncio.sleep(0)", "bounded drain of the server's tasks (200 yields)"),
    ],
    "interop/interop_harness.py": [
        ("time.sleep(0.1)", "poll of the port-plan flock in port_plan_lock (PeerError)"),
        ("time.sleep(0.05)", "poll of PeerProcess.wait_log (PeerError on exit/timeout)"),
        ("time.sleep(0.05)", "poll of PeerProcess.wait_ports (PeerError on exit/timeout)"),
        ("time.sleep(0.05)", "poll of _reap_group until the process group is gone (3 s)"),
        ("time.sleep(0.05)", "poll for kamailio's ctl socket in start_kamailio (PeerError)"),
    ],
}


def test_no_sleep_as_synchronisation() -> None:
    """Tests wait for conditions (tests/waiting.py), never for durations."""
    pattern = re.compile(r"\bsleep\s*\(")
    found: dict[str, list[str]] = {}
    for path in _sources():
        rel = str(path.relative_to(TESTS))
        for line in path.read_text().splitlines():
            if pattern.search(line) and not line.lstrip().startswith("#"):
                found.setdefault(rel, []).append(line.strip())
    allowed = {rel: sorted(code for code, _why in rows) for rel, rows in SLEEP_ALLOWED.items()}
    unexpected = {rel: sorted(lines) for rel, lines in found.items()
                  if sorted(lines) != allowed.get(rel)}
    assert unexpected == {}, (
        "sleep used outside tests/waiting.py - wait for a condition instead "
        f"(waiting.wait_until) or justify it in SLEEP_ALLOWED: {unexpected}")
    assert set(found) == set(allowed), "SLEEP_ALLOWED lists a file without those sleeps"
