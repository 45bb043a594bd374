"""Config files by path or, from any folder, by the name of a config shipped in the package."""

import pytest

from vos_jax.config_files import load_config, resolve


def test_paths_and_shipped_names_resolve_to_the_same_config(tmp_path, monkeypatch):
    by_path = load_config("vos_jax/configs/rvos_synthetic.py:zeroshot")
    monkeypatch.chdir(tmp_path)  # no vos_jax/configs/ here: the shipped file is found
    by_name = load_config("rvos_synthetic.py:zeroshot")
    assert by_name.to_dict() == by_path.to_dict() and by_name.model.one_shot is False
    assert resolve("rvos_synthetic.py").name == "rvos_synthetic.py"


def test_missing_and_bad_config_files_are_named(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"nope\.py: config file not found .*feelvos_davis17"
    ):
        load_config("nope.py")
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    with pytest.raises(ValueError, match="defines no get_config"):
        load_config(str(bad))


def test_every_shipped_config_validates():
    """Each config file of the package, with no argument and with `runlocal` where it takes it."""
    from pathlib import Path

    from vos_jax.configs import __file__ as configs_init
    from vos_jax.training.config import validate

    files = sorted(p for p in Path(configs_init).parent.glob("*.py") if p.name != "__init__.py")
    assert len(files) >= 8
    needs_argument = {"rvos_ytvos_stage2.py": "/runs/stage1"}  # stage 1's workdir
    for path in files:
        first = needs_argument.get(path.name, "")
        args = [first]
        if "runlocal" in path.read_text():
            args.append(f"{first},runlocal".lstrip(","))
        for arg in args:
            config = load_config(f"{path}:{arg}" if arg else str(path))
            if config.data.source in ("davis", "images"):
                config.data.root = config.data.root or "/data"  # the user's dataset folder
            validate(config)
