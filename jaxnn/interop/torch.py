"""PyTorch state_dicts <-> Flax params for the jaxnn models. Importing this module imports torch.

The conversions are exact (a transpose or a row permutation, no arithmetic), so a round trip gives back the same
bits. Layouts: conv weights OIHW <-> HWIO, Linear weights (out, in) <-> (in, out), and the first dense layer after a
flatten has its rows reordered from PyTorch's (C, H, W) flatten order to NHWC's (H, W, C).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from jaxnn import layout
from jaxnn.models.cnn import DeepCNN, MnistCNN

# model class -> (conv blocks: flax name, torch prefix), (dense layers: flax name, torch prefix, flattened CHW or None),
# and aliases PyTorch's state_dict repeats (the lab registers fc1 both as self.fc1 and inside layer4).
_CNN_SPECS = {
    MnistCNN: ([("layer1", "layer1.0"), ("layer2", "layer2.0")], [("fc", "fc", (64, 7, 7))], {}),
    DeepCNN: (
        [("layer1", "layer1.0"), ("layer2", "layer2.0"), ("layer3", "layer3.0")],
        [("fc1", "fc1", (128, 4, 4)), ("fc2", "fc2", None)],
        {"layer4.0": "fc1"},
    ),
}


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _spec(model):
    cls = model if isinstance(model, type) else type(model)
    if cls not in _CNN_SPECS:
        raise TypeError(f"no PyTorch conversion for {cls.__name__}; known: {[c.__name__ for c in _CNN_SPECS]}")
    return _CNN_SPECS[cls]


def cnn_params_from_torch(state_dict: Mapping[str, Any], model) -> dict:
    """A lab CNN's PyTorch state_dict -> Flax params for ``model`` (MnistCNN or DeepCNN, class or instance)."""
    convs, denses, _ = _spec(model)
    sd = {k: _np(v) for k, v in state_dict.items()}
    expected = {f"{p}.{n}" for _, p in convs for n in ("weight", "bias")} | {
        f"{p}.{n}" for _, p, _ in denses for n in ("weight", "bias")
    }
    missing = sorted(expected - set(sd))
    if missing:
        raise KeyError(f"state_dict lacks {missing}; has {sorted(sd)}")
    params: dict = {}
    for name, prefix in convs:
        params[name] = {"conv": {"kernel": layout.oihw_to_hwio(sd[f"{prefix}.weight"]), "bias": sd[f"{prefix}.bias"]}}
    for name, prefix, chw in denses:
        kernel = layout.linear_to_dense(sd[f"{prefix}.weight"])
        if chw is not None:
            kernel = layout.chw_flatten_to_hwc(kernel, *chw)
        params[name] = {"kernel": np.ascontiguousarray(kernel), "bias": sd[f"{prefix}.bias"]}
    return _copy_tree(params)


def cnn_params_to_torch(params: Mapping[str, Any], model) -> OrderedDict[str, torch.Tensor]:
    """Flax params of ``model`` -> a state_dict that the lab's PyTorch model loads with ``strict=True``."""
    convs, denses, aliases = _spec(model)
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, prefix in convs:
        sd[f"{prefix}.weight"] = _tensor(layout.hwio_to_oihw(_np(params[name]["conv"]["kernel"])))
        sd[f"{prefix}.bias"] = _tensor(_np(params[name]["conv"]["bias"]))
    for name, prefix, chw in denses:
        kernel = _np(params[name]["kernel"])
        if chw is not None:
            kernel = layout.hwc_flatten_to_chw(kernel, *chw)
        sd[f"{prefix}.weight"] = _tensor(layout.dense_to_linear(kernel))
        sd[f"{prefix}.bias"] = _tensor(_np(params[name]["bias"]))
    for alias, target in aliases.items():
        sd[f"{alias}.weight"] = sd[f"{target}.weight"]
        sd[f"{alias}.bias"] = sd[f"{target}.bias"]
    return sd


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a).copy())


def _copy_tree(tree):
    if isinstance(tree, dict):
        return {k: _copy_tree(v) for k, v in tree.items()}
    return np.ascontiguousarray(tree).copy()


# ---------------------------------------------------------------------------------------------------------------
# Recurrent networks: jaxnn.models.RNN uses PyTorch's parameter names and shapes, so nothing is renamed.
# ---------------------------------------------------------------------------------------------------------------


def rnn_params_from_torch(state_dict: Mapping[str, Any]) -> dict:
    """A ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` state_dict -> params of :class:`jaxnn.models.RNN` (same names)."""
    bad = [k for k in state_dict if not k.startswith(("weight_", "bias_"))]
    if bad:
        raise KeyError(f"not RNN parameters: {bad}")
    return {k: _np(v).copy() for k, v in state_dict.items()}


def rnn_params_to_torch(params: Mapping[str, Any]) -> OrderedDict[str, torch.Tensor]:
    """Params of :class:`jaxnn.models.RNN` -> a state_dict that the PyTorch module loads with ``strict=True``."""
    return OrderedDict((k, _tensor(_np(v))) for k, v in params.items())


def char_rnn_params_from_torch(state_dict: Mapping[str, Any], rnn: str = "rnn", fc: str | None = "fc") -> dict:
    """The labs' ``Net`` (``self.rnn`` + ``self.fc``) state_dict -> :class:`jaxnn.models.CharRNN` params.

    With ``fc=None`` (no head) every key belongs to the RNN and may carry no prefix (a bare ``torch.nn.RNN``).
    """
    if fc is None and not any(k.startswith(f"{rnn}.") for k in state_dict):
        return {"rnn": rnn_params_from_torch(state_dict)}
    params = {
        "rnn": rnn_params_from_torch({k[len(rnn) + 1 :]: v for k, v in state_dict.items() if k.startswith(f"{rnn}.")})
    }
    if fc is not None:
        params["fc"] = {
            "kernel": layout.linear_to_dense(_np(state_dict[f"{fc}.weight"])).copy(),
            "bias": _np(state_dict[f"{fc}.bias"]).copy(),
        }
    return params


def char_rnn_params_to_torch(
    params: Mapping[str, Any], rnn: str = "rnn", fc: str = "fc", bare: bool = False
) -> OrderedDict[str, torch.Tensor]:
    """:class:`jaxnn.models.CharRNN` params -> the labs' ``Net`` state_dict (or, ``bare``, a ``torch.nn.RNN``'s)."""
    sd = OrderedDict((k if bare else f"{rnn}.{k}", v) for k, v in rnn_params_to_torch(params["rnn"]).items())
    if "fc" in params:
        sd[f"{fc}.weight"] = _tensor(layout.dense_to_linear(_np(params["fc"]["kernel"])))
        sd[f"{fc}.bias"] = _tensor(_np(params["fc"]["bias"]))
    return sd
