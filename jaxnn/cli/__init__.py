"""The command line: ``python -m jaxnn LAB --flag value`` (or ``python experiments/LAB.py --flag value``) runs a lab
of :mod:`jaxnn.labs.registry`.

- :mod:`jaxnn.cli.flags`: one flag per field of a recipe's config, parse errors in one line (exit code 2);
- :mod:`jaxnn.cli.processes`: the flags of a multi-process run and its supervisor;
- :mod:`jaxnn.cli.errors`: how a command ends (exit code 1 for a user's mistake, 130 for Ctrl-C);
- :mod:`jaxnn.cli.commands`: one module per lab, its flags and what it prints (``main(argv)``).

This package imports nothing heavy: the supervisor of a multi-process run starts before JAX does.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from jaxnn.cli import errors, processes
from jaxnn.labs import registry

__all__ = ["launch"]


def launch(name: str, argv: list[str] | None = None, prog: str | None = None) -> None:
    """Run the lab ``name`` as a program with ``argv`` (default: ``sys.argv[1:]``) and exit as
    :mod:`jaxnn.cli.errors` says; ``--debug`` anywhere shows tracebacks (and a supervisor's native log) instead of
    one-line errors. ``prog`` names the program in messages (default: the script's file name)."""
    lab = registry.get(name)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    prog = prog or Path(sys.argv[0]).name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ log lines (TFDS may load it)
    processes.supervise_if_asked(argv, prog, debug)  # a multi-process run: returns only in the supervised child
    processes.use_supervised_stderr(debug)
    if lab.command is not None:
        main = lambda: importlib.import_module(lab.command).main(argv)  # noqa: E731
    else:  # a recipe without a command of its own
        main = lambda: importlib.import_module("jaxnn.cli.commands._recipe").main(lab, argv)  # noqa: E731
    errors.run(main, prog, debug)
