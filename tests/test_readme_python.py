"""README's "Use it from Python": every code block runs, and prints what the README says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def python_examples() -> list[tuple[str, str]]:
    """(code, printed output) of each ```python block of the section and the ```text after it."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    pairs = re.findall(r"```python\n(.*?)```\n.*?```text\n(.*?)```", section, flags=re.S)
    assert len(pairs) == 2, "the section's examples and their outputs"
    return pairs


@pytest.mark.parametrize("index", [0, 1])
def test_readme_python_example_prints_what_the_readme_says(index, ml100k, tmp_path):
    code, printed = python_examples()[index]
    root = Path(ml100k.source)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MFREC_DATA": str(root.parent),
           "MFREC_CACHE": str(tmp_path / "cache")}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == printed
