"""Every benchmark in benchmarks/ starts: ``--help`` exits 0 with its usage.  (A benchmark
importing the interop harness without tests/ on its path broke unnoticed: the harness moved
to tests/waiting.py, and three benchmarks died at import.)  The benchmarks themselves are run
by hand, one command each (docs/benchmarks.md): no timed assertion lives in the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted(p for p in (Path(__file__).resolve().parent.parent / "benchmarks").glob(
    "*.py") if not p.name.startswith("_"))


def test_there_are_benchmarks() -> None:
    assert len(BENCHMARKS) >= 10


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_starts(script: Path) -> None:
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                          text=True, timeout=120, check=False, cwd=script.parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
