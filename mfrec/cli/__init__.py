"""The ``mfrec`` command line: train on MovieLens or your own files; recommend from a model."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from mfrec.cli import cv, download, recommend, similar, train
from mfrec.cli._common import HelpFormatter, load_split
from mfrec.cli.cv import cmd_cv
from mfrec.cli.download import cmd_download
from mfrec.cli.recommend import cmd_recommend
from mfrec.cli.similar import cmd_similar
from mfrec.cli.train import check_args, cmd_train
from mfrec.data import DataError, DownloadError
from mfrec.factory import make_model, resolve_plan
from mfrec.modelio import ModelFileError
from mfrec.reference import DivergenceError

__all__ = ["build_parser", "check_args", "load_split", "main", "make_model", "resolve_plan"]

USER_ERRORS = (ValueError, KeyError, OSError, DataError, DownloadError, ModelFileError)

# Exit status after stdout's reader went away (`mfrec ... | head`): 128 + SIGPIPE, what a shell
# reports for a program that SIGPIPE ended, with nothing printed.
EXIT_BROKEN_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand (defaults shown in --help)."""
    fmt = HelpFormatter
    parser = argparse.ArgumentParser(prog="mfrec", description=__doc__, formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True)

    for command in (train, cv, recommend, similar, download):
        command.add_parser(sub)
    for p in (parser, *sub.choices.values()):  # a misspelt flag (--epoch) is an error, never
        p.allow_abbrev = False  # taken for the flag it begins (--epochs)
    return parser


COMMANDS = ("train", "cv", "recommend", "similar", "download")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mfrec`` console command; returns the exit status.

    With ``--json`` the command's human-readable output goes to stderr and stdout receives
    exactly one JSON document. A closed stdout (``mfrec ... | head``) ends the run quietly with
    status 141, as if SIGPIPE had ended it.
    """
    stdout = sys.stdout
    try:
        parser = build_parser()
        try:
            args, extra = parser.parse_known_args(argv)
            if extra:  # reported under the subcommand's usage line, not the top-level one
                sub = next(a for a in parser._actions if a.dest == "command")
                sub.choices[args.command].error(  # pyright: ignore[reportOptionalSubscript, reportIndexIssue]  (the subparsers action's choices: a dict)
                    f"unrecognized arguments: {' '.join(extra)}"
                )
        except SystemExit as e:  # --help, or a usage error argparse already explained
            return int(e.code or 0)
        code = run_command(args)
        stdout.flush()
        return code
    except BrokenPipeError:
        # Later flushes (at exit too) would raise again: point stdout at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE


def run_command(args) -> int:
    """Dispatch to the subcommand; user errors become one ``mfrec: error:`` line."""
    command = {
        "train": cmd_train,
        "cv": cmd_cv,
        "recommend": cmd_recommend,
        "similar": cmd_similar,
        "download": cmd_download,
    }[args.command]
    json_out = getattr(args, "json", False)
    stdout = sys.stdout
    try:
        args.result = None
        with contextlib.redirect_stdout(sys.stderr if json_out else stdout):
            if args.command == "train" and args.distributed:
                from mfrec.launch import run_distributed

                args.mode = args.mode or "minibatch"  # the only mode it has
                args.device = args.device or "cpu"

                code = run_distributed(args, cmd_train)
            else:
                code = command(args)
        if json_out and code == 0 and args.result is not None:
            print(json.dumps(args.result), file=stdout)
        return code
    except BrokenPipeError:
        raise
    except DivergenceError as e:
        print(f"mfrec: error: {e}; no model was saved", file=sys.stderr)
        return 1
    except USER_ERRORS as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"mfrec: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mfrec: interrupted; nothing was saved", file=sys.stderr)
        return 130
