"""Any PyTorch ``state_dict`` in and out of a jaxnn model built from jaxnn layers, by structure; and safetensors.

A jaxnn variable at module path ``a/b`` with leaf ``kernel`` is PyTorch's ``a.b.weight`` (other leaves keep their
names: ``bias``, BatchNorm's ``weight``, ``running_mean``, ``running_var``, ``num_batches_tracked``, Embedding's
``weight``, the RNNs' ``weight_ih_l0``...), with the layout change the layer needs:

| jaxnn layer | jaxnn kernel | PyTorch weight |
| --- | --- | --- |
| ``Conv2d`` | ``(kh, kw, I, O)`` | ``(O, I, kh, kw)`` |
| ``ConvTranspose2d`` | ``(kh, kw, I, O // groups)`` | ``(I, O // groups, kh, kw)`` |
| ``Conv1d`` | ``(k, I, O)`` | ``(O, I, k)`` |
| ``Linear`` | ``(in, out)`` | ``(out, in)`` |

Where the names differ, ``rename`` maps a jaxnn module path (``'layer1/conv'``) to PyTorch's prefix
(``'layer1.0'``). A Linear layer that reads a flattened ``(C, H, W)`` map in PyTorch reads ``(H, W, C)`` in jaxnn:
name it in ``flatten_chw`` (``{'fc': (64, 7, 7)}``) and its rows are permuted. This is never guessed, and never
forgotten: a Linear whose input has exactly the features of the (H, W > 1) map computed before it, and that is not
named, is refused with the ``flatten_chw`` entry it needs (``{'fc': None}`` states that PyTorch's model flattens
channels last too, and the rows stay as they are).

Nothing here imports torch: tensors are read through ``.detach().cpu().numpy()`` when they have it, and the
safetensors files go through the ``safetensors`` package's NumPy API.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from flax import traverse_util

from jaxnn import layout

_KERNEL_TO_TORCH = {
    "Conv2d": layout.hwio_to_oihw,
    "ConvTranspose2d": layout.hwio_to_iohw,
    "Conv1d": layout.kio_to_oik,
    "Linear": layout.dense_to_linear,
}
_KERNEL_FROM_TORCH = {
    "Conv2d": layout.oihw_to_hwio,
    "ConvTranspose2d": layout.iohw_to_hwio,
    "Conv1d": layout.oik_to_kio,
    "Linear": layout.linear_to_dense,
}


def _numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def module_types(model: nn.Module, *sample_args, **sample_kwargs) -> dict[tuple[str, ...], str]:
    """The class name of every submodule of ``model`` by its path, traced (not run) on the sample inputs."""
    return _trace(model, *sample_args, **sample_kwargs)[0]


def _trace(model: nn.Module, *sample_args, **sample_kwargs):
    """``module_types``; for each Linear the shape of its input and of the feature map it reads flattened (the 4-D
    input of the reshape that feeds it, else the last 4-D output of a module that finished before it was called);
    and the shapes of the model's variables, from the same trace (tracing a large model costs as much as compiling
    a small one)."""
    types: dict[tuple[str, ...], str] = {}
    linear_inputs: dict[tuple[str, ...], tuple[tuple[int, ...], tuple[int, ...] | None]] = {}
    last_map: list[tuple[int, ...] | None] = [None]

    def interceptor(next_fun, args, kwargs, context):
        path = tuple(context.module.path)
        types.setdefault(path, type(context.module).__name__)
        if types[path] == "Linear" and args and hasattr(args[0], "shape"):
            linear_inputs.setdefault(path, (tuple(args[0].shape), last_map[0]))
        out = next_fun(*args, **kwargs)
        if getattr(out, "ndim", 0) == 4:
            last_map[0] = tuple(out.shape)
        return out

    with nn.intercept_methods(interceptor):
        jaxpr, template = jax.make_jaxpr(
            lambda: model.init(jax.random.key(0), *sample_args, **sample_kwargs), return_shape=True
        )()
    flattened = _flattened_maps(jaxpr.jaxpr)
    for path, (shape, _) in linear_inputs.items():
        scope = "/".join(path)
        for stack, source in flattened.items():
            if stack == scope or stack.endswith("/" + scope):
                linear_inputs[path] = (shape, source)
                break
    return types, linear_inputs, template


_PASS_THROUGH = ("convert_element_type", "copy")


def _producer(producers, var):
    """The equation that computed ``var`` (None for an input or a Literal, which no equation made)."""
    from jax.extend import core as jex

    return None if isinstance(var, jex.Literal) else producers.get(var)


def _flattened_maps(jaxpr) -> dict[str, tuple[int, ...]]:
    """name scope of a matrix product -> the 4-D map whose reshape (through dtype casts) is its left operand: a
    Linear reading a flattened feature map, wherever the flatten was (a function after the last module too)."""
    producers, found = {}, {}
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            producers[var] = eqn
        if eqn.primitive.name != "dot_general":
            continue
        source = _producer(producers, eqn.invars[0])
        while source is not None and source.primitive.name in _PASS_THROUGH:
            source = _producer(producers, source.invars[0])
        if source is not None and source.primitive.name == "reshape":
            shape = tuple(getattr(source.invars[0].aval, "shape", ()))
            if len(shape) == 4:
                found.setdefault(str(eqn.source_info.name_stack), shape)
    return found


def _check_names(types, linear_inputs, rename, flatten_chw) -> None:
    """Every ``rename`` key names a module of the model, every ``flatten_chw`` key a Linear whose input has
    ``C * H * W`` features, and a ``(C, H, W)`` that contradicts the traced (H, W, C) map before it is refused; so
    is a Linear that reads such a map flattened and is not named."""
    paths = {"/".join(p) for p in types if p}
    unknown = sorted(k for k in rename if k not in paths)
    if unknown:
        raise ValueError(f"rename: {unknown} name no module of the model; its modules are {sorted(paths)}")
    for module, chw in flatten_chw.items():
        path = tuple(module.split("/"))
        if types.get(path) != "Linear":
            what = f"a {types[path]}" if path in types else "no module"
            raise ValueError(f"flatten_chw: {module!r} names {what}; it must name a Linear that reads a flattened map")
        if chw is None:
            continue
        if len(chw) != 3 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in chw):
            raise ValueError(f"flatten_chw[{module!r}] must be (C, H, W) positive ints, got {chw!r}")
        (*_, features), before = linear_inputs.get(path, ((0,), None))
        if int(np.prod(chw)) != features:
            raise ValueError(
                f"flatten_chw[{module!r}] = {tuple(chw)} has {int(np.prod(chw))} features, but {module} takes "
                f"{features}"
            )
        if before is not None and int(np.prod(before[1:])) == features and tuple(chw) != (before[3], *before[1:3]):
            raise ValueError(
                f"flatten_chw[{module!r}] = {tuple(chw)} contradicts the model: {module} reads an (H, W, C) = "
                f"{before[1:]} map, which is (C, H, W) = {(before[3], *before[1:3])} in PyTorch's order"
            )
    for path, (shape, before) in linear_inputs.items():
        module = "/".join(path)
        if module in flatten_chw or before is None or int(np.prod(before[1:3])) == 1:
            continue
        if int(np.prod(before[1:])) == shape[-1]:
            chw = (before[3], *before[1:3])
            raise ValueError(
                f"{module} reads a flattened (H, W, C) = {before[1:]} map, which PyTorch flattens as (C, H, W): pass "
                f"flatten_chw={{{module!r}: {chw}}} (or {{{module!r}: None}} if the PyTorch model flattens channels "
                "last too)"
            )


class _Names:
    """The PyTorch key of every jaxnn variable, and how its array changes on the way."""

    def __init__(self, types, linear_inputs=None, rename=None, flatten_chw=None):
        self.types, self.rename, self.flatten_chw = types, dict(rename or {}), dict(flatten_chw or {})
        if linear_inputs is not None:
            _check_names(types, linear_inputs, self.rename, self.flatten_chw)
        self.flatten_chw = {k: v for k, v in self.flatten_chw.items() if v is not None}  # None: rows as they are

    def state_dict(self, variables: Mapping) -> dict[str, np.ndarray]:
        """:func:`to_state_dict` with this model's names (traced once)."""
        out = {}
        order = {path: i for i, path in enumerate(self.types)}  # the modules in the order the model calls them
        flat = _flat_variables(variables)
        for path in sorted(flat, key=lambda p: (order.get(tuple(p[1:-1]), len(order)), _leaf_rank(p[-1]))):
            value = flat[path]
            value = np.array(self.to_torch(path[1:], np.asarray(value)), order="C")
            if path[-1] == "num_batches_tracked":
                value = value.astype(np.int64)  # PyTorch's dtype for the counter
            out[self.key(path[1:])] = value
        return out

    def key(self, path: tuple[str, ...]) -> str:
        *modules, leaf = path
        prefix = "/".join(modules)
        for ours, theirs in sorted(self.rename.items(), key=lambda kv: -len(kv[0])):  # the longest match wins
            if prefix == ours or prefix.startswith(ours + "/"):
                prefix = theirs + prefix[len(ours) :]
                break
        prefix = prefix.replace("/", ".")
        leaf = "weight" if leaf == "kernel" else leaf
        return f"{prefix}.{leaf}" if prefix else leaf

    def kind(self, path) -> str | None:
        return self.types.get(tuple(path[:-1])) if path[-1] == "kernel" else None

    def to_torch(self, path, value):
        kind, module = self.kind(path), "/".join(path[:-1])
        if kind is None:
            return value
        if kind not in _KERNEL_TO_TORCH:
            raise ValueError(f"no PyTorch layout known for the kernel of {module} ({kind})")
        if module in self.flatten_chw:
            value = layout.hwc_flatten_to_chw(value, *self.flatten_chw[module])
        return _KERNEL_TO_TORCH[kind](value)

    def from_torch(self, path, value):
        kind, module = self.kind(path), "/".join(path[:-1])
        if kind is None:
            return value
        if kind not in _KERNEL_FROM_TORCH:
            raise ValueError(f"no PyTorch layout known for the kernel of {module} ({kind})")
        value = _KERNEL_FROM_TORCH[kind](value)
        if module in self.flatten_chw:
            value = layout.chw_flatten_to_hwc(value, *self.flatten_chw[module])
        return value


