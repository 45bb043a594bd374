"""`vos-jax export`: the exported init and step run with jax and numpy alone (a fresh process
that never imports vos_jax) and compute what the library's propagator computes."""

import json
import subprocess
import sys

import jax
import numpy as np

from vos_jax import families
from vos_jax.cli import main

RUN_WITHOUT_VOS_JAX = """
import json, sys
import numpy as np
from jax import export
folder, data = sys.argv[1], np.load(sys.argv[2])
init = export.deserialize(open(f"{folder}/init.jax", "rb").read())
step = export.deserialize(open(f"{folder}/step.jax", "rb").read())
frames, masks, new = data["frames"], data["masks"], data["new"]
state = init.call(frames[0], masks[0], new[0])
probs = []
for t in range(1, len(frames)):
    state, outputs = step.call(state, frames[t], masks[t], new[t])
    probs.append(np.asarray(outputs["probs"]))
np.save(sys.argv[3], np.stack(probs))
print(json.dumps(sorted(m for m in sys.modules if m.startswith("vos_jax"))))
"""


def test_exported_rvos_step_runs_without_the_model_code(tmp_path, capsys):
    model, _ = families.build_model("rvos", "tiny")
    example = {"frames": np.zeros((1, 1, 64, 96, 3), np.uint8),
               "object_valid": np.ones((1, 3), bool)}  # fmt: skip
    variables = families.get("rvos").init_variables(model, jax.random.key(3), example)
    checkpoint = families.save_model(tmp_path / "ckpt", "rvos", "tiny", variables)
    out = tmp_path / "exported"
    argv = ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--size", "64x96"]
    assert main([*argv, "--objects", "2", "--batch", "2"]) == 0
    program = json.loads((out / "program.json").read_text())
    assert program["platforms"] == ["cpu", "cuda"] and program["objects"] == 2
    assert program["outputs"]["probs"] == [2, 64, 96, 3, "float32"]
    # Four frames of two videos; the second video gets its second object only at frame 2.
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 2, 64, 96, 3), np.uint8)
    masks = np.zeros((4, 2, 64, 96), np.int32)
    new = np.zeros((4, 2, 3), bool)
    masks[0, :, 10:40, 10:40], new[0, :, :2] = 1, True
    masks[0, 0, 30:60, 50:90], new[0, 0, 2] = 2, True
    masks[2, 1, 30:60, 50:90], new[2, 1, 2] = 2, True
    np.savez(tmp_path / "inputs.npz", frames=frames, masks=masks, new=new)
    code = [sys.executable, "-c", RUN_WITHOUT_VOS_JAX, str(out), str(tmp_path / "inputs.npz"),
            str(tmp_path / "probs.npy")]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(code, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []  # vos_jax never imported
    exported = np.load(tmp_path / "probs.npy")
    _, model, variables, _ = families.load_model(checkpoint)
    propagator = families.get("rvos").propagator(model, variables, max_objects=2)
    state = propagator.init(frames[0], masks[0], new[0])
    for t in range(1, 4):
        state, prediction = propagator.step(state, frames[t], masks[t], new[t])
        np.testing.assert_allclose(exported[t - 1], prediction.probs, atol=1e-5)
    # Without --out: beside the weights, covered by the bundle's checksums.
    assert main(argv[:3] + ["--size", "64x96", "--objects", "2"]) == 0
    inside = checkpoint / "exported/b1_64x96_o2"
    assert (inside / "step.jax").is_file()
    assert "exported/b1_64x96_o2/step.jax" in (checkpoint / "SHA256SUMS").read_text()
    families.load_model(checkpoint)  # the updated sums hold
    # Nothing is overwritten: a second export to the same folder is refused.
    stamp = (out / "step.jax").stat().st_mtime_ns
    assert main([*argv, "--objects", "2"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "step.jax").stat().st_mtime_ns == stamp
