"""Flax Linen models of the labs: the MNIST CNNs (lab 10), the scanned RNNs and their lab models (lab 11)."""

from jaxnn.models.cnn import DeepCNN, MnistCNN
from jaxnn.models.rnn import RNN, CharRNN, RNNRegressor, generate
from jaxnn.models.seq2seq import Seq2Seq

__all__ = ["MnistCNN", "DeepCNN", "RNN", "CharRNN", "RNNRegressor", "Seq2Seq", "generate"]
