"""Training checkpoints with orbax: the train state and the data iterator's position, together.

`workdir/checkpoints/<step>/` holds `state` (the TrainState pytree, restored straight into its
target shardings, also onto a different device count) and `data` (each host's grain iterator
state), so a restarted run continues with the same parameters, optimizer slots, RNG stream
(`fold_in(key, step)`) and batches: its loss trail is bitwise that of an uninterrupted run.

Saving is asynchronous (the arrays are copied to the host, then written in the background while
training goes on). Kept: the last `keep` checkpoints and the best one by val J&F. A step whose
restore fails (truncated or deleted files) is moved aside to `workdir/corrupt_checkpoints/` (never
deleted) and the previous one is tried, with a warning.

On the CPU, arrays are written without orbax's replica-parallel slicing (its default off GPU):
that splits each replicated array over the devices with one compiled slice per parameter, 3 s
per save of a 200-parameter state on 8 CPU devices that share one memory anyway; GPU (orbax's
own default) and TPU keep their defaults.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import grain
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as policy

BEST_METRIC = "J&F"


def _cpu_array_handler() -> None:
    if jax.default_backend() == "cpu":
        handler = ocp.type_handlers.ArrayHandler(use_replica_parallel=False)
        ocp.type_handlers.register_type_handler(jax.Array, handler, override=True)


class Checkpoints:
    def __init__(self, workdir: str | os.PathLike, keep: int, best_metric: str = BEST_METRIC):
        _cpu_array_handler()
        self.workdir = Path(workdir).expanduser().absolute()  # orbax wants absolute paths
        self.directory = self.workdir / "checkpoints"
        self.best_metric = best_metric
        keep_policy = policy.AnyPreservationPolicy(
            [
                policy.LatestN(keep),
                policy.BestN(
                    get_metric_fn=lambda metrics: metrics[best_metric],
                    reverse=False,  # sorted ascending, the top n (highest J&F) are kept
                    n=1,
                    keep_checkpoints_without_metrics=False,
                ),
            ]
        )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=keep_policy,
            enable_async_checkpointing=True,
            cleanup_tmp_directories=True,  # partial writes of a killed run (never committed)
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state, iterator, metrics: dict | None = None) -> None:
        """Start an asynchronous save of `state` and the iterator position after `step` steps;
        `metrics` ({'J&F': ...}) rank it for keeping the best."""
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(iterator)
        )
        self.manager.save(step, args=args, metrics=metrics, force=True)

    def restore_latest(self, abstract_state, iterator):
        """-> (step, state) of the newest checkpoint that restores, with `iterator` set to its
        position; (0, None) when there is none. `abstract_state`: ShapeDtypeStructs with the
        target shardings."""
        for step in reversed(self.steps()):
            args = ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state),
                data=grain.checkpoint.CheckpointRestore(iterator),
            )
            try:
                restored = self.manager.restore(step, args=args)
            except Exception as err:  # any failure means: not usable
                aside = self._move_aside(step)
                logging.warning(
                    "checkpoint %d cannot be restored (%s: %s); moved to %s, trying the previous",
                    step,
                    type(err).__name__,
                    str(err).splitlines()[0][:300] if str(err) else "",
                    aside,
                )
                continue
            return step, restored.state
        return 0, None

    def _move_aside(self, step: int) -> Path:
        source = Path(self.manager.directory) / str(step)
        target = self.workdir / "corrupt_checkpoints" / f"{step}-{int(time.time())}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.exists():
            shutil.move(source, target)
        self.manager.reload()
        return target

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
