"""The `semi` case of the eval tests (tests/metrics/eval_cases.py)."""

import pytest

from tests.metrics.eval_cases import make_davis, make_results


@pytest.fixture
def semi(tmp_path):
    """(davis_root, results, output) with perfect semi-supervised results."""
    davis = make_davis(tmp_path / "davis")
    results = make_results(tmp_path / "results")
    return davis, results, tmp_path / "out"
