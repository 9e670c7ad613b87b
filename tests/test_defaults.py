"""Every public op, layer and model with a PyTorch counterpart takes PyTorch's argument names and defaults.

Differences are allowed only where INTENDED lists them, each with its reason; every public name of ``jaxnn.ops``,
``jaxnn.nn`` and ``jaxnn.models`` must either have a counterpart here or be listed as having none.
"""

import ast
import inspect
import re

import pytest
import torch
import torch.nn.functional as F
import torch.nn.utils.rnn as rnn_utils

from jaxnn import models, nn, ops, optim, train
from jaxnn.data import sequence
from jaxnn.ops import loss as loss_ops
from jaxnn.optim import lr_scheduler

DATA = "the data argument is `x` (`input` shadows a Python builtin); it is positional in practice"
INFERRED = "Flax infers input sizes from the first input"
INIT = "Flax's initializer arguments; PyTorch re-initialises a built module with torch.nn.init instead"
PRECISION = "a layer's own precision of its products, as Flax's layers take it (None follows jaxnn.precision)"

DEPRECATED = "PyTorch's deprecated argument (reduction replaces it)"
LOSSES = tuple(loss_ops.__all__)

OPTIMIZERS = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "adadelta": "Adadelta",
    "nadam": "NAdam",
    "radam": "RAdam",
}
SCHEDULERS = {
    "step_lr": "StepLR",
    "multi_step_lr": "MultiStepLR",
    "exponential_lr": "ExponentialLR",
    "cosine_annealing_lr": "CosineAnnealingLR",
    "cosine_annealing_warm_restarts": "CosineAnnealingWarmRestarts",
    "linear_lr": "LinearLR",
    "one_cycle_lr": "OneCycleLR",
    "sequential_lr": "SequentialLR",
    "ReduceLROnPlateau": "ReduceLROnPlateau",
}
TORCH_DETAIL = "PyTorch implementation detail"
NO_PARAMS = "an optax transformation is built without the parameters"
SWITCHES = ("foreach", "capturable", "differentiable", "fused")
NO_OPTIMIZER = "a schedule of the step count: the optimizer takes it as its lr"
LAST_EPOCH = "a schedule is a function of the step, evaluated where the optimizer is (resume restores the step)"

# (jaxnn callable, PyTorch callable or explicit signature)
COUNTERPARTS = {
    "ops.conv2d": (ops.conv2d, F.conv2d),
    "ops.max_pool2d": (ops.max_pool2d, F._max_pool2d),
    "ops.avg_pool2d": (ops.avg_pool2d, F.avg_pool2d),
    "ops.max_unpool2d": (ops.max_unpool2d, F.max_unpool2d),
    "ops.conv_transpose2d": (ops.conv_transpose2d, F.conv_transpose2d),
    "ops.pad": (ops.pad, F.pad),
    "ops.adaptive_avg_pool2d": (ops.adaptive_avg_pool2d, F.adaptive_avg_pool2d),
    "ops.adaptive_max_pool2d": (ops.adaptive_max_pool2d, F.adaptive_max_pool2d_with_indices),
    "ops.conv1d": (ops.conv1d, F.conv1d),
    "ops.max_pool1d": (ops.max_pool1d, F._max_pool1d),
    "ops.avg_pool1d": (ops.avg_pool1d, F.avg_pool1d),
    "ops.adaptive_avg_pool1d": (ops.adaptive_avg_pool1d, F.adaptive_avg_pool1d),
    "nn.ConvTranspose2d": (nn.ConvTranspose2d, torch.nn.ConvTranspose2d),
    "nn.Conv1d": (nn.Conv1d, torch.nn.Conv1d),
    "nn.AdaptiveAvgPool2d": (nn.AdaptiveAvgPool2d, torch.nn.AdaptiveAvgPool2d),
    "nn.AdaptiveMaxPool2d": (nn.AdaptiveMaxPool2d, torch.nn.AdaptiveMaxPool2d),
    "nn.Dropout": (nn.Dropout, torch.nn.Dropout),
    "nn.Dropout2d": (nn.Dropout2d, torch.nn.Dropout2d),
    "nn.Conv2d": (nn.Conv2d, torch.nn.Conv2d),
    "nn.Linear": (nn.Linear, torch.nn.Linear),
    "nn.MaxPool2d": (nn.MaxPool2d, torch.nn.MaxPool2d),
    "nn.AvgPool2d": (nn.AvgPool2d, torch.nn.AvgPool2d),
    "nn.RNNCell": (nn.RNNCell, torch.nn.RNNCell),
    "nn.LSTMCell": (nn.LSTMCell, torch.nn.LSTMCell),
    "nn.GRUCell": (nn.GRUCell, torch.nn.GRUCell),
    "nn.Embedding": (nn.Embedding, torch.nn.Embedding),
    "nn.BatchNorm1d": (nn.BatchNorm1d, torch.nn.BatchNorm1d),
    "nn.BatchNorm2d": (nn.BatchNorm2d, torch.nn.BatchNorm2d),
    "nn.RNN": (nn.RNN, torch.nn.RNN),
    "sequence.pad_sequence": (sequence.pad_sequence, rnn_utils.pad_sequence),
    "sequence.pack_padded_sequence": (sequence.pack_padded_sequence, rnn_utils.pack_padded_sequence),
    "sequence.pack_sequence": (sequence.pack_sequence, rnn_utils.pack_sequence),
    "sequence.pad_packed_sequence": (sequence.pad_packed_sequence, rnn_utils.pad_packed_sequence),
    **{f"ops.{n}": (getattr(ops, n), getattr(F, n)) for n in LOSSES},
    **{f"optim.{n}": (getattr(optim, n), getattr(torch.optim, t)) for n, t in OPTIMIZERS.items()},
    **{
        f"lr_scheduler.{n}": (getattr(lr_scheduler, n), getattr(torch.optim.lr_scheduler, t))
        for n, t in SCHEDULERS.items()
    },
    "optim.clip_grad_norm": (optim.clip_grad_norm, torch.nn.utils.clip_grad_norm_),
    "optim.clip_grad_value": (optim.clip_grad_value, torch.nn.utils.clip_grad_value_),
    "train.adam": (train.adam, torch.optim.Adam),
    "train.sgd": (train.sgd, torch.optim.SGD),
}

