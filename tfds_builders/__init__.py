"""TFDS builders for the VOS datasets; importing this package registers `davis_vos`,
`youtube_vos` and `supervisely_person` (portrait images), which are built and read without
TensorFlow (array_record + tfds.data_source).

Build one with `python -m tfds_builders build ...` (build.py). Reading a built dataset needs no
import of this package: `tfds.data_source(name, data_dir=...)` reads its prepared files.
"""

from tfds_builders.davis_vos import Builder as DavisVos
from tfds_builders.supervisely_person import Builder as SuperviselyPerson
from tfds_builders.vos_common import DatasetLayoutError
from tfds_builders.youtube_vos import Builder as YoutubeVos

# Explicit name -> class map (what `python -m tfds_builders build` accepts).
BUILDERS = {b.name: b for b in (DavisVos, YoutubeVos, SuperviselyPerson)}

__all__ = ["BUILDERS", "DatasetLayoutError", "DavisVos", "SuperviselyPerson", "YoutubeVos"]
