"""What the character labs' commands share (hihello, charseq, longseq): their flags, from
:class:`jaxnn.labs.char.Config`, and their printout, every iteration's loss and prediction as the labs print them."""

from __future__ import annotations

from pathlib import Path

from jaxnn.cli import flags
from jaxnn.cli.processes import add_process_flags, start_processes


def char_lab_arguments(name: str, description: str, argv=None, add_more=None):
    """The command line every character lab shares, generated from :class:`jaxnn.labs.char.Config` (--cell, --seed,
    --iterations, --lr, --epochs and the run flags), ``--workdir`` and a multi-process run's flags, plus
    ``add_more(parser)``. Returns
    ``(parser, args, names)``."""
    from jaxnn.labs.char import Config

    parser = flags.ArgumentParser(description)
    names = flags.add_config_flags(parser, Config, flags.RUN_FLAGS, skip=("lab",))
    parser.add_argument(
        "--workdir", type=flags.path_flag, default=f"runs/{name}", help=f"where results go (runs/{name})"
    )
    if add_more is not None:
        add_more(parser)
    add_process_flags(parser)
    args = parser.parse_args(argv)
    start_processes(parser, args)  # before anything else touches JAX
    return parser, args, names


def print_run(result) -> None:
    """Each iteration's loss and predicted string, as the labs print them (a :class:`jaxnn.labs.char.Result`)."""
    lab = result.lab
    for i, (loss, text) in enumerate(zip(result.losses, result.predictions, strict=True), result.first_iteration):
        print(f"{i:3d} loss: {loss:.6f} prediction: {text!r}")
    if result.final is None:
        print(f"nothing left to train: the run in {result.metrics_path.parent} was complete")
        return
    verdict = "reached" if lab.on_target(result.final) else "did not reach"
    note = f" (its first {lab.undetermined} character is undetermined by construction)" if lab.undetermined else ""
    print(f"final prediction {result.final!r} {verdict} the target {lab.target!r}{note}")


def char_lab_config(parser, args, names, lab: str):
    """The :class:`jaxnn.labs.char.Config` of the parsed flags, or exit naming the flag."""
    from jaxnn.labs.char import Config

    return flags.config_from_flags(parser, Config, args, names, lab=lab, progress=False)


def char_lab_main(name: str, description: str, argv=None):
    """A lab 11 command (hihello, charseq): parse the flags of the recipe's config, train, print every iteration as
    the lab does. Returns the :class:`jaxnn.labs.char.Result`."""
    from jaxnn import runtime
    from jaxnn.labs import char

    parser, args, names = char_lab_arguments(name, description, argv)
    config = char_lab_config(parser, args, names, name)
    flags.show_progress()
    runtime.enable_compilation_cache()
    result = char.train_and_evaluate(config, Path(args.workdir))
    print_run(result)
    return result
