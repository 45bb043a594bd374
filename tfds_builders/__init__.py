"""TFDS builders for the VOS datasets; importing this package registers `davis_vos` and
`youtube_vos`, which are built and read without TensorFlow (array_record + tfds.data_source)."""

from tfds_builders.davis_vos import Builder as DavisVos
from tfds_builders.vos_common import DatasetLayoutError, RawBytes
from tfds_builders.youtube_vos import Builder as YoutubeVos

# Explicit name -> class map (what `vos-jax build-dataset` accepts).
BUILDERS = {DavisVos.name: DavisVos, YoutubeVos.name: YoutubeVos}

__all__ = ["BUILDERS", "DatasetLayoutError", "DavisVos", "RawBytes", "YoutubeVos"]
