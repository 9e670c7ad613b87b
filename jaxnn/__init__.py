"""jaxnn: PyTorch-exact CNN and RNN building blocks in JAX/Flax.

Submodules: ``ops`` (pure conv/pool functions), ``nn`` (Linen layers), ``layout`` (NCHW/OIHW <-> NHWC/HWIO),
``models``, ``train``, ``data`` and ``interop.torch`` (import it explicitly; it needs PyTorch).
"""

from jaxnn import layout, nn, ops

__version__ = "0.1.0"
__all__ = ["layout", "nn", "ops", "__version__"]
