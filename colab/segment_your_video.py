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
# # Segment your own video with vos-jax
#
# Two ways: a published vos-jax checkpoint (`vos_jax.load_published`: give the first frame's
# mask, get every frame's masks), or MediaPipe's real selfie model imported into JAX
# (`vos-jax portrait`: no mask needed, the person stays in colour). On Colab install the package
# first, then upload a video with the file browser (or `google.colab.files.upload()`):

# %%
# !git clone https://github.com/vos-jax/vos-jax && cd vos-jax && pip install -q -e .
# !pip install -q mediapipe==0.10.21  # only for its selfie model file, used below
# %cd vos-jax

# %%
import os
from pathlib import Path

import numpy as np

import vos_jax
from vos_jax.cli import main as vos_jax_cli
from vos_jax.io.masks import read_mask
from vos_jax.io.video import overlay, read_frames

# %% [markdown]
# ## Your video, its first mask and a checkpoint
# Set `VIDEO` (an .mp4 or a folder of frames), `FIRST_MASK` (a PNG of object ids for frame 0)
# and `CHECKPOINT` (a published vos-jax checkpoint folder). Left empty, this notebook makes a
# synthetic video and trains a small model for a few seconds, so that every cell runs.

# %%
VIDEO = os.environ.get("SEGMENT_VIDEO", "")
FIRST_MASK = os.environ.get("SEGMENT_FIRST_MASK", "")
CHECKPOINT = os.environ.get("SEGMENT_CHECKPOINT", "")
WORKDIR = Path(os.environ.get("QUICKSTART_DIR", "segment_out")).absolute()
if not (VIDEO and FIRST_MASK and CHECKPOINT):
    from vos_jax.config_files import load_config
    from vos_jax.io.layouts import DavisLayout
    from vos_jax.training.data import synthetic_root
    from vos_jax.training.loop import train

    config = load_config("feelvos_synthetic.py:runlocal")
    config.eval_every_steps = 0
    config.synthetic.cache_dir = str(WORKDIR / "data")
    layout = DavisLayout(synthetic_root(config.synthetic))
    seq = layout.sequences("val")[0]
    VIDEO, FIRST_MASK = str(layout.frames_dir(seq)), str(layout.mask_path(seq, "00000"))
    CHECKPOINT = train(config, WORKDIR / "train")["model"]
print(VIDEO, FIRST_MASK, CHECKPOINT)

# %% [markdown]
# ## Segment with the published checkpoint

# %%
segment = vos_jax.load_published(CHECKPOINT)  # checks the checkpoint's SHA256SUMS
print(segment.meta["family"], segment.meta["variant"], segment.meta["metrics"])
labels = segment(VIDEO, read_mask(FIRST_MASK))
frames = list(read_frames(VIDEO))
print(len(frames), "frames, objects", sorted(set(np.unique(labels)) - {0}))
picks = np.linspace(0, len(frames) - 1, 4).astype(int)
strip = np.concatenate([overlay(frames[t], labels[t]) for t in picks], axis=1)
try:
    import matplotlib.pyplot as plt

    plt.figure(figsize=(16, 4))
    plt.imshow(strip)
    plt.axis("off")
    plt.show()
except ImportError:
    print("matplotlib not installed; overlay strip shape", strip.shape)

# %% [markdown]
# ## A person in colour, the background grey: MediaPipe's selfie model
# `selfie` is found in an installed `mediapipe` package (or `$VOS_JAX_MEDIAPIPE`); the edited
# video is written to `WORKDIR/keep_colour.mp4`.

# %%
code = vos_jax_cli(["portrait", VIDEO, "--model", "selfie", "--effect", "keep-colour",
                    "--out", str(WORKDIR / "keep_colour.mp4"), "--overwrite"])  # fmt: skip
print("portrait: done" if code == 0 else "portrait: see the error above (no mediapipe?)")
