"""The `vos-jax` command: synth, the quickstart demo and build-dataset, end to end."""

import json

from vos_jax.cli import main


def test_synth_writes_a_dataset_and_rejects_bad_arguments(tmp_path, capsys):
    out = tmp_path / "data"
    argv = ["synth", "--out", str(out), "--videos", "2", "--frames", "4", "--size", "32x48"]
    assert main(argv) == 0
    assert sorted(p.name for p in (out / "Annotations" / "480p").iterdir()) == [
        "synth-000",
        "synth-001",
    ]
    for bad in (["--size", "8x8"], ["--size", "big"], ["--objects", "0"], ["--format", "coco"]):
        capsys.readouterr()
        assert main(["synth", "--out", str(tmp_path / "bad"), *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:"), err
        assert not (tmp_path / "bad").exists()


def test_demo_trains_evaluates_and_writes_an_overlay(tmp_path, capsys):
    """The quickstart with the seconds-long :runlocal config (the real one is README command 1)."""
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--config", "configs/feelvos_synthetic.py:runlocal"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "held-out J&F-Mean: FEELVOS (tiny)" in printed and "copy-first-mask baseline" in printed
    ours = json.loads((out / "eval/feelvos/results-val.json").read_text())
    floor = json.loads((out / "eval/copy-first-mask/results-val.json").read_text())
    assert len(ours["per_object"]) == len(floor["per_object"]) == 2  # 1 val video x 2 objects
    for report in (ours, floor):
        assert 0.0 <= report["global"]["J&F-Mean"] <= 1.0
    assert (out / "train/models/step_12/model.json").exists()
    overlay = next((out / "overlay").glob("*.mp4"))
    assert overlay.stat().st_size > 1000
    # A second run reuses the finished training and rewrites its own evaluation files.
    assert main(argv) == 0
    assert json.loads((out / "eval/feelvos/results-val.json").read_text()) == ours


def test_build_dataset_command(tmp_path, capsys):
    from vos_jax.data import synthetic

    manual = synthetic.write_dataset(tmp_path / "manual", "davis", 2, 3, (32, 48), 2, seed=0)
    data_dir = tmp_path / "tfds"
    argv = ["build-dataset", "davis_vos", "--config", "2017_480p", "--manual_dir", str(manual)]
    assert main([*argv, "--data_dir", str(data_dir)]) == 0
    assert "splits" in capsys.readouterr().out
    import tensorflow_datasets as tfds

    assert len(tfds.data_source("davis_vos/2017_480p", split="val", data_dir=str(data_dir))) == 1
    assert (
        main(
            [
                "build-dataset",
                "nope",
                "--config",
                "x",
                "--manual_dir",
                str(manual),
                "--data_dir",
                str(data_dir),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.startswith("error:")
    missing = ["--manual_dir", str(tmp_path / "missing"), "--data_dir", str(tmp_path / "d2")]
    assert main(["build-dataset", "davis_vos", "--config", "2017_480p", *missing]) == 2
    assert "missing" in capsys.readouterr().err
