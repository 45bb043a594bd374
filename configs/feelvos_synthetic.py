"""FEELVOS (tiny) on the built-in synthetic videos: the quickstart demo's training run.

    python train.py --config configs/feelvos_synthetic.py --workdir /tmp/feelvos_synthetic

The videos are generated on first use and cached (see vos_jax/training/data.py). About 5 minutes
on a 2-core CPU; `vos-jax demo` runs it and evaluates the result with eval.py.
`:runlocal` is a seconds-long smoke run (tests, Colab): tiny data, tiny crops, a few steps.
"""

from vos_jax.training.config import base_config


def get_config(arg=None):
    config = base_config()
    config.model.variant = "tiny"
    config.total_steps = 600
    config.log_every_steps = 25
    config.checkpoint_every_steps = 200
    config.eval_every_steps = 600
    config.synthetic.update(num_videos=40, num_frames=24, height=96, width=160, num_objects=3)
    config.data.update(batch_size=8, crop_size=(65, 65), max_objects=3, threads=2)
    config.optimizer.update(
        name="adamw", learning_rate=3e-3, weight_decay=1e-4, clip_norm=10.0, warmup_steps=50
    )
    config.loss.anneal_steps = config.total_steps
    config.inference.max_objects = 3
    if arg == "runlocal":
        config.total_steps = 12
        config.log_every_steps = 1
        config.checkpoint_every_steps = 4
        config.eval_every_steps = 12
        config.synthetic.update(num_videos=5, num_frames=8, height=48, width=64, num_objects=2)
        config.data.update(batch_size=8, crop_size=(33, 33), max_objects=2)
        config.optimizer.warmup_steps = 2
        config.loss.anneal_steps = 12
        config.inference.max_objects = 2
    elif arg:
        raise ValueError(f"configs/feelvos_synthetic.py: unknown argument {arg!r} (runlocal)")
    return config
