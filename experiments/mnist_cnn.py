"""Labs 10-1 and 10-2: the MNIST CNN and the deep CNN, trained with Adam on the real MNIST.

    python experiments/mnist_cnn.py                    # lab 10-1, 15 epochs, as the lab
    python experiments/mnist_cnn.py --model deep       # lab 10-2

Prints each epoch's average cost like the lab, then the test accuracy (the test images are normalised like the
training images). The one departure from the lab's recipe is the learning rate, which decays to zero along a cosine
by default (--schedule constant restores the lab's). Writes metrics.jsonl, curves.png and params.npz to --workdir.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from jaxnn import parallel, train
from jaxnn.checkpoint import Checkpointer, save_params
from jaxnn.data import mnist
from jaxnn.models import DeepCNN, MnistCNN
from jaxnn.runtime import enable_compilation_cache

MODELS = {"cnn": MnistCNN, "deep": DeepCNN}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(MODELS), default="cnn", help="cnn: lab 10-1, deep: lab 10-2")
    p.add_argument("--epochs", type=int, default=15, help="training epochs (15, as the lab)")
    p.add_argument("--batch_size", type=int, default=100, help="batch size (100)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    p.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                   help="learning rate over the run: cosine decay to 0 (default), or constant as in the lab")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling and dropout")
    p.add_argument("--data_dir", default=None, help="TFDS data_dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    p.add_argument("--manual_dir", default=None, help="folder of the four MNIST .gz files (default: data/mnist)")
    p.add_argument("--workdir", default=None, help="where metrics, plot and parameters go (default: runs/mnist_MODEL)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--checkpoint_every", type=int, default=0,
                   help="save a checkpoint every N steps and at each epoch end (0: only at epoch ends)")
    p.add_argument("--keep", type=int, default=3, help="checkpoints kept (3)")
    p.add_argument("--no_checkpoints", action="store_true", help="save no checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --workdir")
    p.add_argument("--train_subset", type=int, default=None,
                   help="train on the first N training images only (quick runs and tests)")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.batch_size < 1:
        p.error(f"--batch_size must be >= 1, got {args.batch_size}")
    if not args.lr > 0:
        p.error(f"--lr must be > 0, got {args.lr}")
    if args.checkpoint_every < 0:
        p.error(f"--checkpoint_every must be >= 0, got {args.checkpoint_every}")
    if args.keep < 1:
        p.error(f"--keep must be >= 1, got {args.keep}")
    if args.train_subset is not None and args.train_subset < 1:
        p.error(f"--train_subset must be >= 1, got {args.train_subset}")
    if args.resume and args.no_checkpoints:
        p.error("--resume needs checkpoints; drop --no_checkpoints")
    return args


def main(argv=None) -> float:
    args = parse_args(argv)
    enable_compilation_cache()
    workdir = Path(args.workdir or Path("runs") / f"mnist_{args.model}")
    workdir.mkdir(parents=True, exist_ok=True)
    metrics_path = workdir / "metrics.jsonl"
    if not args.resume:
        metrics_path.unlink(missing_ok=True)
    t_start = time.time()

    data = mnist.load_mnist(args.data_dir, args.manual_dir)
    images, labels = data["train"]
    if args.train_subset is not None:
        images, labels = images[:args.train_subset], labels[:args.train_subset]
    train_x, train_y = jnp.asarray(mnist.normalize(images)), jnp.asarray(labels)
    test_x = jnp.asarray(mnist.normalize(data["test"].images))
    test_y = jnp.asarray(data["test"].labels)
    train.check_batch_size(args.batch_size, train_x.shape[0])
    print(f"MNIST: {train_x.shape[0]} train, {test_x.shape[0]} test images; devices: {jax.devices()}")

    model = MODELS[args.model]()
    init_rng, train_rng = jax.random.split(jax.random.key(args.seed))
    steps_per_epoch = train_x.shape[0] // args.batch_size
    steps = args.epochs * steps_per_epoch
    lr = optax.cosine_decay_schedule(args.lr, steps) if args.schedule == "cosine" else args.lr
    state = train.create_train_state(model, init_rng, train_x[:1], tx=optax.adam(lr))

    ckpt = None if args.no_checkpoints else Checkpointer(workdir / "checkpoints", args.keep)
    first_epoch, start = 0, 0
    if args.resume:
        state, step = ckpt.restore_latest(state)
        if step is None:
            print(f"no checkpoint in {ckpt.directory}: starting from scratch")
        else:
            first_epoch, start = divmod(step, steps_per_epoch)
            print(f"resumed from step {step} (epoch {first_epoch + 1}, batch {start})")

    mesh = None
    if len(jax.devices()) > 1:  # data parallel over every device, the batch split, the state replicated
        mesh = parallel.make_mesh()
        parallel.check_divisible(args.batch_size, mesh)
        state = parallel.replicate(state, mesh)
        train_x, train_y = parallel.replicate((train_x, train_y), mesh)

    def after_step(s):
        if int(s.step) % args.checkpoint_every == 0:
            ckpt.save(s)

    logger = train.MetricsLogger(metrics_path)
    records = train.read_metrics(metrics_path) if args.resume and metrics_path.exists() else []
    test = None
    print("Learning started. It takes sometime.")
    for epoch in range(first_epoch, args.epochs):
        state, m = train.train_epoch(state, train_x, train_y, args.batch_size, train_rng, epoch,
                                     progress=not args.no_progress and sys.stderr.isatty(),
                                     start=start if epoch == first_epoch else 0,
                                     after_step=after_step if ckpt is not None and args.checkpoint_every else None,
                                     mesh=mesh)
        if ckpt is not None:
            ckpt.save(state)
        test = train.evaluate(state, test_x, test_y)
        print(f"[Epoch: {epoch + 1:>4}] cost = {m['loss']:>.9f}  train acc = {m['accuracy']:.4f}  "
              f"test acc = {test['accuracy']:.4f}", flush=True)
        record = dict(epoch=epoch + 1, train_loss=m["loss"], train_accuracy=m["accuracy"],
                      test_loss=test["loss"], test_accuracy=test["accuracy"])
        logger.write(**record)
        records.append(record)
    print("Learning Finished!")
    if ckpt is not None:
        ckpt.close()
    final = test if test is not None else train.evaluate(state, test_x, test_y)  # the last epoch's, if one ran
    save_params(workdir / "params.npz", state.params)
    plot = train.plot_metrics(records, workdir / "curves.png", f"{model.__class__.__name__}, seed {args.seed}")
    print(f"Accuracy: {final['accuracy']:.4f}")
    print(f"wall time {time.time() - t_start:.1f} s; metrics in {metrics_path}"
          + (f", curves in {plot}" if plot else "") + f", parameters in {workdir / 'params.npz'}")
    return final["accuracy"]


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
