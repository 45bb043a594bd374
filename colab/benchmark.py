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
# # vos-jax benchmark: frames/s of a family against batch size and object count
#
# `vos-jax bench` compiles a family's streaming inference step at a static shape and times it
# (one JSON line per run: compile s, ms per frame, frames/s, FLOPs, MFU, memory, recompiles).
# Pick a GPU or TPU runtime for figures that matter; on Colab install the package first:

# %%
# !git clone https://github.com/vos-jax/vos-jax && cd vos-jax && pip install -q -e '.[bench]'
# %cd vos-jax

# %%
import json
import os
from pathlib import Path

import jax

from vos_jax.cli import main as vos_jax_cli

print(jax.devices())

# %% [markdown]
# ## A sweep
# `QUICKSTART_SMALL=1` (CI) runs tiny shapes; otherwise RVOS at 480p on 1-32 videos per step.

# %%
SMALL = os.environ.get("QUICKSTART_SMALL") == "1"
WORKDIR = Path(os.environ.get("QUICKSTART_DIR", "benchmark_out")).absolute()
WORKDIR.mkdir(parents=True, exist_ok=True)
family, variant = "rvos", "tiny" if SMALL else "paper"
size, batches, objects = ("64x96", "1,2", "1,2") if SMALL else ("480x864", "1,8,32", "1,5")
dtype = "float32" if jax.default_backend() == "cpu" else "bfloat16"
code = vos_jax_cli(
    [
        "bench", "--family", family, "--variant", variant, "--size", size,
        "--batch", batches, "--objects", objects, "--frames", "3" if SMALL else "20",
        "--dtype", dtype, "--json", str(WORKDIR / "bench.jsonl"),
        "--plot", str(WORKDIR / "bench.png"),
    ]
)  # fmt: skip
assert code == 0

# %% [markdown]
# ## The runs and the plot

# %%
runs = [json.loads(line) for line in (WORKDIR / "bench.jsonl").read_text().splitlines()]
for run in runs:
    print(run["batch"], run["objects"], run["frames_per_s"], "frames/s", run["mfu"], "MFU")
try:
    import matplotlib.pyplot as plt

    plt.figure(figsize=(8, 5))
    plt.imshow(plt.imread(WORKDIR / "bench.png"))
    plt.axis("off")
    plt.show()
except ImportError:
    print("matplotlib not installed; the plot is", WORKDIR / "bench.png")
