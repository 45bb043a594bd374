"""The official-metrics cases (semi, multi, unsup) of ../shared/data/davis-mini as DAVIS folders:
what benchmarks/eval_speed.py times and tests/metrics/test_davis.py checks against the official
toolkit's numbers."""

from pathlib import Path

import numpy as np
from PIL import Image

from vos_jax.io.masks import write_mask


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
