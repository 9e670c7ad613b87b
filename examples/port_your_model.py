"""Port your own PyTorch model: a CNN with BatchNorm and a 2-layer LSTM, written in PyTorch as you would write
them, rebuilt from jaxnn layers under the same module names, loaded, compared layer by layer, and trained side by
side with PyTorch's optimizer, scheduler, clipping and loss.

    python examples/port_your_model.py [--steps 20]     # `make labs` runs it

What it shows, in order:
1. The import refuses what PyTorch would refuse: a Linear that reads a flattened feature map needs
   ``flatten_chw`` (PyTorch flattens (C, H, W), jaxnn (H, W, C)), and a weight given transposed does not load.
2. ``compare_with_torch`` checks every layer's output, every gradient and every running statistic, in evaluation
   and in training mode (``deterministic=False`` is PyTorch's ``model.train()``).
3. ``compare_with_torch(steps=N, ...)`` checks a whole training run: AdamW with a cosine schedule stepped per
   epoch and ``clip_grad_norm_`` for the CNN, RMSprop with StepLR and ``clip_grad_value_`` for the LSTM. It compares
   every step's loss and every parameter after every step.
"""

import argparse

import flax.linen as linen
import jax.numpy as jnp
import numpy as np
import optax
import torch
import torch.nn.functional as F

from jaxnn import nn, ops, optim
from jaxnn.interop.state_dict import from_state_dict
from jaxnn.optim import lr_scheduler
from jaxnn.testing import compare_with_torch


# --- Your PyTorch models, as they are ---------------------------------------------------------------------------
class TorchCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = torch.nn.Conv2d(1, 8, 3, padding=1, bias=False), torch.nn.BatchNorm2d(8)
        self.conv2, self.bn2 = torch.nn.Conv2d(8, 16, 3, padding=1, bias=False), torch.nn.BatchNorm2d(16)
        self.conv3, self.bn3 = torch.nn.Conv2d(16, 16, 3, padding=1, bias=False), torch.nn.BatchNorm2d(16)
        self.fc = torch.nn.Linear(16 * 3 * 3, 10)

    def forward(self, x):
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = F.max_pool2d(F.relu(bn(conv(x))), 2)  # 28 -> 14 -> 7 -> 3
        return self.fc(torch.flatten(x, 1))


class TorchLSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(6, 32, num_layers=2, batch_first=True)
        self.fc = torch.nn.Linear(32, 4)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


# --- The same models from jaxnn layers: the same module names, NHWC images ----------------------------------------
class CNN(linen.Module):
    @linen.compact
    def __call__(self, x, deterministic=True):
        for i, channels in enumerate((8, 16, 16), 1):
            x = nn.Conv2d(channels, 3, padding=1, bias=False, name=f"conv{i}")(x)  # BatchNorm follows
            x = nn.BatchNorm2d(channels, name=f"bn{i}")(x, deterministic=deterministic)
            x = ops.max_pool2d(linen.relu(x), 2)
        return nn.Linear(10, name="fc")(x.reshape(x.shape[0], -1))  # reads (H, W, C): see flatten_chw


class LSTM(linen.Module):
    @linen.compact
    def __call__(self, x):
        out, _ = nn.RNN(32, 2, batch_first=True, cell="lstm", name="lstm")(x)
        return nn.Linear(4, name="fc")(out[:, -1])


CHW = {"fc": (16, 3, 3)}  # fc reads the last (16, 3, 3) map, flattened channel-first in PyTorch


