"""Run a lab script, killing the process with SIGKILL right after the checkpoint of step N has been handed to
orbax (its asynchronous write under way): ``python kill_at_save.py N [SIGNAL] <script.py> <its flags>``; SIGINT
instead of SIGKILL is Ctrl-C at that same moment."""

import os
import runpy
import signal
import sys
from pathlib import Path

from jaxnn.checkpoint import Checkpointer

KILL_AT = int(sys.argv.pop(1))
SIGNAL = getattr(signal, sys.argv.pop(1)) if sys.argv[1].startswith("SIG") else signal.SIGKILL
if SIGNAL == signal.SIGINT:  # Ctrl-C as in a terminal: a shell's background job starts with SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
SCRIPT = Path(sys.argv.pop(1)).resolve()
_save = Checkpointer.save


def save_then_die(self, state, extra=None):
    step = _save(self, state, extra)
    if step == KILL_AT:
        os.kill(os.getpid(), SIGNAL)
    return step


Checkpointer.save = save_then_die
sys.argv[0] = str(SCRIPT)

runpy.run_path(str(SCRIPT), run_name="__main__")
