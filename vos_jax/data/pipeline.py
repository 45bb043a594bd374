"""The grain input pipeline: video source -> frame sampling -> decode -> augment -> objects ->
batches, deterministic from a seed and checkpointable.

Every step runs on the host, in grain worker processes (NumPy/OpenCV): decoding needs the CPU
anyway, the per-sample random geometry has data-dependent shapes before the crop, and keeping it
off the accelerator leaves the device to the model; the batch reaches the device already at its
static training shape. Each host makes its slice of every global batch (`make_dataset`), and
`sharding.global_batch` assembles the global batch on the training mesh.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import cv2
import grain
import numpy as np

from vos_jax.data import affine, augment, damage, sampling
from vos_jax.data.sources import VideoRecord, decode_frame, decode_mask

SAMPLINGS = ("triplet", "clip", "static")
# Draws of a sample before one that the small-object filter rejects is kept anyway. Official
# drops it and takes another video's sample (video_input_generator.py:522-537); a map over one
# video cannot, and a training run should not stop on a video whose objects are always tiny.
FILTER_DRAWS = 10

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SampleConfig:
    """How one training sample is made (see sampling.py, augment.py, affine.py, damage.py)."""

    sampling: str = "triplet"
    num_frames: int = 3  # T of the sample (3 for a triplet)
    # triplet: previous -> current at most this many frames apart (else the nearest earlier
    # annotated frame); 1 = adjacent, as official FEELVOS's
    # sample_adjacent_and_consistent_query_frames=True (common.py:42)
    max_gap: int = 1
    stride: int = 1  # clip: frame stride
    crop_size: tuple[int, int] = (465, 465)
    scale_range: tuple[float, float] = (1.0, 1.3)
    max_objects: int = 10  # foreground slots; arrays have max_objects + 1 (background = 0)
    flip: bool = True
    photometric: bool = True  # colour jitter (official FEELVOS and RVOS have none)
    prior: bool = False  # add MaskTrack-style simulated prior masks [T, h, w]
    lucid: bool = False  # static sampling: Lucid Data Dreaming variation of the image first
    # triplet: the reference frame gets its own scale, crop and flip, previous and current share
    # one (FEELVOS video_input_generator.py:394-439; input_preprocess.py:31-143 vs 146-280)
    reference_apart: bool = True
    # triplet and clip: redraw a sample whose cropped reference mask has a label with fewer
    # pixels on the stride-4 grid (FEELVOS MIN_LABEL_COUNT = 10; sampling.enough_reference_pixels)
    min_stride4_pixels: int = 0
    # FEELVOS mask damaging (utils/mask_damaging.py, dilate=False): 'prior' [T, h, w] holds every
    # frame's mask shifted, scaled and rotated per object (official default off, train.py:191)
    damage: bool = False
    # clip: RVOS's augmentation (resize to crop_size, one random affine map and flip per clip,
    # data/affine.py) instead of the random scale and crop
    affine: bool = False
    # all objects of a frame as one (object 1): one mask of several people
    merge_objects: bool = False

    def __post_init__(self):
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling: expected one of {SAMPLINGS}, got {self.sampling!r}")
        if self.sampling == "triplet" and self.num_frames != 3:
            raise ValueError(f"num_frames: a triplet has 3 frames, got {self.num_frames}")
        if self.num_frames < 1 or self.max_objects < 1 or self.max_gap < 1 or self.stride < 1:
            raise ValueError("num_frames, max_objects, max_gap and stride must be >= 1")
        if self.lucid and self.sampling != "static":
            raise ValueError(
                f"lucid: Lucid Data Dreaming dreams from one image (sampling "
                f"'static'), got sampling {self.sampling!r}"
            )
        if self.min_stride4_pixels < 0:
            raise ValueError(
                f"min_stride4_pixels: expected >= 0 (0: off), got {self.min_stride4_pixels}"
            )
        if self.damage and self.prior:
            raise ValueError(
                "damage: FEELVOS mask damaging and the MaskTrack simulation (prior) both make "
                "'prior'; set one of them"
            )
        if self.affine and self.sampling != "clip":
            raise ValueError(
                f"affine: RVOS's augmentation is per clip (sampling 'clip'), got sampling "
                f"{self.sampling!r}"
            )


class MakeSample(grain.transforms.RandomMap):
    """VideoRecord -> {'frames' uint8 [T, h, w, 3], 'masks' uint8 [T, h, w] (ids 0..O, 255
    void), 'object_valid' bool [O + 1], and 'prior' uint8 [T, h, w] if configured}."""

    def __init__(self, config: SampleConfig):
        self.config = config
        self._warned: set[str] = set()  # videos the small-object filter gave up on

    def _mask(self, record: VideoRecord, t) -> np.ndarray:
        mask = decode_mask(record.masks[t])
        return sampling.select_objects(mask, record.keep_ids, self.config.merge_objects)

    def _frames(self, record: VideoRecord, rng: np.random.Generator, decoded: dict):
        c = self.config
        if c.sampling == "static":
            t = rng.choice(np.flatnonzero(record.annotated))
            frame, mask = decode_frame(record.frames[t]), self._mask(record, t)
            if c.lucid:
                frame, mask, _ = augment.lucid_dream(frame, mask, rng)
            return augment.static_pseudo_video(frame, mask, c.num_frames, rng)
        if c.sampling == "triplet":
            picks = sampling.triplet_indices(record.annotated, c.max_gap, rng)
        else:
            picks = sampling.clip_indices(record.annotated, c.num_frames, c.stride, rng)
        # Decode only the frames the sample uses, each once over the filter's redraws.
        for t in picks:
            if t not in decoded:
                decoded[t] = decode_frame(record.frames[t]), self._mask(record, t)
        frames = np.stack([decoded[t][0] for t in picks])
        masks = np.stack([decoded[t][1] for t in picks])
        if frames.shape[1:3] != masks.shape[1:]:
            raise ValueError(f"{record.name}: mask size {masks.shape[1:]} != frame {frames.shape}")
        return frames, masks

    def _geometry(self, frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator):
        c = self.config
        if c.affine:
            return affine.random_affine_clip(frames, masks, c.crop_size, rng, c.flip)
        if c.sampling == "triplet" and c.reference_apart:
            # Official order: the reference first, then the two query frames together.
            ref_frames, ref_masks = self._scale_crop_flip(frames[:1], masks[:1], rng)
            frames, masks = self._scale_crop_flip(frames[1:], masks[1:], rng)
            return np.concatenate([ref_frames, frames]), np.concatenate([ref_masks, masks])
        return self._scale_crop_flip(frames, masks, rng)

    def _scale_crop_flip(self, frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator):
        c = self.config
        frames, masks = augment.random_scale_crop(frames, masks, c.crop_size, rng, c.scale_range)
        if c.flip:
            frames, masks = augment.random_flip(frames, masks, rng)
        return frames, masks

    def _draw(self, record: VideoRecord, rng: np.random.Generator):
        """Frames and masks after the geometric augmentation, redrawn (up to FILTER_DRAWS times,
        from the sample's own rng: deterministic) while the reference frame fails FEELVOS's
        small-object filter; then the last draw is kept and the video named in a warning."""
        c = self.config
        filtered = c.min_stride4_pixels > 0 and c.sampling != "static"
        decoded: dict = {}
        for _ in range(FILTER_DRAWS if filtered else 1):
            frames, masks = self._geometry(*self._frames(record, rng, decoded), rng)
            if not filtered or sampling.enough_reference_pixels(masks[0], c.min_stride4_pixels):
                return frames, masks
        if record.name not in self._warned:  # once per video, not at every epoch
            self._warned.add(record.name)
            log.warning(
                "%s: no sample in %d draws has >= %d stride-4 pixels of every label in its "
                "reference frame (min_stride4_pixels); keeping the last draw",
                record.name,
                FILTER_DRAWS,
                c.min_stride4_pixels,
            )
        return frames, masks

    def random_map(self, record: VideoRecord, rng: np.random.Generator) -> dict:
        c = self.config
        frames, masks = self._draw(record, rng)
        if c.photometric:
            frames = augment.photometric_jitter(frames, rng)
        masks, valid = sampling.remap_objects(masks, c.max_objects, rng)
        sample = {"frames": frames, "masks": masks, "object_valid": valid}
        if c.prior:
            sample["prior"] = np.stack([augment.simulate_prior(m, rng) for m in masks])
        if c.damage:
            sample["prior"] = np.stack([damage.damage_masks(m, rng) for m in masks])
        return sample


def make_dataset(
    source,
    config: SampleConfig,
    batch_size: int,
    seed: int,
    shard_index: int = 0,
    shard_count: int = 1,
    num_epochs: int | None = None,
) -> grain.MapDataset:
    """This host's batches as an index-addressable dataset: batch i is a pure function of (source,
    config, seed, shard, i), whatever the number of workers, so a restored iterator state
    reproduces the same batches. Videos are reshuffled every epoch; `num_epochs=None` repeats.

    All hosts draw from one stream of samples (sample j is a function of j and the seed), and
    host `shard_index` of `shard_count` takes its `batch_size` slice of each global batch of
    `batch_size x shard_count`: the global batches are the same on any number of hosts (a
    2-process run trains on exactly what a 1-process run does), and each host decodes only its
    own samples."""
    if len(source) == 0:
        raise ValueError("the video source is empty")
    dataset = grain.MapDataset.source(source).shuffle(seed=seed).repeat(num_epochs)
    dataset = dataset.random_map(MakeSample(config), seed=seed)
    return dataset.batch(batch_size, drop_remainder=True)[shard_index::shard_count]


def make_iterator(
    dataset: grain.MapDataset, threads: int | None = None, workers: int = 0
) -> grain.DatasetIterator:
    """A checkpointable iterator (`get_state()` / `set_state()`).

    Samples are made by `threads` threads (default: one per CPU). Decoding and warping run in
    OpenCV/NumPy with the GIL released, so threads scale without copying batches between
    processes (on a 2-core machine: 90 frames/s sequential, ~190 with 2 threads, ~100 with 2
    worker processes). OpenCV's own thread pool is turned off to avoid oversubscription.
    `workers > 0` adds grain worker processes, for hosts where Python itself becomes the
    bottleneck.
    """
    threads = threads or os.cpu_count() or 1
    cv2.setNumThreads(1)
    options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * threads)
    iter_dataset = dataset.to_iter_dataset(options)
    if workers > 0:
        from absl import flags

        # grain's worker processes read absl flags; outside an absl app nothing parsed them.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        iter_dataset = iter_dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return iter(iter_dataset)
