"""Flax Linen models of the labs: the CNNs, VGG and ResNet (lab 10), the scanned RNNs and their lab models (lab 11)."""

from jaxnn.models.cnn import DeepCNN, FolderCNN, MnistCNN
from jaxnn.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from jaxnn.models.rnn import RNN, CharRNN, RNNRegressor, generate
from jaxnn.models.seq2seq import Seq2Seq
from jaxnn.models.vgg import VGG

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
    "RNN",
    "CharRNN",
    "RNNRegressor",
    "Seq2Seq",
    "generate",
]
