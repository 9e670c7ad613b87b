"""What the lab scripts share: turning flags into a recipe's config, printing the recipe's progress, and the
flags and printout of the lab 11 character tasks. Only the scripts import this; the recipes live in jaxnn.labs."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import logging
import os
import re
import sys
import types
import typing
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


def add_process_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of a multi-process run (each defaulting to its JAX environment variable)."""
    parser.add_argument(
        "--coordinator_address",
        default=os.environ.get("JAX_COORDINATOR_ADDRESS"),
        help="host:port of process 0 for a multi-process run (default: $JAX_COORDINATOR_ADDRESS)",
    )
    parser.add_argument(
        "--num_processes",
        type=int,
        default=os.environ.get("JAX_NUM_PROCESSES", "1"),
        help="processes of the run (default: $JAX_NUM_PROCESSES or 1)",
    )
    parser.add_argument(
        "--process_id",
        type=int,
        default=os.environ.get("JAX_PROCESS_ID", "0"),
        help="this process's index, 0 to num_processes - 1 (default: $JAX_PROCESS_ID or 0)",
    )
    parser.add_argument(
        "--coordinator_timeout",
        type=int,
        default=300,
        help="seconds to wait for every process to join the run before giving up with one line",
    )


def start_processes(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Join the multi-process run the flags describe, before anything else touches JAX; a bad combination exits
    through ``parser.error`` naming the flags."""
    from jaxnn import parallel

    if args.num_processes < 1:
        parser.error(f"--num_processes must be an int >= 1, got {args.num_processes}")
    if not 0 <= args.process_id < args.num_processes:
        parser.error(
            f"--process_id must be in [0, {args.num_processes - 1}] for --num_processes {args.num_processes}, "
            f"got {args.process_id}"
        )
    if not 1 <= args.coordinator_timeout <= 86400:
        parser.error(f"--coordinator_timeout must be an int in [1, 86400] seconds, got {args.coordinator_timeout}")
    if args.num_processes > 1:
        if not args.coordinator_address:
            parser.error("--num_processes > 1 needs --coordinator_address (or $JAX_COORDINATOR_ADDRESS)")
        if ":" not in args.coordinator_address:
            parser.error(f"--coordinator_address must be host:port, got {args.coordinator_address!r}")
        if not os.environ.get(_SUPERVISED):
            _supervise(args.process_id, args.coordinator_timeout)  # never returns
        _use_supervised_stderr()
        parallel.initialize(
            args.coordinator_address,
            args.num_processes,
            args.process_id,
            initialization_timeout=args.coordinator_timeout,
        )


_SUPERVISED = "JAXNN_SUPERVISED_STDERR"  # in the child: the descriptor its Python stderr goes to


def _supervise(process_id: int, timeout: int) -> None:
    """Run this very command again as a child process, so that what JAX's distributed runtime does when a peer is
    lost or never comes (pages of native log, then an abort) reaches the user as one line and exit code 1.

    The child writes Python's stderr (its messages, tracebacks, warnings) to a pipe relayed as it comes, and the
    native runtime's log (file descriptor 2) to another, kept back (``--debug`` relays it). The child dies with its
    supervisor (PR_SET_PDEATHSIG on Linux); SIGINT and SIGTERM are passed on."""
    import signal
    import subprocess
    import threading

    def die_with_parent():
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    py_read, py_write = os.pipe()
    child = subprocess.Popen(
        [sys.executable, *sys.argv] + (["--debug"] if _DEBUG else []),
        env=dict(os.environ, **{_SUPERVISED: str(py_write)}),
        stderr=subprocess.PIPE,
        pass_fds=(py_write,),
        preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
    )
    os.close(py_write)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: child.send_signal(signum))
    native: list[str] = []

    def relay(stream, keep):
        for raw in stream:
            line = raw.decode(errors="replace")
            if keep is not None and not _DEBUG:
                keep.append(line)
                del keep[:-200]
            else:
                sys.stderr.write(line)
                sys.stderr.flush()

    readers = [
        threading.Thread(target=relay, args=(os.fdopen(py_read, "rb"), None), daemon=True),
        threading.Thread(target=relay, args=(child.stderr, native), daemon=True),
    ]
    for r in readers:
        r.start()
    code = child.wait()
    for r in readers:
        r.join()
    if code >= 0 and (code in (0, 1, 2) or _DEBUG):
        sys.exit(code)  # success, or an error the child said in one line itself
    text = " ".join(native)
    if "RegisterTask" in text:
        reason = (
            f"the other processes did not all join within --coordinator_timeout {timeout} s (check "
            f"--coordinator_address, and that every process was started, each with its own --process_id)"
        )
    elif any(k in text for k in ("another task died", "heartbeat", "crashed", "UNAVAILABLE")):
        reason = LOST_PEER
    else:
        reason = f"JAX's distributed runtime stopped it (exit code {code}; --debug shows its log)"
    print(f"{Path(sys.argv[0]).name}: error: process {process_id}: {reason}", file=sys.stderr)
    sys.exit(1)


def _use_supervised_stderr() -> None:
    """In a supervised child: Python's stderr to the supervisor's relayed pipe (see :func:`_supervise`)."""
    import threading

    fd = os.environ.get(_SUPERVISED)
    if fd and fd.isdigit():
        sys.stderr = os.fdopen(int(fd), "w", buffering=1, errors="backslashreplace")
    default_hook = threading.excepthook

    def hook(args):  # a background thread (orbax's checkpoint writer) that lost its peer: the main thread says it
        if not _is_lost_peer(args.exc_value) or _DEBUG:
            default_hook(args)

    threading.excepthook = hook

    def quiet(record):  # orbax's log of the same failure, with its traceback
        error = record.exc_info[1] if record.exc_info else None
        return _DEBUG or error is None or not _is_lost_peer(error)

    for name in ("", "absl"):
        logging.getLogger(name).addFilter(quiet)


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


def char_lab_arguments(description: str, argv=None, add_more=None):
    """The command line every character lab shares, generated from :class:`jaxnn.labs.char.Config` (--cell, --seed,
    --iterations, --lr), plus ``add_more(parser)``. Returns ``(parser, args, names)``."""
    from jaxnn.labs.char import Config

    parser = ArgumentParser(description)
    names = add_config_flags(parser, Config, RUN_FLAGS, skip=("lab",))
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

    return config_from_flags(parser, Config, args, names, lab=lab)


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


_DEBUG = False
# What a user's mistake raises (a bad value, a missing or unwritable file, a run that diverged): one line, not a trace.
USER_ERRORS = (ValueError, OSError, FloatingPointError)


LOST_PEER = "another process of this run has stopped (killed or failed); this one stops too"


def _is_lost_peer(e: BaseException) -> bool:
    """A collective or barrier that lost its peer in a multi-process run: the other process's failure, not a bug.
    A step that runs on the calling thread (``runtime.reuse_step_memory``) raises a collective's failure from the
    call itself, as a ValueError; read later from an asynchronous result it is a JaxRuntimeError."""
    keys = ("Gloo", "heartbeat", "CoordinationService")
    return type(e).__name__ in ("JaxRuntimeError", "ValueError") and any(k in str(e) for k in keys)


def run(main) -> None:
    """Run a script's ``main()``: a user's mistake ends with one line on stderr and exit code 1, Ctrl-C with one line
    and exit code 130 (``--debug`` shows the traceback of either); anything else keeps its traceback."""
    from jaxnn import runtime

    global _DEBUG
    debug = _DEBUG = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    runtime.reuse_step_memory()  # before main() starts JAX: each training step reuses the memory of the one before
    try:
        main()
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{Path(sys.argv[0]).name}: interrupted (Ctrl-C)", file=sys.stderr)
        _exit(130)
    except Exception as e:
        if debug or not (isinstance(e, USER_ERRORS) or _is_lost_peer(e)):
            raise
        if _is_lost_peer(e):
            import jax

            message = f"process {jax.process_index()}: {LOST_PEER}"
        else:
            message = " ".join(str(e).split()) + " (--debug shows the traceback)"
        print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)
        _exit(1)


def _exit(code: int) -> None:
    """Exit; in a multi-process run at once, since JAX's shutdown barrier would wait for (and then abort on) a
    process that has died."""
    if "jax" in sys.modules and sys.modules["jax"].distributed.is_initialized():
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(code)
    sys.exit(code)
