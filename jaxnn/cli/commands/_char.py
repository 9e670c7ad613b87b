"""What the character labs' commands share (hihello, charseq, longseq): their flags, from
:class:`jaxnn.labs.char.Config`, and their printout, every iteration's loss and prediction as the labs print them."""

from __future__ import annotations

from jaxnn.cli import flags
from jaxnn.labs.char import CharLab, LabRun


def char_lab_arguments(description: str, argv=None, add_more=None):
    """The command line every character lab shares, generated from :class:`jaxnn.labs.char.Config` (--cell, --seed,
    --iterations, --lr), plus ``add_more(parser)``. Returns ``(parser, args, names)``."""
    from jaxnn.labs.char import Config

    parser = flags.ArgumentParser(description)
    names = flags.add_config_flags(parser, Config, flags.RUN_FLAGS, skip=("lab",))
    if add_more is not None:
        add_more(parser)
    args = parser.parse_args(argv)
    return parser, args, names


def print_run(lab: CharLab, run: LabRun) -> None:
    """Each iteration's loss and predicted string, as the labs print them."""
    for i, (loss, text) in enumerate(zip(run.losses, run.predictions, strict=True)):
        print(f"{i:3d} loss: {loss:.6f} prediction: {text!r}")
    verdict = "reached" if lab.on_target(run.final) else "did not reach"
    note = f" (its first {lab.undetermined} character is undetermined by construction)" if lab.undetermined else ""
    print(f"final prediction {run.final!r} {verdict} the target {lab.target!r}{note}")


def char_lab_config(parser, args, names, lab: str):
    """The :class:`jaxnn.labs.char.Config` of the parsed flags, or exit naming the flag."""
    from jaxnn.labs.char import Config

    return flags.config_from_flags(parser, Config, args, names, lab=lab)


def char_lab_main(name: str, description: str, argv=None) -> tuple[CharLab, LabRun]:
    """A lab 11 script (hihello, charseq): parse the flags of the recipe's config, train, print every iteration as
    the lab does."""
    from jaxnn import runtime
    from jaxnn.labs import char

    parser, args, names = char_lab_arguments(description, argv)
    config = char_lab_config(parser, args, names, name)
    runtime.enable_compilation_cache()
    lab, run = char.train_and_evaluate(config)
    print_run(lab, run)
    return lab, run
