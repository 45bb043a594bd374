"""The portrait model on Supervisely Person (SPEC section 4: the public substitute for Google's
data), trained MaskTrack-style from single images with simulated previous masks, as the 2018
blog's model: HairNet's graph (RGB + previous mask), 512x512 as MediaPipe runs it.

Build the dataset once (manual download, see tfds_builders/supervisely_person):
    python -m tfds_builders build supervisely_person --config default \
        --manual_dir /data/supervisely_person --data_dir /data/tfds
Train from scratch, or fine-tune MediaPipe's hair weights (`vos-jax convert mediapipe
--tflite hair_segmentation.tflite --out /models/hair`, then
`--config.model.init_checkpoint=/models/hair`):
    python train.py --config vos_jax/configs/portrait_supervisely.py --workdir WORKDIR \
        --config.data.tfds_data_dir=/data/tfds
The people of YouTube-VOS instead (or of a DAVIS release, chosen by name: see portrait_davis.py):
    --config.data.tfds_name=youtube_vos/2019 --config.data.categories=person
`lucid` adds Lucid Data Dreaming variations; `runlocal` a tiny CPU smoke run. To validate during
training (the MediaPipe recurrence from each first mask), give a DAVIS-layout folder of people,
e.g. `--config.eval.root=../shared/data/davis-people/DAVIS --config.eval_every_steps=5000`.
"""

from vos_jax.training.config import base_config, config_args


def get_config(arg=None):
    args = config_args(arg, ("lucid", "runlocal"), "vos_jax/configs/portrait_supervisely.py")
    config = base_config("portrait")
    config.model.variant = "paper"
    config.model.dtype = "bfloat16"
    config.data.update(
        source="tfds", tfds_name="supervisely_person/default", split="train", batch_size=64,
        num_frames=1, crop_size=(512, 512), scale_range=(0.8, 1.25), max_objects=1,
        merge_objects=True, prior=True, lucid="lucid" in args,
    )  # fmt: skip
    config.total_steps = 60_000
    config.log_every_steps = 100
    config.checkpoint_every_steps = 2_000
    config.eval_every_steps = 0  # no validation set in the dataset (see the docstring)
    config.optimizer.update(learning_rate=1e-3, warmup_steps=500)
    config.inference.update(max_objects=1, input_height=512, input_width=512)
    if "runlocal" in args:
        config.model.update(variant="tiny", dtype="float32")
        config.data.update(batch_size=8, crop_size=(64, 96))
        config.update(total_steps=6, log_every_steps=1, checkpoint_every_steps=3)
        config.inference.update(input_height=64, input_width=96)
    return config
