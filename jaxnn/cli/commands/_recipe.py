"""The command of a recipe that has none of its own: a flag for every field of its ``Config``, ``--workdir``
(default ``runs/LAB``) and the flags of a multi-process run; the driver's epoch lines while it trains; then every
number and file of its ``Result``."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path

from jaxnn.cli import flags
from jaxnn.cli.processes import add_process_flags, start_processes
from jaxnn.labs.registry import Lab


def main(lab: Lab, argv=None):
    recipe = importlib.import_module(lab.recipe)
    parser = flags.ArgumentParser(f"{lab.summary} (lab {lab.lab}).\n\n{(recipe.__doc__ or '').strip()}")
    names = flags.add_config_flags(parser, recipe.Config, flags.RUN_FLAGS)
    parser.add_argument(
        "--workdir", type=flags.path_flag, default=f"runs/{lab.name}", help=f"where results go (runs/{lab.name})"
    )
    add_process_flags(parser)
    args = parser.parse_args(argv)
    start_processes(parser, args)  # before anything else touches JAX
    progress = getattr(args, "progress", False) and sys.stderr.isatty()
    config = flags.config_from_flags(parser, recipe.Config, args, names, progress=progress)
    flags.show_progress()
    from jaxnn import runtime

    runtime.enable_compilation_cache()
    result = recipe.train_and_evaluate(config, Path(args.workdir))
    for field in dataclasses.fields(result):
        value = getattr(result, field.name)
        if isinstance(value, (int, float, Path)) and not isinstance(value, bool):
            print(f"{field.name}: {value:.6g}" if isinstance(value, float) else f"{field.name}: {value}")
    return result
