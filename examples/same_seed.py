"""The same seed, the same run: lab 10-1 from ``torch.manual_seed(777)`` as the lab's PyTorch script runs it, and
as jaxnn's recipe runs it with ``--torch_seed 777``, one log after the other and then side by side.

    python examples/same_seed.py [--epochs 1] [--train_subset N]     # `make labs` runs one epoch

Both start from the same weights (PyTorch's initialisation, drawn by :mod:`jaxnn.random`) and take the same
batches in the same order (``DataLoader(shuffle=True)``'s). What is left between the two printed costs is float32
rounding: oneDNN and XLA sum in different orders, and training amplifies the difference (the README's table; in
float64 the two runs agree to 1e-14).
"""

import argparse
import tempfile

from jaxnn.cli.flags import show_progress
from jaxnn.data import mnist
from jaxnn.interop import torch_labs
from jaxnn.labs import mnist as mnist_lab


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train_subset", type=int, default=None, help="the first N training images only")
    parser.add_argument("--seed", type=int, default=777, help="the torch seed of both runs")
    args = parser.parse_args(argv)
    images, labels = mnist.load_mnist(None, None)["train"]
    images, labels = images[: args.train_subset], labels[: args.train_subset]

    print(f"PyTorch: lab 10-1's script after torch.manual_seed({args.seed})")
    theirs = torch_labs.train_mnist_lab(
        torch_labs.CNN,
        images,
        labels,
        seed=args.seed,
        epochs=args.epochs,
        log=lambda epoch, cost: print(f"[Epoch: {epoch:>4}] cost = {cost:>.9}", flush=True),
    )
    print(f"\njaxnn: python -m jaxnn mnist_cnn --torch_seed {args.seed}")
    show_progress()
    config = mnist_lab.Config(
        torch_seed=args.seed, epochs=args.epochs, train_subset=args.train_subset, checkpoints=False, progress=False
    )
    with tempfile.TemporaryDirectory() as workdir:
        result = mnist_lab.train_and_evaluate(config, workdir)
    ours = [r["train_loss"] for r in result.records]

    print("\n| epoch | PyTorch cost | jaxnn cost | relative difference |\n| --- | --- | --- | --- |")
    for epoch, (a, b) in enumerate(zip(theirs, ours, strict=True), 1):
        print(f"| {epoch} | {a:.9f} | {b:.9f} | {abs(a - b) / a:.1e} |")
    return theirs, ours


if __name__ == "__main__":
    main()