# (name, argument) -> reason. "missing": PyTorch has it and we do not; "extra": we have it and PyTorch does not;
# "renamed": (our name, PyTorch's name), defaults still compared.
INTENDED = {
    **{
        (f"ops.{n}", "missing"): {"size_average": DEPRECATED, "reduce": DEPRECATED} for n in LOSSES if n != "huber_loss"
    },
    ("ops.conv2d", "renamed"): {("x", "input"): DATA},
    ("ops.conv2d", "extra"): {
        "precision": PRECISION,
        "padding_mode": "torch.nn.Conv2d's padding modes, on the functional op too",
    },
    ("ops.conv_transpose2d", "renamed"): {("x", "input"): DATA},
    ("ops.conv_transpose2d", "extra"): {
        "precision": PRECISION,
        "output_size": "ConvTranspose2d.forward's output_size, on the functional op too",
    },
    ("ops.pad", "renamed"): {("x", "input"): DATA},
    ("ops.adaptive_avg_pool2d", "renamed"): {("x", "input"): DATA},
    ("ops.adaptive_max_pool2d", "renamed"): {("x", "input"): DATA},
    ("ops.conv1d", "renamed"): {("x", "input"): DATA},
    ("ops.conv1d", "extra"): {
        "precision": PRECISION,
        "padding_mode": "torch.nn.Conv1d's padding modes, on the functional op too",
    },
    ("ops.max_pool1d", "renamed"): {("x", "input"): DATA},
    ("ops.avg_pool1d", "renamed"): {("x", "input"): DATA},
    ("ops.adaptive_avg_pool1d", "renamed"): {("x", "input"): DATA},
    ("nn.ConvTranspose2d", "missing"): {"in_channels": INFERRED},
    ("nn.ConvTranspose2d", "extra"): {"precision": PRECISION, "kernel_init": INIT, "bias_init": INIT},
    ("nn.Conv1d", "missing"): {"in_channels": INFERRED},
    ("nn.Conv1d", "extra"): {"precision": PRECISION, "kernel_init": INIT, "bias_init": INIT},
    ("ops.max_pool2d", "renamed"): {("x", "input"): DATA},
    ("ops.avg_pool2d", "renamed"): {("x", "input"): DATA},
    ("ops.max_unpool2d", "renamed"): {("x", "input"): DATA},
    ("nn.Conv2d", "missing"): {
        "in_channels": INFERRED,
    },
    ("nn.Conv2d", "extra"): {"precision": PRECISION, "kernel_init": INIT, "bias_init": INIT},
    ("nn.Linear", "missing"): {"in_features": INFERRED},
    ("nn.Linear", "extra"): {"precision": PRECISION, "kernel_init": INIT, "bias_init": INIT},
    ("nn.RNN", "missing"): {
        "input_size": INFERRED,
        "mode": "PyTorch's internal RNNBase argument; jaxnn's is `cell`",
    },
    ("nn.RNN", "extra"): {
        "cell": "one module for torch.nn.RNN ('rnn'), LSTM ('lstm') and GRU ('gru')",
        "precision": PRECISION,
        "fused_backward": "the time loop's hand-written VJP (default) or autodiff of the scan (for forward mode)",
    },
    ("nn.RNNCell", "missing"): {"input_size": INFERRED},
    ("nn.RNNCell", "extra"): {"precision": PRECISION},
    ("nn.LSTMCell", "missing"): {"input_size": INFERRED},
    ("nn.LSTMCell", "extra"): {"precision": PRECISION},
    ("nn.GRUCell", "missing"): {"input_size": INFERRED},
    ("nn.GRUCell", "extra"): {"precision": PRECISION},
    ("nn.Embedding", "missing"): {
        "_weight": "PyTorch's private argument; pass the weight as params to apply",
        "_freeze": "PyTorch's private argument; freeze a parameter in the optimizer (optax.set_to_zero)",
    },
    ("nn.BatchNorm1d", "extra"): {"weight_init": INIT},
    ("nn.BatchNorm2d", "extra"): {"weight_init": INIT},
    **{
        (f"optim.{n}", "missing"): {
            "params": NO_PARAMS,
            **{k: TORCH_DETAIL for k in SWITCHES if k in inspect.signature(getattr(torch.optim, t)).parameters},
        }
        for n, t in OPTIMIZERS.items()
    },
    **{(f"lr_scheduler.{n}", "missing"): {"optimizer": NO_OPTIMIZER, "last_epoch": LAST_EPOCH} for n in SCHEDULERS},
    **{
        (f"lr_scheduler.{n}", "extra"): {"lr": "the base rate (PyTorch reads it from the optimizer)"}
        for n in SCHEDULERS
        if n not in ("one_cycle_lr", "sequential_lr")
    },
    ("lr_scheduler.ReduceLROnPlateau", "missing"): {"optimizer": NO_OPTIMIZER},
    ("optim.clip_grad_norm", "renamed"): {("grads", "parameters"): "the gradients themselves (no .grad in JAX)"},
    ("optim.clip_grad_norm", "missing"): {"foreach": TORCH_DETAIL},
    ("optim.clip_grad_value", "renamed"): {("grads", "parameters"): "the gradients themselves (no .grad in JAX)"},
    ("optim.clip_grad_value", "missing"): {"foreach": TORCH_DETAIL},
    ("train.adam", "renamed"): {("learning_rate", "lr"): "optax's name for the learning rate"},
    ("train.adam", "missing"): {
        "params": "an optax transformation is built without the parameters",
        "betas": "optax's Adam defaults (b1 0.9, b2 0.999) are PyTorch's; use optax.adam for others",
        "eps": "optax's default 1e-8 is PyTorch's; use optax.adam for another",
        "weight_decay": "use optax.add_decayed_weights before adam, as PyTorch adds it to the gradient",
        "amsgrad": "use optax.amsgrad",
        "foreach": "PyTorch implementation detail",
        "maximize": "negate the loss",
        "capturable": "PyTorch implementation detail",
        "differentiable": "PyTorch implementation detail",
        "fused": "PyTorch implementation detail",
        "decoupled_weight_decay": "use optax.adamw",
    },
    ("train.adam", "extra"): {"decay_steps": "a cosine decay to 0, the MNIST labs' schedule"},
    ("train.sgd", "renamed"): {("learning_rate", "lr"): "optax's name for the learning rate"},
    ("train.sgd", "missing"): {
        "params": "an optax transformation is built without the parameters",
        "maximize": "negate the loss",
        "foreach": "PyTorch implementation detail",
        "differentiable": "PyTorch implementation detail",
        "fused": "PyTorch implementation detail",
    },
}

