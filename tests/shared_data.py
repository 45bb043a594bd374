"""Access to ../shared/ (real DAVIS data, official fixtures) for the tests."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vos_jax.io.masks import write_mask

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("VOS_JAX_SHARED", REPO.parent / "shared"))
DAVIS_MINI = "data/davis-mini"


def shared_path(relative: str) -> Path:
    """A path under ../shared/. Skips the test when it is absent (a user's clone has no shared/),
    but fails under VOS_JAX_REQUIRE_SHARED=1, which CI sets."""
    path = SHARED / relative
    if not path.exists():
        message = f"{path} not found: this test needs the project's shared data (../shared/)"
        if os.environ.get("VOS_JAX_REQUIRE_SHARED") == "1":
            pytest.fail(message + " and VOS_JAX_REQUIRE_SHARED=1", pytrace=False)
        pytest.skip(message)
    return path


def _link_sequences(root, folder, sources):
    (root / folder).mkdir(parents=True, exist_ok=True)
    for seq, src in sources.items():
        (root / folder / seq).symlink_to(src, target_is_directory=True)


def _gt_dir(mini, seq):
    for sub in ("DAVIS/Annotations/480p", "gt-only/Annotations/480p"):
        if (mini / sub / seq).is_dir():
            return mini / sub / seq
    raise AssertionError(f"no ground truth for {seq}")


def build_davis_mini_case(mini: Path, case: str, seqs: list[str], tmp_path: Path):
    """A DAVIS root + results folder reproducing one case of the official-metrics fixture (see its
    _about): semi, multi or unsup, from the davis-mini folder `mini`. -> (davis_root, results)."""
    osvos = mini / "results/semi-supervised/osvos"
    root, results = tmp_path / "davis", tmp_path / "results"
    if case == "semi":
        _link_sequences(root, "Annotations/480p", {s: _gt_dir(mini, s) for s in seqs})
        _link_sequences(tmp_path, "results", {s: osvos / s for s in seqs})
    elif case == "unsup":
        _link_sequences(root, "Annotations_unsupervised/480p", {s: osvos / s for s in seqs})
        rvos = mini / "results/unsupervised/rvos"
        _link_sequences(tmp_path, "results", {s: rvos / s for s in seqs})
    else:  # multi: OSVOS as ground truth, OSVOS lagged by one frame as the result
        _link_sequences(root, "Annotations/480p", {s: osvos / s for s in seqs})
        for seq in seqs:
            paths = sorted((osvos / seq).glob("*.png"))
            for t, path in enumerate(paths):
                source = paths[max(t - 1, 0)]
                write_mask(results / seq / path.name, np.array(Image.open(source)))
    return root, results
