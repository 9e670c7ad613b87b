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

from jaxnn.interop import state_dict as state_dict_io
from jaxnn.interop.lab_names import CNN_NAMES
from jaxnn.nn import Linear
from jaxnn.nn.rnn import RNN

_MNIST_INPUT = np.zeros((1, 28, 28, 1), np.float32)


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _spec(model):
    cls = model if isinstance(model, type) else type(model)
    if cls not in CNN_NAMES:
        raise TypeError(f"no PyTorch conversion for {cls.__name__}; known: {[c.__name__ for c in CNN_NAMES]}")
    return (model() if isinstance(model, type) else model), CNN_NAMES[cls]


def cnn_params_from_torch(state_dict: Mapping[str, Any], model) -> dict:
    """A lab CNN's PyTorch state_dict -> Flax params for ``model`` (MnistCNN or DeepCNN, class or instance), through
    :func:`jaxnn.interop.state_dict.from_state_dict`."""
    model, spec = _spec(model)
    aliases = tuple(f"{a}.{leaf}" for a in spec["aliases"] for leaf in ("weight", "bias"))
    variables = state_dict_io.from_state_dict(
        model, state_dict, _MNIST_INPUT, rename=spec["rename"], flatten_chw=spec["flatten_chw"], ignore=aliases
    )
    return variables["params"]


def cnn_params_to_torch(params: Mapping[str, Any], model) -> OrderedDict[str, torch.Tensor]:
    """Flax params of ``model`` -> a state_dict that the lab's PyTorch model loads with ``strict=True``."""
    model, spec = _spec(model)
    sd = state_dict_io.to_state_dict(
        model, {"params": params}, _MNIST_INPUT, rename=spec["rename"], flatten_chw=spec["flatten_chw"]
    )
    out = OrderedDict((k, _tensor(v)) for k, v in sd.items())
    for alias, target in spec["aliases"].items():
        for leaf in ("weight", "bias"):
            out[f"{alias}.{leaf}"] = out[f"{target}.{leaf}"]
    return out


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a).copy())


# ---------------------------------------------------------------------------------------------------------------
# Recurrent networks: jaxnn.models.RNN uses PyTorch's parameter names and shapes, so nothing is renamed.
# ---------------------------------------------------------------------------------------------------------------


def rnn_model_of(state_dict: Mapping[str, Any]) -> tuple[RNN, int]:
    """The :class:`jaxnn.models.RNN` whose params a ``torch.nn.RNN``/``LSTM``/``GRU`` state_dict holds, read off
    its keys and shapes, and the input size. (``nonlinearity`` leaves no trace in the weights: tanh is assumed.)"""
    bad = [k for k in state_dict if not k.startswith(("weight_", "bias_"))]
    if bad or "weight_hh_l0" not in state_dict:
        raise KeyError(f"not the parameters of a torch.nn.RNN/LSTM/GRU: {bad or sorted(state_dict)}")
    w_ih, w_hh = _np(state_dict["weight_ih_l0"]), _np(state_dict["weight_hh_l0"])
    proj = _np(state_dict["weight_hr_l0"]).shape[0] if "weight_hr_l0" in state_dict else 0
    hidden = _np(state_dict["weight_hr_l0"]).shape[1] if proj else w_hh.shape[1]
    gates = w_ih.shape[0] // hidden
    if gates not in (1, 3, 4):
        raise KeyError(f"weight_ih_l0 has {w_ih.shape[0]} rows for hidden size {hidden}: not an RNN, GRU or LSTM")
    layers = 1 + max(int(k.split("_l")[1].split("_")[0]) for k in state_dict)
    model = RNN(
        hidden,
        layers,
        bias="bias_ih_l0" in state_dict,
        bidirectional="weight_ih_l0_reverse" in state_dict,
        proj_size=proj,
        cell={1: "rnn", 3: "gru", 4: "lstm"}[gates],
    )
    return model, w_ih.shape[1]


