"""Device mesh, named shardings and global arrays from per-host data.

One mesh for data and training: a `data` axis and an optional `fsdp` axis. The batch is split
over both (every device gets its own examples; `fsdp` additionally shards parameters). Axis types
are Auto on purpose: this JAX defaults `jax.make_mesh` to Explicit axes, under which mixing
replicated parameters with sharded inputs raises sharding errors.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXES = ("data", "fsdp")


def make_mesh(data: int = -1, fsdp: int = 1, devices=None) -> Mesh:
    """A (data, fsdp) mesh over `devices` (default: all); data=-1 takes what fsdp leaves."""
    devices = list(devices if devices is not None else jax.devices())
    if data == -1:
        data = len(devices) // fsdp
    if data * fsdp != len(devices):
        raise ValueError(f"mesh data={data} x fsdp={fsdp} does not match {len(devices)} devices")
    auto = (jax.sharding.AxisType.Auto,) * 2
    return jax.make_mesh((data, fsdp), BATCH_AXES, axis_types=auto, devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def host_batch_size(global_batch_size: int) -> int:
    """This process's share of a global batch (each host reads its own shard of the data)."""
    count = jax.process_count()
    if global_batch_size % count:
        raise ValueError(f"global batch {global_batch_size} does not split over {count} hosts")
    return global_batch_size // count


def global_batch(local_batch, mesh: Mesh):
    """Per-host NumPy batch (a pytree; leading axis = this host's examples) -> global jax.Arrays
    sharded along the batch over the whole mesh, without gathering data on any host."""
    sharding = batch_sharding(mesh)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch
    )
