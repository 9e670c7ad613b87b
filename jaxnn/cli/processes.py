"""Several processes of one run: their flags, and the supervisor that makes what JAX's distributed runtime does
when a peer is lost or never comes (pages of native log, then an abort) one line and exit code 1.

:func:`jaxnn.cli.launch` supervises before anything imports JAX (:func:`supervise_if_asked`); the command's own
parse then joins the run (:func:`start_processes`)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

from jaxnn.cli.errors import LOST_PEER, is_lost_peer

SUPERVISED = "JAXNN_SUPERVISED_STDERR"  # in the supervised child: the descriptor its Python stderr goes to


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
    through ``parser.error`` naming the flags. (Run as a command, :func:`jaxnn.cli.launch` has put a supervisor in
    front of this process already.)"""
    from jaxnn import parallel

    problem = _problem(args)
    if problem is not None:
        parser.error(problem)
    if args.num_processes > 1:
        parallel.initialize(
            args.coordinator_address,
            args.num_processes,
            args.process_id,
            initialization_timeout=args.coordinator_timeout,
        )


def _problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the process flags, naming them (None: nothing)."""
    if args.num_processes < 1:
        return f"--num_processes must be an int >= 1, got {args.num_processes}"
    if not 0 <= args.process_id < args.num_processes:
        return (
            f"--process_id must be in [0, {args.num_processes - 1}] for --num_processes {args.num_processes}, "
            f"got {args.process_id}"
        )
    if not 1 <= args.coordinator_timeout <= 86400:
        return f"--coordinator_timeout must be an int in [1, 86400] seconds, got {args.coordinator_timeout}"
    if args.num_processes > 1:
        if not args.coordinator_address:
            return "--num_processes > 1 needs --coordinator_address (or $JAX_COORDINATOR_ADDRESS)"
        if ":" not in args.coordinator_address:
            return f"--coordinator_address must be host:port, got {args.coordinator_address!r}"
    return None


def supervise_if_asked(argv: list[str], prog: str, debug: bool = False) -> None:
    """For the process of a multi-process run (valid process flags in ``argv``, read alone, without importing JAX):
    run this very command again as a supervised child and exit with its verdict (:func:`supervise`); otherwise
    return. Invalid process flags return too: the command's own parse says what is wrong with them."""
    if os.environ.get(SUPERVISED):
        return
    parser = argparse.ArgumentParser(add_help=False)
    add_process_flags(parser)
    try:
        args, _ = parser.parse_known_args(argv)
    except (SystemExit, ValueError):  # a malformed process flag: the command's parser reports it in one line
        return
    if args.num_processes > 1 and _problem(args) is None:
        supervise(args.process_id, args.coordinator_timeout, prog, debug)


def supervise(process_id: int, timeout: int, prog: str, debug: bool = False) -> None:
    """Run this very command again as a child process, so that what JAX's distributed runtime does when a peer is
    lost or never comes (pages of native log, then an abort) reaches the user as one line and exit code 1.

    The child (the interpreter's own command line again, ``sys.orig_argv``) writes Python's stderr (its messages,
    tracebacks, warnings) to a pipe relayed as it comes, and the native runtime's log (file descriptor 2) to
    another, kept back (``debug`` relays it). The child dies with its supervisor (PR_SET_PDEATHSIG on Linux);
    SIGINT and SIGTERM are passed on. Never returns."""
    import signal
    import subprocess
    import threading

    def die_with_parent():
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    py_read, py_write = os.pipe()
    child = subprocess.Popen(
        [sys.executable, *sys.orig_argv[1:]],
        env=dict(os.environ, **{SUPERVISED: str(py_write)}),
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
            if keep is not None and not debug:
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
    if code >= 0 and (code in (0, 1, 2) or debug):
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
    print(f"{prog}: error: process {process_id}: {reason}", file=sys.stderr)
    sys.exit(1)


def use_supervised_stderr(debug: bool = False) -> None:
    """In a supervised child (else nothing): Python's stderr to the supervisor's relayed pipe (see
    :func:`supervise`), and a lost peer's traceback in a background thread or a log left to the main thread's one
    line."""
    import threading

    fd = os.environ.get(SUPERVISED)
    if not (fd and fd.isdigit()):
        return
    sys.stderr = os.fdopen(int(fd), "w", buffering=1, errors="backslashreplace")
    default_hook = threading.excepthook

    def hook(args):  # a background thread (orbax's checkpoint writer) that lost its peer: the main thread says it
        if not is_lost_peer(args.exc_value) or debug:
            default_hook(args)

    threading.excepthook = hook

    def quiet(record):  # orbax's log of the same failure, with its traceback
        error = record.exc_info[1] if record.exc_info else None
        return debug or error is None or not is_lost_peer(error)

    for name in ("", "absl"):
        logging.getLogger(name).addFilter(quiet)
