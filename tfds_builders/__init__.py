"""TFDS builders for the VOS datasets; importing this package registers `davis_vos` and
`youtube_vos`, which are built and read without TensorFlow (array_record + tfds.data_source).

Build one with `python -m tfds_builders build ...` (build.py). Reading a built dataset needs no
import of this package: `tfds.data_source(name, data_dir=...)` reads its prepared files.
"""

from tfds_builders.davis_vos import Builder as DavisVos
from tfds_builders.vos_common import DatasetLayoutError
from tfds_builders.youtube_vos import Builder as YoutubeVos

# Explicit name -> class map (what `python -m tfds_builders build` accepts).
BUILDERS = {DavisVos.name: DavisVos, YoutubeVos.name: YoutubeVos}

__all__ = ["BUILDERS", "DatasetLayoutError", "DavisVos", "YoutubeVos"]
