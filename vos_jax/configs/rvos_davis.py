"""RVOS on DAVIS 2017 train (SPEC section 2): ResNet-101, 240x427 frames, clips of 5, batch 4,
Adam with decoder LR 1e-3 and encoder LR 1e-6; evaluated on DAVIS 2017 val at 240x427.

One-shot (semi-supervised; the paper's 60.6 J&F on val) or `:zeroshot` (unsupervised):
    python train.py --config vos_jax/configs/rvos_davis.py --workdir gs://BUCKET/rvos_davis \
        --config.data.root=/data/DAVIS
    python eval.py --davis_root /data/DAVIS --checkpoint WORKDIR/models/step_<N> \
        --results OUT --config vos_jax/configs/rvos_davis.py
The paper fine-tunes from a YouTube-VOS model (vos_jax/configs/rvos_ytvos.py); the official weights
import with `vos-jax convert rvos`. Arguments (comma-separated): `zeroshot`, `runlocal` (the tiny
model, small crops and a few steps that run on a laptop CPU).
"""

from vos_jax.training.config import base_config, config_args


def get_config(arg=None):
    args = config_args(arg, ("zeroshot", "runlocal"), "vos_jax/configs/rvos_davis.py")
    runlocal = "runlocal" in args
    config = base_config("rvos")
    config.model.update(variant="tiny" if runlocal else "paper", one_shot="zeroshot" not in args)
    # The official code trains by epochs (until the val loss stops improving); 20k steps of
    # batch 4 is about 40 passes over DAVIS 2017 train's 60 videos x 60 frames in clips of 5.
    config.total_steps = 20_000
    config.log_every_steps = 100
    config.checkpoint_every_steps = 2_000
    config.eval_every_steps = 2_000
    config.data.update(source="davis", root="", split="train", batch_size=4, max_objects=10)
    # Scale 1.0 = the smallest resize covering the crop: 480x854 -> 240x427, the whole frame.
    config.data.update(sampling="clip", num_frames=5, crop_size=(240, 427), scale_range=(1.0, 1.0))
    config.optimizer.update(
        name="adamw", learning_rate=1e-3, weight_decay=0.0, backbone_lr_multiplier=1e-3
    )
    config.loss.given_frames = 1  # frames 0-1 take frame 0's masks, then the model's own
    config.eval.update(split="val")
    config.inference.update(max_objects=10, input_height=240, input_width=427)
    if runlocal:
        config.total_steps = 20
        config.log_every_steps = 5
        config.checkpoint_every_steps = 10
        config.eval_every_steps = 20
        config.eval.max_videos = 2
        config.data.update(batch_size=8, crop_size=(64, 64), max_objects=3, num_frames=3)
        config.optimizer.backbone_lr_multiplier = 1.0
        config.inference.update(max_objects=3, input_height=64, input_width=112)
    return config
