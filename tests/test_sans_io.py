"""The protocol cores must stay sans-I/O: no asyncio, sockets, threads or clocks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORES = ("sip", "sdp", "msrp", "content")
FORBIDDEN = {
    "asyncio", "socket", "threading", "time", "select", "selectors", "ssl",
    "subprocess", "multiprocessing", "concurrent",
}
SRC = Path(__file__).resolve().parent.parent / "src" / "simpleim"


def _core_files() -> list[Path]:
    files = [p for core in CORES for p in sorted((SRC / core).rglob("*.py"))]
    # pure protocol logic of the server roles
    files.append(SRC / "server" / "controlling" / "exploder.py")
    return files


def test_cores_exist() -> None:
    assert len(_core_files()) >= len(CORES)


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_io_imports(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        bad += [n for n in names if n.split(".")[0] in FORBIDDEN]
        # datetime as a value type is fine, but datetime.now() is a clock: forbidden below.
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in {"now", "utcnow", "today"} and not node.args:
                bad.append(f"clock call .{node.func.attr}() at line {node.lineno}")
    assert not bad, f"{path}: I/O or clock in a sans-I/O core: {bad}"
