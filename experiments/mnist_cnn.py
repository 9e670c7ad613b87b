"""Labs 10-1 and 10-2: the MNIST CNN and the deep CNN, trained with Adam on the real MNIST.

    python experiments/mnist_cnn.py                    # lab 10-1, 15 epochs, as the lab
    python experiments/mnist_cnn.py --model deep       # lab 10-2

Prints each epoch's average cost like the lab, then the test accuracy (the test images are normalised like the
training images). The one departure from the lab's recipe is the learning rate, which decays to zero along a cosine
by default (--schedule constant restores the lab's). Writes metrics.jsonl, TensorBoard event files (--logdir),
curves.png and params.npz to --workdir.
The recipe is jaxnn.labs.mnist.train_and_evaluate.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import cli
from cli import make_config, show_progress

from jaxnn import parallel, runtime
from jaxnn.labs import mnist


def parse_args(argv=None) -> tuple[mnist.Config, Path]:
    """The flags as a recipe config and the workdir; a bad flag exits with argparse's message and code 2."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(mnist.MODELS), default="cnn", help="cnn: lab 10-1, deep: lab 10-2")
    p.add_argument("--epochs", type=int, default=15, help="training epochs (15, as the lab)")
    p.add_argument("--batch_size", type=int, default=100, help="batch size (100)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    p.add_argument(
        "--schedule",
        choices=["cosine", "constant"],
        default="cosine",
        help="learning rate over the run: cosine decay to 0 (default), or constant as in the lab",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling and dropout")
    p.add_argument("--data_dir", default=None, help="TFDS data_dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    p.add_argument("--manual_dir", default=None, help="folder of the four MNIST .gz files (default: data/mnist)")
    p.add_argument("--workdir", default=None, help="where metrics, plot and parameters go (default: runs/mnist_MODEL)")
    p.add_argument("--logdir", default=None, help="TensorBoard event files (default: <workdir>/tensorboard)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--checkpoint_every",
        type=int,
        default=0,
        help="save a checkpoint every N steps and at each epoch end (0: only at epoch ends)",
    )
    p.add_argument("--keep", type=int, default=3, help="checkpoints kept (3)")
    p.add_argument("--no_checkpoints", action="store_true", help="save no checkpoints")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the latest checkpoint in --workdir (refused if the run's recorded flags differ)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a --workdir that holds another run's checkpoints (they are deleted)",
    )
    p.add_argument(
        "--train_subset",
        type=int,
        default=None,
        help="train on the first N training images only (quick runs and tests)",
    )
    p.add_argument(
        "--coordinator_address",
        default=os.environ.get("JAX_COORDINATOR_ADDRESS"),
        help="host:port of process 0 for a multi-process run (default: $JAX_COORDINATOR_ADDRESS)",
    )
    p.add_argument(
        "--num_processes",
        type=int,
        default=int(os.environ.get("JAX_NUM_PROCESSES", 1)),
        help="processes of the run (default: $JAX_NUM_PROCESSES or 1)",
    )
    p.add_argument(
        "--process_id",
        type=int,
        default=int(os.environ.get("JAX_PROCESS_ID", 0)),
        help="this process's index, 0 to num_processes - 1 (default: $JAX_PROCESS_ID or 0)",
    )
    p.add_argument(
        "--xla_defaults",
        action="store_true",
        help="compile with XLA's default options instead of jaxnn.runtime.compiler_options()",
    )
    args = p.parse_args(argv)
    if args.num_processes > 1:  # before anything else touches JAX
        if not args.coordinator_address:
            p.error("--num_processes > 1 needs --coordinator_address (or $JAX_COORDINATOR_ADDRESS)")
        try:
            parallel.initialize(args.coordinator_address, args.num_processes, args.process_id)
        except ValueError as e:
            p.error(str(e))
    config = make_config(
        p,
        mnist.Config,
        {"learning_rate": "--lr", "checkpoints": "--no_checkpoints"},
        model=args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        schedule=args.schedule,
        seed=args.seed,
        train_subset=args.train_subset,
        data_dir=args.data_dir,
        manual_dir=args.manual_dir,
        checkpoints=not args.no_checkpoints,
        checkpoint_every=args.checkpoint_every,
        keep=args.keep,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress and sys.stderr.isatty(),
        logdir=args.logdir,
        cpu_compiler_options=not args.xla_defaults,
    )
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


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli.run(main)
