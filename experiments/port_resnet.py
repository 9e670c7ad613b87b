"""Port a PyTorch ResNet-18 to jaxnn, check it layer by layer against PyTorch, then fine-tune it on MNIST.

The same command as ``python -m jaxnn port_resnet``; its flags and printout:
jaxnn/cli/commands/port_resnet.py.
"""

from jaxnn.cli import launch

if __name__ == "__main__":
    launch("port_resnet")
