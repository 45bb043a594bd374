"""MediaPipe's segmentation models (../shared/fixtures/mediapipe/, read its README) imported into
the portrait family compute what the reference interpreter (ai-edge-litert) computes on real
images: the hair model (`HairNet`) with the previous-mask inputs its graph sees (empty, the
ground truth, the model's own last mask), both selfie models (`SelfieNet`).

Images: `$PORTRAIT_PARITY_IMAGES` (a folder of JPEG/PNG) when set, else astronaut.png and frames
of ../shared/data/davis-people (with their ground truth as a prior).
"""

import os
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from tests.convert.tflite_files import add_model
from tests.shared_data import shared_path
from vos_jax.cli import main
from vos_jax.convert.mediapipe import import_hair, load, load_hair, variant_of
from vos_jax.convert.tflite import GraphError, read_graph
from vos_jax.families import load_model
from vos_jax.models.portrait import HairNet, build

PROBABILITY = 1e-4  # absolute (the bounds)
LOGITS = 1e-4  # relative to the largest logit magnitude
SIZE = 512
REACH = (4, 16, 40)  # pixels at 512x512 that a value unpooled by each pooling reaches


def _hair() -> Path:
    return shared_path("fixtures/mediapipe/hair_segmentation.tflite")


def _model(name: str) -> Path:
    return shared_path(f"fixtures/mediapipe/{name}.tflite")


