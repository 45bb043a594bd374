"""FEELVOS on YouTube-VOS 2019 train (SPEC section 1: the paper adds YouTube-VOS to DAVIS for its
71.5 J&F), read from our TFDS build, validated on DAVIS 2017 val (YouTube-VOS valid has no public
ground truth beyond the first masks).

Build the dataset once, then train:
    vos-jax build-dataset youtube_vos --config 2019 --manual_dir /data/ytvos --data_dir /data/tfds
    python train.py --config vos_jax/configs/feelvos_ytvos.py --workdir gs://BUCKET/feelvos_ytvos \
        --config.data.tfds_data_dir=/data/tfds --config.eval.root=/data/DAVIS
`:runlocal` switches to the tiny model, small crops and a few steps that run on a laptop CPU.
"""

from vos_jax.configs.feelvos_davis17 import official_recipe
from vos_jax.training.config import base_config


def get_config(arg=None):
    runlocal = arg == "runlocal"
    if arg and not runlocal:
        raise ValueError(f"vos_jax/configs/feelvos_ytvos.py: unknown argument {arg!r} (runlocal)")
    config = base_config("feelvos")
    config.model.variant = "tiny" if runlocal else "paper"
    config.model.dtype = "float32" if runlocal else "bfloat16"
    config.total_steps = 200_000
    config.log_every_steps = 100
    config.checkpoint_every_steps = 5_000
    config.eval_every_steps = 20_000
    config.data.update(source="tfds", tfds_name="youtube_vos/2019", split="train", batch_size=48)
    # The official recipe as feelvos_davis17.py (its comment lists it); triplets 5 raw frames
    # apart on YouTube-VOS, whose frames are annotated every 5th.
    config.data.max_objects = 10
    official_recipe(config)
    config.eval.update(root="", split="val")  # set to a DAVIS folder to validate
    # YouTube-VOS objects may first appear after frame 0: several reference frames.
    config.inference.update(max_objects=10, max_reference_frames=5, output_stride=8)
    if runlocal:
        config.total_steps = 20
        config.log_every_steps = 5
        config.checkpoint_every_steps = 10
        config.eval_every_steps = 0
        config.data.update(batch_size=8, crop_size=(65, 65), max_objects=3)
        config.model.fine_tune_batch_norm = True  # from scratch: no statistics to keep
        config.loss.anneal_steps = 20
    return config
