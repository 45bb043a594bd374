"""The training data a config names: its video source, the val folder, the grain dataset.

`data.source = "synthetic"` generates the built-in synthetic videos on first use and caches them
by their parameters (`synthetic.cache_dir`, else `$VOS_JAX_CACHE`, else `~/.cache/vos-jax`): a
second run with the same parameters reuses them, a run with other parameters gets its own folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import jax

from vos_jax import families
from vos_jax.data import pipeline, synthetic
from vos_jax.data.sources import DavisFolderSource, ImageFolderSource, TfdsVideoSource
from vos_jax.sharding import host_batch_size


def cache_root(cache_dir: str = "") -> Path:
    default = Path(os.environ.get("VOS_JAX_CACHE", "~/.cache/vos-jax"))
    return Path(cache_dir or default).expanduser().absolute()


def synthetic_root(s) -> Path:
    """The synthetic DAVIS-layout folder of config group `s` (generated once, atomically)."""
    name = (
        f"synthetic-davis-n{s.num_videos}-t{s.num_frames}-{s.height}x{s.width}"
        f"-o{s.num_objects}-seed{s.seed}-{s.preset}-v4"  # v4: event rates in the presets
        + (f"-val{s.val_videos}" if s.val_videos else "")  # else the default 20%
    )
    root = cache_root(s.cache_dir) / name
    if root.is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    # Written next to its final place and renamed: a killed run never leaves a half dataset.
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root.parent))
    try:
        synthetic.write_dataset(
            tmp,
            "davis",
            s.num_videos,
            s.num_frames,
            (s.height, s.width),
            s.num_objects,
            s.seed,
            s.preset,
            s.val_videos or None,
        )
        os.replace(tmp, root)
    except OSError:
        if not root.is_dir():  # lost a race with another process: theirs is as good
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def train_source(config):
    """-> (training video source, DAVIS-layout val root or None)."""
    d = config.data
    sequences = _names(d.sequences)
    if d.source == "synthetic":
        root = synthetic_root(config.synthetic)
        return DavisFolderSource(root, d.split, sequences=sequences), Path(config.eval.root or root)
    if d.source == "davis":
        source = DavisFolderSource(d.root, d.split, sequences=sequences)
        return source, Path(config.eval.root or d.root)
    if d.source == "images":  # single annotated images (MaskTrack): no videos to validate on
        root = Path(d.root)
        source = ImageFolderSource(root / "images", root / "masks")
        return source, Path(config.eval.root) if config.eval.root else None
    data_dir = Path(d.tfds_data_dir or "~/tensorflow_datasets").expanduser()  # TFDS default
    source = TfdsVideoSource(d.tfds_name, d.split, data_dir, sequences, _names(d.categories))
    return source, Path(config.eval.root) if config.eval.root else None


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated config list ("breakdance,dance-twirl") -> its names."""
    return tuple(n.strip() for n in text.split(",") if n.strip())


def data_sample_config(config) -> pipeline.SampleConfig:
    """The samples config group `data` asks for (sampling "" = the family's)."""
    d = config.data
    return pipeline.SampleConfig(
        sampling=d.sampling or families.get(config.model.family).SAMPLING,
        num_frames=d.num_frames,
        max_gap=d.max_gap,
        stride=d.stride,
        crop_size=tuple(d.crop_size),
        scale_range=tuple(d.scale_range),
        max_objects=d.max_objects,
        flip=d.flip,
        photometric=d.photometric,
        prior=d.prior,
        lucid=d.lucid,
        reference_apart=d.reference_apart,
        min_stride4_pixels=d.min_stride4_pixels,
        damage=d.damage,
        affine=d.affine,
        merge_objects=d.merge_objects,
    )


def train_dataset(config, source):
    """This host's shard of the batches: host batch = global batch / number of hosts."""
    return pipeline.make_dataset(
        source,
        data_sample_config(config),
        host_batch_size(config.data.batch_size),
        seed=config.seed,
        shard_index=jax.process_index(),
        shard_count=jax.process_count(),
    )
