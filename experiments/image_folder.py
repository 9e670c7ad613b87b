"""Lab 10-4: train the lab's small CNN on a folder of images (root/<class>/<image>), save it and load it back.

    python experiments/image_folder.py                                   # two MNIST digits as 64x128 RGB PNGs
    python experiments/image_folder.py --root custom_data/train_data --test_root custom_data/test_data

Images are resized to 64x128 and converted to RGB, as the lab's pictures. Adam 5e-5, batch 8, 7 epochs (the lab's).
Prints each epoch's cost like the lab, checks that the re-loaded parameters give the same outputs, and prints the
test accuracy. Writes metrics.jsonl, TensorBoard event files (--logdir) and params.npz to --workdir. The recipe is
jaxnn.labs.image_folder.train_and_evaluate.
"""

import argparse
import os

import cli
from cli import make_config, show_progress

from jaxnn import runtime
from jaxnn.labs import image_folder


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="training image folder (default: MNIST digits 0 and 1 as PNGs)")
    p.add_argument("--test_root", default=None, help="test image folder (default: MNIST test digits with no --root)")
    p.add_argument("--digits", type=int, nargs=2, default=[0, 1], help="the two MNIST digits of the default folders")
    p.add_argument("--per_class", type=int, default=200, help="MNIST images per digit in the default training folder")
    p.add_argument("--epochs", type=int, default=7, help="training epochs (7, as the lab)")
    p.add_argument("--batch_size", type=int, default=8, help="batch size (8)")
    p.add_argument("--lr", type=float, default=5e-5, help="Adam learning rate (5e-5)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffling")
    p.add_argument("--workdir", default="runs/image_folder", help="where results go (runs/image_folder)")
    p.add_argument("--logdir", default=None, help="TensorBoard event files (default: <workdir>/tensorboard)")
    args = p.parse_args(argv)
    config = make_config(
        p,
        image_folder.Config,
        {"learning_rate": "--lr"},
        root=args.root,
        test_root=args.test_root,
        digits=tuple(args.digits),
        per_class=args.per_class,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=args.seed,
        logdir=args.logdir,
    )
    return config, args.workdir


def main(argv=None) -> image_folder.Result:
    config, workdir = parse_args(argv)
    show_progress()
    runtime.enable_compilation_cache()
    result = image_folder.train_and_evaluate(config, workdir)
    print("Learning Finished!")
    same = "the same outputs" if result.reloaded_max_diff == 0 else f"outputs off by {result.reloaded_max_diff:.3g}"
    print(f"saved {result.params_path} and loaded it back into a new model: {same}")
    if result.test_accuracy is not None:
        print(f"Accuracy: {result.test_accuracy:.4f}")
    print(f"TensorBoard: tensorboard --logdir {result.logdir}")
    return result


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli.run(main)
