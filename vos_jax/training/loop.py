"""The training loop, top to bottom: config -> mesh, model, data, state (fresh or restored) ->
jitted steps with logging, validation and checkpoints.

    python train.py --config vos_jax/configs/<family>_<dataset>.py --workdir /tmp/run

Every failure mode leaves the workdir usable: a restart resumes from the newest checkpoint that
restores (bitwise the same loss trail as an uninterrupted run); SIGTERM (and Ctrl-C) saves and
stops; a non-finite loss stops with `NonFiniteLoss` before any checkpoint of the bad state is
written. One run at a time holds the workdir (training/workdir.py); a config whose state does
not fit the checkpoints is refused unless `restore` says to start fresh or restore what fits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from vos_jax import families, sharding
from vos_jax.data import pipeline
from vos_jax.families.options import to_dict as options_to_dict
from vos_jax.training import data, init_checkpoint
from vos_jax.training.checkpointing import BEST_METRIC, Checkpoints, StateMismatch
from vos_jax.training.config import ConfigError, family_options, validate
from vos_jax.training.state import create_state, make_optimizer, widen
from vos_jax.training.step import make_train_step, state_sharding
from vos_jax.training.validation import evaluate_model
from vos_jax.training.workdir import (
    WorkdirError,
    WorkdirLock,
    config_changes,
    move_previous_run,
    record_config,
)
from vos_jax.training.writers import MetricWriter

# How a restart treats the workdir's checkpoints: "exact" (resume; a checkpoint whose state does
# not fit the config is refused), "compatible" (the arrays that fit, fresh for the rest; the
# step continues when it fits), "fresh" (step 0; the earlier run moved to previous_runs/).
RESTORE_MODES = ("exact", "compatible", "fresh")


class NonFiniteLoss(RuntimeError):
    """The loss or gradient norm of a step is NaN or infinite."""


def maybe_initialize_distributed() -> None:
    """Join the other processes when the environment describes a multi-process job: Cloud TPU
    pods and SLURM (jax.distributed.initialize finds the rest itself), or a job launched by hand
    (multi-node GPU, several CPU processes): JAX_COORDINATOR_ADDRESS=host:port,
    JAX_NUM_PROCESSES and JAX_PROCESS_ID on every process. CPU processes talk through gloo."""
    markers = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "TPU_WORKER_HOSTNAMES")
    if not any(os.environ.get(m) for m in markers) or jax.distributed.is_initialized():
        return
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only the CPU uses it
    given = {"num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}
    jax.distributed.initialize(
        **{key: int(os.environ[name]) for key, name in given.items() if os.environ.get(name)}
    )
    logging.warning(
        "process %d of %d: %d of %d devices", jax.process_index(), jax.process_count(),
        jax.local_device_count(), jax.device_count(),
    )  # fmt: skip


class _Sigterm:
    """Records SIGTERM (preemption) or SIGINT (Ctrl-C) so the loop can save and stop between
    steps; a second Ctrl-C interrupts at once (KeyboardInterrupt)."""

    def __init__(self):
        self.requested = False
        self.name = "SIGTERM"  # or another host's

    def __call__(self, signum, frame):
        self.requested, self.name = True, signal.Signals(signum).name
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    @contextlib.contextmanager
    def installed(self):
        previous = {s: signal.signal(s, self) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

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


@dataclasses.dataclass
class _Run:
    """What a training run is made of, set up from its config."""

    family: Any
    model: Any
    model_kwargs: dict
    mesh: Any
    iterator: Any
    eval_root: Path | None
    checkpoints: Checkpoints
    train_step: Any
    state: Any
    start: int


def optimizer_from_config(config):
    """The optimizer and its schedule of config group `optimizer` (training/state.py)."""
    o = config.optimizer
    return make_optimizer(
        o.name,
        o.learning_rate,
        config.total_steps,
        o.weight_decay,
        o.clip_norm or None,
        o.backbone_lr_multiplier,
        o.warmup_steps,
        o.clip_per_variable,
        o.bias_lr_multiplier,
        o.backbone,
    )


def _initialise_from(model_config, state):
    """A fresh state's params and BatchNorm statistics from `model.init_checkpoint` (the
    optimizer's slots start at zero whatever the params, so they stay as initialised)."""
    params, stats = init_checkpoint.load(
        model_config.init_checkpoint, state.params, state.batch_stats, model_config.init_prefixes
    )
    return state.replace(
        params=init_checkpoint.graft(state.params, params),
        batch_stats=init_checkpoint.graft(state.batch_stats, stats),
    )


