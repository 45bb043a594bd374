"""Inference: propagate a video with a family's (init, step) pair."""
