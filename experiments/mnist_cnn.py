"""Labs 10-1 and 10-2: the MNIST CNN and the deep CNN, trained with Adam on the real MNIST.

The same command as ``python -m jaxnn mnist_cnn``; its flags and printout:
jaxnn/cli/commands/mnist_cnn.py.
"""

from jaxnn.cli import launch

if __name__ == "__main__":
    launch("mnist_cnn")
