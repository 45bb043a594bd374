"""SiamMask (SPEC section 3), the official recipe (foolwood/SiamMask experiments/siammask_base
and siammask_sharp, tools/train_siammask.py, train_siammask_refine.py), on DAVIS 2017 train or a
YouTube-VOS builder (`--config.data.source=tfds --config.data.tfds_name=youtube_vos/2019`).

Stage 1 (`mask`, siammask_base): ResNet-50 from ImageNet, pairs of frames, template 127 (shift 4,
scale 0.05), search 255 (shift 64, scale 0.18, blur 0.18), grey pairs 0.25, negative pairs 0.2;
losses cls 1 + box 1.2 + mask 36; SGD momentum 0.9, weight decay 1e-4, batch 64, lr 5e-3 to
2.5e-3 (log) after a 5-epoch warm-up from 1e-3; the backbone at 0.1 x the lr with frozen BN.
Stage 2 (`refine`, siammask_sharp): from stage 1, the refine module alone (every other
parameter frozen), search 143 (shift 8), mask loss 36 only, lr 1e-2 to 2.5e-3.

    vos-jax convert resnet --torch resnet50.pth --out /models/resnet50
    python train.py --config vos_jax/configs/siammask_davis.py --workdir W1 \
        --config.data.root=/data/DAVIS --config.model.init_checkpoint=/models/resnet50
    python train.py --config vos_jax/configs/siammask_davis.py:refine --workdir W2 \
        --config.data.root=/data/DAVIS --config.model.init_checkpoint=W1 \
        --config.model.init_prefixes=
    python eval.py --config vos_jax/configs/siammask_davis.py --checkpoint W2/models/step_<N> \
        --davis_root /data/DAVIS --results OUT

With the official weights (`vos-jax convert siammask --torch SiamMask_DAVIS.pth --out DIR`, then
`eval.py --checkpoint DIR`) the published DAVIS 2017 val figures are J 54.3 / F 58.5.

Where ours differs: the official backbone trains only from the middle of stage 1 (`unfix(0.5)`:
layer2-3 at 0.1 x the lr); ours trains it from step 0 at 0.1 x. The official pairs are up to 20
(YouTube-VOS) frames apart at random; ours are `data.stride` apart. The official ImageNet
backbone (`resnet.model`) has 3x3 shortcuts; torchvision's has 1x1, so the 3x3 shortcuts of
layer2-3 start from scratch (init_checkpoint loads every other backbone weight).
"""

from vos_jax.training.config import base_config, config_args

# Official `num` pairs per epoch over 20 epochs at batch 64: 600000 / 20 / 64.
STEPS_PER_EPOCH = 468


def official_recipe(config, refine: bool) -> None:
    """The official optimizer and augmentation of either stage (config.json of
    experiments/siammask_base and siammask_sharp)."""
    config.data.update(sampling="clip", num_frames=2, scale_range=(1.0, 1.0))
    config.data.update(flip=False, photometric=False, min_stride4_pixels=0)
    config.optimizer.update(
        name="momentum", weight_decay=1e-4, clip_norm=10.0, warmup_steps=5 * STEPS_PER_EPOCH
    )
    if refine:
        config.loss.update(
            stage="refine", cls_weight=0.0, loc_weight=0.0, mask_weight=36.0, search_shift=8.0
        )
        config.loss.negative_pairs = 0.0
        config.optimizer.update(
            learning_rate=1e-2,
            backbone_lr_multiplier=0.0,  # only `refine_module` trains
            backbone="backbone,adjust_conv,adjust_bn,cls,loc,mask",
        )
    else:
        config.optimizer.update(learning_rate=5e-3, backbone_lr_multiplier=0.1, backbone="backbone")


def get_config(arg=None):
    args = config_args(arg, ("refine", "runlocal"), "vos_jax/configs/siammask_davis.py")
    config = base_config("siammask")
    config.model.variant = "tiny" if "runlocal" in args else "paper"
    config.data.update(source="davis", split="train", batch_size=64, max_objects=10)
    config.data.crop_size = (480, 854)  # whole 480p frames: the loss crops the pairs
    official_recipe(config, refine="refine" in args)
    config.total_steps = 20 * STEPS_PER_EPOCH
    config.log_every_steps = 100
    config.checkpoint_every_steps = 2000
    config.eval_every_steps = 0
    config.inference.update(max_objects=10)
    if "runlocal" in args:
        config.data.update(batch_size=2, crop_size=(120, 214))
        config.total_steps = 4
        config.checkpoint_every_steps = 2
        config.optimizer.warmup_steps = 0
    return config
