"""Lab 10-0: convolution basics with jaxnn.ops (PyTorch semantics, NHWC layout).

The same command as ``python -m jaxnn conv_basics``; its flags and printout:
jaxnn/cli/commands/conv_basics.py.
"""

from jaxnn.cli import launch

if __name__ == "__main__":
    launch("conv_basics")
