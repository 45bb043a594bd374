"""youtube_vos dataset (importing registers the builder)."""

from tfds_builders.youtube_vos.youtube_vos_dataset_builder import Builder

__all__ = ["Builder"]
