# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # vos-jax quickstart: train FEELVOS on synthetic videos, evaluate it, look at the result
#
# Everything below calls the package; the notebook holds no logic of its own. On Colab, clone
# the repository and install it first (a GPU/TPU runtime trains much faster than the CPU):

# %%
# !git clone https://github.com/vos-jax/vos-jax && cd vos-jax && pip install -q -e .
# %cd vos-jax

# %%
import os
from pathlib import Path

import jax
import numpy as np

from vos_jax.cli import main as vos_jax_cli
from vos_jax.config_files import load_config
from vos_jax.io.layouts import DavisLayout, read_davis_sequence
from vos_jax.io.masks import read_mask
from vos_jax.io.video import overlay
from vos_jax.training.data import synthetic_root
from vos_jax.training.loop import train

print(jax.devices())

# %% [markdown]
# ## Data and config
# `feelvos_synthetic.py` (shipped in `vos_jax/configs/`) is the tiny FEELVOS on the built-in
# synthetic videos (textured objects that move, scale, occlude each other, leave and enter).
# `QUICKSTART_SMALL=1` (used by CI) switches to its seconds-long `:runlocal` variant.

# %%
SMALL = os.environ.get("QUICKSTART_SMALL") == "1"
WORKDIR = Path(os.environ.get("QUICKSTART_DIR", "quickstart_out")).absolute()
config = load_config("feelvos_synthetic.py" + (":runlocal" if SMALL else ""))
if not SMALL:
    config.total_steps = 300
config.eval_every_steps = 0  # evaluated below with eval.py
config.synthetic.cache_dir = str(WORKDIR / "data")
root = synthetic_root(config.synthetic)
val = DavisLayout(root).sequences("val")
print(root, "val videos:", val)

# %% [markdown]
# ## Train
# Metrics go to `WORKDIR/train/metrics.jsonl` and TensorBoard (`%tensorboard --logdir ...`);
# running the cell again resumes from the last checkpoint.

# %%
summary = train(config, WORKDIR / "train")
print({k: v for k, v in summary.items() if k in ("step", "loss", "step_time_s", "model")})

# %% [markdown]
# ## Evaluate on the held-out videos (the DAVIS protocol, as eval.py)

# %%
results = WORKDIR / "results"
vos_jax_cli(
    [
        "eval",
        "--davis_root", str(root),
        "--checkpoint", summary["model"],
        "--results", str(results),
        "--max_objects", str(config.inference.max_objects),
        "--overwrite",
    ]
)  # fmt: skip

# %% [markdown]
# ## Look at one video: predicted masks over the frames

# %%
seq = val[0]
frames, truth = read_davis_sequence(root, seq)
picks = np.linspace(0, len(frames) - 1, 4).astype(int)
panels = [overlay(frames[t], read_mask(results / seq / f"{t:05d}.png")) for t in picks]
strip = np.concatenate(panels, axis=1)
try:
    import matplotlib.pyplot as plt

    plt.figure(figsize=(16, 4))
    plt.imshow(strip)
    plt.axis("off")
    plt.title(f"{seq}: frames {list(picks)}")
    plt.show()
except ImportError:
    print("matplotlib not installed; overlay strip shape", strip.shape)
