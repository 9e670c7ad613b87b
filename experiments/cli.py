"""What the lab scripts share: turning flags into a recipe's config, printing the recipe's progress, and the
flags and printout of the lab 11 character tasks. Only the scripts import this; the recipes live in jaxnn.labs."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path

from jaxnn.labs.char import CharLab, LabRun


def show_progress() -> None:
    """Print what the recipes log (the ``jaxnn`` logger) to stdout, one plain line each."""
    logger = logging.getLogger("jaxnn")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # a library may have configured the root logger too: print each line once


def make_config(parser: argparse.ArgumentParser, config_cls, flags: dict[str, str] | None = None, **values):
    """``config_cls(**values)``, or exit through ``parser.error`` with the config's message, naming the flag (a
    config field ``f`` is the flag ``--f`` unless ``flags`` maps it to another)."""
    try:
        return config_cls(**values)
    except ValueError as e:
        field, _, rest = str(e).partition(" ")
        flag = (flags or {}).get(field, f"--{field}") if field in values else field
        parser.error(f"{flag} {rest}")


def char_lab_arguments(description: str, argv=None, add_more=None):
    """The command line every lab 11 script shares: --cell, --seed, --iterations, --lr (plus ``add_more(parser)``).

    Returns ``(parser, args)``; bad values end the program with argparse's message and exit code 2."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cell", choices=["rnn", "lstm", "gru"], default="rnn", help="recurrent cell (rnn)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation (0)")
    parser.add_argument("--iterations", type=int, default=None, help="Adam steps (the lab's count by default)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (the lab's 0.1 by default)")
    if add_more is not None:
        add_more(parser)
    args = parser.parse_args(argv)
    if args.iterations is not None and args.iterations < 1:
        parser.error(f"--iterations must be >= 1, got {args.iterations}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        parser.error(f"--lr must be a finite number > 0, got {args.lr}")
    return parser, args


def print_run(lab: CharLab, run: LabRun) -> None:
    """Each iteration's loss and predicted string, as the labs print them."""
    for i, (loss, text) in enumerate(zip(run.losses, run.predictions, strict=True)):
        print(f"{i:3d} loss: {loss:.6f} prediction: {text!r}")
    verdict = "reached" if lab.on_target(run.final) else "did not reach"
    note = f" (its first {lab.undetermined} character is undetermined by construction)" if lab.undetermined else ""
    print(f"final prediction {run.final!r} {verdict} the target {lab.target!r}{note}")


def char_lab_main(name: str, description: str, argv=None) -> tuple[CharLab, LabRun]:
    """A lab 11 script (hihello, charseq): parse the shared flags, train, print every iteration as the lab does."""
    from jaxnn import runtime
    from jaxnn.labs.char import make_lab, run_lab

    _, args = char_lab_arguments(description, argv)
    runtime.enable_compilation_cache()
    lab = make_lab(name, args.cell)
    run = run_lab(lab, args.seed, args.iterations, args.lr)
    print_run(lab, run)
    return lab, run


# What a user's mistake raises (a bad value, a missing or unwritable file, a run that diverged): one line, not a trace.
USER_ERRORS = (ValueError, OSError, FloatingPointError)


def run(main) -> None:
    """Run a script's ``main()``: a user's mistake ends with one line on stderr and exit code 1 (``--debug`` shows
    the traceback); anything else keeps its traceback."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        main()
    except USER_ERRORS as e:
        if debug:
            raise
        message = " ".join(str(e).split())
        if "Gloo" in message or "heartbeat" in message:
            message += " (another process of this run has stopped)"
        print(f"{Path(sys.argv[0]).name}: error: {message} (--debug shows the traceback)", file=sys.stderr)
        _exit(1)


def _exit(code: int) -> None:
    """Exit; in a multi-process run at once, since JAX's shutdown barrier would wait for (and then abort on) a
    process that has died."""
    if "jax" in sys.modules and sys.modules["jax"].distributed.is_initialized():
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(code)
    sys.exit(code)
