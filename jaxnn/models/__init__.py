"""Flax Linen models of the labs: the MNIST CNNs (lab 10) and the scanned RNNs (lab 11)."""

from jaxnn.models.cnn import DeepCNN, MnistCNN
from jaxnn.models.rnn import RNN, CharRNN, generate

__all__ = ["MnistCNN", "DeepCNN", "RNN", "CharRNN", "generate"]
