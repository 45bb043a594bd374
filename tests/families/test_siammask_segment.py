"""SiamMask through the generic layers: `vos-jax convert siammask` (official weights), `vos-jax
segment --family siammask` from first-frame masks and from boxes on real DAVIS frames (palette
PNGs, the tracks JSON, the overlay), its input errors, and `eval.py --checkpoint`."""

import json
import shutil

import jax
import numpy as np
import pytest

from tests.models.test_siammask_parity import fixture_path, stand_in_state_dict
from tests.shared_data import DAVIS_MINI, shared_path
from vos_jax.cli import main
from vos_jax.convert.siammask import import_siammask
from vos_jax.convert.state_dict import StateDictMismatch
from vos_jax.families import build_model, load_model, save_model
from vos_jax.families import siammask as family
from vos_jax.io.masks import read_mask

FRAMES = 4


@pytest.fixture(scope="module")
def state_dict():
    return stand_in_state_dict(dict(np.load(fixture_path())))


def test_convert_imports_the_official_weights(state_dict, tmp_path, capsys):
    np.savez(tmp_path / "SiamMask_DAVIS.npz", **{f"module.{k}": v for k, v in state_dict.items()})
    out = tmp_path / "ckpt"
    argv = ["convert", "siammask", "--torch", str(tmp_path / "SiamMask_DAVIS.npz")]
    assert main([*argv, "--out", str(out)]) == 0, capsys.readouterr().err
    _, model, variables, meta = load_model(out)
    assert (meta["family"], meta["variant"]) == ("siammask", "paper")
    kernel = variables["params"]["refine_module"]["deconv_kernel"]  # [in, out, kh, kw] -> HWIO
    np.testing.assert_array_equal(
        np.asarray(kernel), state_dict["refine_model.deconv.weight"].transpose(2, 3, 0, 1)
    )
    assert main([*argv, "--out", str(out)]) == 2  # never over an existing checkpoint
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d.pop("rpn_model.loc.head.3.bias"), "missing entry 'rpn_model.loc.head.3.bias'"),
        (lambda d: d.update(extra=np.zeros(3)), "1 unused entries"),
        (
            lambda d: d.update(
                {"mask_model.mask.conv_search.0.weight": np.zeros((256, 256, 5, 5))}
            ),
            "mask/conv_search/kernel",
        ),
        (lambda d: d.pop("refine_model.deconv.weight"), "not a SiamMask sharp model"),
    ],
)
def test_mismatches_fail_loudly(state_dict, change, message):
    broken = dict(state_dict)
    change(broken)
    with pytest.raises(StateDictMismatch, match=message):
        import_siammask(broken)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model, kwargs = build_model("siammask", "tiny")
    variables = family.init_variables(model, jax.random.key(0), {})
    return save_model(
        tmp_path_factory.mktemp("tiny") / "ckpt", "siammask", "tiny", variables, kwargs
    )


@pytest.fixture(scope="module")
def car(tmp_path_factory):
    """The first frames of a real DAVIS sequence and its first mask."""
    davis = shared_path(DAVIS_MINI) / "DAVIS"
    folder = tmp_path_factory.mktemp("car") / "car-shadow"
    folder.mkdir()
    for path in sorted((davis / "JPEGImages/480p/car-shadow").glob("*.jpg"))[:FRAMES]:
        shutil.copy(path, folder)
    return folder, davis / "Annotations/480p/car-shadow/00000.png"


def test_segment_from_masks_and_from_boxes(checkpoint, car, tmp_path, capsys):
    frames, first = car
    base = ["segment", "--family", "siammask", "--checkpoint", str(checkpoint)]
    base += ["--frames", str(frames), "--max_objects", "3"]
    assert main([*base, "--masks", str(first), "--out", str(tmp_path / "m")]) == 0
    assert "boxes and scores" in capsys.readouterr().out
    pngs = sorted((tmp_path / "m/car-shadow").glob("*.png"))
    assert len(pngs) == FRAMES and (tmp_path / "m/car-shadow_overlay.mp4").stat().st_size > 0
    tracks = json.loads((tmp_path / "m/car-shadow_tracks.json").read_text())["frames"]
    assert [f["frame"] for f in tracks] == [p.stem for p in pngs]
    mask = read_mask(first)
    ys, xs = np.nonzero(mask)
    assert tracks[0]["objects"]["1"]["box"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    later = tracks[1]["objects"]["1"]
    assert len(later["box"]) == 4 and len(later["rotated"]) == 4 and 0 <= later["score"] <= 1
    assert np.all(np.isfinite(later["box"])) and np.all(np.isfinite(later["rotated"]))

    boxes = "100,200,80,60;400,150,120,90"
    assert main([*base, "--boxes", boxes, "--out", str(tmp_path / "b")]) == 0
    labels = read_mask(tmp_path / "b/car-shadow/00000.png")
    assert labels[230, 140] == 1 and labels[200, 450] == 2 and labels[10, 10] == 0
    tracks = json.loads((tmp_path / "b/car-shadow_tracks.json").read_text())["frames"]
    assert tracks[0]["objects"]["2"]["box"] == [400, 150, 520, 240]
    assert set(tracks[-1]["objects"]) == {"1", "2"}


@pytest.mark.parametrize(
    "boxes,message",
    [
        ("800,400,100,100", "not inside the 854x480 frame"),
        ("10,10,0,20", "zero size"),
        ("1,1,5,5;10,10,5,5;20,20,5,5;30,30,5,5", "at most max_objects=3"),
        ("1,2,3", "expected x,y,w,h"),
        ("10,10,100,100;5,5,110,20", "covered by other boxes"),
    ],
)
def test_bad_boxes_are_refused(checkpoint, car, tmp_path, capsys, boxes, message):
    frames, _ = car
    argv = ["segment", "--checkpoint", str(checkpoint), "--frames", str(frames)]
    argv += ["--max_objects", "3", "--boxes", boxes, "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "car-shadow").exists() or not any(
        (tmp_path / "o" / "car-shadow").iterdir()
    )


def test_eval_tracks_a_davis_sequence_from_its_first_mask(checkpoint, tmp_path, capsys):
    """eval.py --checkpoint with the DAVIS config: the official protocol (first-frame boxes from
    the masks) on a real sequence, scored."""
    davis = shared_path(DAVIS_MINI) / "DAVIS"
    argv = ["eval", "--davis_root", str(davis), "--results", str(tmp_path / "r")]
    argv += ["--checkpoint", str(checkpoint), "--config", "vos_jax/configs/siammask_davis.py"]
    argv += ["--sequences", "car-shadow", "--max_objects", "1", "--workers", "1"]
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "r" / "results-val.json").read_text())
    assert set(report["per_object"]) == {"car-shadow_1"}
    assert len(list((tmp_path / "r" / "car-shadow").glob("*.png"))) == 40
