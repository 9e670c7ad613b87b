"""jaxnn: PyTorch-exact CNN and RNN building blocks in JAX/Flax.

Submodules: ``ops`` (pure conv/pool functions with torch.nn.functional semantics), ``nn`` (Linen layers),
``layout`` (NCHW/OIHW <-> NHWC/HWIO), ``models`` (the lab architectures), ``train`` (train state, pure steps,
loops, the driver), ``report`` (metric files, curves, progress), ``runtime`` (compiler options, compilation cache),
``precision`` (the float32 precision of every model's products, PyTorch's names), ``labs`` (the lab recipes and
their registry), ``data`` (the datasets by name, the shipped data, text, sequences), ``parallel`` (data parallel),
``checkpoint`` (orbax, ``.npz``), ``testing`` (the parity kit) and ``interop.torch`` (import it explicitly; it
needs PyTorch).
"""

import importlib

__version__ = "0.1.0"
__all__ = ["layout", "nn", "ops", "__version__"]


def __getattr__(name: str):
    # Imported on first use: ``import jaxnn`` alone does not start JAX, so that a command line is parsed (and a
    # multi-process run supervised) before it does.
    if name in ("layout", "nn", "ops"):
        return importlib.import_module(f"jaxnn.{name}")
    raise AttributeError(f"module 'jaxnn' has no attribute {name!r}")
