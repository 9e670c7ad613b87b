"""Labs 10-1 and 10-2: the MNIST CNN and the deep CNN, trained with Adam on the real MNIST.

    python experiments/mnist_cnn.py                    # lab 10-1, 15 epochs, as the lab
    python experiments/mnist_cnn.py --model deep       # lab 10-2

Prints each epoch's average cost like the lab, then the test accuracy (the test images are normalised like the
training images). The one departure from the lab's recipe is the learning rate, which decays to zero along a cosine
by default (--schedule constant restores the lab's). Writes metrics.jsonl, TensorBoard event files (--logdir),
curves.png and params.npz to --workdir.
The recipe is jaxnn.labs.mnist.train_and_evaluate.
"""

import time
from pathlib import Path

from jaxnn import runtime
from jaxnn.cli.flags import parse_recipe, show_progress
from jaxnn.labs import mnist


def parse_args(argv=None) -> tuple[mnist.Config, Path]:
    """The flags as a recipe config and the workdir; a bad flag exits with argparse's message and code 2."""
    help_text = "where metrics, plot and parameters go (default: runs/mnist_MODEL)"
    config, args = parse_recipe(__doc__, mnist.Config, argv, None, help_text)
    return config, Path(args.workdir or Path("runs") / f"mnist_{args.model}")


def main(argv=None) -> mnist.Result:
    config, workdir = parse_args(argv)
    show_progress()
    runtime.enable_compilation_cache()
    t_start = time.time()
    print("Learning started. It takes sometime.", flush=True)
    result = mnist.train_and_evaluate(config, workdir)
    print("Learning Finished!")
    print(f"Accuracy: {result.test_accuracy:.4f}")
    print(
        f"wall time {time.time() - t_start:.1f} s; metrics in {result.metrics_path}"
        + (f", curves in {result.curves_path}" if result.curves_path else "")
        + f", parameters in {result.params_path}"
    )
    return result
