"""``torch.nn.init`` and PyTorch's default initialisation of each layer, drawn from a :class:`Generator`: the
weights a PyTorch model has after ``torch.manual_seed(seed)`` and its construction, as a PyTorch state_dict.

``torch_state_dict(model, *sample_args, generator=g)`` draws every parameter of a jaxnn model in its PyTorch
state_dict order with the default initialisation of its layer (``Conv*``/``Linear``: ``kaiming_uniform_(a=sqrt(5))``
and a uniform bias; ``Embedding``: ``normal_``; ``RNN``/``LSTM``/``GRU``: ``uniform_(-1/sqrt(hidden),
1/sqrt(hidden))`` for each tensor; BatchNorm: ones and zeros, no draw). That is PyTorch's construction order where
the model registers its modules in the order it calls them. A re-initialisation inside ``__init__`` goes in
``after``; one after construction is done on the result, in the same order::

    g = jaxnn.random.Generator().manual_seed(777)
    sd = init.torch_state_dict(MnistCNN(), x[:1], generator=g, rename=..., flatten_chw=...)
    sd["fc.weight"] = init.xavier_uniform_(sd["fc.weight"], generator=g)
    variables = from_state_dict(MnistCNN(), sd, x[:1], rename=..., flatten_chw=...)

:mod:`jaxnn.random.models` does this for every lab model (``torch_init(model, x, torch_seed=777)``).
"""

from __future__ import annotations

import math

import numpy as np

from jaxnn.random.generator import Generator, default_generator

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "xavier_uniform_",
    "xavier_normal_",
    "torch_state_dict",
]


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """``torch.nn.init.calculate_gain``."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"nonlinearity: unsupported {nonlinearity!r}")


def _fans(shape) -> tuple[int, int]:
    """PyTorch's fan_in and fan_out of a weight in PyTorch's layout ``(out, in, *kernel)``."""
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a weight of 2 or more dimensions, got shape {tuple(shape)}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _g(generator):
    return generator or default_generator


def uniform_(tensor: np.ndarray, a: float = 0.0, b: float = 1.0, generator: Generator | None = None) -> np.ndarray:
    """``torch.nn.init.uniform_``: a new array of ``tensor``'s shape and dtype."""
    return _g(generator).uniform(tensor.shape, a, b, tensor.dtype)


def normal_(tensor: np.ndarray, mean: float = 0.0, std: float = 1.0, generator: Generator | None = None) -> np.ndarray:
    """``torch.nn.init.normal_``."""
    return _g(generator).normal(tensor.shape, mean, std, tensor.dtype)


def kaiming_uniform_(
    tensor: np.ndarray,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Generator | None = None,
) -> np.ndarray:
    """``torch.nn.init.kaiming_uniform_`` on a weight in PyTorch's layout."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: np.ndarray,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Generator | None = None,
) -> np.ndarray:
    """``torch.nn.init.kaiming_normal_`` on a weight in PyTorch's layout."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)


def _kaiming_std(tensor: np.ndarray, a: float, mode: str, nonlinearity: str) -> float:
    """The standard deviation both Kaiming initialisers aim at: ``gain / sqrt(fan)``."""
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = _fans(tensor.shape)[0 if mode == "fan_in" else 1]
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def xavier_uniform_(tensor: np.ndarray, gain: float = 1.0, generator: Generator | None = None) -> np.ndarray:
    """``torch.nn.init.xavier_uniform_``."""
    fan_in, fan_out = _fans(tensor.shape)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: np.ndarray, gain: float = 1.0, generator: Generator | None = None) -> np.ndarray:
    """``torch.nn.init.xavier_normal_``."""
    fan_in, fan_out = _fans(tensor.shape)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


_WEIGHTED = ("Conv2d", "Conv1d", "ConvTranspose2d", "Linear")


def torch_state_dict(
    model, *sample_args, generator: Generator | None = None, rename=None, flatten_chw=None, after=None, **kw
):
    """The PyTorch state_dict (NumPy, PyTorch's layouts and order) of ``model``'s layers initialised as PyTorch
    initialises them on construction, drawn from ``generator`` in the state_dict's order (see the module's note).

    ``after`` maps a layer's PyTorch name to ``fn(state_dict, generator)``, called as soon as that layer is drawn:
    a re-initialisation inside the model's ``__init__`` (``xavier_uniform_(self.fc1.weight)`` before ``fc2`` is
    built) that changes the state_dict in place."""
    import jax

    from jaxnn.interop.state_dict import _Names, _trace

    g = _g(generator)
    types, linear_inputs, template = _trace(model, *sample_args, **kw)
    names = _Names(types, linear_inputs, rename=rename, flatten_chw=flatten_chw)
    # keys, shapes and dtypes; floats in float32, PyTorch's default dtype, in which its modules draw (also for a
    # jaxnn model traced with float64 enabled: PyTorch's way to float64 is .double() after construction)
    zeros = names.state_dict(
        jax.tree.map(
            lambda s: np.zeros(s.shape, np.float32 if np.issubdtype(s.dtype, np.floating) else s.dtype), template
        )
    )
    kind_of = {names.key((*path, "_"))[:-2] if path else "": kind for path, kind in types.items()}  # "": the model
    after = dict(after or {})
    unknown = sorted(set(after) - set(kind_of))
    if unknown:
        raise ValueError(f"after: {unknown} name no layer of the model; its layers are {sorted(kind_of)}")
    out: dict[str, np.ndarray] = {}
    for key, like in zeros.items():
        prefix, leaf = _split(key)
        if out and (last := _split(next(reversed(out)))[0]) != prefix and last in after:
            after.pop(last)(out, g)
        kind = kind_of.get(prefix, "")
        if kind in _WEIGHTED and leaf == "weight":
            out[key] = kaiming_uniform_(like, a=math.sqrt(5), generator=g)
        elif kind in _WEIGHTED and leaf == "bias":
            # the weight's fan_in (ConvTranspose2d's weight is (in, out // groups, k, k): dim 1 times the kernel)
            fan_in = _fans(out[_key(prefix, "weight")].shape)[0]
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            out[key] = uniform_(like, -bound, bound, g)
        elif kind == "Embedding":
            out[key] = normal_(like, generator=g)
        elif kind == "RNN":
            hidden = _rnn_hidden(zeros, prefix)
            out[key] = uniform_(like, -1 / math.sqrt(hidden), 1 / math.sqrt(hidden), g)
        elif leaf in ("weight", "running_var"):  # BatchNorm
            out[key] = np.ones_like(like)
        else:  # BatchNorm's bias, running_mean and num_batches_tracked (int64 already)
            out[key] = like
    for fn in after.values():  # the last layer's
        fn(out, g)
    return out


def _split(key: str) -> tuple[str, str]:
    """A state_dict key's layer and leaf: ``('layer1.0', 'weight')``, or ``('', 'weight_ih_l0')`` for a bare layer."""
    return tuple(key.rsplit(".", 1)) if "." in key else ("", key)


def _key(prefix: str, leaf: str) -> str:
    """A state_dict key: ``prefix.leaf``, or ``leaf`` for the model's own parameters (a bare layer)."""
    return f"{prefix}.{leaf}" if prefix else leaf


def _rnn_hidden(shapes, prefix) -> int:
    """The hidden size: ``weight_hr_l0``'s columns with ``proj_size``, else ``weight_hh_l0``'s."""
    projection = shapes.get(_key(prefix, "weight_hr_l0"))
    return int((projection if projection is not None else shapes[_key(prefix, "weight_hh_l0")]).shape[1])
