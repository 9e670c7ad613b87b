"""How a command ends: a user's mistake in one line on stderr and exit code 1, Ctrl-C in one line and exit code
130, a lost peer of a multi-process run in one line; ``--debug`` shows the traceback of each. Exit code 2 (a
mistake on the command line) is :class:`jaxnn.cli.flags.ArgumentParser`'s."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

# What a user's mistake raises (a bad value, a missing or unwritable file, a run that diverged): one line, not a trace.
USER_ERRORS = (ValueError, OSError, FloatingPointError)

LOST_PEER = "another process of this run has stopped (killed or failed); this one stops too"


def is_lost_peer(e: BaseException) -> bool:
    """A collective or barrier that lost its peer in a multi-process run: the other process's failure, not a bug.
    A step that runs on the calling thread (``runtime.reuse_step_memory``) raises a collective's failure from the
    call itself, as a ValueError; read later from an asynchronous result it is a JaxRuntimeError."""
    keys = ("Gloo", "heartbeat", "CoordinationService")
    return type(e).__name__ in ("JaxRuntimeError", "ValueError") and any(k in str(e) for k in keys)


def run(main: Callable[[], object], prog: str, debug: bool = False) -> None:
    """Run a command's ``main()`` as :func:`jaxnn.cli.launch` does: a user's mistake ends with ``prog: error: ...``
    and exit code 1, Ctrl-C with one line and exit code 130 (with ``debug``, the traceback of either instead);
    anything else keeps its traceback."""
    from jaxnn import runtime

    runtime.reuse_step_memory()  # before main() starts JAX: each training step reuses the memory of the one before
    try:
        main()
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted (Ctrl-C)", file=sys.stderr)
        _exit(130)
    except Exception as e:
        if debug or not (isinstance(e, USER_ERRORS) or is_lost_peer(e)):
            raise
        if is_lost_peer(e):
            import jax

            message = f"process {jax.process_index()}: {LOST_PEER}"
        else:
            message = " ".join(str(e).split()) + " (--debug shows the traceback)"
        print(f"{prog}: error: {message}", file=sys.stderr)
        _exit(1)


def _exit(code: int) -> None:
    """Exit; in a multi-process run at once, since JAX's shutdown barrier would wait for (and then abort on) a
    process that has died."""
    if "jax" in sys.modules and sys.modules["jax"].distributed.is_initialized():
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(code)
    sys.exit(code)
