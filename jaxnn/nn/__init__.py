"""Flax Linen layers with PyTorch's names, defaults and initialisation.

- convolution, linear and pooling layers over :mod:`jaxnn.ops` (:mod:`jaxnn.nn.layers`);
- recurrent cells, one time step each (:mod:`jaxnn.nn.recurrent`);
- ``Embedding`` (:mod:`jaxnn.nn.embedding`);
- ``BatchNorm1d``/``BatchNorm2d`` with PyTorch's running statistics (:mod:`jaxnn.nn.normalization`).
"""

from jaxnn.nn.embedding import Embedding
from jaxnn.nn.layers import AvgPool2d, Conv2d, Linear, MaxPool2d, torch_uniform, xavier_uniform
from jaxnn.nn.normalization import BatchNorm1d, BatchNorm2d
from jaxnn.nn.recurrent import GRUCell, LSTMCell, RNNCell

__all__ = [
    "Conv2d",
    "Linear",
    "MaxPool2d",
    "AvgPool2d",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "Embedding",
    "BatchNorm1d",
    "BatchNorm2d",
    "torch_uniform",
    "xavier_uniform",
]
