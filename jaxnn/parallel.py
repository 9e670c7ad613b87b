"""Data-parallel training with ``jax.sharding``: the batch split over a 1-D device mesh, parameters and optimizer
state replicated. The jitted train step is unchanged: XLA partitions it from the shardings of its inputs and sums
the gradients across devices itself.

Multi-process: call :func:`initialize` in every process before anything else touches JAX (see README.md);
``jax.devices()`` then lists the devices of every process and :func:`make_mesh` spans them all. On CPUs the
processes exchange gradients through Gloo (JAX's CPU collectives), so the same commands run on one machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def initialize(
    coordinator_address: str,
    num_processes: int,
    process_id: int,
    heartbeat_timeout_seconds: int = 10,
    initialization_timeout: int = 300,
) -> None:
    """``jax.distributed.initialize`` with Gloo CPU collectives. A process that dies is noticed by the others
    within ``heartbeat_timeout_seconds`` (and at once by a collective that needed it): they stop with an error
    instead of waiting for it. Every process must join within ``initialization_timeout`` seconds.

    Both failures end in a native abort of the process (XLA's coordination service); the lab scripts run each
    process under a supervisor that turns that into one line (:mod:`jaxnn.cli.processes`)."""
    if not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"num_processes must be a positive int, got {num_processes!r}")
    if not isinstance(process_id, int) or not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in [0, {num_processes}), got {process_id!r}")
    if not coordinator_address or ":" not in coordinator_address:
        raise ValueError(f"coordinator_address must be host:port, got {coordinator_address!r}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address,
        num_processes,
        process_id,
        initialization_timeout=initialization_timeout,
        heartbeat_timeout_seconds=heartbeat_timeout_seconds,
    )


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
