"""Data-parallel training with ``jax.sharding``: the batch split over a 1-D device mesh, parameters and optimizer
state replicated. The jitted train step is unchanged: XLA partitions it from the shardings of its inputs and sums
the gradients across devices itself.

Multi-host: call ``jax.distributed.initialize()`` in every process before anything else touches JAX (see
README.md); ``jax.devices()`` then lists the devices of every host and :func:`make_mesh` spans them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``'data'`` over ``devices`` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the mesh, other axes whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def check_divisible(batch_size: int, mesh: Mesh) -> None:
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(
            f"batch_size {batch_size} is not divisible by the {n} devices of the mesh; use a multiple of {n}"
        )


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Place every array of ``batch`` with its leading axis split over the mesh."""
    return jax.device_put(batch, batch_sharding(mesh))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place every array of ``tree`` (a train state, say) whole on every device of the mesh."""
    return jax.device_put(tree, replicated(mesh))
