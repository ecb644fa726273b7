"""docs/client.md's complete example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "client.md"


def test_complete_example_runs(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## A complete example", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    script = tmp_path / "example.py"
    script.write_text(code.group(1))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "bob got: hello bob" in out and "imdn: delivered" in out
    assert "large: large" in out and "ticks: displayed" in out
    assert "file: report.txt hash ok: True" in out and "imageshare" in out
