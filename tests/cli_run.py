"""What the CLI tests share: ``mfrec`` run in-process (exit status, stdout and stderr), and
small rating problems to write as files."""

from __future__ import annotations

import json

import numpy as np

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


def half_pairs(rng: np.random.Generator, n_users: int, n_items: int) -> list[tuple[int, int]]:
    """About half the (user, item) index pairs, each kept with probability 1/2 in turn."""
    return [(u, i) for u in range(n_users) for i in range(n_items) if rng.random() < 0.5]


def low_rank(rng: np.random.Generator, scale: float) -> list[tuple[int, int, float]]:
    """(user, item, 3 + Pᵤ·Qᵢ) on about half the pairs of 40 users and 30 items, with P and Q
    of rank 3 drawn from N(0, scale²) (a caller clips or rounds the ratings to its scale)."""
    P, Q = rng.normal(0, scale, (40, 3)), rng.normal(0, scale, (30, 3))
    return [(u, i, 3 + P[u] @ Q[i]) for u, i in half_pairs(rng, 40, 30)]
