"""compare_with_torch(steps=100) on a random model: a training run with one of PyTorch's losses (with its options),
an optimizer, a scheduler stepped per epoch and gradient clipping on both sides; every step's loss and every
parameter after every step agree (float64 to 1e-12, float32 by the tolerance model), and a wrong loss option fails
the first step's loss."""

import flax.linen as linen
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

from jaxnn import ops, optim
from jaxnn.interop.state_dict import from_state_dict
from jaxnn.nn import Linear
from jaxnn.ops import loss as loss_ops
from jaxnn.optim import lr_scheduler
from jaxnn.testing import compare_with_torch

N, IN, C = 12, 5, 4


class _Net(linen.Module):
    @linen.compact
    def __call__(self, x):
        return Linear(C, name="fc2")(jnp.tanh(Linear(8, name="fc1")(x)))


class _TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(IN, 8), torch.nn.Linear(8, C)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def _loss(kind, r, option):
    """(ours, theirs) of one loss over the (N, C) output, with its targets and options drawn from ``r``."""
    t = torch.tensor
    if kind in ("cross_entropy", "nll_loss"):
        y = r.integers(0, C, N)
        w = r.uniform(0.5, 2, C) if option else None
        kw = dict(ignore_index=int(y[0])) if option else {}
        ls = dict(label_smoothing=0.1) if option and kind == "cross_entropy" else {}

        def ours(out):
            x = out if kind == "cross_entropy" else jax_log_softmax(out)
            return getattr(ops, kind)(x, y, weight=None if w is None else w.astype(out.dtype), **kw, **ls)

        def theirs(out):
            x = out if kind == "cross_entropy" else F.log_softmax(out, -1)
            return getattr(F, kind)(x, t(y), weight=None if w is None else t(w, dtype=out.dtype), **kw, **ls)

        return ours, theirs
    if kind in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"):
        y = r.standard_normal((N, C))
        kw = {"smooth_l1_loss": dict(beta=0.5), "huber_loss": dict(delta=0.7)}.get(kind, {}) if option else {}
        reduction, scale = ("sum", 1 / y.size) if option else ("mean", 1.0)  # the sum scaled back: the same rate fits
        return (
            lambda out: getattr(ops, kind)(out, y.astype(out.dtype), reduction=reduction, **kw) * scale,
            lambda out: getattr(F, kind)(out, t(y, dtype=out.dtype), reduction=reduction, **kw) * scale,
        )
    if kind == "binary_cross_entropy":
        y = r.uniform(0, 1, (N, C))
        return (
            lambda out: ops.binary_cross_entropy(jnp.asarray(1 / (1 + jnp.exp(-out))), y.astype(out.dtype)),
            lambda out: F.binary_cross_entropy(torch.sigmoid(out), t(y, dtype=out.dtype)),
        )
    if kind == "binary_cross_entropy_with_logits":
        y = r.uniform(0, 1, (N, C))
        pw = r.uniform(0.5, 3, C) if option else None
        return (
            lambda out: ops.binary_cross_entropy_with_logits(
                out, y.astype(out.dtype), pos_weight=None if pw is None else pw.astype(out.dtype)
            ),
            lambda out: F.binary_cross_entropy_with_logits(
                out, t(y, dtype=out.dtype), pos_weight=None if pw is None else t(pw, dtype=out.dtype)
            ),
        )
    y = r.dirichlet(np.ones(C), N)  # kl_div: log-probabilities against probabilities
    return (
        lambda out: ops.kl_div(jax_log_softmax(out), y.astype(out.dtype), reduction="batchmean"),
        lambda out: F.kl_div(F.log_softmax(out, -1), t(y, dtype=out.dtype), reduction="batchmean"),
    )


def jax_log_softmax(x):
    return x - jnp.log(jnp.sum(jnp.exp(x - x.max(-1, keepdims=True)), -1, keepdims=True)) - x.max(-1, keepdims=True)


LOSSES = list(loss_ops.__all__)  # every loss of jaxnn.ops
OPTIMIZERS = {
    "sgd": (lambda s: optim.sgd(s, momentum=0.9), lambda ps: torch.optim.SGD(ps, 0.05, momentum=0.9), 0.05),
    "adamw": (
        lambda s: optim.adamw(s, weight_decay=0.1),
        lambda ps: torch.optim.AdamW(ps, 0.002, weight_decay=0.1),
        0.002,
    ),
    "rmsprop": (lambda s: optim.rmsprop(s), lambda ps: torch.optim.RMSprop(ps, 0.001), 0.001),
}


def _pair(seed):
    torch.manual_seed(seed)
    tm = _TorchNet()
    x = np.random.default_rng(seed).standard_normal((N, IN)).astype(np.float32)
    return _Net(), from_state_dict(_Net(), tm.state_dict(), x), tm, x


# Each loss once, its options on or off and the optimizer in turn (the losses' options are drawn in test_losses).
RUNS = [(kind, i % 2 == 0, sorted(OPTIMIZERS)[i % 3], i) for i, kind in enumerate(LOSSES)]


@pytest.mark.parametrize(("kind", "option", "opt", "seed"), RUNS)
def test_a_100_step_training_run_with_each_loss_matches_torch(kind, option, opt, seed):
    model, variables, tm, x = _pair(seed)
    ours_loss, theirs_loss = _loss(kind, np.random.default_rng(seed + 1), option)
    make_ours, make_theirs, lr = OPTIMIZERS[opt]
    schedule = lr_scheduler.per_epoch(lr_scheduler.step_lr(lr, 3, 0.7), 10)
    for dtype, tol in (("float64", dict(rtol=1e-12, atol=1e-12)), ("float32", {})):
        report = compare_with_torch(
            model,
            variables,
            tm,
            x,
            torch_inputs=[x],
            steps=100,
            loss=(ours_loss, theirs_loss),
            optimizer=optax.chain(optim.clip_by_norm(1.0), make_ours(schedule)),
            torch_optimizer=make_theirs,
            torch_scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.7),
            scheduler_every=10,
            torch_clip=lambda ps: torch.nn.utils.clip_grad_norm_(ps, 1.0),
            dtype=dtype,
            **tol,
        )
        report.check()
        assert sum(r.kind == "loss" for r in report.rows) == 100


def test_a_wrong_loss_option_fails_the_gradients_and_the_first_steps_loss():
    model, variables, tm, x = _pair(0)
    y = np.random.default_rng(1).integers(0, C, N)
    report = compare_with_torch(
        model,
        variables,
        tm,
        x,
        torch_inputs=[x],
        steps=3,
        loss=(
            lambda out: ops.cross_entropy(out, y, label_smoothing=0.1),
            lambda out: F.cross_entropy(out, torch.tensor(y)),
        ),
    )
    assert report.first_divergence.kind == "grad"  # the gradients of the compared forward pass come first
    row = next(r for r in report.rows if r.kind == "loss" and not r.ok)
    assert row.step == 1 and row.name == "step 1"
    assert "step" in str(report) and "loss error" in str(report)
    with pytest.raises(ValueError, match="optimizer and torch_optimizer together"):
        compare_with_torch(model, variables, tm, x, torch_inputs=[x], steps=1, optimizer=optim.adam())
