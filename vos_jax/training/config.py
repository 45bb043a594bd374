"""The training config: every key a config may set, with its default, and the checks that run
before anything is compiled.

A config file (vos_jax/configs/<family>_<dataset>.py) starts from `base_config(family)` and
changes values; it never adds keys. `validate` rejects unknown keys (a typo such as `totl_steps`
in a file or on the command line), values of the wrong type and values out of range, naming the
key, so a bad config fails in a second instead of after minutes of compilation.
"""

from __future__ import annotations

import numbers

import ml_collections

from vos_jax import families
from vos_jax.data import synthetic
from vos_jax.data.pipeline import SAMPLINGS
from vos_jax.families.options import OptionError, build, defaults
from vos_jax.training.data import data_sample_config
from vos_jax.training.state import OPTIMIZERS

SOURCES = ("synthetic", "davis", "tfds", "images")
DTYPES = ("float32", "bfloat16", "float64")


class ConfigError(ValueError):
    """A config key is unknown or has a bad value."""


def base_config(family: str) -> ml_collections.ConfigDict:
    """All keys, with defaults for `family`'s tiny variant on the built-in synthetic videos; the
    `loss` and `inference` groups and the model options are the family's typed options."""
    if family not in families.FAMILIES:
        known = list(families.FAMILIES)
        raise ConfigError(f"config.model.family: expected one of {known}, got {family!r}")
    f = families.FAMILIES[family]
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.total_steps = 1000
    c.log_every_steps = 50
    c.checkpoint_every_steps = 500
    c.eval_every_steps = 500  # 0: no evaluation during training
    c.keep_checkpoints = 3  # the last N, plus the best by val J&F

    # The family's model options beyond the variant; `dtype` is the compute dtype (parameters
    # stay float32). "float64" (jax_enable_x64; parameters too) is for checks: float32 rounding
    # amplified by max-pool / min / top-k near-ties makes 1 vs 8 devices drift.
    c.model = dict(
        family=family,
        variant="tiny",
        dtype="float32",
        # Start from these weights (training/init_checkpoint.py): a converted backbone (`vos-jax
        # convert resnet`), a published vos-jax model or a train.py workdir (its last exported
        # model); `init_prefixes`: only params under these comma-separated paths
        # ("encoder,decoder"; empty: all).
        init_checkpoint="",
        init_prefixes="",
        **defaults(f.ModelOptions),
    )
    c.data = dict(
        source="synthetic",
        root="",  # davis: a DAVIS-layout folder; images: a folder with images/ and masks/
        tfds_name="",  # tfds: e.g. "davis_vos/2017_480p" or "youtube_vos/2019"
        tfds_data_dir="",
        split="train",
        # only these videos of the split (comma-separated names; "": all), e.g. DAVIS's people
        sequences="",
        # tfds youtube_vos: only objects of these categories (comma-separated, e.g. "person"),
        # and only the videos that have some
        categories="",
        # all of a frame's objects as one (one mask of several people, e.g. a person)
        merge_objects=False,
        batch_size=8,  # global, over all hosts and devices
        threads=0,  # grain threads per host (0: one per CPU)
        workers=0,  # grain worker processes per host
        sampling="",  # "" = the family's
        num_frames=3,
        max_gap=1,  # triplet: previous -> current frames apart at most (1: adjacent)
        stride=1,  # clip: frames apart (annotated frames) between a clip's consecutive frames
        crop_size=(465, 465),
        scale_range=(1.0, 1.3),
        max_objects=3,
        flip=True,
        photometric=True,
        # MaskTrack-style simulated previous-frame masks (empty, affine, thin-plate spline,
        # dilated) as `prior` in each sample; families that take a previous mask train on them.
        prior=False,
        lucid=False,  # static sampling: Lucid Data Dreaming of the image first
        # triplet: the reference frame scaled, cropped and flipped on its own
        reference_apart=True,
        # triplet, clip: redraw a sample whose reference frame has a label (background too)
        # with fewer pixels on the stride-4 grid (0: off)
        min_stride4_pixels=0,
        # every frame's mask damaged (shift, scale, rotate per object) as `prior`; excludes it
        damage=False,
        # clip: resize to crop_size and one random affine map and flip per clip, instead of the
        # random scale and crop
        affine=False,
    )
    # The built-in synthetic videos, generated on first use and cached by their parameters;
    # `preset`: their motion, "davis" (as real video) or "hard" (faster; data/synthetic.py);
    # the last `val_videos` of them are held out (0: a fifth).
    c.synthetic = dict(
        num_videos=40,
        val_videos=0,
        num_frames=24,
        height=96,
        width=160,
        num_objects=3,
        seed=0,
        preset="davis",
        cache_dir="",
    )
    c.optimizer = dict(
        name="momentum",
        learning_rate=7e-4,
        weight_decay=4e-5,
        clip_norm=0.0,  # 0: no clipping
        backbone_lr_multiplier=1.0,
        backbone="encoder",  # the params path(s), comma-separated, backbone_lr_multiplier scales
        warmup_steps=0,
        clip_per_variable=0.0,  # momentum: each variable's gradient to this norm (0: off)
        bias_lr_multiplier=1.0,  # momentum: factor on conv biases' gradients
    )
    c.loss = defaults(f.LossOptions)  # the family's loss options
    c.mesh = dict(data=-1, fsdp=1)  # -1: all devices the fsdp axis leaves
    # Validation during training: a DAVIS-layout folder ("" = the synthetic videos' own val split
    # when data.source is synthetic, data.root when it is davis), its split and at most N videos.
    c.eval = dict(root="", split="val", max_videos=0)
    c.inference = defaults(f.InferenceOptions)  # the family's propagator options
    return c


