"""docs/derivation.md and its runnable twin stay in step with each other and with the code."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "derivation.md"
TWIN = REPO / "docs" / "derivation.py"


def _doc_sections() -> list[str]:
    return re.findall(r"^## (.+)$", DOC.read_text(encoding="utf-8"), flags=re.M)


def _defined_names(path: Path) -> set[str]:
    """Top-level functions and classes, plus ``Class.method`` names, of a Python file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {f"{node.name}.{m.name}" for m in node.body if isinstance(m, ast.FunctionDef)}
    return names


def test_every_named_function_and_test_exists():
    refs = re.findall(r"`([\w/]+\.py)::([\w.]+)`", DOC.read_text(encoding="utf-8"))
    assert len(refs) > 20
    missing = [f"{p}::{n}" for p, n in refs if n not in _defined_names(REPO / p)]
    assert not missing, f"docs/derivation.md names code that does not exist: {missing}"


@pytest.mark.parametrize("data", ["fallback", "ml100k"])
def test_twin_has_the_same_sections_and_every_check_is_at_rounding_level(data, request):
    env = {k: v for k, v in os.environ.items() if k != "MFREC_DATA"}  # §10: the small fallback
    if data == "ml100k":  # §10 on 5,000 MovieLens ratings, when the copy is here
        env["MFREC_DATA"] = str(Path(request.getfixturevalue("ml100k").source).parent)
    out = subprocess.run(
        [sys.executable, str(TWIN)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=600,
    ).stdout
    checks = re.findall(r"^(.+): max abs error (\S+)$", out, flags=re.M)
    assert [name for name, _ in checks] == _doc_sections()
    # Every section compares float64 computations of one formula: rounding-level agreement.
    for name, err in checks:
        assert float(err) <= 1e-12, (name, err)
