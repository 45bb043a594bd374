"""`vos-jax export`: a checkpoint's inference step as serialized StableHLO (`jax.export`), for
CPU and CUDA, runnable with jax and numpy alone: no vos-jax, no model code.

The folder holds `init.jax` and `step.jax` (serialized `jax.export.Exported`) and `program.json`
(the static shapes and how to call them). The propagator's state pytree is flattened to a list of
arrays, so the caller needs no vos-jax types:

    from jax import export
    init = export.deserialize(open("init.jax", "rb").read())
    step = export.deserialize(open("step.jax", "rb").read())
    state = init.call(frame, masks, new)   # frame [B, H, W, 3] uint8, masks [B, H, W] int32 ids,
                                           # new [B, O + 1] bool: the slots given in this frame
    state, outputs = step.call(state, frame, masks, new)   # outputs["probs"] [B, H, W, O + 1], ...

The weights are constants of the programs (one file per step, no separate loading).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np
from jax import export

from vos_jax.families.propagator import Propagator

PLATFORMS = ("cpu", "cuda")


def export_propagator(
    propagator: Propagator,
    out: str | os.PathLike,
    size: tuple[int, int],
    batch: int = 1,
    platforms: tuple[str, ...] = PLATFORMS,
    about: dict | None = None,
) -> Path:
    """Write `out` (a new folder; refused if it exists) with the exported init and step of
    `propagator` for `batch` videos of `size` (H, W) and its `max_objects` slots."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"--out {out}: already exists; choose a new folder")
    height, width = size
    slots = propagator.max_objects + 1
    frame = jax.ShapeDtypeStruct((batch, height, width, 3), np.uint8)
    masks = jax.ShapeDtypeStruct((batch, height, width), np.int32)
    new = jax.ShapeDtypeStruct((batch, slots), np.bool_)
    state = jax.eval_shape(propagator.init, frame, masks, new)
    leaves, treedef = jax.tree.flatten(state)

    def init(frame, masks, new):
        return jax.tree.leaves(propagator.init(frame, masks, new))

    def step(leaves, frame, masks, new):
        state, prediction = propagator.step(jax.tree.unflatten(treedef, leaves), frame, masks, new)
        outputs = {k: v for k, v in prediction._asdict().items() if v is not None}
        return jax.tree.leaves(state), outputs

    exported = {
        "init": export.export(jax.jit(init), platforms=platforms)(frame, masks, new),
        "step": export.export(jax.jit(step), platforms=platforms)(list(leaves), frame, masks, new),
    }
    _, outputs = jax.eval_shape(step, list(leaves), frame, masks, new)
    program = {
        **(about or {}),
        "batch": batch,
        "size": [height, width],
        "objects": propagator.max_objects,
        "platforms": list(platforms),
        "unsupervised": propagator.unsupervised,
        "inputs": {"frame": [batch, height, width, 3, "uint8"],
                   "masks": [batch, height, width, "int32"], "new": [batch, slots, "bool"]},
        "state": [[*leaf.shape, leaf.dtype.name] for leaf in leaves],
        "outputs": {k: [*v.shape, v.dtype.name] for k, v in outputs.items()},
        "jax": jax.__version__,
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:  # written beside and renamed: no half-written program folder
        for name, program_ in exported.items():
            (tmp / f"{name}.jax").write_bytes(program_.serialize())
        (tmp / "program.json").write_text(json.dumps(program, indent=1) + "\n")
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
