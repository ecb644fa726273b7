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
