"""davis_vos dataset (importing registers the builder)."""

from tfds_builders.davis_vos.davis_vos_dataset_builder import Builder

__all__ = ["Builder"]
