"""The training loop, top to bottom: config -> mesh, model, data, state (fresh or restored) ->
jitted steps with logging, validation and checkpoints.

    python train.py --config configs/feelvos_synthetic.py --workdir /tmp/run

Every failure mode leaves the workdir usable: a restart resumes from the newest checkpoint that
restores (bitwise the same loss trail as an uninterrupted run); SIGTERM saves and exits 0; a
non-finite loss stops with `NonFiniteLoss` before any checkpoint of the bad state is written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from vos_jax import sharding
from vos_jax.data import pipeline
from vos_jax.families import FAMILIES, build_model
from vos_jax.training import data
from vos_jax.training.checkpointing import BEST_METRIC, Checkpoints
from vos_jax.training.config import ConfigError, validate
from vos_jax.training.state import create_state, make_optimizer
from vos_jax.training.step import make_train_step, state_sharding
from vos_jax.training.validation import evaluate_model
from vos_jax.training.writers import MetricWriter

INIT_OBJECTS = 2  # parameters do not depend on the object count; any O initialises them


class NonFiniteLoss(RuntimeError):
    """The loss or gradient norm of a step is NaN or infinite."""


def maybe_initialize_distributed() -> None:
    """Join the other hosts when the environment describes a multi-process job (Cloud TPU pods,
    SLURM, or JAX_COORDINATOR_ADDRESS); jax.distributed.initialize reads the details itself."""
    markers = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "TPU_WORKER_HOSTNAMES")
    if any(os.environ.get(m) for m in markers) and not jax.distributed.is_initialized():
        jax.distributed.initialize()


class _Sigterm:
    """Records SIGTERM (preemption) so the loop can save and stop between steps."""

    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        self.requested = True

    @contextlib.contextmanager
    def installed(self):
        previous = signal.signal(signal.SIGTERM, self)
        try:
            yield self
        finally:
            signal.signal(signal.SIGTERM, previous)

    def any_host(self) -> bool:
        if jax.process_count() == 1:
            return self.requested
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.array(self.requested))
        return bool(np.any(flags))


def _host_variables(state) -> dict:
    """params + batch_stats as host NumPy (gathered across hosts if sharded over them)."""
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(variables, tiled=True)
    return jax.device_get(variables)


class _Metrics:
    """Per-step metrics stay on the device until a log step (no sync per step), then are
    checked for non-finite values and averaged over the interval."""

    def __init__(self):
        self.pending: list[tuple[int, dict]] = []

    def add(self, step: int, metrics: dict) -> None:
        self.pending.append((step, metrics))

    def check(self) -> None:
        self.pending = [(step, jax.device_get(m)) for step, m in self.pending]  # host copies
        for step, metrics in self.pending:
            for key in ("loss", "grad_norm"):
                value = float(metrics[key])
                if not np.isfinite(value):
                    raise NonFiniteLoss(f"step {step}: {key} is {value}")

    def summary(self) -> dict:
        self.check()
        host = [m for _, m in self.pending]
        out = {k: float(np.mean([m[k] for m in host])) for k in host[-1]}
        out["lr"] = float(host[-1].get("lr", np.nan))
        self.pending = []
        return out


def train(config, workdir: str | os.PathLike) -> dict:
    """Train as `config` says, in `workdir` (resuming from its checkpoints); -> the last logged
    metrics (with the last validation scores, if any)."""
    validate(config)
    if config.model.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    maybe_initialize_distributed()
    workdir = Path(workdir).expanduser().absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    family = FAMILIES[config.model.family]

    mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp)
    if config.data.batch_size % mesh.size:
        raise ConfigError(
            f"config.data.batch_size: {config.data.batch_size} does not split over the mesh's "
            f"{mesh.size} devices"
        )
    dtype = jnp.dtype(config.model.dtype)
    options = {k: config.model[k] for k in family.model_options}
    model, model_kwargs = build_model(
        config.model.family, config.model.variant, dtype=dtype, **options
    )
    source, eval_root = data.train_source(config)
    dataset = data.train_dataset(config, source, family.sampling)
    iterator = pipeline.make_iterator(dataset, config.data.threads or None, config.data.workers)
    optimizer, schedule = make_optimizer(
        config.optimizer.name,
        config.optimizer.learning_rate,
        config.total_steps,
        config.optimizer.weight_decay,
        config.optimizer.clip_norm or None,
        config.optimizer.backbone_lr_multiplier,
        config.optimizer.warmup_steps,
    )

    # unsafe_rbg: the fast generator on accelerators (and threefry compiles slowly on CPU);
    # init is replicated, so the parameters do not depend on the mesh.
    init_key, step_key = jax.random.split(jax.random.key(config.seed, impl="unsafe_rbg"))
    example = jax.tree.map(lambda x: np.zeros((1, *x.shape[1:]), x.dtype), dataset[0])

    def init(key):
        return create_state(model, optimizer, key, example, INIT_OBJECTS)

    abstract = jax.eval_shape(init, init_key)
    shardings = state_sharding(abstract, mesh)
    checkpoints = Checkpoints(workdir, config.keep_checkpoints)
    targets = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, shardings
    )
    start, state = checkpoints.restore_latest(targets, iterator)
    if state is None:
        state = jax.jit(init, out_shardings=sharding.replicated(mesh))(init_key)
        state = jax.device_put(state, shardings)
    else:
        logging.warning("resuming from step %d of %s", start, checkpoints.directory)
    train_step = make_train_step(
        model,
        optimizer,
        mesh,
        abstract,
        step_key,
        schedule=schedule,
        loss_fn=family.loss,
        **config.loss.to_dict(),
    )

    writer = MetricWriter(workdir, start)
    metrics, last = _Metrics(), {}
    progress = tqdm(
        total=config.total_steps,
        initial=start,
        desc="train",
        disable=jax.process_index() != 0,
        dynamic_ncols=True,
    )
    interval_start, interval_first, first_step_s = time.perf_counter(), start + 1, None
    with _Sigterm().installed() as sigterm:
        try:
            for step in range(start + 1, config.total_steps + 1):  # step = steps done after it
                batch = sharding.global_batch(next(iterator), mesh)
                state, step_metrics = train_step(state, batch)
                metrics.add(step, step_metrics)
                progress.update()
                if first_step_s is None:  # it compiles: keep it out of the step times
                    jax.block_until_ready(step_metrics)
                    first_step_s = time.perf_counter() - interval_start
                    interval_start, interval_first = time.perf_counter(), step + 1
                final = step == config.total_steps
                log = step % config.log_every_steps == 0 or final
                if jax.process_count() == 1:
                    stop = sigterm.requested
                else:  # hosts agree at log steps (an all-gather per step would cost)
                    stop = log and sigterm.any_host()
                if log or stop:
                    record = metrics.summary()
                    timed, elapsed = step + 1 - interval_first, time.perf_counter() - interval_start
                    if timed > 0:
                        record["step_time_s"] = elapsed / timed
                        record["examples_per_s"] = config.data.batch_size * timed / elapsed
                    if not last:  # the first record of this run
                        record["first_step_s"] = first_step_s  # includes the compilation
                    writer.write(step, record)
                    progress.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                    last.update(record)
                    interval_start, interval_first = time.perf_counter(), step + 1
                scores = None
                if eval_root is not None and config.eval_every_steps and not stop:
                    if step % config.eval_every_steps == 0 or final:
                        metrics.check()
                        scores = _validate(config, model, state, eval_root, workdir, step)
                        scores = {f"val_{k}": v for k, v in scores.items()}
                        writer.write(step, scores)
                        last.update(scores)
                        # Keep validation out of the step times.
                        interval_start, interval_first = time.perf_counter(), step + 1
                if step % config.checkpoint_every_steps == 0 or final or stop:
                    metrics.check()  # never checkpoint a state reached through a bad step
                    best = {BEST_METRIC: scores["val_J&F-Mean"]} if scores else None
                    checkpoints.save(step, state, iterator, best)
                if stop:
                    logging.warning("SIGTERM: saved a checkpoint at step %d; stopping", step)
                    break
        finally:
            progress.close()
            checkpoints.wait()  # a started save always completes (also after an error)
            checkpoints.close()
            writer.close()
    last["step"] = int(jax.device_get(state.step))
    if last["step"] == config.total_steps:
        last["model"] = str(_export(config, model_kwargs, state, workdir, last))
    return last


def _export(config, model_kwargs: dict, state, workdir: Path, last: dict) -> Path:
    """The final model as a published checkpoint, `workdir/models/step_<N>` (eval.py
    --checkpoint, vos-jax segment); written once, never replaced."""
    from vos_jax.io.published import save_model

    path = workdir / "models" / f"step_{config.total_steps}"
    if path.exists():
        return path
    variables = _host_variables(state)
    if jax.process_index() == 0:
        overrides = {"dtype": model_kwargs["dtype"]}
        overrides.update({k: model_kwargs[k] for k in FAMILIES[config.model.family].model_options})
        scores = {k: v for k, v in last.items() if k.startswith("val_")}
        card = (
            f"# {config.model.family} ({config.model.variant})\n\n"
            f"Trained with vos-jax for {config.total_steps} steps on {config.data.source} data "
            f"(batch {config.data.batch_size}, crop {tuple(config.data.crop_size)}).\n"
            f"Validation: {scores or 'none'}.\n\nConfig:\n\n```\n{config}\n```\n"
        )
        save_model(
            path, config.model.family, config.model.variant, variables, overrides, scores, card
        )
    return path


def _validate(config, model, state, eval_root: Path, workdir: Path, step: int) -> dict:
    """J&F on the val split, computed on process 0 and shared with every host (the best
    checkpoint must be chosen identically everywhere)."""
    variables = _host_variables(state)
    scores = {}
    if jax.process_index() == 0:
        scores = evaluate_model(
            config.model.family,
            model,
            variables,
            eval_root,
            config.eval.split,
            workdir / "eval" / f"step_{step}",
            config.inference.to_dict(),
            config.eval.max_videos,
        )
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        keys = ("J&F-Mean", "J-Mean", "F-Mean")
        values = np.array([scores.get(k, 0.0) for k in keys])
        values = multihost_utils.broadcast_one_to_all(values)
        scores = dict(zip(keys, map(float, values), strict=True))
    return scores
