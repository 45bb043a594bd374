"""Training checkpoints with orbax: the train state and the data iterator's position, together.

`workdir/checkpoints/<step>/` holds `state` (the TrainState pytree, restored straight into its
target shardings, also onto a different device count) and `data` (each host's grain iterator
state), so a restarted run continues with the same parameters, optimizer slots, RNG stream
(`fold_in(key, step)`) and batches: its loss trail is bitwise that of an uninterrupted run.

Saving is asynchronous (the arrays are copied to the host, then written in the background while
training goes on). Kept: the last `keep` checkpoints and the best one by val J&F.

Before a restore, the checkpoint's own metadata (every array's name, shape and dtype) is compared
with the state the config builds. A checkpoint that does not fit (another optimizer, model or
dtype) is not corrupt: `StateMismatch` names the differing arrays and nothing is moved; restoring
only the arrays that fit is an explicit choice (`restore_compatible`). Only a checkpoint whose
metadata or files cannot be read (truncated or deleted files) is corrupt: it is moved aside to
`workdir/corrupt_checkpoints/` (never deleted) and the previous one is tried, with a warning.

A save first checks the free space for it (the state's bytes): a full disk stops the run with
`DiskFull` naming the folder and the bytes needed, before a partial checkpoint is written. The
trainer checks the same before it compiles (`check_space` of the abstract state): a disk that
cannot hold the first checkpoint fails the run in seconds.

On the CPU, arrays are written without orbax's replica-parallel slicing (its default off GPU):
that splits each replicated array over the devices with one compiled slice per parameter, 3 s
per save of a 200-parameter state on 8 CPU devices that share one memory anyway; GPU (orbax's
own default) and TPU keep their defaults.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
from pathlib import Path

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as policy

BEST_METRIC = "J&F"


def _cpu_array_handler() -> None:
    if jax.default_backend() == "cpu":
        handler = ocp.type_handlers.ArrayHandler(use_replica_parallel=False)
        ocp.type_handlers.register_type_handler(jax.Array, handler, override=True)


class StateMismatch(ValueError):
    """A checkpoint holds a state of another structure than the config builds."""

    def __init__(self, step: int, differences: list[str]):
        self.step, self.differences = step, differences
        shown = "; ".join(differences[:6]) + (
            f"; {len(differences) - 6} more" if len(differences) > 6 else ""
        )
        super().__init__(f"checkpoint {step} does not fit this config's state ({shown})")


class DiskFull(OSError):
    """No room for a checkpoint: one line naming the folder and the bytes needed."""


def _name(path) -> str:
    """orbax's name of a leaf (params.encoder.conv.kernel, opt_state.0.trace...)."""
    keys = (getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)
    return ".".join(map(str, keys))


