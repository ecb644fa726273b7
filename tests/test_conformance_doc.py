"""docs/conformance.md must stay true: every SCR once, every test it names exists, and an SCR
row and the checklist rows that implement it do not disagree."""

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


#: Checklist row -> the Appendix B SCRs it is the requirement text of, from the row headings of
#: the project checklist (simple_im_checklist.md: "**C-SO-02 One-to-one session — §7.1.1.2**
#: (IMSpec-SMM-C-001 M)").  Only direct references: rows that are "part of", "covered by",
#: a "dependency" of or only "reference" an SCR (C-REG-01, C-ST-00, C-PM-00, C-SO-16, C-UP-03,
#: C-DM-05, PO-01) are left out, as are the extra SCRs of PT-01 ("also part of"); PU-03
#: (presence source, IMSpec-SS-S-002) too: the document has no presence-server rows.
CHECKLIST_SCRS: dict[str, tuple[str, ...]] = {
    "C-SET-01": ("IMSpec-SS-C-001",),
    "C-PRES-01": ("IMSpec-SS-C-002",),
    "C-SO-02": ("IMSpec-SMM-C-001",),
    "C-SO-03": ("IMSpec-SMM-C-002",),
    "C-SO-04": ("IMSpec-SMM-C-003",),
    "C-SO-05": ("IMSpec-SMM-C-004",),
    "C-SO-06": ("IMSpec-SMM-C-014",),
    "C-SO-07": ("IMSpec-SMM-C-008",),
    "C-SO-08": ("IMSpec-SMM-C-007",),
    "C-SO-09": ("IMSpec-SMM-C-009",),
    "C-SO-11": ("IMSpec-SMM-C-015",),
    "C-SO-12": ("IMSpec-SMM-C-010",),
    "C-SO-13": ("IMSpec-SMM-C-011",),
    "C-SO-14": ("IMSpec-SMM-C-012",),
    "C-SO-15": ("IMSpec-SMM-C-005",),
    "C-ST-01": ("IMSpec-SMM-C-016",),
    "C-ST-02": ("IMSpec-SMM-C-018",),
    "C-ST-03": ("IMSpec-SMM-C-017",),
    "C-ST-04": ("IMSpec-SMM-C-019",),
    "C-UP-04": ("IMSpec-SMM-C-021",),
    "C-UP-05": ("IMSpec-SMM-C-013",),
    "C-UP-06": ("IMSpec-SMM-C-020",),
    "C-PM-01": ("IMSpec-PMM-C-001", "IMSpec-PMM-C-002", "IMSpec-PMM-C-003",
                "IMSpec-PMM-C-004", "IMSpec-PMM-C-005"),
    "C-PM-02": ("IMSpec-PMM-C-007", "IMSpec-PMM-C-008"),
    "C-LM-02": ("IMSpec-LMM-C-001", "IMSpec-LMM-C-002", "IMSpec-LMM-C-003"),
    "C-LM-03": ("IMSpec-LMM-C-004",),
    "C-LM-04": ("IMSpec-LMM-C-005",),
    "C-LM-06": ("IMSpec-LMM-C-006",),
    "C-LM-07": ("IMSpec-LMM-C-006",),
    "C-LM-08": ("IMSpec-LMM-C-007",),
    "C-FT-01": ("IMSpec-FT-C-001",),
    "C-FT-02": ("IMSpec-FT-C-002",),
    "C-FT-03": ("IMSpec-FT-C-003",),
    "C-DM-01": ("IMSpec-DM-C-002", "IMSpec-DM-C-003"),
    "C-DM-02": ("IMSpec-DM-C-001", "IMSpec-DM-C-004"),
    "C-DM-03": ("IMSpec-DM-C-005",),
    "C-DM-04": ("IMSpec-DM-C-006",),
    "C-DM-05": ("IMSpec-DM-C-001",),
    "C-CH-01": ("IMSpec-HIST-C-001",),
    "C-CH-02": ("IMSpec-HIST-C-002",),
    "C-CH-03": ("IMSpec-HIST-C-003",),
    "C-CH-05": ("IMSpec-HIST-C-004",),
    "PO-03": ("IMSpec-SMM-S-018",),
    "PO-04": ("IMSpec-SMM-S-021",),
    "PO-05": ("IMSpec-SMM-S-022",),
    "PO-06": ("IMSpec-SMM-S-023",),
    "PO-07": ("IMSpec-SMM-S-019",),
    "PO-08": ("IMSpec-SMM-S-020",),
    "PO-09": ("IMSpec-PMM-S-001",),
    "PO-10": ("IMSpec-LMM-S-009",),
    "PO-11": ("IMSpec-LMM-S-010",),
    "PO-12": ("IMSpec-LMM-S-011",),
    "PO-13": ("IMSpec-SS-S-001",),
    "PT-01": ("IMSpec-PMM-S-002",),
    "PT-03": ("IMSpec-SMM-S-025",),
    "PT-04": ("IMSpec-SMM-S-026",),
    "PT-05": ("IMSpec-SMM-S-027",),
    "PT-06": ("IMSpec-SMM-S-028",),
    "PT-07": ("IMSpec-PMM-S-002",),
    "PT-08": ("IMSpec-LMM-S-012",),
    "PT-09": ("IMSpec-LMM-S-013",),
    "PT-10": ("IMSpec-LMM-S-014",),
    "PT-12": ("IMSpec-GA-S-001",),
    "CF-01": ("IMSpec-SMM-S-001",),
    "CF-02": ("IMSpec-SMM-S-004", "IMSpec-SMM-S-007"),
    "CF-03": ("IMSpec-SMM-S-005",),
    "CF-04": ("IMSpec-SMM-S-005",),
    "CF-05": ("IMSpec-SMM-S-010",),
    "CF-06": ("IMSpec-SMM-S-009",),
    "CF-07": ("IMSpec-SMM-S-011",),
    "CF-08": ("IMSpec-SMM-S-012",),
    "CF-09": ("IMSpec-SMM-S-003", "IMSpec-SMM-S-013"),
    "CF-11": ("IMSpec-SMM-S-014",),
    "CF-20": ("IMSpec-SMM-S-006",),
    "CF-21": ("IMSpec-SMM-S-002",),
    "CF-22": ("IMSpec-SMM-S-003",),
    "CF-23": ("IMSpec-SMM-S-015",),
    "CF-24": ("IMSpec-SMM-S-012",),
    "CF-30": ("IMSpec-SMM-S-016",),
    "CF-31": ("IMSpec-SMM-S-017",),
    "CF-50": ("IMSpec-SMM-S-004",),
    "CF-51": ("IMSpec-SMM-C-005",),
    "CF-53": ("IMSpec-SMM-C-006", "IMSpec-SMM-C-021"),
    "CF-60": ("IMSpec-PMM-S-003",),
    "CF-64": ("IMSpec-PMM-S-003", "IMSpec-PMM-S-004", "IMSpec-PMM-S-005", "IMSpec-PMM-S-006"),
    "CF-70": ("IMSpec-LMM-S-001", "IMSpec-LMM-S-004", "IMSpec-LMM-S-005"),
    "CF-71": ("IMSpec-LMM-S-002",),
    "CF-72": ("IMSpec-LMM-S-003",),
    "CF-73": ("IMSpec-LMM-S-006", "IMSpec-LMM-S-007", "IMSpec-LMM-S-008"),
    "DM-02": ("IMSpec-DM-S-004",),
    "DM-03": ("IMSpec-DM-S-005",),
    "DM-04": ("IMSpec-DM-S-001",),
    "DM-05": ("IMSpec-DM-S-001",),
    "DM-06": ("IMSpec-DM-S-002",),
    "DM-07": ("IMSpec-DM-S-003",),
    "DM-09": ("IMSpec-DM-S-006",),
    "CH-01": ("IMSpec-HIST-S-001",),
    "CH-02": ("IMSpec-HIST-S-002",),
    "CH-03": ("IMSpec-HIST-S-002",),
    "CH-04": ("IMSpec-HIST-S-003",),
    "CH-05": ("IMSpec-HIST-S-004",),
    "CH-06": ("IMSpec-HIST-S-006",),
    "CH-08": ("IMSpec-HIST-S-007",),
    "CH-09": ("IMSpec-HIST-S-008",),
    "CH-10": ("IMSpec-HIST-S-0010",),
    "CH-11": ("IMSpec-HIST-S-0011",),
}

