"""RVOS (tiny) on the built-in synthetic videos: a CPU-sized run of either mode.

    python train.py --config vos_jax/configs/rvos_synthetic.py --workdir /tmp/rvos_synthetic
    python train.py --config vos_jax/configs/rvos_synthetic.py:zeroshot --workdir /tmp/rvos_zeroshot

Arguments (comma-separated): `zeroshot` (unsupervised: no first masks, Hungarian-matched loss;
default one-shot), `runlocal` (a seconds-long smoke run: tiny data and crops, a few steps).
Clips of 5 frames, as the paper; the one-shot decoder takes the ground truth of frame 0 as the
previous masks of frames 0 and 1 and its own outputs after that.
"""

from vos_jax.training.config import base_config, config_args


def get_config(arg=None):
    args = config_args(arg, ("zeroshot", "runlocal"), "vos_jax/configs/rvos_synthetic.py")
    config = base_config("rvos")
    config.model.update(variant="tiny", one_shot="zeroshot" not in args)
    config.total_steps = 600
    config.log_every_steps = 50
    config.checkpoint_every_steps = 200
    config.eval_every_steps = 600
    config.synthetic.update(num_videos=40, num_frames=24, height=96, width=160, num_objects=3)
    config.data.update(batch_size=4, crop_size=(64, 64), max_objects=3, threads=2)
    config.data.update(sampling="clip", num_frames=5, scale_range=(1.0, 1.0), photometric=False)
    config.optimizer.update(name="adamw", learning_rate=1e-3, weight_decay=0.0, warmup_steps=20)
    config.inference.update(max_objects=3)
    if "runlocal" in args:
        config.total_steps = 12
        config.log_every_steps = 1
        config.checkpoint_every_steps = 4
        config.eval_every_steps = 12
        config.synthetic.update(num_videos=5, num_frames=8, height=48, width=64, num_objects=2)
        config.data.update(batch_size=8, crop_size=(32, 32), max_objects=2, num_frames=3)
        config.optimizer.update(learning_rate=3e-3, warmup_steps=2)
        config.inference.max_objects = 2
    return config
