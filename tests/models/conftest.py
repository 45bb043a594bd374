"""Fixtures of the model tests (built in tests/models/model_cases.py)."""

import pytest

from tests.models.model_cases import make_segment, make_tiny, make_tiny_features


@pytest.fixture(scope="module")
def tiny():
    """(tiny FEELVOS, its variables, frames [B, H, W, 3]) -- overrides the suite-wide `tiny`."""
    return make_tiny()


@pytest.fixture(scope="module")
def tiny_features(tiny):
    return make_tiny_features(tiny)


@pytest.fixture(scope="module")
def segment(tiny):
    return make_segment(tiny)
