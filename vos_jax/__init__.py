"""vos-jax: video object segmentation in JAX/Flax."""

__version__ = "0.1.0"


def load_published(path, **options):
    """A published checkpoint folder as a ready `segment` function
    (`vos_jax.inference.published.load_published`)."""
    from vos_jax.inference.published import load_published as load

    return load(path, **options)
