"""The training config: every shipped config validates, bad keys and values are named, and the
family's typed options (ints, floats, bools, enums) are checked the same way from a config and
from Python."""

import dataclasses
import enum

import pytest

from vos_jax.families.options import OptionError, build, defaults, flag_spec, require, to_dict
from vos_jax.training.config import ConfigError, base_config, config_args, family_options, validate


def test_validate_accepts_the_configs_and_names_bad_keys():
    from vos_jax.config_files import load_config

    rvos_args = ("", ":runlocal", ":zeroshot", ":zeroshot,runlocal")
    for name, args in (
        ("feelvos_synthetic", ("", ":runlocal")),
        ("feelvos_davis17", ("", ":runlocal")),
        ("feelvos_ytvos", ("", ":runlocal")),
        ("rvos_synthetic", rvos_args),
        ("rvos_davis", rvos_args),
        ("rvos_ytvos_stage1", rvos_args),
        ("rvos_ytvos_stage2", (":/runs/stage1", ":/runs/stage1,runlocal")),
    ):
        for arg in args:
            config = load_config(f"vos_jax/configs/{name}.py{arg}")
            if config.data.source == "davis":
                config.data.root = "/data/DAVIS"
            validate(config)
            if name.startswith("rvos"):
                assert config.model.one_shot == ("zeroshot" not in arg)
    with pytest.raises(ValueError, match="unknown arguments"):
        load_config("vos_jax/configs/rvos_davis.py:zero")
    config = base_config("feelvos")
    config.optimizer.learning_rate = 0
    with pytest.raises(ConfigError, match=r"config.optimizer.learning_rate: expected a number > 0"):
        validate(config)
    config = base_config("feelvos")
    config.data.batch_size = 0
    with pytest.raises(ConfigError, match=r"config.data.batch_size: expected an integer >= 1"):
        validate(config)
    config = base_config("feelvos")
    config.data.source = "davis"
    with pytest.raises(ConfigError, match=r"config.data.root: expected a data folder"):
        validate(config)
    config = base_config("portrait")
    config.data.update(source="davis", root="/data/DAVIS", categories="person")
    with pytest.raises(ConfigError, match=r"config.data.categories: expected '' unless tfds"):
        validate(config)
    config = base_config("rvos")
    config.loss.anneal_steps = 5  # a FEELVOS option
    with pytest.raises(ConfigError, match=r"config.loss.anneal_steps: unknown key"):
        validate(config)
    config = base_config("feelvos")
    config.model.dtyp = "bfloat16"
    with pytest.raises(ConfigError, match=r"config.model.dtyp: unknown key"):
        validate(config)


def test_synthetic_val_videos_must_leave_training_videos():
    config = base_config("feelvos")
    config.synthetic.val_videos = 40  # all 40 videos
    with pytest.raises(ConfigError, match=r"config.synthetic.val_videos: expected 0 \(a fifth\)"):
        validate(config)
    config.synthetic.val_videos = 39
    assert validate(config).synthetic.val_videos == 39


def test_family_options_are_typed_and_checked():
    config = base_config("feelvos")
    config.loss.given_frames = 3  # == data.num_frames: nothing left to predict
    with pytest.raises(ConfigError, match=r"config.loss.given_frames: expected < data.num_frames"):
        validate(config)
    config = base_config("feelvos")
    config.inference.global_every = 0
    with pytest.raises(ConfigError, match=r"config.inference.global_every: expected an integer"):
        validate(config)
    config = base_config("rvos")
    config.model.one_shot = False
    assert family_options(validate(config), "model").one_shot is False
    config = base_config("feelvos")
    config.data.update(sampling="clip", lucid=True)
    with pytest.raises(ConfigError, match=r"config.data.lucid: .*sampling 'static'"):
        validate(config)
    with pytest.raises(ValueError, match="unknown arguments"):
        config_args("a,b", ("a",), "x.py")


class _Mode(enum.Enum):
    FAST = "fast"
    EXACT = "exact"


@dataclasses.dataclass(frozen=True)
class _Options:
    """A float, an enum, a bool and a tuple: what later families (penalties, thresholds) need."""

    penalty: float = dataclasses.field(default=0.04, metadata={"help": "scale penalty"})
    mode: _Mode = _Mode.FAST
    refine: bool = True
    size: tuple[int, int] = (8, 8)

    def __post_init__(self):
        require(0.0 <= self.penalty <= 1.0, "penalty", "a number in [0, 1]", self.penalty)


def test_options_take_floats_enums_bools_and_tuples():
    assert defaults(_Options) == {"penalty": 0.04, "mode": "fast", "refine": True, "size": (8, 8)}
    built = build(_Options, {"penalty": 1, "mode": "exact", "size": [4, 4]})  # int is a float
    assert built == _Options(1.0, _Mode.EXACT, True, (4, 4)) and isinstance(built.penalty, float)
    assert to_dict(built)["mode"] == "exact"
    for bad, message in (
        ({"penalty": "high"}, "penalty: expected float"),
        ({"penalty": 2.0}, r"penalty: expected a number in \[0, 1\]"),
        ({"mode": "slow"}, r"mode: expected one of \['fast', 'exact'\]"),
        ({"refine": 1}, "refine: expected bool"),
        ({"nope": 1}, "nope: unknown option"),
    ):
        with pytest.raises(OptionError, match=message):
            build(_Options, bad)
    spec = flag_spec(_Options)
    assert spec["penalty"][0] is float and "scale penalty (default 0.04)" in spec["penalty"][1]
    assert spec["mode"][0] is str and spec["refine"][0]("false") is False
