"""The command of a recipe that has none of its own: a flag for every field of its ``Config``, ``--workdir``
(default ``runs/LAB``) and the flags of a multi-process run; the driver's epoch lines while it trains; then every
number and file of its ``Result``."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

from jaxnn.cli import flags
from jaxnn.labs.registry import Lab


def main(lab: Lab, argv=None):
    recipe = importlib.import_module(lab.recipe)
    description = f"{lab.summary} (lab {lab.lab}).\n\n{(recipe.__doc__ or '').strip()}"
    config, args = flags.parse_recipe(description, recipe.Config, argv, f"runs/{lab.name}")
    flags.show_progress()
    from jaxnn import runtime

    runtime.enable_compilation_cache()
    result = recipe.train_and_evaluate(config, Path(args.workdir))
    for field in dataclasses.fields(result):
        value = getattr(result, field.name)
        if isinstance(value, (int, float, Path)) and not isinstance(value, bool):
            print(f"{field.name}: {value:.6g}" if isinstance(value, float) else f"{field.name}: {value}")
    return result
