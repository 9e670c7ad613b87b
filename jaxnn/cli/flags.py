"""Flags from a recipe's config: one flag per config field (its default and help from the field), a parser whose
every mistake is one line and exit code 2, and the progress printout of the recipes. Imports nothing heavy: a
command line is parsed before JAX starts."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import re
import sys
import types
import typing
from typing import Any


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


def field_help(config_cls) -> dict[str, str]:
    """Each field's help: the comment on its line in the config's source (``name: type = default  # help``), the
    one place it is written."""
    helps = {}
    for cls in reversed(config_cls.__mro__):
        if not dataclasses.is_dataclass(cls):
            continue
        for line in inspect.getsource(cls).splitlines():
            m = re.match(r"\s+(\w+): [^#]*?#\s*(.*)$", line)
            if m:
                helps[m.group(1)] = m.group(2)
    return helps


def _flag_type(annotation):
    """(type, nargs) of a field's flag: int, float or str, a pair of ints, each possibly ``| None``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if typing.get_origin(annotation) is tuple:
        return typing.get_args(annotation)[0], len(typing.get_args(annotation))
    return annotation, None


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, its description shown as written, and every command-line mistake one line on stderr
    (``script.py: error: ...``) with exit code 2, without argparse's usage block (``--help`` shows it)."""

    def __init__(self, description: str | None = None, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(description=description, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_config_flags(parser: argparse.ArgumentParser, config_cls, flags: dict[str, str] | None = None, skip=()):
    """A flag for every field of the recipe's config dataclass, its default and help taken from the field: ``--f``
    for a field ``f`` (``flags`` renames: ``{'learning_rate': 'lr'}``); a bool field that is on by default gets the
    switch that turns it off, ``--no_f`` (or its name in ``flags``). Returns the field -> flag mapping."""
    flags = dict(flags or {})
    helps = field_help(config_cls)
    hints = typing.get_type_hints(config_cls)
    names = {}
    for field in dataclasses.fields(config_cls):
        if field.name in skip:
            continue
        help_text, default = helps.get(field.name, "").replace("%", "%%"), field.default  # argparse formats help
        kind, nargs = _flag_type(hints[field.name])
        if kind is bool:
            name = flags.get(field.name, f"no_{field.name}" if default else field.name)
            action = "store_false" if default else "store_true"
            shown = f"turn off: {help_text}" if default else help_text
            parser.add_argument(f"--{name}", dest=field.name, action=action, help=shown)
        else:
            name = flags.get(field.name, field.name)
            shown = f" (default: {default})" if default is not None else ""
            parser.add_argument(
                f"--{name}", dest=field.name, type=kind, nargs=nargs, default=default, help=help_text + shown
            )
        names[field.name] = f"--{name}"
    return names


def path_flag(text: str) -> str:
    """An argparse ``type`` for a flag that names a file or folder: an empty one would quietly be the current
    folder, so it is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must be a path, got {text!r}")
    return text


# The flags every epoch recipe shares, under the names the scripts have always had.
RUN_FLAGS = {"learning_rate": "lr", "cpu_compiler_options": "xla_defaults"}


def config_from_flags(parser, config_cls, args: argparse.Namespace, names: dict[str, str], **values):
    """The config of the parsed flags (``values`` override them), or exit naming the flag (:func:`make_config`)."""
    fields = {f.name for f in dataclasses.fields(config_cls)}
    given = {k: v for k, v in vars(args).items() if k in fields and k in names}
    for k, v in given.items():
        if isinstance(v, list):
            given[k] = tuple(v)
    given.update(values)
    return make_config(parser, config_cls, names, **given)


def in_range(parser: argparse.ArgumentParser, args: argparse.Namespace, name: str, minimum, maximum, why=""):
    """Exit through ``parser.error`` naming ``--name`` unless its value is in ``[minimum, maximum]`` (None passes)."""
    value = getattr(args, name)
    if value is not None and not minimum <= value <= maximum:
        parser.error(f"--{name} must be an int in [{minimum}, {maximum}]{why}, got {value}")


def seed_in_range(parser: argparse.ArgumentParser, args: argparse.Namespace, name: str = "seed") -> None:
    from jaxnn import checks

    in_range(parser, args, name, 0, checks.MAX_SEED)


def parse_recipe(
    description: str, config_cls, argv=None, workdir: str | None = None, workdir_help: str | None = None
) -> tuple[Any, argparse.Namespace]:
    """The command line of a recipe trained by the driver: a flag per field of ``config_cls`` (:data:`RUN_FLAGS`),
    ``--workdir`` (default ``workdir``; None leaves the default to the command) and the flags of a multi-process run,
    which it joins (:func:`jaxnn.cli.processes.start_processes`). Returns the config (a progress bar only on a
    terminal) and the parsed flags; a mistake exits with one line and code 2."""
    from jaxnn.cli.processes import add_process_flags, start_processes

    parser = ArgumentParser(description)
    names = add_config_flags(parser, config_cls, RUN_FLAGS)
    default = f" ({workdir})" if workdir else ""
    parser.add_argument(
        "--workdir", type=path_flag, default=workdir, help=(workdir_help or "where results go") + default
    )
    add_process_flags(parser)
    args = parser.parse_args(argv)
    start_processes(parser, args)  # before anything else touches JAX
    progress = getattr(args, "progress", False) and sys.stderr.isatty()
    return config_from_flags(parser, config_cls, args, names, progress=progress), args