def rnn_params_from_torch(state_dict: Mapping[str, Any]) -> dict:
    """A ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` state_dict -> params of :class:`jaxnn.models.RNN` (same names),
    through :func:`jaxnn.interop.state_dict.from_state_dict`, which checks every key and shape."""
    model, input_size = rnn_model_of(state_dict)
    return state_dict_io.from_state_dict(model, state_dict, np.zeros((1, 1, input_size), np.float32))["params"]


def rnn_params_to_torch(params: Mapping[str, Any]) -> OrderedDict[str, torch.Tensor]:
    """Params of :class:`jaxnn.models.RNN` -> a state_dict that the PyTorch module loads with ``strict=True``."""
    model, input_size = rnn_model_of(params)
    sd = state_dict_io.to_state_dict(model, {"params": params}, np.zeros((1, 1, input_size), np.float32))
    return OrderedDict((k, _tensor(v)) for k, v in sd.items())


def char_rnn_params_from_torch(state_dict: Mapping[str, Any], rnn: str = "rnn", fc: str | None = "fc") -> dict:
    """The labs' ``Net`` (``self.rnn`` + ``self.fc``) state_dict -> :class:`jaxnn.models.CharRNN` params.

    With ``fc=None`` (no head) every key belongs to the RNN and may carry no prefix (a bare ``torch.nn.RNN``).
    """
    if fc is None and not any(k.startswith(f"{rnn}.") for k in state_dict):
        return {"rnn": rnn_params_from_torch(state_dict)}
    rnn_part = {k[len(rnn) + 1 :]: v for k, v in state_dict.items() if k.startswith(f"{rnn}.")}
    params = {"rnn": rnn_params_from_torch(rnn_part)}
    if fc is not None:
        params["fc"] = _linear_from_torch({k: v for k, v in state_dict.items() if k.startswith(f"{fc}.")}, fc)
    prefixes = (f"{rnn}.", f"{fc}.") if fc is not None else (f"{rnn}.",)
    unused = sorted(k for k in state_dict if not k.startswith(prefixes))
    if unused:
        raise KeyError(f"state_dict has keys of neither {rnn!r} nor {fc!r}: {unused}")
    return params


def _linear_from_torch(fc_part: Mapping[str, Any], fc: str) -> dict:
    """``{fc}.weight``/``{fc}.bias`` -> the params of a jaxnn Linear, through the generic importer."""
    if f"{fc}.weight" not in fc_part:
        raise KeyError(f"state_dict lacks {fc}.weight")
    weight = _np(fc_part[f"{fc}.weight"])
    model = Linear(weight.shape[0], bias=f"{fc}.bias" in fc_part)
    sd = {k[len(fc) + 1 :]: v for k, v in fc_part.items()}
    return state_dict_io.from_state_dict(model, sd, np.zeros((1, weight.shape[1]), np.float32))["params"]


def char_rnn_params_to_torch(
    params: Mapping[str, Any], rnn: str = "rnn", fc: str = "fc", bare: bool = False
) -> OrderedDict[str, torch.Tensor]:
    """:class:`jaxnn.models.CharRNN` params -> the labs' ``Net`` state_dict (or, ``bare``, a ``torch.nn.RNN``'s)."""
    sd = OrderedDict((k if bare else f"{rnn}.{k}", v) for k, v in rnn_params_to_torch(params["rnn"]).items())
    if "fc" in params:
        kernel = _np(params["fc"]["kernel"])
        model = Linear(kernel.shape[1], bias="bias" in params["fc"])
        fc_sd = state_dict_io.to_state_dict(model, {"params": params["fc"]}, np.zeros((1, kernel.shape[0]), np.float32))
        sd.update((f"{fc}.{k}", _tensor(v)) for k, v in fc_sd.items())
    return sd


def load_pth(path) -> dict[str, np.ndarray]:
    """A ``torch.save(model.state_dict(), path)`` file as NumPy arrays, read with ``weights_only=True`` (tensors and
    containers only: a file that holds pickled code is refused by torch)."""
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{path} does not hold a state_dict (a mapping of names to tensors)")
    return {k: v.detach().numpy().copy() for k, v in state_dict.items()}
