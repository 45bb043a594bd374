"""youtube_vos: YouTube-VOS 2018 / 2019 semi-supervised VOS, read from the extracted official zips.

One example per video: every frame's original JPEG bytes, a 1-channel id PNG per frame (all zero
where the frame has no annotation, see `has_mask`), and the objects of meta.json. valid/test are
annotated only where each object first appears. Built and read without TensorFlow.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from tfds_builders import vos_common
from vos_jax.io.layouts import YOUTUBE_SPLITS, YoutubeLayout, YoutubeObject
from vos_jax.io.masks import read_mask

_EXPECTED = """\
  <manual_dir>/<split>/JPEGImages/<video>/<frame>.jpg     (split: train, valid, test)
  <manual_dir>/<split>/Annotations/<video>/<frame>.png
  <manual_dir>/<split>/meta.json  ({"videos": {<video>: {"objects": {<id>: {"category": ...,
                                                                           "frames": [...]}}}}})
  *_all_frames configs read frames from <manual_dir>/<split>_all_frames/JPEGImages/<video>/
  (the official <split>_all_frames.zip), annotations still from <manual_dir>/<split>/."""


@dataclasses.dataclass
class YoutubeConfig(tfds.core.BuilderConfig):
    """Release year (documentation only: the layout is the same) and which frames to read."""

    year: int = 2019
    all_frames: bool = False


def _config(year: int, all_frames: bool) -> YoutubeConfig:
    rate = "all 30 fps frames" if all_frames else "every 5th frame"
    return YoutubeConfig(
        name=f"{year}_all_frames" if all_frames else str(year),
        description=f"YouTube-VOS {year}, {rate}",
        year=year,
        all_frames=all_frames,
    )


class Builder(tfds.core.GeneratorBasedBuilder):
    """YouTube-VOS video object segmentation (manual download)."""

    name = "youtube_vos"
    # TFDS 4.9.10 finds checksums.tsv via importlib_resources (a dependency only for Python < 3.9)
    # for builders outside its own package; naming the file directly avoids that import
    code_path = epath.Path(__file__)
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [_config(y, a) for a in (False, True) for y in (2018, 2019)]
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Register at https://youtube-vos.org/dataset/ (the data is on CodaLab / Google Drive), download
train.zip, valid.zip (and test.zip, valid_all_frames.zip, train_all_frames.zip as needed) of the
2018 or 2019 release and extract them into the manual dir:
{_EXPECTED}
"""

    def __init__(self, *, file_format=None, **kwargs):
        # array_record is the format tfds.data_source reads without TensorFlow
        super().__init__(file_format=file_format or "array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        objects = tfds.features.Sequence(
            {"id": np.int32, "category": tfds.features.Text(), "first_frame": np.int32}
        )
        return self.dataset_info_from_configs(
            features=vos_common.video_features(objects=objects),
            homepage="https://youtube-vos.org/",
            supervised_keys=None,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = vos_common.manual_dir(dl_manager)
        all_frames = self.builder_config.all_frames
        splits = {}
        with vos_common.layout_hint(_EXPECTED):
            for split in YOUTUBE_SPLITS:
                layout = YoutubeLayout(root, split, all_frames)
                if layout.exists():
                    splits[split] = self._generate_examples(layout, _read_meta(layout))
            if not splits:
                where = "<split>/ and <split>_all_frames/" if all_frames else "<split>/"
                raise vos_common.DatasetLayoutError(
                    f"{root}: found no split folder ({where} for a split in "
                    f"{', '.join(YOUTUBE_SPLITS)})"
                )
        return splits

    def _generate_examples(self, layout: YoutubeLayout, meta: dict):
        """One example per video listed in meta.json."""
        for vid in sorted(meta):
            yield vid, _example(layout, vid, meta[vid])


def _read_meta(layout: YoutubeLayout) -> dict[str, dict[int, YoutubeObject]]:
    """meta.json's videos, after checking the split's folders; warns about unlisted videos."""
    meta = layout.meta()
    unlisted = layout.unlisted_videos(meta)
    if unlisted:  # not an error: the official lists are what the benchmark evaluates
        logging.warning(
            "%s: %d video folder(s) not in %s, skipped: %s",
            layout.frames_root,
            len(unlisted),
            layout.meta_path,
            ", ".join(unlisted[:5]),
        )
    return meta


def _example(layout: YoutubeLayout, vid: str, objects: dict[int, YoutubeObject]) -> dict:
    """Read and check one video against meta.json."""
    paths = layout.frame_paths(vid)
    names = [p.stem for p in paths]
    orphans = sorted(set(p.stem for p in layout.mask_paths(vid)) - set(names))
    if orphans:
        raise vos_common.DatasetLayoutError(
            f"{layout.mask_path(vid, orphans[0])}: annotation without a frame in "
            f"{layout.frames_dir(vid)}"
        )

    def load_mask(frame: Path, size: tuple[int, int]) -> np.ndarray | None:
        path = layout.mask_path(vid, frame.stem)
        if not path.is_file():  # valid/test: only where an object first appears
            return None
        ids = read_mask(path)
        vos_common.check_mask_size(ids, size, path, frame)
        unknown = vos_common.object_ids(set(np.unique(ids).tolist()) - set(objects))
        if unknown:
            raise vos_common.DatasetLayoutError(
                f"{path}: object id(s) {unknown} are not listed for video {vid!r} in "
                f"{layout.meta_path} (listed: {sorted(objects)})"
            )
        return ids

    return {
        "name": vid,
        **vos_common.read_video(paths, load_mask),
        "objects": _objects(objects, names, layout.meta_path, vid),
    }


def _objects(objects: dict[int, YoutubeObject], names: list[str], meta_path: Path, vid: str):
    """The `objects` feature: id, category and the index of the first frame meta lists."""
    out = []
    for k, obj in objects.items():
        first = obj.frames[0] if obj.frames else None
        if first is not None and first not in names:
            raise vos_common.DatasetLayoutError(
                f"{meta_path}: video {vid!r} object {k} starts at frame {first!r}, which is not "
                "among its frames"
            )
        index = names.index(first) if first is not None else -1
        out.append({"id": k, "category": obj.category, "first_frame": index})
    return out
