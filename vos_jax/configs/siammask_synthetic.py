"""SiamMask (tiny) on the built-in synthetic videos: a CPU-sized run of either official stage.

    python train.py --config vos_jax/configs/siammask_synthetic.py --workdir /tmp/siammask
    python train.py --config vos_jax/configs/siammask_synthetic.py:refine --workdir /tmp/sharp \
        --config.model.init_checkpoint=/tmp/siammask

Arguments (comma-separated): `refine` (the second stage, experiments/siammask_sharp: the refine
module alone on 143 search crops, everything else frozen; start it from a first-stage run),
`runlocal` (a seconds-long smoke run). Pairs are 2 frames of a video `data.stride` apart; the
loss crops template and search from them (families/siammask.py `pairs`), so the data pipeline
keeps whole frames (crop_size = the video size, no scale, flip or colour jitter of its own).
"""

from vos_jax.configs.siammask_davis import official_recipe
from vos_jax.training.config import base_config, config_args


def get_config(arg=None):
    args = config_args(arg, ("refine", "runlocal"), "vos_jax/configs/siammask_synthetic.py")
    config = base_config("siammask")
    config.model.variant = "tiny"
    config.synthetic.update(num_videos=40, num_frames=24, height=96, width=160, num_objects=3)
    official_recipe(config, refine="refine" in args)
    config.data.update(batch_size=8, crop_size=(96, 160), max_objects=3, threads=2, stride=2)
    config.total_steps = 600
    config.log_every_steps = 50
    config.checkpoint_every_steps = 200
    config.eval_every_steps = 600
    config.optimizer.update(learning_rate=5e-3, warmup_steps=20)
    config.inference.update(max_objects=3)
    if "runlocal" in args:
        config.total_steps = 6
        config.log_every_steps = 1
        config.checkpoint_every_steps = 3
        config.eval_every_steps = 6
        config.synthetic.update(num_videos=5, num_frames=6, height=48, width=64, num_objects=2)
        config.data.update(batch_size=2, crop_size=(48, 64), max_objects=2, stride=1)
        config.inference.max_objects = 2
    return config
