"""Lab 10-0: pooling with jaxnn.ops (PyTorch semantics, NHWC layout).

The same command as ``python -m jaxnn pooling``; its flags and printout:
jaxnn/cli/commands/pooling.py.
"""

from jaxnn.cli import launch

if __name__ == "__main__":
    launch("pooling")