def config_args(arg: str | None, allowed: tuple[str, ...], file: str) -> set[str]:
    """A config file's comma-separated arguments (`x.py:zeroshot,runlocal`), checked."""
    args = set(arg.split(",")) if arg else set()
    if args - set(allowed):
        raise ValueError(f"{file}: unknown arguments {sorted(args - set(allowed))} (of {allowed})")
    return args


def _check_keys(config, reference, prefix: str = "") -> None:
    for key in config.keys():
        name = prefix + key
        if key not in reference:
            known = ", ".join(sorted(prefix + k for k in reference.keys()))
            raise ConfigError(f"config.{name}: unknown key (known: {known})")
        value, default = config[key], reference[key]
        if isinstance(default, ml_collections.ConfigDict):
            if not isinstance(value, ml_collections.ConfigDict):
                raise ConfigError(f"config.{name}: expected a group of keys, got {value!r}")
            _check_keys(value, default, name + ".")
        elif not _same_kind(value, default):
            raise ConfigError(
                f"config.{name}: expected {type(default).__name__} like {default!r}, got {value!r}"
            )


def _same_kind(value, default) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if isinstance(default, tuple | list):
        return isinstance(value, tuple | list) and len(value) == len(default)
    return isinstance(value, type(default))


def _require(ok: bool, key: str, expected: str, value) -> None:
    if not ok:
        raise ConfigError(f"config.{key}: expected {expected}, got {value!r}")


MODEL_KEYS = ("family", "variant", "dtype", "init_checkpoint", "init_prefixes")  # not options


def family_options(config, group: str):
    """The family's typed options of config group `group` ('model', 'loss', 'inference')."""
    f = families.get(config.model.family)
    cls = {"model": f.ModelOptions, "loss": f.LossOptions, "inference": f.InferenceOptions}[group]
    values = dict(config[group])
    if group == "model":
        values = {k: v for k, v in values.items() if k not in MODEL_KEYS}
    try:
        return build(cls, values)
    except OptionError as err:
        raise ConfigError(f"config.{group}.{err}") from None


