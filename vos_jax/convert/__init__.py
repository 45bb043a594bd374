"""Importers of published weights (PyTorch state dicts as NumPy arrays), with explicit name maps."""
