"""Access to ../shared/ (real DAVIS data, official fixtures) for the tests."""

import importlib.util
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


def official_weights_module():
    """../shared/fixtures/official_weights.py, which regenerates a parity fixture's weights."""
    spec = importlib.util.spec_from_file_location(
        "official_weights", shared_path("fixtures/official_weights.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_state_dict(data) -> dict:
    """The state dict a parity fixture's official run used: `make_state_dict(manifest, salt)`
    with every `override:<name>` array (e.g. calibrated BatchNorm statistics) in place of <name>."""
    state_dict = official_weights_module().make_state_dict(str(data["manifest"]), str(data["salt"]))
    for key in data:
        if key.startswith("override:"):
            name = key.removeprefix("override:")
            assert name in state_dict, f"override of an unknown entry {name}"
            state_dict[name] = data[key]
    return state_dict
