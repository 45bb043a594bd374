"""Data: the built-in synthetic dataset (DAVIS / YouTube-VOS layouts)."""

from vos_jax.data.synthetic import (
    SyntheticVideo,
    generate_video,
    render_video,
    write_dataset,
)

__all__ = [
    "SyntheticVideo",
    "generate_video",
    "render_video",
    "write_dataset",
]
