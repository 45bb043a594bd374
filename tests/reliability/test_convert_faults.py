"""`vos-jax convert` on bad weight files (issue 18): a truncated or damaged file, a PyTorch file
that holds code (a pickle beyond tensors), NaN / Inf weights. Each: exit code 2, one `error:` line
naming the file (or the parameter), never a suggestion to load unsafely, no checkpoint written and
the input unchanged.

torch is an optional extra and not installed in the test environment: a stand-in `torch.load`
raises what torch 2.4+ raises with `weights_only=True` for each file (its messages quoted)."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest

from tests.convert.test_resnet import random_resnet18
from tests.reliability.files import assert_unchanged, snapshot
from vos_jax.cli import main

# torch.serialization's messages (2.4 .. 2.6): the code one advises the unsafe way out.
UNSAFE = (
    "Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` will "
    "likely succeed, but it can result in arbitrary code execution. Do it only if you got the "
    "file from a trusted source.\n Please file an issue with the following so that we can make "
    "`weights_only=True` compatible with your use case: WeightsUnpickler error: Unsupported "
    "global: GLOBAL posix.system was not an allowed global by default. Please use "
    "`torch.serialization.add_safe_globals([system])` to allowlist this global if you trust this "
    "class/function."
)
TRUNCATED = "PytorchStreamReader failed reading zip archive: failed finding central directory"


class _Payload:
    def __reduce__(self):  # what a malicious .pt holds: a call made on unpickling
        import os

        return (os.system, ("echo pwned",))


@pytest.fixture(scope="module")
def resnet18():
    return random_resnet18()


def _stand_in_torch(monkeypatch, error):
    def load(path, map_location=None, weights_only=False):
        assert weights_only is True
        raise error

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(load=load))


def _truncated_pt(tmp, sd, monkeypatch):
    (tmp / "w.pt").write_bytes(b"PK\x03\x04" + b"\x00" * 40)  # a zip cut short
    _stand_in_torch(monkeypatch, RuntimeError(TRUNCATED))
    return tmp / "w.pt"


def _legacy_truncated_pt(tmp, sd, monkeypatch):
    (tmp / "w.pt").write_bytes(pickle.dumps({"a": 1})[:5])
    _stand_in_torch(monkeypatch, EOFError())
    return tmp / "w.pt"


def _code_pt(tmp, sd, monkeypatch):
    (tmp / "w.pt").write_bytes(pickle.dumps(_Payload()))  # never unpickled here
    _stand_in_torch(monkeypatch, pickle.UnpicklingError(UNSAFE))
    return tmp / "w.pt"


def _truncated_npz(tmp, sd, monkeypatch):
    np.savez(tmp / "w.npz", **sd)
    data = (tmp / "w.npz").read_bytes()
    (tmp / "w.npz").write_bytes(data[: len(data) // 2])
    return tmp / "w.npz"


def _not_a_zip_npz(tmp, sd, monkeypatch):
    (tmp / "w.npz").write_bytes(b"\x00not an archive")
    return tmp / "w.npz"


def _object_npz(tmp, sd, monkeypatch):
    np.savez(tmp / "w.npz", **{**sd, "fc.bias": np.array([{"code": 1}], dtype=object)})
    return tmp / "w.npz"


def _nonfinite(value, name):
    def make(tmp, sd, monkeypatch):
        weights = dict(sd)
        weights[name] = weights[name].copy()
        weights[name].flat[3] = value
        np.savez(tmp / "w.npz", **weights)
        return tmp / "w.npz"

    return make


# (id, make the weights file, fragments of the one error line)
CASES = [
    ("truncated-pt", _truncated_pt, ["w.pt", "truncated or damaged"]),
    ("truncated-legacy-pt", _legacy_truncated_pt, ["w.pt", "truncated or damaged"]),
    ("code-pt", _code_pt, ["w.pt", "holds code", "posix.system", "not only weights"]),
    ("truncated-npz", _truncated_npz, ["w.npz", "truncated or damaged"]),
    ("not-a-zip-npz", _not_a_zip_npz, ["w.npz", "truncated or damaged"]),
    ("object-array-npz", _object_npz, ["w.npz", "holds code", "not only weights"]),
    ("nan-kernel", _nonfinite(np.nan, "layer2.0.conv1.weight"), ["'layer2.0.conv1.weight'", "NaN"]),
    ("inf-bn-stat", _nonfinite(np.inf, "bn1.running_var"), ["'bn1.running_var'", "Inf"]),
    ("-inf-bias", _nonfinite(-np.inf, "layer4.1.bn2.bias"), ["'layer4.1.bn2.bias'", "Inf"]),
]


@pytest.mark.parametrize("make,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_weights_are_one_error_line_and_no_checkpoint(
    tmp_path, capsys, monkeypatch, resnet18, make, fragments
):
    weights = make(tmp_path, resnet18, monkeypatch)
    before = snapshot(tmp_path)
    code = main(["convert", "resnet", "--torch", str(weights), "--out", str(tmp_path / "ckpt")])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "weights_only" not in lines[0] and "False" not in lines[0]  # no unsafe advice
    assert not (tmp_path / "ckpt").exists()
    assert_unchanged(before, tmp_path)


def test_the_finite_state_dict_converts(tmp_path, capsys, resnet18):
    """The control: the same weights without the damage are written."""
    np.savez(tmp_path / "w.npz", **resnet18)
    argv = ["convert", "resnet", "--torch", str(tmp_path / "w.npz")]
    assert main([*argv, "--out", str(tmp_path / "ckpt")]) == 0, capsys.readouterr().err
    assert (tmp_path / "ckpt").is_dir()
