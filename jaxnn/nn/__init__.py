"""Flax Linen layers with PyTorch's names, defaults and initialisation.

- convolution, linear and pooling layers over :mod:`jaxnn.ops` (:mod:`jaxnn.nn.layers`);
- recurrent cells, one time step each (:mod:`jaxnn.nn.recurrent`), and ``RNN``, the time loop around them
  (``torch.nn.RNN``/``LSTM``/``GRU``, :mod:`jaxnn.nn.rnn`);
- ``Embedding`` (:mod:`jaxnn.nn.embedding`);
- ``BatchNorm1d``/``BatchNorm2d`` with PyTorch's running statistics (:mod:`jaxnn.nn.normalization`);
- ``torch.nn.init``'s rules as Flax initializers (:mod:`jaxnn.nn.init`).
"""

from jaxnn.nn import init as init  # the submodule, as torch.nn.init
from jaxnn.nn.embedding import Embedding
from jaxnn.nn.layers import (
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Dropout2d,
    Linear,
    MaxPool2d,
    torch_uniform,
    xavier_uniform,
)
from jaxnn.nn.normalization import BatchNorm1d, BatchNorm2d
from jaxnn.nn.recurrent import GRUCell, LSTMCell, RNNCell
from jaxnn.nn.rnn import RNN

__all__ = [
    "Conv2d",
    "ConvTranspose2d",
    "Conv1d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "Dropout",
    "Dropout2d",
    "Linear",
    "MaxPool2d",
    "AvgPool2d",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "RNN",
    "Embedding",
    "BatchNorm1d",
    "BatchNorm2d",
    "torch_uniform",
    "xavier_uniform",
]