_LEAF_RANK = {"kernel": 0, "weight": 0, "bias": 1, "running_mean": 2, "running_var": 3, "num_batches_tracked": 4}
_RNN_LEAF = re.compile(r"(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?$")


def _leaf_rank(leaf: str) -> tuple:
    """PyTorch's order of a module's entries: weight, bias, then BatchNorm's statistics; an RNN's by layer and
    direction, then weight_ih, weight_hh, bias_ih, bias_hh, weight_hr."""
    if leaf in _LEAF_RANK:
        return (_LEAF_RANK[leaf],)
    m = _RNN_LEAF.match(leaf)
    if m:
        kind = {"weight_ih": 0, "weight_hh": 1, "bias_ih": 2, "bias_hh": 3, "weight_hr": 4}[f"{m[1]}_{m[2]}"]
        return (10, int(m[3]), bool(m[4]), kind)
    return (20, leaf)


def _flat_variables(variables: Mapping) -> dict[tuple[str, ...], Any]:
    """(collection, *module path, leaf) -> array, for the collections a state_dict holds."""
    out = {}
    for collection in ("params", "batch_stats"):
        if collection in variables:
            for path, value in traverse_util.flatten_dict(dict(variables[collection])).items():
                out[(collection, *path)] = value
    return out


def to_state_dict(
    model: nn.Module,
    variables: Mapping,
    *sample_args,
    rename: Mapping[str, str] | None = None,
    flatten_chw: Mapping[str, tuple[int, int, int] | None] | None = None,
    **sample_kwargs,
) -> dict[str, np.ndarray]:
    """``variables`` (``params`` and ``batch_stats``) of ``model`` as a PyTorch state_dict of NumPy arrays, in the
    model's order (``torch.from_numpy`` each to load it). ``sample_args`` are inputs of the model's shape."""
    types, linear_inputs, _ = _trace(model, *sample_args, **sample_kwargs)
    return _Names(types, linear_inputs, rename=rename, flatten_chw=flatten_chw).state_dict(variables)


