"""Lab 11-5's sequence-to-sequence translator: an Embedding + GRU encoder and an Embedding + GRU decoder.

The lab feeds one word at a time through ``nn.GRU``; here a whole padded batch of sentences goes through
:class:`jaxnn.models.RNN` with ``seq_lengths`` (PyTorch's packed semantics), so the encoder's final state of each
sentence is its state after its own last word, exactly as the lab's word-by-word loop computes it.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnn.nn import Embedding, Linear
from jaxnn.nn.rnn import RNN


class Encoder(nn.Module):
    """``Embedding(vocab_size, hidden_size)`` -> ``GRU(hidden_size, hidden_size)``; returns the final state."""

    vocab_size: int
    hidden_size: int

    @nn.compact
    def __call__(self, tokens: jax.Array, lengths: jax.Array) -> jax.Array:
        """tokens (B, S) int, lengths (B,) in 1..S -> h (1, B, H), each sentence's state after its last word."""
        x = Embedding(self.vocab_size, self.hidden_size, name="embedding")(tokens)
        _, h = RNN(self.hidden_size, cell="gru", batch_first=True, name="gru")(x, seq_lengths=lengths)
        return h


class Decoder(nn.Module):
    """``Embedding`` -> ``GRU`` -> ``Linear`` -> ``LogSoftmax``: next-word log-probabilities from the previous word."""

    vocab_size: int
    hidden_size: int

    @nn.compact
    def __call__(self, tokens: jax.Array, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        """tokens (B, T) int (teacher forcing: the previous target words), h (1, B, H) -> ((B, T, V), h)."""
        x = Embedding(self.vocab_size, self.hidden_size, name="embedding")(tokens)
        x, h = RNN(self.hidden_size, cell="gru", batch_first=True, name="gru")(x, h)
        return nn.log_softmax(Linear(self.vocab_size, name="out")(x), axis=-1), h


class Seq2Seq(nn.Module):
    """The lab's encoder and decoder, ``hidden_size`` 16 as in the lab.

    ``__call__(source, source_lengths, decoder_inputs)``: log-probabilities ``(B, T, target_vocab)`` of every next
    target word given the previous ones (teacher forcing). :meth:`translate` decodes greedily instead.
    """

    source_vocab: int
    target_vocab: int
    hidden_size: int = 16

    def setup(self):
        self.encoder = Encoder(self.source_vocab, self.hidden_size)
        self.decoder = Decoder(self.target_vocab, self.hidden_size)

    def __call__(self, source, source_lengths, decoder_inputs, *, deterministic: bool = True):
        del deterministic  # the lab's translator has no dropout; accepted as every jaxnn model does
        log_probs, _ = self.decoder(decoder_inputs, self.encoder(source, source_lengths))
        return log_probs

    def translate(self, source, source_lengths, sos: int, max_length: int) -> jax.Array:
        """Greedy decoding from ``sos`` for ``max_length`` words: ``(B, max_length)`` word indices (cut each at its
        first end-of-sentence token yourself)."""
        h = self.encoder(source, source_lengths)
        word = jnp.full((source.shape[0], 1), sos, jnp.int32)
        words = []
        for _ in range(max_length):  # a short fixed loop; the lab decodes at most 12 words
            log_probs, h = self.decoder(word, h)
            word = jnp.argmax(log_probs, axis=-1).astype(jnp.int32)
            words.append(word[:, 0])
        return jnp.stack(words, axis=1)
