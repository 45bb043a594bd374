"""RVOS on DAVIS 2017 train (SPEC section 2), the official one-shot recipe (imatge-upc/rvos
scripts/train_one_shot_davis.sh: `train_previous_inference_mask.py -dataset=davis2017
-batch_size=4 -length_clip=5 -base_model=resnet101 -max_epoch=20 --augment`): ResNet-101 from
ImageNet, clips of 5 consecutive frames at 240x427, batch 4; frame 0 takes its own ground truth as
previous masks, every later frame the model's own (sigmoid, detached) output of the frame before
(`given_frames=0`), every frame in the loss (summed); Adam (torch's, coupled L2 weight decay 1e-6
on every parameter) at a constant lr 1e-3, 1e-6 for the encoder, no gradient clipping; flip and
the official random affine, once per clip. Evaluated on DAVIS 2017 val at 240x427.

From ImageNet, as the official script (the backbone converted once from torchvision's
resnet101.pth, whose weights are the official `models.resnet101(pretrained=True)`):
    vos-jax convert resnet --torch resnet101.pth --out /models/resnet101
    python train.py --config vos_jax/configs/rvos_davis.py --workdir gs://BUCKET/rvos_davis \
        --config.data.root=/data/DAVIS --config.model.init_checkpoint=/models/resnet101
    python eval.py --davis_root /data/DAVIS --checkpoint WORKDIR/models/step_<N> \
        --results OUT --config vos_jax/configs/rvos_davis.py
The paper's 60.6 J&F on val comes from fine-tuning a YouTube-VOS model
(train_one_shot_davis_from_youtube.sh: the same command with `--transfer`): start from its workdir
with `--config.model.init_checkpoint=YTVOS_STAGE2_WORKDIR --config.model.init_prefixes=` (all
parameters, not only the backbone; vos_jax/configs/rvos_ytvos_stage2.py); the official weights
import with `vos-jax convert rvos`. Arguments (comma-separated): `zeroshot` (unsupervised, the
official train_zero_shot_davis.sh: `train.py`, 10 epochs), `runlocal` (the tiny model, small
crops and a few steps that run on a laptop CPU).
"""

from vos_jax.training.config import base_config, config_args

# Official epochs in steps: DAVIS 2017 train's 60 videos (4,209 frames) in non-overlapping clips of
# 5 give sum(floor(N / 5)) = 829 clips, 207 steps of batch 4 (drop_last) per epoch.
STEPS_PER_EPOCH = 207


def official_recipe(config, input_size: tuple[int, int]) -> None:
    """The data and optimizer settings every official RVOS trainer shares (also the YouTube-VOS
    stages'); `input_size`: the official inputRes the frames are resized to."""
    config.data.update(sampling="clip", num_frames=5, crop_size=input_size, scale_range=(1.0, 1.0))
    # Every clip as it comes: no redraw of clips with small objects (FEELVOS's filter; the official
    # clips are fixed, davis2017.py:135-150, youtubeVOS.py:104-119).
    config.data.min_stride4_pixels = 0
    # The official augmentation (dataloader/dataset.py:102-151): every frame resized to inputRes
    # (train_previous_inference_mask.py:48, 57; `affine` resizes to crop_size), one horizontal
    # flip and one random affine map (rotation, translation, zoom; davis2017.py:78-91) per clip;
    # no photometric jitter.
    config.data.update(affine=True, flip=True, photometric=False)
    config.optimizer.update(
        name="adam",
        learning_rate=1e-3,  # decoder (args.py:33-41: lr, optim 'adam', weight_decay 1e-6)
        weight_decay=1e-6,  # torch Adam's L2, encoder and decoder alike
        backbone_lr_multiplier=1e-3,  # encoder lr_cnn 1e-6, trained from step 0
        backbone="encoder/base",  # the ResNet; the skip convs train with the decoder
        clip_norm=0.0,  # the official code clips nothing
        warmup_steps=0,
    )
    config.loss.frame_reduction = "sum"  # each frame adds its loss (train*.py:143-150)


def get_config(arg=None):
    args = config_args(arg, ("zeroshot", "runlocal"), "vos_jax/configs/rvos_davis.py")
    runlocal, one_shot = "runlocal" in args, "zeroshot" not in args
    config = base_config("rvos")
    config.model.update(variant="tiny" if runlocal else "paper", one_shot=one_shot)
    # Start from ImageNet: `model.init_checkpoint` names the converted backbone (see above),
    # loaded into the RVOS encoder's ResNet (params encoder/base/...).
    config.model.init_prefixes = "encoder/base"
    # Official: 20 epochs one-shot, 10 zero-shot (train_zero_shot_davis.sh), keeping the
    # checkpoint of the best val loss; we keep the best by val J&F, evaluated every 2 epochs.
    config.total_steps = (20 if one_shot else 10) * STEPS_PER_EPOCH  # 4,140 / 2,070
    config.log_every_steps = 50
    config.checkpoint_every_steps = STEPS_PER_EPOCH
    config.eval_every_steps = 2 * STEPS_PER_EPOCH
    config.data.update(source="davis", root="", split="train", batch_size=4, max_objects=10)
    official_recipe(config, (240, 427))
    # Frame 0: its own ground truth as previous masks (train_previous_inference_mask.py:293-294);
    # frames 1-4: the model's sigmoid of the frame before, detached (:169-170, :305).
    config.loss.given_frames = 0
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
