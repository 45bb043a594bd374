"""The `vos-jax` command: synth and the quickstart demo, end to end."""

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


def test_demo_evaluates_the_copy_first_mask_baseline(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "J&F-Mean" in printed and "synth-" in printed
    report = json.loads((out / "eval/copy-first-mask/results-val.json").read_text())
    assert len(report["per_object"]) == 6  # 2 val videos x 3 objects
    # Objects move, scale and get occluded: copying the first mask must score badly, but not 0.
    assert 0.02 < report["global"]["J&F-Mean"] < 0.6
    # A second run rewrites its own files instead of refusing.
    assert main(["demo", "--out", str(out)]) == 0


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