NO_COUNTERPART = {
    "sequence.PackedSequence": "a NamedTuple with PyTorch's PackedSequence fields, data not a tensor",
    "ops.conv_output_size": "a formula (PyTorch has it only in its docs)",
    "ops.convolve2d": "true convolution, for the lab's convolution-vs-correlation lesson",
    "ops.conv_transpose_output_size": "a formula (PyTorch has it only in its docs)",
    "nn.torch_uniform": "PyTorch's default init as a Flax initializer",
    "nn.xavier_uniform": "flax's xavier_uniform, torch.nn.init.xavier_uniform_'s rule",
    "models.MnistCNN": "the lab 10-1 model",
    "models.DeepCNN": "the lab 10-2 model",
    "models.FolderCNN": "the lab 10-4 model",
    "models.CharRNN": "the lab 11 character model",
    "models.RNNRegressor": "the lab 11-4 time-series model",
    "models.Seq2Seq": "the lab 11-5 translator",
    "models.generate": "text generation of the lab 11 models",
    "models.VGG": "lab 10-5's VGG (torchvision's VGG takes a built features module; torchvision is no dependency)",
    "models.ResNet": "lab 10-6's ResNet (torchvision's signature plus `stem`; torchvision is no dependency)",
    "models.BasicBlock": "lab 10-6's block; `downsample` is a flag, not a module",
    "models.Bottleneck": "lab 10-6's block; `downsample` is a flag, not a module",
    "models.resnet18": "torchvision's layout, without `weights`/`progress` (nothing is downloaded)",
    "models.resnet34": "torchvision's layout, without `weights`/`progress` (nothing is downloaded)",
    "models.resnet50": "torchvision's layout, without `weights`/`progress` (nothing is downloaded)",
    "optim.lr_scheduler": "the module of torch.optim.lr_scheduler's counterparts",
    "optim.TorchOptState": "an optimizer's state: PyTorch's step, lr and per-parameter state",
    "optim.set_lr": "param_group['lr'] = lr, on an optax state",
    "optim.param_groups": "PyTorch's parameter groups, as optax.partition",
    "optim.label_params": "labels for param_groups",
    "optim.clip_by_norm": "clip_grad_norm_ as a transformation to chain",
    "optim.clip_by_value": "clip_grad_value_ as a transformation to chain",
    "optim.total_norm": "clip_grad_norm_'s norm (torch.nn.utils.get_total_norm in newer PyTorch)",
    "lr_scheduler.per_epoch": "a scheduler stepped per epoch (PyTorch's loop decides where step() is called)",
    "lr_scheduler.OneCycle": "one_cycle_lr's pair of schedules",
}

