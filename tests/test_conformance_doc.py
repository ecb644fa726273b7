"""docs/conformance.md must stay true: every SCR once, and every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "conformance.md"
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")
STATUSES = {"done", "partial", "not yet"}


def _rows() -> list[list[str]]:
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def test_every_scr_listed_once() -> None:
    ids = [r[0] for r in _rows() if r[0].startswith("IMSpec-")]
    assert len(ids) == 117
    assert len(set(ids)) == 117


def test_status_values_are_known() -> None:
    for row in _rows():
        if row[0].startswith(("IMSpec-", "IS-", "CPM-", "GFT-")):
            status = row[-2]
            assert status in STATUSES, row


def test_done_rows_name_a_test() -> None:
    for row in _rows():
        if len(row) >= 2 and row[-2] in {"done", "partial"}:
            assert TEST_REF.search(row[-1]), f"{row[0]} is {row[-2]} but names no test"


def test_named_tests_exist() -> None:
    text = DOC.read_text(encoding="utf-8")
    for path, name in TEST_REF.findall(text):
        file = ROOT / path
        assert file.is_file(), path
        if name:
            assert re.search(rf"def {name}\b", file.read_text(encoding="utf-8")), f"{path}::{name}"