def _arrays(tree) -> dict[str, tuple[tuple, str]]:
    """{name: (shape, dtype)} of the arrays of a state (abstract or not)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {_name(path): (tuple(x.shape), str(np.dtype(x.dtype))) for path, x in leaves}


def _differences(saved: dict, wanted: dict) -> list[str]:
    out = [f"{k}: not in the checkpoint" for k in sorted(wanted.keys() - saved.keys())]
    out += [f"{k}: only in the checkpoint" for k in sorted(saved.keys() - wanted.keys())]
    for k in sorted(saved.keys() & wanted.keys()):
        if saved[k] != wanted[k]:
            (s_shape, s_dtype), (w_shape, w_dtype) = saved[k], wanted[k]
            out.append(f"{k}: {s_dtype}{list(s_shape)} saved, {w_dtype}{list(w_shape)} wanted")
    return out


def _is_disk_full(err: BaseException | None) -> bool:
    while err is not None:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(err):  # tensorstore's errors are not OSErrors
            return True
        err = err.__cause__ or err.__context__
    return False


def _await_tmp_cleanup(manager: ocp.CheckpointManager) -> None:
    """Waits for the removal of a killed run's partial writes, which orbax (0.12) starts in a
    thread and awaits only in `save`: restores must not race it, and a run that stops before its
    first save must not leave it running (at interpreter exit it fails with a traceback)."""
    # Private, so looked up: an orbax without it has nothing to wait for here, or fails
    # tests/training/test_checkpointing.py (a partial save left after construction).
    await_cleanup = getattr(manager, "_maybe_await_cleanup_tmp_directory", None)
    if await_cleanup is not None:
        await_cleanup()


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
        handlers = {
            "state": ocp.StandardCheckpointHandler(),
            "data": grain.checkpoint.CheckpointHandler(),
        }  # named up front: a restarted run reads the state's metadata before any restore
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=handlers
        )
        _await_tmp_cleanup(self.manager)
        self.needed = 0  # bytes of the last checkpoint saved

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state, iterator, metrics: dict | None = None) -> None:
        """Start an asynchronous save of `state` and the iterator position after `step` steps;
        `metrics` ({'J&F': ...}) rank it for keeping the best."""
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(iterator)
        )
        self.needed = self.check_space(step, state)
        try:
            self.manager.save(step, args=args, metrics=metrics, force=True)
        except Exception as err:  # an earlier save's background write fails here
            self._raise_disk_full(err)
            raise

    def check_space(self, step: int, state) -> int:
        """Raises `DiskFull` unless the checkpoints folder has room for checkpoint `step` of
        `state` (arrays or ShapeDtypeStructs: this host's share of their bytes); -> the bytes."""
        total = sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
                    for x in jax.tree.leaves(state))  # fmt: skip
        needed = total // max(jax.process_count(), 1)
        self.directory.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.directory).free
        if free < needed:
            raise DiskFull(
                errno.ENOSPC,
                f"no space left for checkpoint {step}: it needs about {needed:,} bytes, "
                f"{free:,} are free",
                str(self.directory),
            )
        return needed

    def _raise_disk_full(self, err: BaseException) -> None:
        if _is_disk_full(err):
            raise DiskFull(
                errno.ENOSPC,
                f"no space left on device writing a checkpoint (about {self.needed:,} bytes)",
                str(self.directory),
            ) from None

    def saved_arrays(self, step: int) -> dict[str, tuple[tuple, str]]:
        """{name: (shape, dtype)} of the arrays of checkpoint `step`, from its metadata."""
        metadata = self.manager.item_metadata(step)["state"]
        tree = getattr(metadata, "tree", metadata)
        leaves = [x for x in jax.tree.leaves(tree) if hasattr(x, "shape")]
        return {x.name: (tuple(x.shape), str(np.dtype(x.dtype))) for x in leaves}

    def restore_latest(self, abstract_state, iterator):
        """-> (step, state) of the newest checkpoint that restores, with `iterator` set to its
        position; (0, None) when there is none. `abstract_state`: ShapeDtypeStructs with the
        target shardings. A checkpoint of another state structure raises `StateMismatch`."""
        wanted = _arrays(abstract_state)
        for step in reversed(self.steps()):
            try:
                saved = self.saved_arrays(step)
            except Exception as err:  # its metadata is unreadable: corrupt
                self._corrupt(step, err)
                continue
            differences = _differences(saved, wanted)
            if differences:
                raise StateMismatch(step, differences)
            args = ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state),
                data=grain.checkpoint.CheckpointRestore(iterator),
            )
            try:
                restored = self.manager.restore(step, args=args)
            except Exception as err:
                if self._state_restores(step, abstract_state):  # the input pipeline changed
                    reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
                    raise StateMismatch(step, [f"the data iterator's position: {reason}"]) from None
                self._corrupt(step, err)  # it fits, but its files do not read: corrupt
                continue
            return step, restored.state
        return 0, None

    def restore_compatible(self, state, iterator):
        """-> (step, state, names): `state` (a fresh one) with every array of the newest
        checkpoint whose name, shape and dtype fit put in (the rest stay fresh; the step, when it
        fits, continues), `iterator` at the checkpoint's position when that restores too, and
        the names restored; (0, state, []) without a checkpoint."""
        steps = self.steps()
        if not steps:
            return 0, state, []
        step = steps[-1]
        metadata = self.manager.item_metadata(step)["state"]
        tree = getattr(metadata, "tree", metadata)
        wanted = {_name(path): x for path, x in jax.tree_util.tree_flatten_with_path(state)[0]}
        local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

        def target(meta):
            fit = wanted.get(meta.name)
            same = fit is not None and (tuple(fit.shape), np.dtype(fit.dtype)) == (
                tuple(meta.shape), np.dtype(meta.dtype))  # fmt: skip
            sharding = fit.sharding if same else local
            return jax.ShapeDtypeStruct(meta.shape, meta.dtype, sharding=sharding)

        abstract = jax.tree.map(target, tree, is_leaf=lambda x: hasattr(x, "shape"))
        try:
            args = ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract),
                data=grain.checkpoint.CheckpointRestore(iterator),
            )
            restored = self.manager.restore(step, args=args).state
        except Exception:  # the data's order changed too: it starts over
            logging.warning("checkpoint %d: the data iterator's position does not fit", step)
            args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
            restored = self.manager.restore(step, args=args).state
        names = [m.name for m in jax.tree.leaves(tree, is_leaf=lambda x: hasattr(x, "shape"))]
        values = dict(zip(names, jax.tree.leaves(restored), strict=True))
        taken = []

        def put(path, x):
            name, value = _name(path), values.get(_name(path))
            if value is None or (value.shape, value.dtype) != (x.shape, x.dtype):
                return x
            taken.append(name)
            return value

        state = jax.tree_util.tree_map_with_path(put, state)
        return int(jax.device_get(state.step)), state, taken

    def _state_restores(self, step: int, abstract_state) -> bool:
        try:
            args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
            self.manager.restore(step, args=args)
        except Exception:
            return False
        return True

    def _corrupt(self, step: int, err: Exception) -> None:
        aside = self._move_aside(step)
        logging.warning(
            "checkpoint %d cannot be restored (%s: %s); moved to %s, trying the previous",
            step,
            type(err).__name__,
            str(err).splitlines()[0][:300] if str(err) else "",
            aside,
        )

    def _move_aside(self, step: int) -> Path:
        source = Path(self.manager.directory) / str(step)
        target = self.workdir / "corrupt_checkpoints" / f"{step}-{int(time.time())}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.exists():
            shutil.move(source, target)
        self.manager.reload()
        return target

    def wait(self) -> None:
        try:
            self.manager.wait_until_finished()
        except Exception as err:
            self._raise_disk_full(err)
            raise

    def close(self) -> None:
        self.manager.close()
