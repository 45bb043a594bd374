"""RVOS on YouTube-VOS 2019 train (SPEC section 2), stage 1 of the official one-shot recipe
(imatge-upc/rvos scripts/train_one_shot_youtube.sh:1, `train_previous_mask.py -dataset=youtube
-batch_size=4 -length_clip=5 -base_model=resnet101 -max_epoch=20 --augment`): ResNet-101 from
ImageNet, clips of 5 consecutive annotated frames at 256x448, batch 4, teacher forcing: frame 0
takes its own ground truth as previous masks and every later frame the ground truth of the frame
before (train_previous_mask.py:290-291, :303; `given_frames = num_frames - 1`); Adam (torch's,
coupled L2 weight decay 1e-6) at a constant lr 1e-3, 1e-6 for the encoder, no gradient clipping;
flip and the official random affine. Stage 2 (vos_jax/configs/rvos_ytvos_stage2.py) continues from
this run's weights on the model's own outputs. Read from our TFDS build, validated on DAVIS 2017
val (YouTube-VOS valid has no public ground truth beyond the first masks; the official code
validates on its train-val part of YouTube-VOS train, README.md:40-43).

    vos-jax build-dataset youtube_vos --config 2019 --manual_dir /data/ytvos --data_dir /data/tfds
    vos-jax convert resnet --torch resnet101.pth --out /models/resnet101
    python train.py --config vos_jax/configs/rvos_ytvos_stage1.py --workdir gs://BUCKET/stage1 \
        --config.data.tfds_data_dir=/data/tfds --config.eval.root=/data/DAVIS \
        --config.model.init_checkpoint=/models/resnet101
    python train.py --config vos_jax/configs/rvos_ytvos_stage2.py:gs://BUCKET/stage1 \
        --workdir gs://BUCKET/stage2 --config.data.tfds_data_dir=/data/tfds \
        --config.eval.root=/data/DAVIS
Arguments (comma-separated): `zeroshot` (unsupervised: the official one-stage zero-shot recipe,
train_zero_shot_youtube.sh, `train.py` for 50 epochs; there is no stage 2), `runlocal` (the tiny
model, small crops and a few steps that run on a laptop CPU).
"""

from vos_jax.configs.rvos_davis import official_recipe
from vos_jax.training.config import base_config, config_args

# Official epochs in steps, an estimate: YouTube-VOS train videos have ~27 annotated frames on
# average, so ~5 non-overlapping clips of 5 each (dataloader/youtubeVOS.py:104-119); the official
# train-train split (README.md:40-43; count sum(floor(N / 5)) over its train-train-meta.json for
# the exact figure) holds most of train's 3,471 videos: ~17k clips, ~4,300 steps of batch 4.
STEPS_PER_EPOCH = 4_300


def get_config(arg=None):
    args = config_args(arg, ("zeroshot", "runlocal"), "vos_jax/configs/rvos_ytvos_stage1.py")
    runlocal, one_shot = "runlocal" in args, "zeroshot" not in args
    config = base_config("rvos")
    config.model.update(variant="tiny" if runlocal else "paper", one_shot=one_shot)
    # Start from ImageNet: `model.init_checkpoint` names the converted backbone (see above),
    # loaded into the RVOS encoder's ResNet (params encoder/base/...).
    config.model.init_prefixes = "encoder/base"
    # Official: 20 epochs one-shot (each stage), 50 zero-shot (train_zero_shot_youtube.sh).
    config.total_steps = (20 if one_shot else 50) * STEPS_PER_EPOCH  # 86,000 / 215,000
    config.log_every_steps = 100
    config.checkpoint_every_steps = STEPS_PER_EPOCH
    config.eval_every_steps = 2 * STEPS_PER_EPOCH
    config.data.update(source="tfds", tfds_name="youtube_vos/2019", split="train", batch_size=4)
    config.data.max_objects = 10
    official_recipe(config, (256, 448))  # train_previous_mask.py:57: inputRes 256x448
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
    # Teacher forcing: frames 1 .. T - 1 take the ground truth of the frame before (zero-shot
    # takes no previous masks).
    config.loss.given_frames = config.data.num_frames - 1 if one_shot else 0
    return config