def from_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, Any],
    *sample_args,
    rename: Mapping[str, str] | None = None,
    flatten_chw: Mapping[str, tuple[int, int, int] | None] | None = None,
    ignore: tuple[str, ...] = (),
    **sample_kwargs,
) -> dict:
    """A PyTorch state_dict (tensors or arrays) as ``{'params': ..., 'batch_stats': ...}`` of ``model``.

    The structure comes from ``model`` on ``sample_args``; every variable must find its key with the right shape,
    and every key of the state_dict must be used (or listed in ``ignore``, e.g. a module PyTorch registers twice):
    otherwise a ValueError names every missing, unexpected and mis-shaped key.
    """
    types, linear_inputs, template = _trace(model, *sample_args, **sample_kwargs)
    names = _Names(types, linear_inputs, rename=rename, flatten_chw=flatten_chw)
    arrays = {k: _numpy(v) for k, v in state_dict.items()}
    out: dict[tuple[str, ...], np.ndarray] = {}
    missing, misshaped, used = [], [], set()
    for path, spec in _flat_variables(template).items():
        key = names.key(path[1:])
        if key not in arrays:
            missing.append(key)
            continue
        used.add(key)
        try:
            value = names.from_torch(path[1:], arrays[key])
        except ValueError as e:  # not the layer's PyTorch layout (its rank; rows that are not C*H*W)
            # never the array as it came: a transposed Linear weight has the kernel's shape and would load silently
            misshaped.append(f"{key}: {tuple(arrays[key].shape)} is not PyTorch's layout here ({e})")
            continue
        if tuple(value.shape) != tuple(spec.shape):
            misshaped.append(
                f"{key}: {tuple(arrays[key].shape)} gives {tuple(value.shape)}, the model needs {tuple(spec.shape)}"
            )
            continue
        out[path] = np.array(value, dtype=spec.dtype, order="C")
    unexpected = sorted(set(arrays) - used - set(ignore))
    if missing or unexpected or misshaped:
        parts = [
            f"missing {missing}" if missing else "",
            f"unexpected {unexpected}" if unexpected else "",
            f"mis-shaped {misshaped}" if misshaped else "",
        ]
        raise ValueError(f"state_dict does not fit {type(model).__name__}: " + "; ".join(p for p in parts if p))
    return traverse_util.unflatten_dict(out)


def save_safetensors(state_dict: Mapping[str, Any], path: str | Path) -> Path:
    """Write a state_dict (arrays or tensors) as a ``.safetensors`` file that ``safetensors.torch.load_file`` reads."""
    from safetensors.numpy import save_file

    path = Path(path)
    save_file({k: np.array(_numpy(v), order="C") for k, v in state_dict.items()}, str(path))
    return path


def load_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """A ``.safetensors`` file as a state_dict of NumPy arrays, without importing torch."""
    from safetensors.numpy import load_file

    return load_file(str(path))


def load_state_dict_file(path: str | Path) -> dict[str, np.ndarray]:
    """A state_dict file as NumPy arrays: ``.safetensors`` (no torch needed), or ``.pth``/``.pt`` written by
    ``torch.save(model.state_dict(), path)`` (read by :func:`jaxnn.interop.torch.load_pth`, which imports torch and
    loads tensors only, never pickled code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"state_dict file {path} does not exist")
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    if path.suffix in (".pth", ".pt"):
        from jaxnn.interop.torch import load_pth

        return load_pth(path)
    raise ValueError(f"state_dict file {path}: expected a .safetensors, .pth or .pt file")
