"""Flax Linen models, one file per family; no training or I/O logic."""
