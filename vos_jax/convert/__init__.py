"""Importers of published weights (PyTorch state dicts as NumPy arrays), with explicit name maps."""


def backbone_converters() -> dict:
    """{name: (convert, options dataclass, conventions)} of importers not tied to a model family
    (`vos-jax convert NAME`): pretrained backbones that a family's `model.init_checkpoint` takes.
    A function, so importing the package does not import the models."""
    from vos_jax.convert import resnet

    return {"resnet": (resnet.convert, resnet.ImportOptions, resnet.CONVENTIONS)}
