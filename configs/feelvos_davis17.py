"""FEELVOS on DAVIS 2017 (SPEC section 1; paper settings).

Evaluate a checkpoint on DAVIS 2017 val with this config's inference settings:
    python eval.py --davis_root DAVIS --checkpoint CKPT --results OUT \
        --config configs/feelvos_davis17.py
`:runlocal` switches to the tiny model and settings that run on a laptop CPU.
"""

import ml_collections


def get_config(arg=None):
    runlocal = arg == "runlocal"
    config = ml_collections.ConfigDict()
    config.model = ml_collections.ConfigDict(
        dict(family="feelvos", variant="tiny" if runlocal else "paper")
    )
    # The inference engine (vos_jax.inference.feelvos): object slots, global matching every N
    # frames (1 = every frame, as the paper), frames that may bring new objects, local window k.
    config.inference = ml_collections.ConfigDict(
        dict(max_objects=10, global_every=1, max_reference_frames=1, max_displacement=15)
    )
    return config