ORDER = {"not yet": 0, "partial": 1, "done": 2}


def _status_by_id() -> dict[str, str]:
    out: dict[str, str] = {}
    for row in _rows():
        if len(row) >= 3 and row[-2] in STATUSES:
            out[row[0]] = row[-2]
    return out


def test_scr_rows_and_their_checklist_rows_agree() -> None:
    """An SCR is as far as its checklist rows: with one row per SCR the two statuses are
    equal (several single rows: the SCR has the lowest); a row that covers several SCRs is
    done only when each of them is."""
    status = _status_by_id()
    single: dict[str, list[str]] = {}
    for row_id, scrs in CHECKLIST_SCRS.items():
        assert row_id in status, f"checklist row {row_id} is not in docs/conformance.md"
        for scr in scrs:
            assert scr in status, f"{scr} (named by {row_id}) is not in docs/conformance.md"
        if len(scrs) == 1:
            single.setdefault(scrs[0], []).append(row_id)
        elif status[row_id] == "done":
            not_done = [s for s in scrs if status[s] != "done"]
            assert not not_done, f"{row_id} is done but its SCRs {not_done} are not"
    assert len(single) > 40
    for scr, rows in single.items():
        lowest = min(rows, key=lambda r: ORDER[status[r]])
        assert status[scr] == status[lowest], (
            f"{scr} is {status[scr]} but its checklist row {lowest} is {status[lowest]}")


def test_the_agreement_check_can_fail() -> None:
    """The rule above, applied to a made-up disagreement, reports it."""
    status = {"IMSpec-FT-C-001": "done", "C-FT-01": "partial"}
    rows = [r for r, scrs in CHECKLIST_SCRS.items() if scrs == ("IMSpec-FT-C-001",)]
    assert rows == ["C-FT-01"]
    lowest = min(rows, key=lambda r: ORDER[status[r]])
    assert status["IMSpec-FT-C-001"] != status[lowest]
