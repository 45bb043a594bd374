"""davis_vos: DAVIS 2016 / 2017 semi-supervised VOS, read from the official folder tree or zips.

One example per sequence: every frame's original JPEG bytes, one id mask per frame (a 1-channel
PNG, pixel value = object id, 255 = void), and the ids present. Built and read without
TensorFlow (`file_format='array_record'`, read with `tfds.data_source`).
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from tfds_builders import vos_common
from vos_jax.io.layouts import (
    DavisLayout,
    davis_resolution_folder,
    find_davis_root,
    parse_image_set,
)
from vos_jax.io.masks import VOID_ID, read_mask

_URL = "https://data.vision.ee.ethz.ch/csergi/share/davis/"
_URL_2016 = "https://graphics.ethz.ch/Downloads/Data/Davis/DAVIS-data.zip"

_EXPECTED = """\
  <manual_dir>/DAVIS/ (or <manual_dir> itself) holding
    JPEGImages/<480p|Full-Resolution>/<seq>/00000.jpg ...
    Annotations/<480p|Full-Resolution>/<seq>/00000.png ...  (one per frame for train/val)
    ImageSets/<2017|2016>/{train,val}.txt                    (one sequence name per line;
                                                              2017 may add test-dev.txt)
  or the official zips in <manual_dir>: DAVIS-2017-trainval-<480p|Full-Resolution>.zip,
  DAVIS-2017-test-dev-<res>.zip, DAVIS-data.zip (DAVIS 2016)."""


@dataclasses.dataclass
class DavisConfig(tfds.core.BuilderConfig):
    """Which frames (resolution folder) and which sequence lists (image set year) to read."""

    resolution: str = "480p"
    year: int = 2017


def _config(res: str, year: int) -> DavisConfig:
    tag = "480p" if res == "480p" else "full"
    return DavisConfig(
        name=f"{year}_{tag}",
        description=f"DAVIS {year} sequences, {res} frames"
        + (", one object (id 1) per sequence" if year == 2016 else ", object ids as annotated"),
        resolution=res,
        year=year,
    )


class Builder(tfds.core.GeneratorBasedBuilder):
    """DAVIS video object segmentation (manual download)."""

    name = "davis_vos"  # TFDS ships its own `davis` builder; this one must not clash with it
    # TFDS 4.9.10 finds checksums.tsv via importlib_resources (a dependency only for Python < 3.9)
    # for builders outside its own package; naming the file directly avoids that import
    code_path = epath.Path(__file__)
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [_config(r, y) for y in (2017, 2016) for r in ("480p", "Full-Resolution")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download from https://davischallenge.org/davis2017/code.html and place in the manual dir either
the zips or their extracted DAVIS/ folder:
  {_URL}DAVIS-2017-trainval-480p.zip   (832,766,765 bytes, sha256
    e3d0b5b77c3d031b000a19e0e25e3e2cac65d183755601bc2cf066df1a2aa492)
  {_URL}DAVIS-2017-trainval-Full-Resolution.zip
  {_URL}DAVIS-2017-test-dev-480p.zip  (and -Full-Resolution.zip)  -> split test_dev
  {_URL_2016}  (DAVIS 2016 release, grayscale masks)
The 2016 configs also read the 2016 image sets shipped in the 2017 zips (ImageSets/2016).
Expected layout:
{_EXPECTED}
"""

    def __init__(self, *, file_format=None, **kwargs):
        # array_record is the format tfds.data_source reads without TensorFlow
        super().__init__(file_format=file_format or "array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=vos_common.video_features(),
            homepage="https://davischallenge.org/",
            supervised_keys=None,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual = vos_common.manual_dir(dl_manager)
        with vos_common.layout_hint(_EXPECTED):
            root = _find_root(manual, Path(dl_manager.download_dir), self.builder_config)
            return self._splits(root)

    def _splits(self, root: Path) -> dict:
        """{split: examples} for the image sets present, after checking their folders."""
        cfg = self.builder_config
        layout = DavisLayout(root, davis_resolution_folder(root, cfg.resolution))
        splits = {}
        for split in ("train", "val"):
            seqs = _image_set(layout, cfg.year, split)
            if seqs is not None:
                layout.check_sequences(seqs)
                splits[split] = self._generate_examples(layout, seqs, True)
        if not splits:
            raise vos_common.DatasetLayoutError(
                f"{layout.image_set_path('train', cfg.year).parent}: expected train.txt and/or "
                f"val.txt listing the DAVIS {cfg.year} sequences"
            )
        test_dev = _image_set(layout, cfg.year, "test-dev") if cfg.year == 2017 else None
        # the trainval zip ships without test-dev frames: the split exists only once they do
        if test_dev and any(layout.frames_dir(s).is_dir() for s in test_dev):
            layout.check_sequences(test_dev)
            splits["test_dev"] = self._generate_examples(layout, test_dev, False)
        return splits

    def _generate_examples(self, layout: DavisLayout, seqs: list[str], full: bool):
        """One example per sequence; `full`: every frame must have a mask (train/val)."""
        for seq in seqs:
            yield seq, _example(layout, seq, self.builder_config.year, full)


def _image_set(layout: DavisLayout, year: int, split: str) -> list[str] | None:
    """Sequence names of an image set, or None if its list file is absent."""
    path = layout.find_image_set(split, year)
    return None if path is None else parse_image_set(path)


def _find_root(manual: Path, download_dir: Path, cfg: DavisConfig) -> Path:
    """The DAVIS folder: the manual dir itself, its DAVIS/, or the extracted official zips."""
    root = find_davis_root(manual)
    if root is not None:
        return root
    zips = _official_zips(manual, cfg)
    if zips:
        # extract next to TFDS's downloads, not into the (possibly read-only) manual dir; one
        # folder per year and resolution, since the 2016 and 2017 zips share paths
        out = download_dir / "extracted" / f"davis_{cfg.year}_{cfg.resolution}"
        for path in zips:
            _extract(path, out)
        root = find_davis_root(out / "DAVIS")
        if root is not None:
            return root
        raise vos_common.DatasetLayoutError(
            f"{', '.join(map(str, zips))}: the zips hold no DAVIS/ folder with JPEGImages/ and "
            "ImageSets/"
        )
    raise vos_common.DatasetLayoutError(
        f"{manual}: found neither a DAVIS tree (JPEGImages/ and ImageSets/ in {manual} or "
        f"{manual / 'DAVIS'}) nor the official zips"
    )


def _official_zips(manual: Path, cfg: DavisConfig) -> list[Path]:
    """The zips in `manual` that hold this config's frames (2016 release preferred for 2016)."""
    trainval = manual / f"DAVIS-2017-trainval-{cfg.resolution}.zip"
    test_dev = manual / f"DAVIS-2017-test-dev-{cfg.resolution}.zip"
    if cfg.year == 2016 and (manual / "DAVIS-data.zip").is_file():
        return [manual / "DAVIS-data.zip"]
    return [p for p in (trainval, test_dev) if p.is_file()]


def _extract(path: Path, out: Path) -> None:
    """Extract a zip into `out` once (a marker file records completed extractions)."""
    marker = out / f".{path.name}.extracted"
    if marker.is_file():
        return
    out.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(path) as archive:
            archive.extractall(out)  # zipfile drops absolute and '..' parts of member names
    except zipfile.BadZipFile as err:
        raise vos_common.DatasetLayoutError(f"{path}: not a readable zip ({err})") from None
    marker.touch()


def _read_davis_mask(path: Path, year: int) -> np.ndarray:
    """[H, W] uint8 ids: 2017 palette ids as is; 2016 one object (id 1), void dropped."""
    if year == 2017:
        return read_mask(path)
    ids = read_mask(path, allow_grayscale=True)  # grayscale 0/255 -> 0/1
    # a 2017-release palette mask of a 2016 sequence may hold several ids: all are the object
    return ((ids > 0) & (ids != VOID_ID)).astype(np.uint8)


def _example(layout: DavisLayout, seq: str, year: int, full: bool) -> dict:
    """Read and check one sequence; `full`: every frame must have a mask."""

    def load_mask(frame: Path, size: tuple[int, int]) -> np.ndarray | None:
        path = layout.mask_path(seq, frame.stem)
        if not path.is_file():
            if full:
                raise vos_common.DatasetLayoutError(
                    f"{path}: missing mask for frame {frame}; train/val sequences need one "
                    "annotation .png per frame"
                )
            return None  # test-dev annotates only the first frame
        ids = _read_davis_mask(path, year)
        vos_common.check_mask_size(ids, size, path, frame)
        return ids

    return {"name": seq, **vos_common.read_video(layout.frame_paths(seq), load_mask)}
