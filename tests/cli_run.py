"""Running ``mfrec`` in-process for the CLI tests: exit status, stdout and stderr."""

from __future__ import annotations

import json

from mfrec.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    """``mfrec ARGV`` (each argument str()-ed): (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv) -> tuple[dict, str]:
    """Run with --json: stdout must be exactly one JSON document; returns it and stderr."""
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out), err
