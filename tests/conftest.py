"""Test setup: 8 simulated CPU devices, set before anything imports JAX, and XLA's backend
optimisations off: the suite's time is mostly compilation of small programs (measured on
the RVOS model and FEELVOS loss tests: 126 -> 96 CPU seconds), not their execution."""

import os

# XLA:CPU's MLIR fusion emitters off as well (its elemental IR emitters instead): at level 0 they
# compile 2-3x faster (the float64 FEELVOS step: 23 -> 10 s; tests/families/test_feelvos.py and
# tests/ops/test_matching.py: 84 -> 59 CPU seconds) at the same step time. Their float32 rounding
# differs in the last bit (the same global matching in two programs 1e-10 apart, the matching
# distance's tanh 1 ulp from monotonic near 1): the tests compare within such rounding.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
# One intra-op thread per process: the two pytest workers already keep both cores busy, and
# XLA:CPU's Eigen thread pool then only adds synchronisation (measured: 5% less CPU time and
# 7% less wall time for tests/families/test_feelvos.py + tests/inference/test_batched.py, 6%
# less CPU for the SiamMask tracker tests).
ONE_THREAD = "--xla_cpu_multi_thread_eigen=false"
TEST_XLA_FLAGS = f"{FAST_COMPILE} {ONE_THREAD}"  # this process, and the subprocesses it starts
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count=8 {TEST_XLA_FLAGS}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Source locations of one frame per operation in the lowered programs, not whole tracebacks: the
# suite traces and lowers hundreds of programs (tests/families/test_feelvos.py and
# test_rvos_propagator.py: 83 -> 73 s). Set here, it reaches every subprocess too.
os.environ.setdefault("JAX_INCLUDE_FULL_TRACEBACKS_IN_LOCATIONS", "false")

# Shape annotations are checked, not decoration: every vos_jax function is runtime type-checked.
from jaxtyping import install_import_hook  # noqa: E402

import tests.typechecking  # noqa: E402, F401  (the hook names it by its dotted path)

install_import_hook("vos_jax", "tests.typechecking.typechecker")

import pytest  # noqa: E402

SIZE = (48, 64)  # frames of the shared fixtures below


# The compilation cache of a test run: one folder for both xdist workers and every subprocess
# they start (trainer runs, notebooks), so a program compiled once (the same computation, XLA flags
# and device count: the key) loads everywhere. A size limit turns on JAX's LRU cache, whose reads
# and writes take a file lock: another process never reads an entry half written.
CACHE_MAX_BYTES = 8 << 30


def shared_cache_dir(tmp_path_factory) -> str:
    """The run's cache folder, beside the xdist workers' own temp folders."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-of-<user>/pytest-<N>/: shared by this run's workers
    return str(root / "xla-cache")


def subprocess_cache_env(tmp_path_factory) -> dict:
    """Environment variables that give a subprocess the run's compilation cache, every program
    kept (however fast it compiled or small it is)."""
    return {
        "JAX_COMPILATION_CACHE_DIR": shared_cache_dir(tmp_path_factory),
        "JAX_COMPILATION_CACHE_MAX_SIZE": str(CACHE_MAX_BYTES),  # file-locked: shared
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
    }


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
    """A persistent compilation cache for the run: a program that a new jit object compiles again
    (every `training.loop.train` call builds its own step), or the other worker compiled, loads
    from it instead (tests/families/test_rvos_recipe.py: 94 -> 62 CPU seconds). JAX keeps only
    compilations over 1 s."""
    import jax

    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        jax.config.update("jax_compilation_cache_dir", shared_cache_dir(tmp_path_factory))
        jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)


@pytest.fixture(scope="session", autouse=True)
def synthetic_cache(tmp_path_factory):
    """The built-in synthetic videos that configs generate go to the test run's folder (this
    process and the subprocesses it starts), not the user's ~/.cache/vos-jax: a run in a fresh
    clone and one here do the same work."""
    os.environ["VOS_JAX_CACHE"] = str(tmp_path_factory.mktemp("vos-jax-cache"))


@pytest.fixture(scope="session")
def tiny():
    """The tiny FEELVOS and its initial variables (the engine's default test model)."""
    import jax
    import numpy as np

    from vos_jax.families import build_model

    model, _ = build_model("feelvos", "tiny")
    frames = np.zeros((1, *SIZE, 3), np.uint8)
    # unsafe_rbg: the default threefry RNG takes ~0.2 s per draw to compile on the CPU.
    variables = jax.jit(model.init, static_argnames="num_objects")(
        jax.random.key(0, impl="unsafe_rbg"), frames, num_objects=4
    )
    return model, variables


@pytest.fixture(scope="session")
def video():
    """A synthetic video: frames [6, 48, 64, 3], masks [6, 48, 64] with 3 objects."""
    from vos_jax.data import synthetic

    return synthetic.generate_video(3, 6, SIZE, 3, late_start=False)


# The longest modules first: pytest-xdist's --dist loadfile hands out whole files, in collection
# order once its default reordering (files with the most tests first, which put the one-test
# trainer and demo files last) is off (pytest_configure): long files left for the end would run
# on their own while the other worker idles.
LONGEST_FIRST = (
    "tests/reliability/test_train_faults.py",
    "tests/test_demo.py",
    "tests/families/test_rvos.py",
    "tests/test_colab.py",
    "tests/families/test_siammask_tracker.py",
    "tests/training/test_multiprocess.py",
    "tests/test_bench.py",
    "tests/inference/test_batched.py",
    "tests/families/test_siammask_training.py",
    "tests/training/test_step.py",
    "tests/inference/test_segment.py",
    "tests/families/test_feelvos.py",
    "tests/families/test_feelvos_official.py",
    "tests/tfds_builders/test_builders.py",
    "tests/families/test_portrait_training.py",
    "tests/families/test_rvos_propagator.py",
    "tests/families/test_portrait.py",
    "tests/reliability/test_segment_faults.py",
    "tests/families/test_rvos_recipe.py",
    "tests/convert/test_mediapipe.py",
    "tests/families/test_siammask_segment.py",
    "tests/data/test_motion.py",
    "tests/convert/test_resnet.py",
    "tests/metrics/test_davis.py",
    "tests/models/test_rvos_parity.py",
    "tests/training/test_init_checkpoint.py",
    "tests/inference/test_export.py",
    "tests/convert/test_rvos.py",
    "tests/models/test_backbones.py",
    "tests/models/test_feelvos.py",
    "tests/models/test_siammask_parity.py",
    "tests/models/test_rvos.py",
    "tests/inference/test_engine.py",
    "tests/families/test_feelvos_propagator.py",
    "tests/test_packaging.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def path(item):
        return item.path.relative_to(config.rootpath).as_posix()

    items.sort(key=lambda item: rank.get(path(item), len(rank)))  # stable within a file


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist (>= 3.6) is installed
        config.option.loadscopereorder = False  # = --no-loadscope-reorder: LONGEST_FIRST's order
