"""``torch.nn.Embedding``: a lookup table of ``num_embeddings`` vectors of size ``embedding_dim``."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _normal(key, shape, dtype=jnp.float32):
    return jax.random.normal(key, shape, dtype)


class Embedding(nn.Module):
    """``torch.nn.Embedding(num_embeddings, embedding_dim, padding_idx=None)``: ``weight[indices]``.

    The parameter is ``weight`` ``(num_embeddings, embedding_dim)``, initialised N(0, 1) as PyTorch does, with the
    ``padding_idx`` row zero. Like PyTorch, that row is looked up as it is and receives no gradient.

    Indices are integers of any shape; the result has shape ``indices.shape + (embedding_dim,)``. Indices outside
    ``[0, num_embeddings)`` are a ValueError when they can be checked (outside ``jit``); under ``jit`` they cannot:
    there an index past the end gives a row of NaN and a negative one counts from the end, as in NumPy (PyTorch
    raises an IndexError for both).

    ``max_norm`` (PyTorch renormalises looked-up rows in place, a side effect on the weight that a pure Flax module
    cannot have) and ``scale_grad_by_freq``/``sparse`` are not supported and rejected when set.

    Example::

      emb = Embedding(10, 3, padding_idx=0)                # torch.nn.Embedding(10, 3, padding_idx=0)
      params = emb.init(jax.random.key(0), jnp.zeros((2, 4), jnp.int32))
      vectors = emb.apply(params, jnp.array([[1, 2, 0, 0]]))  # (1, 4, 3)
    """

    num_embeddings: int
    embedding_dim: int
    padding_idx: int | None = None
    max_norm: float | None = None
    norm_type: float = 2.0
    scale_grad_by_freq: bool = False
    sparse: bool = False

    def _padding_idx(self) -> int | None:
        for name in ("num_embeddings", "embedding_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Embedding: {name} must be a positive int, got {value!r}")
        if self.max_norm is not None:
            raise ValueError(
                "Embedding: max_norm is not supported (PyTorch renormalises the weight in place during "
                "the lookup); renormalise the rows yourself, e.g. with optax.projections"
            )
        if self.scale_grad_by_freq or self.sparse:
            raise ValueError("Embedding: scale_grad_by_freq and sparse are not supported")
        if self.padding_idx is None:
            return None
        if not -self.num_embeddings <= self.padding_idx < self.num_embeddings:
            raise ValueError(
                f"Embedding: padding_idx must be within num_embeddings ({self.num_embeddings}), got {self.padding_idx}"
            )
        return self.padding_idx % self.num_embeddings  # PyTorch's rule for a negative padding_idx

    @nn.compact
    def __call__(self, indices: jax.Array) -> jax.Array:
        padding_idx = self._padding_idx()

        def init(key, shape, dtype=jnp.float32):
            w = _normal(key, shape, dtype)
            return w if padding_idx is None else w.at[padding_idx].set(0)

        weight = self.param("weight", init, (self.num_embeddings, self.embedding_dim))
        indices = jnp.asarray(indices)
        if not jnp.issubdtype(indices.dtype, jnp.integer):
            raise TypeError(f"Embedding: indices must be integers, got {indices.dtype} (shape {tuple(indices.shape)})")
        if not isinstance(indices, jax.core.Tracer) and indices.size:
            # On the host: under jit, jnp's min of a closed-over array would be traced, and int() of it would fail.
            concrete = np.asarray(indices)
            lo, hi = int(concrete.min()), int(concrete.max())
            if lo < 0 or hi >= self.num_embeddings:
                raise ValueError(
                    f"Embedding: indices must lie in [0, {self.num_embeddings}), got values in "
                    f"[{lo}, {hi}] (shape {tuple(indices.shape)})"
                )
        out = jnp.take(weight, indices, axis=0)
        if padding_idx is None:
            return out
        # The padding row is looked up as it is, but no gradient reaches it.
        frozen = jnp.take(jax.lax.stop_gradient(weight), indices, axis=0)
        return jnp.where((indices == padding_idx)[..., None], frozen, out)


__all__ = ["Embedding"]
