"""RVOS on YouTube-VOS 2019 train (SPEC section 2): ResNet-101, 256x448 frames, clips of 5,
batch 4, Adam with decoder LR 1e-3 and encoder LR 1e-6 (the paper's one-shot G about 56.8),
read from our TFDS build, validated on DAVIS 2017 val (YouTube-VOS valid has no public ground
truth beyond the first masks).

    vos-jax build-dataset youtube_vos --config 2019 --manual_dir /data/ytvos --data_dir /data/tfds
    python train.py --config vos_jax/configs/rvos_ytvos.py --workdir gs://BUCKET/rvos_ytvos \
        --config.data.tfds_data_dir=/data/tfds --config.eval.root=/data/DAVIS
Arguments (comma-separated): `zeroshot` (unsupervised), `runlocal` (the tiny model, small crops
and a few steps that run on a laptop CPU).
"""

from vos_jax.training.config import base_config, config_args


def get_config(arg=None):
    args = config_args(arg, ("zeroshot", "runlocal"), "vos_jax/configs/rvos_ytvos.py")
    runlocal = "runlocal" in args
    config = base_config("rvos")
    config.model.update(variant="tiny" if runlocal else "paper", one_shot="zeroshot" not in args)
    # The official code trains by epochs; 100k steps of batch 4 clips of 5 frames is about 5
    # passes over YouTube-VOS 2019 train's 3471 videos (~25 clips of 5 annotated frames each).
    config.total_steps = 100_000
    config.log_every_steps = 100
    config.checkpoint_every_steps = 5_000
    config.eval_every_steps = 10_000
    config.data.update(source="tfds", tfds_name="youtube_vos/2019", split="train", batch_size=4)
    config.data.update(sampling="clip", num_frames=5, crop_size=(256, 448), scale_range=(1.0, 1.0))
    config.data.update(max_objects=10)
    config.optimizer.update(
        name="adamw", learning_rate=1e-3, weight_decay=0.0, backbone_lr_multiplier=1e-3
    )
    config.loss.given_frames = 1
    config.eval.update(root="", split="val")  # set to a DAVIS folder to validate
    config.inference.update(max_objects=10, input_height=256, input_width=448)
    if runlocal:
        config.total_steps = 20
        config.log_every_steps = 5
        config.checkpoint_every_steps = 10
        config.eval_every_steps = 0
        config.data.update(batch_size=8, crop_size=(64, 64), max_objects=3, num_frames=3)
        config.optimizer.backbone_lr_multiplier = 1.0
        config.inference.update(max_objects=3, input_height=64, input_width=112)
    return config
