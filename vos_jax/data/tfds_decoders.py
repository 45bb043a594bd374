"""TFDS decoders for reading our VOS datasets (kept apart from sources.py so that importing the
input pipeline does not import tensorflow_datasets)."""

from __future__ import annotations

import tensorflow_datasets as tfds


class RawBytes(tfds.decode.SkipDecoding):
    """Return a `Sequence(Image)` feature as its stored bytes (one `bytes` per frame).

    `tfds.decode.SkipDecoding` lacks the numpy path for sequences, so with `tfds.data_source` it
    raises AttributeError; this adds it. Use it to decode late, only the frames a sample needs:
    `tfds.data_source(..., decoders={"frames": RawBytes()})`.
    """

    def decode_batch_example_np(self, serialized_example):
        """Forward the stored bytes: a numpy object array of `bytes`, one per frame."""
        return serialized_example