IGNORED = {"self", "device", "dtype", "parent", "name"}  # PyTorch's placement arguments and Flax's module plumbing


def _docstring_signature(fn) -> dict:
    """A builtin's signature from its docstring's first line, e.g. ``conv2d(input, weight, bias=None, ...)``."""
    line = next(line for line in fn.__doc__.strip().splitlines() if "(" in line)
    args = re.match(r"\s*\w+\((.*)\)", line).group(1)
    params = {}
    for part in args.split(","):
        part = part.strip()
        if not part or part == "*":
            continue
        key, _, default = part.partition("=")
        params[key.strip()] = ast.literal_eval(default) if default else inspect.Parameter.empty
    return params


def _torch_params(fn) -> dict:
    if fn is torch.nn.RNN:  # RNN, LSTM and GRU share RNNBase's arguments; RNN adds nonlinearity after num_layers
        params = {}
        for key, default in _signature(torch.nn.RNNBase.__init__).items():
            params[key] = default
            if key == "num_layers":
                params["nonlinearity"] = torch.nn.RNN(1, 1).nonlinearity
        return params
    try:
        return _signature(fn.__init__ if inspect.isclass(fn) else fn)
    except ValueError:  # a builtin without a Python signature
        return _docstring_signature(fn)


def _signature(fn) -> dict:
    return {
        k: p.default
        for k, p in inspect.signature(fn).parameters.items()
        if k not in IGNORED and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _ours(fn) -> dict:
    return {k: v for k, v in _signature(fn).items() if k not in IGNORED}


def _public(module, prefix):
    return {f"{prefix}.{name}" for name in module.__all__}


def test_every_public_name_is_classified():
    public = _public(ops, "ops") | _public(nn, "nn") | _public(models, "models") | _public(sequence, "sequence")
    public |= _public(optim, "optim") | _public(lr_scheduler, "lr_scheduler")
    classified = {k for k in COUNTERPARTS if not k.startswith("train.")} | set(NO_COUNTERPART)
    assert public == classified, f"unclassified: {sorted(public - classified)}, gone: {sorted(classified - public)}"


@pytest.mark.parametrize("name", sorted(COUNTERPARTS))
def test_names_and_defaults_are_pytorchs(name):
    ours_fn, torch_fn = COUNTERPARTS[name]
    ours, theirs = _ours(ours_fn), _torch_params(torch_fn)
    renamed = {their: our for our, their in INTENDED.get((name, "renamed"), {})}
    assert set(renamed) <= set(theirs) and set(renamed.values()) <= set(ours), (name, renamed)
    theirs = {renamed.get(k, k): v for k, v in theirs.items()}
    missing = set(theirs) - set(ours)
    extra = set(ours) - set(theirs)
    assert missing == set(INTENDED.get((name, "missing"), {})), f"{name}: PyTorch has {sorted(missing)}"
    assert extra == set(INTENDED.get((name, "extra"), {})), f"{name}: PyTorch lacks {sorted(extra)}"
    for key in set(ours) & set(theirs):
        assert ours[key] == theirs[key], f"{name}({key}=...): default {ours[key]!r}, PyTorch's {theirs[key]!r}"
    # The shared arguments come in PyTorch's order.
    shared = [k for k in theirs if k in ours]
    assert [k for k in ours if k in theirs] == shared, f"{name}: argument order differs from PyTorch's {shared}"


def test_the_check_would_catch_a_flipped_default():
    # RNN's batch_first is False, as torch.nn.RNN's; the test above compares exactly this.
    assert _ours(models.RNN)["batch_first"] is False
    assert _torch_params(torch.nn.RNN)["batch_first"] is False
