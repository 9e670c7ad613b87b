"""PyTorch's parameter groups (``torch.optim.SGD([{"params": ..., "weight_decay": 0}, ...])``): each group its own
optimizer, here an optax ``partition`` over labelled parameters.

Example (no weight decay on biases and BatchNorm, PyTorch's usual two groups)::

    tx = optim.param_groups(
        {"decay": optim.sgd(0.1, momentum=0.9, weight_decay=5e-4), "no_decay": optim.sgd(0.1, momentum=0.9)},
        optim.label_params(lambda name, p: "no_decay" if p.ndim == 1 else "decay"),
    )

Each group keeps its own state and step count, as each PyTorch group does; a scheduler is given to every group's
optimizer (PyTorch's schedulers scale every group's rate).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import optax

__all__ = ["param_groups", "label_params"]


def label_params(fn: Callable[[str, jax.Array], str]) -> Callable:
    """A labelling function for :func:`param_groups`: ``fn(name, param) -> group``, where ``name`` is the
    parameter's path in the tree, ``"/"``-joined (``"layer1/0/conv1/kernel"``)."""

    def labels(params):
        def one(path, leaf):
            return fn("/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path), leaf)

        return jax.tree_util.tree_map_with_path(one, params)

    return labels


def param_groups(groups: Mapping[str, optax.GradientTransformation], labels) -> optax.GradientTransformation:
    """One optimizer per group of parameters.

    Args:
      groups: group name -> its optimizer (``optim.sgd(...)``, ...).
      labels: a tree like the params of group names, or a function of the params that returns one
        (:func:`label_params`).
    Raises:
      ValueError: at ``init`` where a parameter's label names no group, naming the label and the groups.
    """
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError(f"groups must be a non-empty mapping of group name -> optimizer, got {groups!r}")
    inner = optax.partition(dict(groups), labels)

    def init(params):
        names = jax.tree.leaves(labels(params) if callable(labels) else labels)
        unknown = sorted({str(n) for n in names} - {str(g) for g in groups})
        if unknown:
            raise ValueError(f"labels name groups {unknown} that are not in groups {sorted(groups)}")
        return inner.init(params)

    return optax.GradientTransformation(init, inner.update)
