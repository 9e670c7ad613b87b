"""Lab 10-1 from torch.manual_seed(777) in PyTorch and in jaxnn (torch_seed=777), float32 and float64: each epoch's
average cost on both sides and how far apart they are. Both runs start from the same weights and take the same
batches in the same order, so the gap is rounding alone: float32 sums in another order than oneDNN, and training
amplifies it; float64 shows the runs are the same computation. float32 is the lab itself on both sides (jaxnn's
recipe with ``torch_seed``); float64 runs the recipe's pieces with 64-bit floats enabled.

    python benchmarks/torch_seed_drift.py [--epochs 15] [--out benchmarks/torch_seed_drift.json]

Minutes per epoch on a 2-core CPU; the table goes to stdout and the numbers to --out (JSON).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch

from jaxnn import train
from jaxnn.data import mnist
from jaxnn.interop import torch_labs
from jaxnn.labs import mnist as mnist_lab
from jaxnn.models import MnistCNN
from jaxnn.random.run import torch_run


def jaxnn_costs(images, labels, epochs, dtype, seed=777, batch_size=100):
    """Lab 10-1 in jaxnn from ``torch_seed``: each epoch's mean training loss. float32: the recipe; float64: its
    pieces (the recipe's model, weights, stream and step) with 64-bit floats enabled."""
    if dtype == np.float32:
        config = mnist_lab.Config(torch_seed=seed, epochs=epochs, checkpoints=False, progress=False)
        with tempfile.TemporaryDirectory() as workdir:
            return [r["train_loss"] for r in mnist_lab.train_and_evaluate(config, workdir).records]
    with jax.enable_x64(True):
        x, y = jnp.asarray(images.astype(dtype) / 255), jnp.asarray(labels)
        variables, stream = torch_run(MnistCNN(), seed, x, batch_size)
        params = jax.tree.map(lambda a: jnp.asarray(a, dtype), variables["params"])
        state = train.create_train_state(MnistCNN(), params, train.adam(1e-3))
        step = jax.jit(train.train_step)
        costs = []
        for epoch in range(epochs):
            losses = []
            for batch in stream.batches(x, y)(epoch, 0):
                state, metrics = step(state, batch, jax.random.key(0))
                losses.append(metrics["loss"])
            costs.append(float(np.sum(np.asarray(losses, dtype)) / len(losses)))
            print(f"jaxnn {np.dtype(dtype).name} epoch {epoch + 1}: {costs[-1]:.12g}", flush=True)
    return costs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", default="benchmarks/torch_seed_drift.json")
    parser.add_argument("--dtypes", default="float32,float64", help="which to run; the others are kept from --out")
    args = parser.parse_args()
    torch.set_num_threads(2)
    images, labels = mnist.load_mnist(None, None)["train"]
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    result.update(
        machine=f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        versions=f"jax {jax.__version__}, torch {torch.__version__}",
        epochs=args.epochs,
    )
    for name, torch_dtype, np_dtype in (("float32", torch.float32, np.float32), ("float64", torch.float64, np.float64)):
        if name not in args.dtypes.split(","):
            continue
        start = time.time()
        theirs = torch_labs.train_mnist_lab(
            torch_labs.CNN,
            images,
            labels,
            epochs=args.epochs,
            dtype=torch_dtype,
            log=lambda e, c, n=name: print(f"torch {n} epoch {e}: {c:.12g}", flush=True),
        )
        middle = time.time()
        ours = jaxnn_costs(images, labels, args.epochs, np_dtype)
        result[name] = {
            "torch": theirs,
            "jaxnn": ours,
            "relative": [abs(a - b) / abs(a) for a, b in zip(theirs, ours, strict=True)],
            "seconds": {"torch": middle - start, "jaxnn": time.time() - middle},
        }
        out.write_text(json.dumps(result, indent=1) + "\n")
    print("| epoch | float32 PyTorch | float32 jaxnn | relative | float64 PyTorch | float64 jaxnn | relative |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for e in range(args.epochs):
        f32, f64 = result["float32"], result["float64"]
        print(
            f"| {e + 1} | {f32['torch'][e]:.9f} | {f32['jaxnn'][e]:.9f} | {f32['relative'][e]:.1e} | "
            f"{f64['torch'][e]:.12f} | {f64['jaxnn'][e]:.12f} | {f64['relative'][e]:.1e} |"
        )


if __name__ == "__main__":
    main()
