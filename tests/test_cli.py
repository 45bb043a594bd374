"""The `vos-jax` command: synth, build-dataset and convert's generated parsers, end to end (the
demo: test_demo.py; segment and eval: tests/inference, tests/metrics)."""

from vos_jax.cli import main


def test_synth_writes_a_dataset_and_rejects_bad_arguments(tmp_path, capsys):
    out = tmp_path / "data"
    argv = ["synth", "--out", str(out), "--videos", "2", "--frames", "4", "--size", "32x48"]
    assert main(argv) == 0
    assert sorted(p.name for p in (out / "Annotations" / "480p").iterdir()) == [
        "synth-000",
        "synth-001",
    ]
    held = tmp_path / "held"
    assert main(["synth", "--out", str(held), "--videos", "3", "--frames", "2", "--val", "2"]) == 0
    assert (held / "ImageSets/2017/val.txt").read_text().split() == ["synth-001", "synth-002"]
    bads = (["--size", "8x8"], ["--size", "big"], ["--objects", "0"], ["--format", "coco"])
    for bad in (*bads, ["--val", "11"]):  # of the default 10 videos
        capsys.readouterr()
        assert main(["synth", "--out", str(tmp_path / "bad"), *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:"), err
        assert not (tmp_path / "bad").exists()


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


def test_convert_has_one_subcommand_per_importer_with_its_flags(capsys):
    assert main(["convert", "rvos", "--help"]) == 0
    printed = capsys.readouterr().out
    assert "--checkpoint" in printed and "--decoder_prefix" in printed and "symmetric" in printed
    assert main(["convert", "feelvos", "--out", "x"]) == 2  # no published FEELVOS weights
    assert main(["convert", "rvos", "--out", "x"]) == 2  # --checkpoint is required
    assert "--checkpoint" in capsys.readouterr().err


def test_version_prints_the_installed_version(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"vos-jax {version('vos-jax')}"
