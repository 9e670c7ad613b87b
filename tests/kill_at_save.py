"""Run experiments/mnist_cnn.py, killing the process with SIGKILL right after the checkpoint of step N has been
handed to orbax (its asynchronous write under way): ``python kill_at_save.py N <mnist_cnn.py flags>``."""

import os
import runpy
import signal
import sys
from pathlib import Path

from jaxnn.checkpoint import Checkpointer

KILL_AT = int(sys.argv.pop(1))
_save = Checkpointer.save


def save_then_die(self, state, extra=None):
    step = _save(self, state, extra)
    if step == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)
    return step


Checkpointer.save = save_then_die
script = Path(__file__).resolve().parents[1] / "experiments" / "mnist_cnn.py"
sys.argv[0] = str(script)
sys.path.insert(0, str(script.parent))
runpy.run_path(str(script), run_name="__main__")
