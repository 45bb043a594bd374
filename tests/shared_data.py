"""Access to ../shared/ (real DAVIS data, official fixtures) for the tests."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("VOS_JAX_SHARED", REPO.parent / "shared"))
DAVIS_MINI = "data/davis-mini"


def shared_path(relative: str) -> Path:
    """A path under ../shared/. Skips the test when it is absent (a user's clone has no shared/),
    but fails under VOS_JAX_REQUIRE_SHARED=1, which CI sets."""
    path = SHARED / relative
    if not path.exists():
        message = f"{path} not found: this test needs the project's shared data (../shared/)"
        if os.environ.get("VOS_JAX_REQUIRE_SHARED") == "1":
            pytest.fail(message + " and VOS_JAX_REQUIRE_SHARED=1", pytrace=False)
        pytest.skip(message)
    return path