def _restore(config, workdir: Path, restore: str, checkpoints, targets, iterator, fresh_state):
    """-> (start step, state or None) as `restore` says (RESTORE_MODES)."""
    if restore == "compatible":
        start, state, taken = checkpoints.restore_compatible(fresh_state(), iterator)
        if taken:
            logging.warning(
                "restored %d arrays that fit from checkpoint %d; the others start fresh",
                len(taken), start,
            )  # fmt: skip
        return start, state if taken else None
    try:
        return checkpoints.restore_latest(targets, iterator)
    except StateMismatch as err:
        changes = config_changes(workdir, config)
        changed = "; ".join(changes[:6]) if changes else "no earlier config recorded"
        raise WorkdirError(
            f"--workdir {workdir}: {err}; config changes since that run: {changed}. Nothing "
            "was moved: pass --restore=fresh to start over (the earlier run is moved to "
            "previous_runs/) or --restore=compatible to restore the arrays that fit"
        ) from None


def _setup(config, workdir: Path, restore: str = "exact") -> _Run:
    """Mesh, model, data, optimizer, state (fresh or restored) and the jitted step."""
    family = families.get(config.model.family)
    mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp)
    logging.warning("mesh: %s", " x ".join(f"{k} {v}" for k, v in mesh.shape.items()))
    if config.data.batch_size % mesh.size:
        raise ConfigError(
            f"config.data.batch_size: {config.data.batch_size} does not split over the mesh's "
            f"{mesh.size} devices"
        )
    options = options_to_dict(family_options(config, "model"))
    model, model_kwargs = families.build_model(
        config.model.family, config.model.variant, dtype=jnp.dtype(config.model.dtype), **options
    )
    source, eval_root = data.train_source(config)
    dataset = data.train_dataset(config, source)
    iterator = pipeline.make_iterator(dataset, config.data.threads or None, config.data.workers)
    optimizer, schedule = optimizer_from_config(config)
    # unsafe_rbg: the fast generator on accelerators (and threefry compiles slowly on CPU);
    # init is replicated, so the parameters do not depend on the mesh.
    init_key, step_key = jax.random.split(jax.random.key(config.seed, impl="unsafe_rbg"))
    example = jax.tree.map(lambda x: np.zeros((1, *x.shape[1:]), x.dtype), dataset[0])

    def init(key):
        variables = widen(family.init_variables(model, key, example), model.dtype)
        return create_state(variables, optimizer)

    abstract = jax.eval_shape(init, init_key)
    shardings = state_sharding(abstract, mesh)
    checkpoints = Checkpoints(workdir, config.keep_checkpoints)
    targets = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, shardings
    )

    def fresh_state():
        state = jax.jit(init, out_shardings=sharding.replicated(mesh))(init_key)
        state = jax.device_put(state, shardings)
        if config.model.init_checkpoint:
            state = _initialise_from(config.model, state)
        return state

    try:  # from here an error closes the checkpoints (their threads) before it propagates
        start, state = _restore(
            config, workdir, restore, checkpoints, targets, iterator, fresh_state
        )
        if start < config.total_steps:  # a full disk fails now, not after compiling and training
            every = config.checkpoint_every_steps
            first_save = min((start // every + 1) * every, config.total_steps)
            checkpoints.check_space(first_save, abstract)
        if state is None:
            state = fresh_state()
        else:
            logging.warning("resuming from step %d of %s", start, checkpoints.directory)
        loss_options = options_to_dict(family_options(config, "loss"))
        train_step = make_train_step(
            model,
            optimizer,
            mesh,
            abstract,
            step_key,
            family.loss,
            schedule=schedule,
            **loss_options,
        )
    except BaseException:
        checkpoints.close()
        raise
    return _Run(
        family,
        model,
        model_kwargs,
        mesh,
        iterator,
        eval_root,
        checkpoints,
        train_step,
        state,
        start,
    )


def train(config, workdir: str | os.PathLike, restore: str = "exact") -> dict:
    """Train as `config` says, in `workdir` (resuming from its checkpoints as `restore` says,
    RESTORE_MODES); -> the last logged metrics (with the last validation scores, if any; and
    `stopped`: the signal's name when SIGTERM or SIGINT stopped it)."""
    validate(config)
    if restore not in RESTORE_MODES:
        raise ConfigError(f"--restore: expected one of {RESTORE_MODES}, got {restore!r}")
    if config.model.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    maybe_initialize_distributed()
    workdir = Path(workdir).expanduser().absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    lead = jax.process_index() == 0
    with WorkdirLock(workdir) if lead else contextlib.nullcontext():
        if restore == "fresh" and lead:
            moved = move_previous_run(workdir)
            if moved:
                logging.warning("--restore=fresh: moved the earlier run to %s", moved)
        if restore == "fresh" and jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("vos_jax: the earlier run moved aside")
        return _train(config, workdir, restore)


def _train(config, workdir: Path, restore: str) -> dict:
    run = _setup(config, workdir, restore)
    if jax.process_index() == 0:
        record_config(workdir, config)
    writer = MetricWriter(workdir, run.start)
    progress = tqdm(
        total=config.total_steps,
        initial=run.start,
        desc="train",
        disable=jax.process_index() != 0,
        dynamic_ncols=True,
    )
    with _Sigterm().installed() as sigterm:
        try:
            last = _steps(config, workdir, run, writer, progress, sigterm)
        finally:
            progress.close()
            run.checkpoints.wait()  # a started save always completes (also after an error)
            run.checkpoints.close()
            writer.close()
    if sigterm.requested:
        last["stopped"] = sigterm.name
    last["step"] = int(jax.device_get(run.state.step))
    if last["step"] == config.total_steps:
        last["model"] = str(_export(config, run, workdir, last))
    return last


class _Timer:
    """Step times of a logging interval, the first (compiling) step kept apart."""

    def __init__(self, start: int):
        self.begin, self.first, self.first_step_s = time.perf_counter(), start + 1, None

    def restart(self, step: int) -> None:
        self.begin, self.first = time.perf_counter(), step + 1

    def after_step(self, step: int, metrics) -> None:
        if self.first_step_s is None:  # it compiles: keep it out of the step times
            jax.block_until_ready(metrics)
            self.first_step_s = time.perf_counter() - self.begin
            self.restart(step)

    def times(self, step: int, batch_size: int) -> dict:
        timed, elapsed = step + 1 - self.first, time.perf_counter() - self.begin
        if timed <= 0:
            return {}
        return {"step_time_s": elapsed / timed, "examples_per_s": batch_size * timed / elapsed}


def _steps(config, workdir: Path, run: _Run, writer, progress, sigterm) -> dict:
    """The loop over steps: train, log, validate, checkpoint; -> the last logged metrics."""
    metrics, last, timer = _Metrics(), {}, _Timer(run.start)
    for step in range(run.start + 1, config.total_steps + 1):  # step = steps done after it
        batch = sharding.global_batch(next(run.iterator), run.mesh)
        run.state, step_metrics = run.train_step(run.state, batch)
        metrics.add(step, step_metrics)
        progress.update()
        timer.after_step(step, step_metrics)
        final = step == config.total_steps
        log = step % config.log_every_steps == 0 or final
        if jax.process_count() == 1:
            stop = sigterm.requested
        else:  # hosts agree at log steps (an all-gather per step would cost)
            stop = log and sigterm.any_host()
        if log or stop:
            record = {**metrics.summary(), **timer.times(step, config.data.batch_size)}
            if not last:  # the first record of this run
                record["first_step_s"] = timer.first_step_s  # includes the compilation
            writer.write(step, record)
            progress.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
            last.update(record)
            timer.restart(step)
        scores = None
        if run.eval_root is not None and config.eval_every_steps and not stop:
            if step % config.eval_every_steps == 0 or final:
                metrics.check()
                scores = {f"val_{k}": v for k, v in _validate(config, run, workdir, step).items()}
                writer.write(step, scores)
                last.update(scores)
                timer.restart(step)  # keep validation out of the step times
        if step % config.checkpoint_every_steps == 0 or final or stop:
            metrics.check()  # never checkpoint a state reached through a bad step
            best = {BEST_METRIC: scores["val_J&F-Mean"]} if scores else None
            run.checkpoints.save(step, run.state, run.iterator, best)
        if stop:
            logging.warning("%s: saved a checkpoint at step %d; stopping", sigterm.name, step)
            break
    return last


# What a model trained on each source inherits (the weights are the user's; the data's terms are
# the data's).
DATA_TERMS = {
    "synthetic": "vos-jax's built-in synthetic videos (generated, no third-party data)",
    "davis": "DAVIS (CC BY-NC 4.0: non-commercial research)",
    "davis_vos": "DAVIS (CC BY-NC 4.0: non-commercial research)",
    "youtube_vos": "YouTube-VOS (annotations CC BY 4.0; the videos are YouTube's)",
    "supervisely_person": "Supervisely Person (see its terms of use)",
    "images": "the user's own images (their terms)",
}


def model_card(config, family, scores: dict) -> str:
    """A published checkpoint's README: data and its terms, recipe, metrics, licence, citation."""
    d = config.data
    dataset = d.tfds_name.split("/")[0] if d.source == "tfds" else d.source
    terms = DATA_TERMS.get(dataset, f"{dataset} (see its terms)")
    metrics = "\n".join(f"- {k}: {v:.4f}" for k, v in scores.items()) or "- none measured"
    citation = getattr(family, "CITATION", "")
    return (
        f"# {config.model.family} ({config.model.variant})\n\n"
        f"## Data\n{terms}; split `{d.split}`" + (f", videos {d.sequences}" if d.sequences else "")
        + f".\n\n## Recipe\n{config.total_steps} steps of batch {d.batch_size}, crop "
        f"{tuple(d.crop_size)}, {config.optimizer.name} at {config.optimizer.learning_rate}, "
        f"{config.model.dtype}" + (f", from {config.model.init_checkpoint}"
                                   if config.model.init_checkpoint else "")
        + f" (vos-jax; the whole config below).\n\n## Metrics (validation)\n{metrics}\n\n"
        "## Licence\nThe weights: Apache-2.0, as vos-jax, within the terms of the data above.\n\n"
        f"## Cite\n{citation or 'the paper of the method'}\n\n## Config\n\n```\n{config}\n```\n"
    )  # fmt: skip


def _export(config, run: _Run, workdir: Path, last: dict) -> Path:
    """The final model as a published checkpoint, `workdir/models/step_<N>` (eval.py
    --checkpoint, vos-jax segment); written once, never replaced."""
    path = workdir / "models" / f"step_{config.total_steps}"
    if path.exists():
        return path
    variables = _host_variables(run.state)
    if jax.process_index() == 0:
        overrides = {"dtype": run.model_kwargs["dtype"]}
        overrides.update(options_to_dict(family_options(config, "model")))
        scores = {k: v for k, v in last.items() if k.startswith("val_")}
        card = model_card(config, run.family, scores)
        families.save_model(
            path,
            config.model.family,
            config.model.variant,
            variables,
            kwargs=overrides,
            metrics=scores,
            card=card,
            inference=options_to_dict(family_options(config, "inference")),
        )
    return path


def _validate(config, run: _Run, workdir: Path, step: int) -> dict:
    """J&F on the val split, computed on process 0 and shared with every host (the best
    checkpoint must be chosen identically everywhere)."""
    variables = _host_variables(run.state)
    scores = {}
    if jax.process_index() == 0:
        scores = evaluate_model(
            run.family,
            run.model,
            variables,
            run.eval_root,
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