def _refused(what, fn):
    try:
        fn()
    except ValueError as e:
        print(f"  {what}: refused: {str(e).splitlines()[0][:160]}")
    else:
        raise AssertionError(f"{what} was not refused")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20, help="training steps compared (20)")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    torch.manual_seed(0)
    r = np.random.default_rng(0)
    images = r.standard_normal((16, 28, 28, 1)).astype(np.float32)  # NHWC; PyTorch gets NCHW
    labels = r.integers(0, 10, 16)
    series = r.standard_normal((8, 12, 6)).astype(np.float32)  # (batch, time, features), batch_first
    targets = r.standard_normal((8, 4)).astype(np.float32)

    # 1. The import.
    print("1. loading the PyTorch weights")
    cnn, torch_cnn = CNN(), TorchCNN()
    state_dict = torch_cnn.state_dict()
    _refused("the CNN without flatten_chw", lambda: from_state_dict(cnn, state_dict, images[:1]))
    transposed = {**state_dict, "fc.weight": state_dict["fc.weight"].T}
    _refused("fc.weight transposed", lambda: from_state_dict(cnn, transposed, images[:1], flatten_chw=CHW))
    cnn_vars = from_state_dict(cnn, state_dict, images[:1], flatten_chw=CHW)
    lstm, torch_lstm = LSTM(), TorchLSTM()
    lstm_vars = from_state_dict(lstm, torch_lstm.state_dict(), series[:1])
    print(f"  loaded: CNN {len(state_dict)} tensors, LSTM {len(torch_lstm.state_dict())} tensors\n")

    # 2. Layer by layer.
    print("2. every layer against PyTorch")
    reports = {
        "CNN, evaluation": compare_with_torch(cnn, cnn_vars, torch_cnn, images, labels=labels, flatten_chw=CHW),
        "CNN, training": compare_with_torch(
            cnn, cnn_vars, torch_cnn, images, labels=labels, train=True, flatten_chw=CHW
        ),
        "LSTM": compare_with_torch(lstm, lstm_vars, torch_lstm, series, torch_inputs=[series]),
    }
    print(reports["CNN, evaluation"])
    for name, report in reports.items():
        print(f"  {name}: {sum(r.ok for r in report.rows)} of {len(report.rows)} comparisons agree")
    print()

    # 3. Whole training runs.
    print(f"3. {args.steps} training steps on both sides")
    epoch = max(1, args.steps // 4)  # the scheduler steps after each "epoch" of this many steps
    cnn_run = compare_with_torch(
        cnn,
        cnn_vars,
        torch_cnn,
        images,
        train=True,
        flatten_chw=CHW,
        steps=args.steps,
        optimizer=optax.chain(
            optim.clip_by_norm(1.0),
            optim.adamw(
                lr_scheduler.per_epoch(lr_scheduler.cosine_annealing_lr(1e-3, T_max=4), epoch), weight_decay=0.01
            ),
        ),
        torch_optimizer=lambda ps: torch.optim.AdamW(ps, 1e-3, weight_decay=0.01),
        torch_scheduler=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4),
        scheduler_every=epoch,
        torch_clip=lambda ps: torch.nn.utils.clip_grad_norm_(ps, 1.0),
        loss=(
            lambda out: ops.cross_entropy(out, labels, label_smoothing=0.1),
            lambda out: F.cross_entropy(out, torch.tensor(labels), label_smoothing=0.1),
        ),
    )
    lstm_run = compare_with_torch(
        lstm,
        lstm_vars,
        torch_lstm,
        series,
        torch_inputs=[series],
        steps=args.steps,
        optimizer=optax.chain(
            optim.clip_by_value(0.5), optim.rmsprop(lr_scheduler.per_epoch(lr_scheduler.step_lr(1e-3, 2), epoch))
        ),
        torch_optimizer=lambda ps: torch.optim.RMSprop(ps, 1e-3),
        torch_scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 2),
        scheduler_every=epoch,
        torch_clip=lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.5),
        loss=(lambda out: ops.mse_loss(out, jnp.asarray(targets)), lambda out: F.mse_loss(out, torch.tensor(targets))),
    )
    print("  the CNN (AdamW, cosine schedule per epoch, clip_grad_norm_, label-smoothed cross-entropy):")
    print("\n".join("  " + line for line in str(cnn_run).splitlines() if _is_step_line(line)))
    print("  the LSTM (RMSprop, StepLR per epoch, clip_grad_value_, MSE):")
    print("\n".join("  " + line for line in str(lstm_run).splitlines() if _is_step_line(line)))
    reports.update({"CNN training run": cnn_run, "LSTM training run": lstm_run})
    for report in reports.values():
        report.check()
    print(f"\nall {sum(len(r.rows) for r in reports.values())} comparisons agree")
    return reports


def _is_step_line(line: str) -> bool:
    head = line.split()[0] if line.split() else ""
    return head.isdigit() or head == "step"


if __name__ == "__main__":
    main()