def _validate_run(c) -> None:
    for key in ("log_every_steps", "checkpoint_every_steps", "keep_checkpoints"):
        _require(c[key] >= 1, key, "an integer >= 1", c[key])
    # 0 steps: no training, the initialised model is exported (an untrained baseline).
    _require(c.total_steps >= 0, "total_steps", "an integer >= 0", c.total_steps)
    every = c.eval_every_steps
    _require(every >= 0, "eval_every_steps", "an integer >= 0 (0: off)", every)
    _require(c.seed >= 0, "seed", "an integer >= 0", c.seed)
    _require(
        c.mesh.fsdp >= 1 and (c.mesh.data >= 1 or c.mesh.data == -1),
        "mesh",
        "fsdp >= 1 and data >= 1 (or -1: the rest)",
        c.mesh.to_dict(),
    )
    _require(c.eval.max_videos >= 0, "eval.max_videos", "an integer >= 0", c.eval.max_videos)
    o = c.optimizer
    _require(o.name in OPTIMIZERS, "optimizer.name", f"one of {OPTIMIZERS}", o.name)
    _require(o.learning_rate > 0, "optimizer.learning_rate", "a number > 0", o.learning_rate)
    for key in (
        "weight_decay",
        "clip_norm",
        "backbone_lr_multiplier",
        "warmup_steps",
        "clip_per_variable",
        "bias_lr_multiplier",
    ):
        _require(o[key] >= 0, f"optimizer.{key}", "a number >= 0", o[key])


def _validate_data(c) -> None:
    d = c.data
    _require(d.source in SOURCES, "data.source", f"one of {SOURCES}", d.source)
    needs_root = d.source in ("davis", "images")
    _require(not needs_root or bool(d.root), "data.root", "a data folder", d.root)
    _require(d.source != "tfds" or bool(d.tfds_name), "data.tfds_name", "a dataset", d.tfds_name)
    _require(
        not d.sequences or d.source != "images", "data.sequences", "'' for images", d.sequences
    )
    _require(
        not d.categories or d.source == "tfds", "data.categories", "'' unless tfds", d.categories
    )
    _require(d.batch_size >= 1, "data.batch_size", "an integer >= 1", d.batch_size)
    _require(d.sampling in ("", *SAMPLINGS), "data.sampling", f"'' or {SAMPLINGS}", d.sampling)
    _require(d.threads >= 0 and d.workers >= 0, "data.threads", "threads, workers >= 0", d.threads)
    _require(
        all(isinstance(s, int) and s >= 8 for s in d.crop_size),
        "data.crop_size",
        "two integers >= 8 (H, W)",
        d.crop_size,
    )
    low, high = d.scale_range
    _require(0 < low <= high, "data.scale_range", "0 < low <= high", d.scale_range)
    for key in ("max_gap", "stride", "max_objects", "num_frames"):
        _require(d[key] >= 1, f"data.{key}", "an integer >= 1", d[key])
    pixels = d.min_stride4_pixels
    _require(pixels >= 0, "data.min_stride4_pixels", "an integer >= 0 (0: off)", pixels)
    _require(not (d.damage and d.prior), "data.damage", "False when data.prior is set", d.damage)
    s = c.synthetic
    for key in ("num_videos", "num_frames", "height", "width", "num_objects"):
        _require(s[key] >= 1, f"synthetic.{key}", "an integer >= 1", s[key])
    _require(s.num_videos >= 2, "synthetic.num_videos", ">= 2 (train and val)", s.num_videos)
    val = s.val_videos
    _require(0 <= val < s.num_videos, "synthetic.val_videos", "0 (a fifth) .. num_videos - 1", val)
    presets = sorted(synthetic.PRESETS)
    _require(s.preset in presets, "synthetic.preset", f"one of {presets}", s.preset)


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Check keys, types and ranges; -> the config. Raises ConfigError naming the key."""
    family = config.get("model", {}).get("family")
    if family not in families.FAMILIES:
        known = list(families.FAMILIES)
        raise ConfigError(f"config.model.family: expected one of {known}, got {family!r}")
    _check_keys(config, base_config(family))
    m = config.model
    variants = families.FAMILIES[family].VARIANTS
    _require(m.variant in variants, "model.variant", f"one of {list(variants)}", m.variant)
    _require(m.dtype in DTYPES, "model.dtype", f"one of {DTYPES}", m.dtype)
    _validate_run(config)
    _validate_data(config)
    options = {group: family_options(config, group) for group in ("model", "loss", "inference")}
    try:
        sample = data_sample_config(config)
    except ValueError as err:
        raise ConfigError(f"config.data.{err}") from None
    try:  # the family checks that its loss can take these samples
        families.get(family).training_sample(sample, options["loss"])
    except OptionError as err:
        raise ConfigError(f"config.loss.{err}") from None
    return config
