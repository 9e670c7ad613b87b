"""Convolution, pooling and losses with PyTorch's semantics, on NHWC activations and HWIO kernels.

Every convolution and pooling op takes a batched ``(N, H, W, C)`` or an unbatched ``(H, W, C)`` input and returns the
same rank. Arguments that describe a window (``kernel_size``, ``stride``, ``padding``, ``dilation``) take an int or
an ``(h, w)`` pair, exactly like ``torch.nn.functional``. The functions are pure: they jit, vmap and differentiate,
and their values, indices and gradients equal PyTorch's (max-pool gradients go to the first maximum of each window,
as in PyTorch).

Shapes are checked in Python before anything is traced, so bad input raises a ``ValueError`` or ``TypeError`` that
names the argument and the shapes rather than an XLA error.

One module per topic: :mod:`~jaxnn.ops.conv` (convolution, transposed convolution), :mod:`~jaxnn.ops.pooling`
(max, average and adaptive pooling), :mod:`~jaxnn.ops.unpool`, :mod:`~jaxnn.ops.padding`, :mod:`~jaxnn.ops.one_d`
(the 1-D family), :mod:`~jaxnn.ops.loss` (PyTorch's losses and their options) and :mod:`~jaxnn.ops.window`, the
argument checks and window helpers the layers share.
"""

from jaxnn.ops import window as window
from jaxnn.ops.conv import conv2d, conv_transpose2d, conv_transpose_output_size, convolve2d
from jaxnn.ops.loss import *  # noqa: F403 (every loss, by loss.__all__)
from jaxnn.ops.loss import __all__ as _losses
from jaxnn.ops.one_d import adaptive_avg_pool1d, avg_pool1d, conv1d, max_pool1d
from jaxnn.ops.padding import PAD_MODES as PAD_MODES
from jaxnn.ops.padding import pad
from jaxnn.ops.pooling import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d
from jaxnn.ops.unpool import max_unpool2d
from jaxnn.ops.window import IntPair as IntPair
from jaxnn.ops.window import Padding as Padding
from jaxnn.ops.window import check_real as check_real
from jaxnn.ops.window import compute_dtype as compute_dtype
from jaxnn.ops.window import conv_output_size

__all__ = [
    *_losses,
    "conv_output_size",
    "conv_transpose_output_size",
    "conv2d",
    "convolve2d",
    "conv_transpose2d",
    "pad",
    "max_pool2d",
    "avg_pool2d",
    "max_unpool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "conv1d",
    "max_pool1d",
    "avg_pool1d",
    "adaptive_avg_pool1d",
]
