"""No import cycle inside ``simpleim`` (every import counts, TYPE_CHECKING and function-level
too), and the client's features do not reach back into the account."""

from __future__ import annotations

from pathlib import Path

from import_graph import cycles, import_edges, module_map

SRC = Path(__file__).resolve().parent.parent / "src"


def test_no_import_cycle_in_the_package() -> None:
    modules = module_map(SRC, "simpleim")
    assert len(modules) > 50 and "simpleim.client.account" in modules
    edges = import_edges(modules)
    assert "simpleim.client.context" in edges["simpleim.client.chats"]   # the graph is read
    assert cycles(edges) == []


def test_only_the_package_face_imports_the_account() -> None:
    """Issue 8 §1: features depend on the narrow context, not on Account."""
    modules = module_map(SRC, "simpleim")
    edges = import_edges(modules)
    importers = sorted(m for m, targets in edges.items()
                       if "simpleim.client.account" in targets
                       and m.startswith("simpleim.client"))
    assert importers == ["simpleim.client"]


def test_the_checker_finds_cycles_of_every_kind(tmp_path: Path) -> None:
    """The check can fail: a relative, a TYPE_CHECKING and a function-level import each
    close a cycle in a throw-away package."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import c\n")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nx = 1\n"
                              "if TYPE_CHECKING:\n    from pkg.a import y\n")
    (pkg / "sub" / "c.py").write_text("def f():\n    from ..sub import d\n")
    (pkg / "sub" / "d.py").write_text("import pkg.sub.c\n")
    (pkg / "e.py").write_text("import os\nfrom pkg import a\n")
    edges = import_edges(module_map(tmp_path, "pkg"))
    assert edges["pkg.e"] == {"pkg.a"}                         # os is outside the package
    assert cycles(edges) == [["pkg.a", "pkg.b"], ["pkg.sub.c", "pkg.sub.d"]]
