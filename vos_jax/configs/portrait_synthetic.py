"""The portrait model (tiny HairNet: RGB + previous mask) on the built-in synthetic videos,
trained MaskTrack-style: single annotated frames, each object's previous mask simulated (empty,
affine- or thin-plate-spline-warped, dilated; data/augment.py `simulate_prior`), optionally with
Lucid Data Dreaming (`data.lucid`).

    python train.py --config vos_jax/configs/portrait_synthetic.py --workdir /tmp/portrait

Arguments (comma-separated): `lucid` (Lucid Data Dreaming variations of each frame),
`runlocal` (a seconds-long smoke run). Validation runs the MediaPipe recurrence
(families/portrait.py) on the held-out videos at the training size.
"""

from vos_jax.training.config import base_config, config_args


def get_config(arg=None):
    args = config_args(arg, ("lucid", "runlocal"), "vos_jax/configs/portrait_synthetic.py")
    config = base_config("portrait")
    config.model.variant = "tiny"
    config.synthetic.update(num_videos=40, num_frames=12, height=96, width=160, num_objects=2)
    config.data.update(
        batch_size=8, num_frames=1, crop_size=(96, 160), scale_range=(0.9, 1.1), max_objects=2,
        threads=2, prior=True, lucid="lucid" in args,
    )  # fmt: skip
    config.total_steps = 800
    config.log_every_steps = 50
    config.checkpoint_every_steps = 200
    config.eval_every_steps = 400
    config.optimizer.update(learning_rate=3e-3, warmup_steps=20)
    config.inference.update(max_objects=2, input_height=96, input_width=160)
    if "runlocal" in args:
        config.total_steps = 6
        config.log_every_steps = 1
        config.checkpoint_every_steps = 3
        config.eval_every_steps = 6
        config.synthetic.update(num_videos=4, num_frames=4, height=64, width=96, num_objects=2)
        config.data.update(batch_size=8, crop_size=(64, 96))
        config.inference.update(input_height=64, input_width=96)
    return config
