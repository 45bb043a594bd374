"""supervisely_person dataset (importing registers the builder)."""

from tfds_builders.supervisely_person.supervisely_person_dataset_builder import Builder

__all__ = ["Builder"]
