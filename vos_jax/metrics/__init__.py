"""Evaluation metrics: DAVIS J, F, T and their statistics."""
