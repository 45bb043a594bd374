"""The portrait model fine-tuned on person videos of a DAVIS-layout folder, MaskTrack-style:
single annotated frames with simulated previous masks, starting from MediaPipe's hair weights
(HairNet's graph, RGB + previous mask). DAVIS has no object categories, so its people are chosen
by name (`data.sequences`); every object of a frame counts as the person (`merge_objects`).
Frames are trained and segmented whole at 288x512 (DAVIS's 16:9), not stretched to 512x512.

    vos-jax convert mediapipe --tflite hair_segmentation.tflite --out /models/hair
    python train.py --config vos_jax/configs/portrait_davis.py --workdir /tmp/portrait-davis \
        --config.model.init_checkpoint=/models/hair --config.data.root=/data/DAVIS \
        --config.data.sequences=dance-twirl,hike,...
    vos-jax portrait video.mp4 --model /tmp/portrait-davis/models/step_N --size 288x512 ...

Validation (eval.root, default data.root) runs the MediaPipe recurrence from each first mask.
Arguments: `runlocal` (a seconds-long smoke run of the tiny model on the synthetic videos).
"""

from vos_jax.training.config import base_config, config_args


def get_config(arg=None):
    args = config_args(arg, ("runlocal",), "vos_jax/configs/portrait_davis.py")
    config = base_config("portrait")
    config.model.variant = "paper"
    config.data.update(
        source="davis", split="train", merge_objects=True, batch_size=8, num_frames=1,
        crop_size=(288, 512), scale_range=(1.0, 1.4), max_objects=1, prior=True, lucid=False,
    )  # fmt: skip
    config.total_steps = 800
    config.log_every_steps = 50
    config.checkpoint_every_steps = 200
    config.eval_every_steps = 0
    config.optimizer.update(name="adam", learning_rate=2e-4, weight_decay=0.0, warmup_steps=50)
    config.inference.update(max_objects=1, input_height=288, input_width=512)
    if "runlocal" in args:
        config.model.variant = "tiny"
        config.data.update(source="synthetic", batch_size=8, crop_size=(64, 96))
        config.update(total_steps=6, log_every_steps=1, checkpoint_every_steps=3)
        config.inference.update(input_height=64, input_width=96)
    return config
