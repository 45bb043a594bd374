"""FEELVOS (tiny) on the built-in synthetic videos: the quickstart demo's training run.

    python train.py --config vos_jax/configs/feelvos_synthetic.py --workdir /tmp/feelvos_synthetic

The videos are generated on first use and cached (see vos_jax/training/data.py). About 8
minutes on a 2-core CPU; `vos-jax demo` runs it and evaluates the result with eval.py.
`:runlocal` is a seconds-long smoke run (tests, Colab): tiny data, tiny crops, a few steps.
"""

from vos_jax.training.config import base_config


def get_config(arg=None):
    config = base_config("feelvos")
    config.model.variant = "tiny"
    # Trained from scratch: no pretrained BatchNorm statistics to keep (official: frozen).
    config.model.fine_tune_batch_norm = True
    # Tuned for a 2-core CPU in ~8 minutes (issue 6 and 14 notes): many small steps at a high
    # learning rate, no bootstrapping, no scale/colour jitter, and a local window of k = 4 (16 px)
    # instead of the paper's 15, which on 65x65 crops would cover the whole crop and teach no
    # locality. Clips of 5 frames with only the first given: frames 2-4 take the model's own
    # previous predictions (one-hot labels, as inferred: train = infer; the official softmax
    # feedback, loss.previous_input="probs", erodes objects over long videos on some seeds).
    # Videos at 144x240 with the same 65x65 crops: the same step cost as at 96x160, and objects
    # large enough that a pixel of boundary costs them little (issue 14: most of the error at
    # 96x160 lay within 1.5 px of the boundary). 24 of the 56 videos are held out, so that the
    # printed J&F is not that of a few videos. Figures: README, issue 14 notes.
    config.total_steps = 2700
    config.log_every_steps = 50
    config.checkpoint_every_steps = 500
    config.eval_every_steps = 2700
    config.synthetic.update(num_videos=56, val_videos=24, num_frames=24, num_objects=3)
    config.synthetic.update(height=144, width=240)
    config.data.update(batch_size=2, crop_size=(65, 65), max_objects=3, threads=2)
    config.data.update(sampling="clip", num_frames=5)
    config.loss.given_frames = 1
    config.data.update(scale_range=(1.0, 1.0), photometric=False)
    config.optimizer.update(
        name="adamw", learning_rate=2e-2, weight_decay=1e-4, clip_norm=10.0, warmup_steps=50
    )
    config.loss.update(anneal_steps=100_000, max_displacement=4)
    config.inference.update(max_objects=3, max_displacement=4)
    if arg == "runlocal":
        config.total_steps = 16
        config.log_every_steps = 1
        config.checkpoint_every_steps = 4
        config.eval_every_steps = 16
        config.synthetic.update(num_videos=5, num_frames=8, height=48, width=64, num_objects=2)
        config.synthetic.val_videos = 0
        config.data.update(batch_size=8, crop_size=(33, 33), max_objects=2, num_frames=3)
        config.data.prior = True  # exercise the simulated previous masks (official recipe)
        config.optimizer.update(learning_rate=1e-2, warmup_steps=2)
        config.loss.anneal_steps = 16
        config.inference.max_objects = 2
    elif arg == "short":  # the demo's recipe on fewer, shorter videos: a test that it learns,
        # on the hard preset, where copying the first mask scores low (davis: 0.41 of ~0.9)
        config.synthetic.preset = "hard"
        config.total_steps = 150  # held-out J&F 0.19 vs the baseline's 0.09 (300 steps: 0.20-0.24)
        config.synthetic.update(num_videos=15, val_videos=0, num_frames=12, height=64, width=96)
        config.data.crop_size = (49, 49)
    elif arg:
        raise ValueError(
            f"vos_jax/configs/feelvos_synthetic.py: unknown argument {arg!r} (runlocal, short)"
        )
    return config
