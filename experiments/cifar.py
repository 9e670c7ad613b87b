"""Labs 10-5 and 10-6: VGG and ResNet with SGD + momentum and StepLR, on CIFAR-10 or the shipped MNIST.

The same command as ``python -m jaxnn cifar``; its flags and printout:
jaxnn/cli/commands/cifar.py.
"""

from jaxnn.cli import launch

if __name__ == "__main__":
    launch("cifar")
