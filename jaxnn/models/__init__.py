"""Flax Linen models of the labs: the CNNs, VGG and ResNet (lab 10), the RNN lab models (lab 11). ``RNN``, the
library layer, lives in :mod:`jaxnn.nn` and stays importable from here."""

from jaxnn.models.cnn import DeepCNN, FolderCNN, MnistCNN
from jaxnn.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from jaxnn.models.rnn import CharRNN, RNNRegressor, generate
from jaxnn.models.seq2seq import Seq2Seq
from jaxnn.models.vgg import VGG
from jaxnn.nn.rnn import RNN as RNN  # the library layer, importable from here too

__all__ = [
    "MnistCNN",
    "DeepCNN",
    "FolderCNN",
    "VGG",
    "ResNet",
    "BasicBlock",
    "Bottleneck",
    "resnet18",
    "resnet34",
    "resnet50",
    "CharRNN",
    "RNNRegressor",
    "Seq2Seq",
    "generate",
]
