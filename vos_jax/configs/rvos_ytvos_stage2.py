"""RVOS on YouTube-VOS 2019 train, stage 2 of the official one-shot recipe (imatge-upc/rvos
scripts/train_one_shot_youtube.sh:2, `train_previous_inference_mask.py -dataset=youtube --transfer
-transfer_from=<stage 1> ... -max_epoch=20`): stage 1 (vos_jax/configs/rvos_ytvos_stage1.py)
again, from stage 1's weights, with the model's own outputs as previous masks: frame 0 takes its
own ground truth, every later frame the model's sigmoid of the frame before, detached
(train_previous_inference_mask.py:293-294, :305; `given_frames=0`). As `--transfer`
(:197-204), every parameter (encoder and decoder) comes from stage 1 and the optimizer starts
afresh.

The argument names stage 1's workdir (its last exported model is loaded; a published vos-jax
RVOS model folder works too), a path without commas, optionally followed by `,runlocal`:
    python train.py --config vos_jax/configs/rvos_ytvos_stage2.py:gs://BUCKET/stage1 \
        --workdir gs://BUCKET/stage2 --config.data.tfds_data_dir=/data/tfds \
        --config.eval.root=/data/DAVIS
    python train.py --config vos_jax/configs/rvos_ytvos_stage2.py:/tmp/stage1,runlocal ...
Zero-shot RVOS trains in one stage (rvos_ytvos_stage1.py:zeroshot).
"""

from vos_jax.configs import rvos_ytvos_stage1

FILE = "vos_jax/configs/rvos_ytvos_stage2.py"
USAGE = f"{FILE}:STAGE1_WORKDIR[,runlocal]"


def get_config(arg=None):
    items = [a for a in arg.split(",") if a] if arg else []
    if "zeroshot" in items:
        raise ValueError(
            f"{FILE}: zero-shot RVOS has no stage 2; train it with "
            "vos_jax/configs/rvos_ytvos_stage1.py:zeroshot"
        )
    paths = [a for a in items if a != "runlocal"]
    if len(paths) != 1:
        raise ValueError(f"{FILE}: expected stage 1's workdir ({USAGE}), got {arg!r}")
    config = rvos_ytvos_stage1.get_config("runlocal" if "runlocal" in items else None)
    config.model.update(init_checkpoint=paths[0], init_prefixes="")  # "": every parameter
    config.loss.given_frames = 0
    return config