def _images(size=(SIZE, SIZE)) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, RGB uint8 [*size, 3], ground-truth prior 0/1 [*size] or None)."""
    resize = lambda a, mode: np.asarray(Image.fromarray(a).resize(size[::-1], mode))
    if os.environ.get("PORTRAIT_PARITY_IMAGES"):
        folder = Path(os.environ["PORTRAIT_PARITY_IMAGES"])
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        assert paths, f"{folder}: no JPEG/PNG images"
        return [(p.name, resize(np.asarray(Image.open(p).convert("RGB")), Image.BILINEAR), None)
                for p in paths]  # fmt: skip
    astronaut = Image.open(shared_path("fixtures/mediapipe/astronaut.png")).convert("RGB")
    astronaut = np.asarray(astronaut)
    images = [("astronaut", resize(astronaut, Image.BILINEAR), None)]
    root = shared_path("data/davis-people/DAVIS")
    for sequence, frame in (("breakdance", "00030"), ("dance-twirl", "00045")):
        rgb = np.asarray(
            Image.open(root / f"JPEGImages/480p/{sequence}/{frame}.jpg").convert("RGB")
        )
        gt = np.asarray(Image.open(root / f"Annotations/480p/{sequence}/{frame}.png"))
        prior = resize((gt == 1).astype(np.uint8) * 255, Image.BILINEAR) / 255.0
        images.append((f"{sequence}/{frame}", resize(rgb, Image.BILINEAR), prior))
    return images


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class Reference:
    """The reference interpreter, keeping every tensor (for its pooling decisions)."""

    def __init__(self, path):
        litert = pytest.importorskip("ai_edge_litert.interpreter", reason="needs [test] extras")
        self.it = litert.Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
        self.it.allocate_tensors()
        self.pools = [op for op in self.it._get_ops_details()
                      if op["op_name"] == "MaxPoolingWithArgmax2D"]  # fmt: skip

    def __call__(self, x):
        self.it.set_tensor(self.it.get_input_details()[0]["index"], x.astype(np.float32))
        self.it.invoke()
        return self.it.get_tensor(self.it.get_output_details()[0]["index"])

    def disagreements(self, ours: list[np.ndarray], tolerance: float):
        """Pixels [512, 512] downstream of a pooling window where our argmax (`ours`, encoder
        order) differs from the reference's (in its last call): each window's footprint widened
        by the reach of the 3x3 and transposed convs after its unpooling (REACH: the first
        pooling's 8 px cells are unpooled at 128x128 and pass one 3x3 conv there, +-4 px; the
        second's pass a 3x3 at 64, a transposed 3x3 and a 3x3 at 128, +-16; the third's +-40).
        Every such window must be a float32 near-tie, its two largest inputs within `tolerance`
        x the tensor's largest magnitude, and they must be rare (else an AssertionError)."""
        out = np.zeros((SIZE, SIZE), bool)
        for op, index, reach in zip(self.pools, ours, REACH, strict=True):
            x = self.it.get_tensor(op["inputs"][0])[0]
            theirs = self.it.get_tensor(op["outputs"][1]).view(np.int32)[0]  # int32 in a float
            h, w, c = x.shape
            top = np.sort(x.reshape(h // 2, 2, w // 2, 2, c).transpose(0, 2, 4, 1, 3)
                          .reshape(h // 2, w // 2, c, 4), -1)  # fmt: skip
            differ = index[0] != theirs
            gap = (top[..., 3] - top[..., 2])[differ]
            assert np.all(gap <= tolerance * np.abs(x).max()), ("argmax differs", gap.max())
            assert differ.mean() < 1e-3, ("argmax differs in many windows", differ.sum())
            cell = SIZE // (h // 2)
            for i, j in zip(*np.nonzero(differ.any(-1)), strict=True):
                out[max(0, i * cell - reach) : (i + 1) * cell + reach,
                    max(0, j * cell - reach) : (j + 1) * cell + reach] = True  # fmt: skip
        return out


@pytest.mark.parametrize(
    "name, variant, parameters",
    [("hair_segmentation", "paper", 181_506), ("selfie_segmentation", "selfie", 106_401),
     ("selfie_segmentation_landscape", "selfie", 106_401)],
)  # fmt: skip
def test_the_published_graphs_import_as_their_variants(name, variant, parameters):
    kwargs, variables = load(_model(name))
    assert variant_of(kwargs) == (variant, {})
    assert sum(np.size(v) for v in jax.tree.leaves(variables)) == parameters


@pytest.mark.parametrize("name", ["selfie_segmentation", "selfie_segmentation_landscape"])
def test_selfie_parity_with_the_reference_interpreter(name):
    """Logits (the input of the graph's sigmoid) within 1e-4 of their largest magnitude;
    probabilities (its output) within 1e-4 beyond the reference's own float32 rounding: at a
    pixel where the reference lies d from our float64 evaluation, ours may lie 1e-4 + d from it
    (measured: d up to 1.9e-4 on a landscape frame, whose logits reach 214; ours in float32 lie
    within 1e-4 of float64 everywhere)."""
    kwargs, variables = load(_model(name))
    reference = Reference(_model(name))
    size = tuple(reference.it.get_input_details()[0]["shape"][1:3])
    sigmoid = [op for op in reference.it._get_ops_details() if op["op_name"] == "LOGISTIC"][-1]
    runs = {}
    for dtype in ("float32", "float64"):
        with jax.enable_x64(dtype == "float64"):
            model = build(**kwargs, dtype=dtype)
            params = jax.tree.map(lambda a, d=dtype: jnp.asarray(a, d), variables)
            runs[dtype] = jax.jit(lambda x, m=model, p=params: m.apply(p, x.astype(m.dtype)))
    for image, rgb, _ in _images(size):
        x = (rgb / 255.0)[None].astype(np.float32)
        want = reference(x)[0, ..., 0].astype(np.float64)
        want_logits = reference.it.get_tensor(sigmoid["inputs"][0])[0, ..., 0]
        logits = np.asarray(runs["float32"](x))[0, ..., 0]
        l_err = np.abs(logits - want_logits).max() / np.abs(want_logits).max()
        assert l_err <= LOGITS, (image, l_err)
        with jax.enable_x64(True):
            exact = np.asarray(jax.nn.sigmoid(runs["float64"](x)))[0, ..., 0]
        got = np.asarray(jax.nn.sigmoid(logits), np.float64)
        excess = np.abs(got - want) - np.abs(exact - want)
        assert excess.max() <= PROBABILITY, (image, excess.max())
        assert np.abs(got - exact).max() <= PROBABILITY, (image, np.abs(got - exact).max())


def test_parity_with_the_reference_interpreter():
    kwargs, variables = load_hair(_hair())
    model = HairNet(**kwargs)
    apply = jax.jit(lambda v, x: model.apply(v, x, mutable=["intermediates"]))
    reference = Reference(_hair())
    worst = {"probability": 0.0, "logits": 0.0, "excluded": 0.0}
    for name, rgb, truth in _images():
        priors = {"empty": np.zeros((SIZE, SIZE))}
        if truth is not None:
            priors["ground truth"] = truth
        previous = None
        for prior_name in [*priors, "own output"]:
            prior = priors[prior_name] if prior_name in priors else previous
            x = np.concatenate([rgb / 255.0, prior[..., None]], -1)[None].astype(np.float32)
            want = reference(x)[0]
            got, state = apply(variables, x)
            got = np.asarray(got)[0]
            argmax = [np.asarray(v[0]) for k, v in state["intermediates"].items() if "argmax" in k]
            where = f"{name}, prior {prior_name}"
            # Everywhere but downstream of a pooling window where float32 rounding chose another
            # of two (near-)equal maxima, which moves what is unpooled there (measured: <= 88
            # windows of 131,072 in the first pooling, none in the others).
            excluded = reference.disagreements(argmax, 1e-5)
            p_err = np.abs(_softmax(got) - _softmax(want))[..., 1][~excluded].max()
            assert p_err <= PROBABILITY, (where, p_err)
            l_err = np.abs(got - want).max(-1)[~excluded].max() / np.abs(want).max()
            assert l_err <= LOGITS, (where, l_err)
            worst = {k: max(worst[k], v) for k, v in
                     zip(worst, (p_err, l_err, excluded.mean()), strict=True)}  # fmt: skip
            previous = _softmax(want)[..., 1]
    print("worst", worst)


def test_convert_command_writes_a_portrait_model_and_refuses_what_it_cannot_read(tmp_path, capsys):
    out = tmp_path / "hair"
    assert main(["convert", "mediapipe", "--tflite", str(_hair()), "--out", str(out)]) == 0
    _, model, variables, meta = load_model(out)
    assert (meta["family"], meta["variant"], meta["kwargs"]) == ("portrait", "paper", {})
    assert model == HairNet.variant("paper")
    _, want = load_hair(_hair())
    jax.tree.map(np.testing.assert_array_equal, variables["params"], want["params"])
    # An existing folder is never overwritten.
    before = sorted(p.name for p in out.rglob("*"))
    assert main(["convert", "mediapipe", "--tflite", str(_hair()), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.rglob("*")) == before
    # A selfie model converts too.
    selfie = tmp_path / "selfie"
    assert main(["convert", "mediapipe", "--tflite", str(_model("selfie_segmentation")),
                 "--out", str(selfie)]) == 0  # fmt: skip
    assert load_model(selfie)[3]["variant"] == "selfie"
    # A TFLite model that is no segmentation model, a file that is no model, nothing given.
    adder = tmp_path / "add.tflite"
    adder.write_bytes(add_model())
    for args, message in (
        (["--tflite", str(adder)], "not a MediaPipe hair or selfie segmentation graph"),
        (["--tflite", __file__], "is not a TFLite model"),
        ([], "give exactly one of --tflite FILE and --wheel FILE"),
    ):
        assert main(["convert", "mediapipe", *args, "--out", str(tmp_path / "x")]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "x").exists()


def test_a_mediapipe_wheel_holds_the_same_model(tmp_path, capsys):
    wheel = tmp_path / "mediapipe-0.10.21-cp311-cp311-manylinux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(_hair(), "mediapipe/modules/hair_segmentation/hair_segmentation.tflite")
    _, got = load_hair(wheel=wheel)
    _, want = load_hair(_hair())
    jax.tree.map(np.testing.assert_array_equal, got, want)
    with zipfile.ZipFile(wheel, "a") as archive:
        member = "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"
        archive.write(_model("selfie_segmentation"), member)
    kwargs, _ = load(wheel=wheel, model="selfie")
    assert kwargs["arch"] == "selfie"
    empty = tmp_path / "empty.whl"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("mediapipe/__init__.py", "")
    assert main(["convert", "mediapipe", "--wheel", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no hair_segmentation.tflite inside" in capsys.readouterr().err


def test_a_changed_graph_is_refused_at_the_operator_that_differs():
    graph = read_graph(_hair())
    add = [op for op in graph.ops if op.kind == "ADD"][1]  # the second block's residual sum
    add.inputs = (add.inputs[0], add.inputs[0])  # now a sum that skips nothing
    with pytest.raises(GraphError, match=f"op {add.index} ADD"):
        import_hair(graph)
