"""Test setup: 8 simulated CPU devices, set before anything imports JAX, and XLA's backend
optimisations off: the suite's time is mostly compilation of small programs (measured on
tests/test_rvos.py + test_feelvos_loss.py: 126 -> 96 CPU seconds), not their execution."""

import os

FAST_COMPILE = "--xla_backend_optimization_level=0"
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count=8 {FAST_COMPILE}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# The longest modules first: pytest-xdist's --dist loadfile hands out whole files in collection
# order, so long files left for the end would run on their own while the other worker idles.
LONGEST_FIRST = (
    "test_train_loop.py",
    "test_training_step.py",
    "test_train_equivalence.py",
    "test_rvos_training.py",
    "test_feelvos_loss.py",
    "test_cli.py",
    "test_rvos_inference.py",
    "test_colab.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file
