"""FEELVOS on DAVIS 2017 train (SPEC section 1; paper settings, ResNet-101 backbone).

Train (one host; the mesh takes every device, the global batch of 48 triplets splits over them):
    python train.py --config vos_jax/configs/feelvos_davis17.py \
        --workdir gs://BUCKET/feelvos_davis17 \
        --config.data.root=/data/DAVIS
Evaluate the result (or any published checkpoint) on DAVIS 2017 val:
    python eval.py --davis_root /data/DAVIS --checkpoint WORKDIR/models/step_200000 \
        --results OUT --config vos_jax/configs/feelvos_davis17.py
`:runlocal` switches to the tiny model, small crops and a few steps that run on a laptop CPU.
"""

from vos_jax.training.config import base_config


def official_recipe(config) -> None:
    """The samples, optimizer and loss of the official FEELVOS training (also feelvos_ytvos.py)."""
    config.data.update(crop_size=(465, 465), scale_range=(1.0, 1.3), max_gap=1)
    config.data.update(photometric=False, min_stride4_pixels=10)
    config.optimizer.update(
        name="momentum",
        learning_rate=7e-4,
        weight_decay=4e-5,
        clip_per_variable=5.0,
        bias_lr_multiplier=2.0,
    )
    config.loss.update(anneal_steps=100_000, max_per_object=1024, max_displacement=15)


def get_config(arg=None):
    runlocal = arg == "runlocal"
    if arg and not runlocal:
        raise ValueError(f"vos_jax/configs/feelvos_davis17.py: unknown argument {arg!r} (runlocal)")
    config = base_config("feelvos")
    config.model.variant = "tiny" if runlocal else "paper"
    config.model.dtype = "float32" if runlocal else "bfloat16"
    # Official recipe (tensorflow/models research/feelvos, train.sh and train.py flags; issue 14
    # note has the table): 200k steps of 48 triplets (16 GPUs x 3), 465x465 crops, scale
    # 1.0-1.3, previous and current frames adjacent, the reference augmented on its own, no
    # colour jitter, samples with < 10 stride-4 pixels of a reference label redrawn; momentum
    # 0.9, poly LR from 7e-4, weight decay 4e-5 (not on depthwise kernels, biases, norms),
    # bias gradients x2, each gradient clipped to norm 5; the per-video losses summed,
    # bootstrapping annealed to 15% over 100k steps; output stride 16 in training (8 at eval),
    # BatchNorm statistics frozen. Start from an ImageNet backbone (the paper's Xception-65 is
    # COCO-pretrained; ours a torchvision ResNet-101):
    #   vos-jax convert resnet --torch resnet101.pth --out /models/resnet101
    #   --config.model.init_checkpoint=/models/resnet101
    config.total_steps = 200_000
    config.log_every_steps = 100
    config.checkpoint_every_steps = 5_000
    config.eval_every_steps = 20_000
    config.data.update(source="davis", root="", split="train", batch_size=48, max_objects=10)
    official_recipe(config)
    config.eval.update(split="val")
    # The inference engine (vos_jax.families.feelvos): object slots, global matching every N
    # frames (1 = every frame, as the paper), frames that may bring new objects, local window k.
    config.inference.update(
        max_objects=10, global_every=1, max_reference_frames=1, max_displacement=15, output_stride=8
    )
    if runlocal:
        config.total_steps = 20
        config.log_every_steps = 5
        config.checkpoint_every_steps = 10
        config.eval_every_steps = 20
        config.eval.max_videos = 2
        config.data.update(batch_size=8, crop_size=(65, 65), max_objects=3)
        config.model.fine_tune_batch_norm = True  # from scratch: no statistics to keep
        config.loss.anneal_steps = 20
    return config
