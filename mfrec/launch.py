"""``mfrec train --distributed``: the command-line side of a torchrun launch (prints, exits)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable


def run_distributed(args, cmd_train: Callable[[object], int]) -> int:
    """Join the process group, train; only rank 0 prints and saves.

    A broken group (a rank died or hung) ends this process at once with status 3: tearing the
    group down can block or abort in gloo's threads.
    """
    if args.backend != "torch" or args.mode != "minibatch":
        raise ValueError("--distributed trains the torch minibatch model: use --backend torch")
    if args.resume and not args.checkpoint:
        raise ValueError("--resume needs --checkpoint PATH")
    import torch.distributed as dist

    from mfrec.torch_impl.distributed import DistributedError, init_distributed

    rank = init_distributed(args.dist_timeout, args.device)
    try:
        if rank == 0:
            if not args.quiet:
                logging.basicConfig(format="mfrec: %(message)s", level=logging.INFO)
            return cmd_train(args)
        args.save = None
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            return cmd_train(args)
    except DistributedError as e:
        print(f"mfrec: error: {e}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(3)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
