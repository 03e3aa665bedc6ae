"""Python in a child process, for switches that must be set before numba or triton is imported
(``NUMBA_DISABLE_JIT``, ``NUMBA_ENABLE_CUDASIM``, ``TRITON_INTERPRET``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, *argv: str, timeout: float | None = None, **switches: str):
    """``python -c CODE ARGV`` with ``switches`` in its environment and the checkout and tests/
    on its path (a script may import tests/' helper modules); the completed process."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    env = {**os.environ, **switches, "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
