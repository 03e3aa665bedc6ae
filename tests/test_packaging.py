"""One import name: the wheel installs `mfrec` and nothing else, and works beside a user's data/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "mfrec", "reference", "torch_impl", "data")
IGNORE = shutil.ignore_patterns("__pycache__", "cache", "*.egg-info")


def test_wheel_holds_one_top_level_package(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=IGNORE)
        else:
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path / "dist"
    build = "from setuptools import build_meta as b; import sys; print(b.build_wheel(sys.argv[1]))"
    proc = subprocess.run(
        [sys.executable, "-c", build, str(out)], cwd=src, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building the wheel failed:\n{proc.stderr[-3000:]}")
    wheel = out / proc.stdout.strip().splitlines()[-1]
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"mfrec"}, sorted(top)
    for module in ("reference/mf.py", "torch_impl/model.py", "data/parse.py", "cli/__init__.py"):
        assert f"mfrec/{module}" in names, module


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "mfrec", "--help"],
        ["-c", "from mfrec.data import RELEASES; from mfrec.reference import MatrixFactorization"],
    ],
)
def test_runs_from_a_folder_holding_data_reference_torch_impl(tmp_path, argv):
    for name in ("data", "reference", "torch_impl"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the user folder')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, *argv], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_mfrec_command_runs_from_a_folder_holding_data(tmp_path):
    exe = shutil.which("mfrec", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the mfrec console script is not installed beside this Python")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "__init__.py").write_text("raise ImportError('the user folder')\n")
    proc = subprocess.run([exe, "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: mfrec" in proc.stdout, proc.stderr[-2000:]


def test_every_module_of_the_checkout_is_the_one_imported():
    """Each module under mfrec/, reference/, torch_impl/, data/ imports from this checkout's file.

    Fails when a sub-package is missing from pyproject's ``packages`` or a module added since the
    strict editable install was not linked yet (``make install`` relinks).
    """
    import importlib.util

    roots = {"mfrec": "mfrec", "reference": "mfrec.reference", "torch_impl": "mfrec.torch_impl"}
    roots["data"] = "mfrec.data"
    missing = []
    for folder, package in roots.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None or Path(spec.origin).resolve() != path:
                missing.append(f"{name} ({path.relative_to(ROOT)})")
    assert not missing, "not imported from the checkout: " + ", ".join(missing)


def test_version_comes_from_pyproject_only():
    """``mfrec.__version__`` is the installed metadata's, which is pyproject.toml's version."""
    import importlib.metadata
    import re

    import mfrec

    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert declared is not None
    assert mfrec.__version__ == importlib.metadata.version("mfrec") == declared.group(1)
    assert declared.group(1) not in (ROOT / "mfrec" / "__init__.py").read_text()
