"""The lab models as their PyTorch scripts build them after ``torch.manual_seed(seed)``: each layer's default
initialisation in construction order, then the re-initialisation the lab's ``__init__`` does, drawn from the same
generator in the same order. No torch needed.

What each lab's PyTorch model does after (or while) building its layers:

- MnistCNN (10-1): ``xavier_uniform_(fc.weight)``.
- DeepCNN (10-2): ``xavier_uniform_(fc1.weight)`` as soon as ``fc1`` is built, then ``fc2`` and its own.
- FolderCNN (10-4): nothing, PyTorch's defaults.
- VGG (10-5), with ``init_weights``: ``kaiming_normal_(fan_out, relu)`` on every convolution (bias 0), BatchNorm 1
  and 0, ``normal_(0, 0.01)`` on every Linear (bias 0), in module order.
- ResNet (10-6): ``kaiming_normal_(fan_out, relu)`` on every convolution in module order; with
  ``zero_init_residual`` each block's last BatchNorm weight 0 (no draw).
- CharRNN, RNNRegressor, Seq2Seq (11): nothing; the RNN's ``uniform_(-1/sqrt(hidden), 1/sqrt(hidden))`` per tensor
  (``proj_size`` included), Linear's and Embedding's defaults.

Any other model gets PyTorch's default initialisation of its layers (:func:`jaxnn.random.init.torch_state_dict`).

Example::

    variables = torch_init(MnistCNN(), x[:1], torch_seed=777)   # the weights of lab 10-1's CNN after
                                                                  # torch.manual_seed(777); CNN()
"""

from __future__ import annotations

import functools

import numpy as np

from jaxnn.random import init
from jaxnn.random.generator import Generator, default_generator, manual_seed

__all__ = ["lab_state_dict", "torch_init"]


def _xavier(layer: str):
    def apply(sd, g):
        sd[f"{layer}.weight"] = init.xavier_uniform_(sd[f"{layer}.weight"], generator=g)

    return apply


def _reinit(sd: dict, g: Generator, *, conv, linear=None, zero_bn=()) -> None:
    """A ``for m in self.modules()`` loop: each conv weight (4-D) through ``conv`` and each Linear weight through
    ``linear`` (if given), their biases to 0, the BatchNorm weights ending in ``zero_bn`` to 0; in the state_dict's
    order, which is PyTorch's module order."""
    for key in list(sd):
        prefix, leaf = key.rsplit(".", 1)
        dims = sd[f"{prefix}.weight"].ndim if f"{prefix}.weight" in sd else 0
        fn = conv if dims == 4 else linear if dims == 2 else None
        if fn is not None and leaf == "weight":
            sd[key] = fn(sd[key], g)
        elif (fn is not None and leaf == "bias") or key.endswith(zero_bn):
            sd[key] = np.zeros_like(sd[key])


def _kaiming_fan_out(w, g):
    return init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=g)


def _recipe(model):
    """``(after, then)``: the re-initialisations inside construction, and after it, of the lab's PyTorch model."""
    from jaxnn.models import VGG, BasicBlock, DeepCNN, MnistCNN, ResNet
    from jaxnn.models.resnet import BLOCKS

    if isinstance(model, MnistCNN):
        return {"fc": _xavier("fc")}, None
    if isinstance(model, DeepCNN):
        return {"fc1": _xavier("fc1"), "fc2": _xavier("fc2")}, None
    if isinstance(model, VGG) and model.init_weights:
        return {}, functools.partial(
            _reinit, conv=_kaiming_fan_out, linear=lambda w, g: init.normal_(w, 0.0, 0.01, generator=g)
        )
    if isinstance(model, ResNet):
        block = BLOCKS.get(model.block, model.block) if isinstance(model.block, str) else model.block
        last_bn = ".bn2.weight" if block is BasicBlock else ".bn3.weight"
        zero = (last_bn,) if model.zero_init_residual else ()
        return {}, functools.partial(_reinit, conv=_kaiming_fan_out, zero_bn=zero)
    return {}, None


def lab_state_dict(model, *sample_args, generator: Generator | None = None, **sample_kwargs) -> dict:
    """The PyTorch state_dict (NumPy arrays, PyTorch's names, layouts and order) of the lab's PyTorch model built
    with ``generator`` as PyTorch's default generator; aliases (DeepCNN's ``layer4.0``) included."""
    from jaxnn.interop.lab_names import lab_names

    names = lab_names(model, *sample_args, **sample_kwargs)
    return _lab_state_dict(model, sample_args, sample_kwargs, generator or default_generator, names)


def _lab_state_dict(model, sample_args, sample_kwargs, g: Generator, names: dict) -> dict:
    """:func:`lab_state_dict` with the model's :func:`~jaxnn.interop.lab_names.lab_names` found already."""
    after, then = _recipe(model)
    sd = init.torch_state_dict(
        model,
        *sample_args,
        generator=g,
        rename=names["rename"],
        flatten_chw=names["flatten_chw"],
        after=after,
        **sample_kwargs,
    )
    if then is not None:
        then(sd, g)
    aliases = {f"{target}.bias": alias for alias, target in names["aliases"].items()}
    out = {}
    for key, value in sd.items():  # an alias follows its layer, where PyTorch registers it
        out[key] = value
        if key in aliases:
            out[f"{aliases[key]}.weight"], out[f"{aliases[key]}.bias"] = sd[key[: -len("bias")] + "weight"], value
    return out


def torch_init(
    model, *sample_args, torch_seed: int | None = None, generator: Generator | None = None, **sample_kwargs
) -> dict:
    """Flax variables of ``model`` equal to the lab's PyTorch model's weights after ``torch.manual_seed(torch_seed)``
    (or drawn from ``generator``, the default generator when neither is given). ``torch_seed`` reseeds the
    default generator, as ``torch.manual_seed`` does, so a run's later draws (batch order, dropout) go on from it."""
    from jaxnn.interop.lab_names import lab_names
    from jaxnn.interop.state_dict import from_state_dict

    if torch_seed is not None and generator is not None:
        raise ValueError("pass torch_seed or generator, not both")
    g = manual_seed(torch_seed) if torch_seed is not None else generator or default_generator
    names = lab_names(model, *sample_args, **sample_kwargs)  # once, for the draws and for the load
    sd = _lab_state_dict(model, sample_args, sample_kwargs, g, names)
    ignore = tuple(f"{alias}.{leaf}" for alias in names["aliases"] for leaf in ("weight", "bias"))
    return from_state_dict(
        model,
        sd,
        *sample_args,
        rename=names["rename"],
        flatten_chw=names["flatten_chw"],
        ignore=ignore,
        **sample_kwargs,
    )
