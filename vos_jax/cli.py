"""The `vos-jax` command: synth, eval, segment, build-dataset, convert, portrait, demo.

Every subcommand turns bad input into a one-line `error: ...` naming the file or argument and what
was expected, with exit code 2 (the code argparse uses for bad arguments), and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from vos_jax.io.masks import MaskFileError


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors (it would print the whole usage block)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 96x160, got {text!r}") from None
    return height, width


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in _csv_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers, e.g. 1,8,32, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _csv_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--davis_root", required=True, help="DAVIS folder (Annotations/, ...)")
    parser.add_argument("--results", required=True, help="folder of <sequence>/<frame>.png")
    parser.add_argument(
        "--task", default="semi-supervised", choices=["semi-supervised", "unsupervised"]
    )
    parser.add_argument("--set", default="val", help="ImageSets/2017/<set>.txt")
    parser.add_argument("--resolution", default="480p")
    parser.add_argument("--sequences", type=_csv_list, default=None, help="a,b,... (default: set)")
    parser.add_argument("--metrics", type=_csv_list, default=["J", "F"], help="subset of J,F,T")
    parser.add_argument("--output", default=None, help="where the CSV/JSON go (default: --results)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing result files")
    parser.add_argument(
        "--workers", type=_positive_int, default=None, help="processes (default: all CPUs)"
    )
    parser.add_argument(
        "--checkpoint", default=None, help="segment the set with this model into --results first"
    )
    add_engine_arguments(parser)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Inference-engine options: --config, and one flag per field of every family's inference
    options; each defaults to --config's `inference` entry, else the checkpoint's own (the
    options it was trained with), else the family's default."""
    from vos_jax.families import FAMILIES
    from vos_jax.families.options import flag_spec

    parser.add_argument("--config", default=None, help="config file (path.py[:arg])")
    flags: dict[str, tuple[type, list[str]]] = {}
    for name, family in FAMILIES.items():
        for key, (parse, text, _) in flag_spec(family.InferenceOptions).items():
            flags.setdefault(key, (parse, []))[1].append(f"{name}: {text}")
    for key, (parse, texts) in flags.items():
        parser.add_argument(f"--{key}", type=parse, help="; ".join(texts))


def engine_options(args: argparse.Namespace, family_name: str, trained: dict | None = None) -> dict:
    """Engine options for a `family_name` model: flags, else --config's `inference`, else those
    the checkpoint was trained with (`trained`, its model.json), else the family's defaults. A
    flag the family has no use for is an error."""
    from vos_jax.families import FAMILIES, get
    from vos_jax.families.options import OptionError, build, defaults

    cls = get(family_name).InferenceOptions
    options = defaults(cls)
    options.update({k: v for k, v in (trained or {}).items() if k in options})
    for key in {k for f in FAMILIES.values() for k in defaults(f.InferenceOptions)}:
        if key not in options and getattr(args, key, None) is not None:
            raise ValueError(f"--{key}: not an option of {family_name} models")
    if args.config:
        from vos_jax.config_files import load_config

        config = load_config(args.config)
        if config.get("model", {}).get("family", family_name) != family_name:
            raise ValueError(
                f"--config {args.config}: configures a {config.model.family} model, the "
                f"checkpoint holds a {family_name} model"
            )
        unknown = set(config.get("inference", {})) - set(options)
        if unknown:
            raise ValueError(f"--config {args.config}: unknown inference keys {sorted(unknown)}")
        options.update(config.get("inference", {}))
    options.update({k: getattr(args, k) for k in options if getattr(args, k, None) is not None})
    try:
        build(cls, options)
    except OptionError as err:
        raise ValueError(f"--{err}") from None
    return options


def load_propagator(args: argparse.Namespace):
    """The checkpoint's model as an inference (init, step) pair with the engine options."""
    from vos_jax.families import load_model

    family, model, variables, meta = load_model(args.checkpoint)
    if getattr(args, "model", None) and args.model != meta["family"]:
        raise ValueError(f"--model {args.model}: the checkpoint holds a {meta['family']} model")
    options = engine_options(args, meta["family"], meta.get("inference"))
    return family.propagator(model, variables, **options)


def _segment(args: argparse.Namespace, segment) -> tuple[list[int], list]:
    boxes = segment.parse_boxes(args.boxes) if args.boxes is not None else None  # before loading
    max_size = segment.parse_max_size(args.max_size)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: an existing file; expected a folder (made if missing)")
    if segment.is_folder_of_videos(args.frames):
        if boxes is not None:
            raise ValueError("--boxes: one video's boxes; a folder of videos takes --masks")
        videos = segment.folder_of_videos(args.frames, args.masks, out, not args.no_overlay)
    else:
        videos = [segment.video_files(args.frames, args.masks, out, not args.no_overlay, boxes)]
    propagator = load_propagator(args)
    progress = not args.no_progress
    counts = segment.segment_videos(
        propagator, videos, args.batch, args.overwrite, max_size, progress
    )
    return counts, videos


def run_segment(args: argparse.Namespace) -> None:
    from vos_jax.inference import segment
    from vos_jax.inference.results import Interrupted, interruptible

    with interruptible():  # Ctrl-C / SIGTERM: partial results removed, one line, no traceback
        try:
            counts, videos = _segment(args, segment)
        except Interrupted as stop:
            print(f"error: interrupted ({stop}): no partial results kept", file=sys.stderr)
            raise SystemExit(128 + stop.signum) from None
    for video, count in zip(videos, counts, strict=True):
        print(
            f"segmented {count} frames into {video.out_dir}"
            + (f"; overlay {video.overlay}" if video.overlay else "")
            + (f"; boxes and scores {video.tracks}" if video.tracks.exists() else "")
        )


def run_eval(args: argparse.Namespace) -> list:
    from vos_jax.metrics import evaluation, report

    output = Path(args.output or args.results)
    # First, before segmenting or evaluating (both take long): where the outputs go.
    report.check_output_dir(output, args.davis_root, "--output" if args.output else "--results")
    report.refuse_existing(output, args.set, args.overwrite)
    if args.checkpoint:  # segment the set with the model first, into --results
        report.check_output_dir(args.results, args.davis_root, "--results", "the model's masks")
        from vos_jax.inference.segment import segment_davis

        propagator = load_propagator(args)
        task = "unsupervised" if propagator.unsupervised else "semi-supervised"
        if args.task != task:
            raise ValueError(
                f"--checkpoint: the model segments for the {task} task; use --task {task}"
            )
        seqs = evaluation.list_sequences(
            Path(args.davis_root), args.task, args.set, args.resolution, args.sequences
        )
        segment_davis(
            propagator, args.davis_root, seqs, args.results, args.resolution, args.overwrite
        )
    start = time.perf_counter()
    objects = evaluation.evaluate(
        args.davis_root,
        args.results,
        task=args.task,
        subset=args.set,
        resolution=args.resolution,
        sequences=args.sequences,
        metrics=tuple(args.metrics),
        workers=args.workers,
    )
    seconds = time.perf_counter() - start
    about = {"task": args.task, "set": args.set, "davis_root": str(args.davis_root)}
    paths = report.write_outputs(output, args.set, objects, args.metrics, about)
    print(f"--------------------------- Global results for {args.set} ---------------------------")
    print(report.format_table([report.global_table(objects, args.metrics)]))
    print(f"\n---------- Per sequence results for {args.set} ----------")
    print(report.format_table(report.per_object_table(objects, args.metrics)))
    print(
        f"\nEvaluated {len(objects)} objects in {seconds:.1f} s; wrote {', '.join(map(str, paths))}"
    )
    return objects


# write_dataset's parameters, as `vos-jax synth` calls them (its errors name the parameter).
_SYNTH_FLAGS = {"fmt": "--format", "num_videos": "--videos", "num_frames": "--frames",
                "size": "--size", "num_objects": "--objects", "seed": "--seed",
                "preset": "--preset", "num_val": "--val"}  # fmt: skip


def run_synth(args: argparse.Namespace) -> None:
    from vos_jax.data import synthetic

    try:
        root = synthetic.write_dataset(
            args.out,
            args.format,
            args.videos,
            args.frames,
            args.size,
            args.objects,
            args.seed,
            args.preset,
            args.val,
        )
    except ValueError as err:
        flag = _SYNTH_FLAGS.get(str(err).split(" ", 1)[0])
        raise ValueError(f"{flag}: {err}" if flag else str(err)) from None
    print(f"wrote a synthetic {args.format} dataset to {root}")


def run_build_dataset(args: argparse.Namespace) -> None:
    from vos_jax.data.build import prepare

    splits, done = prepare(args.name, args.config, args.manual_dir, args.data_dir, args.overwrite)
    what = f"{args.name}/{args.config} in {args.data_dir}: splits {', '.join(splits)}"
    if done == "unchanged":
        print(f"already built from the same --manual_dir files, nothing to do: {what}")
    else:
        print(f"{done} {what}")


def converters() -> dict:
    """{name: vos_jax.convert.Converter}: every family's importer of official weights, then the
    pretrained-backbone importers (`vos_jax.convert.backbone_converters`)."""
    from vos_jax.convert import backbone_converters
    from vos_jax.families import FAMILIES

    found = {f.converter.name or name: f.converter for name, f in FAMILIES.items() if f.converter}
    return {**found, **backbone_converters()}


def run_convert(args: argparse.Namespace) -> None:
    from vos_jax.families.options import field_types

    converter = converters()[args.family]
    options = {k: getattr(args, k) for k in field_types(converter.options)}
    print(f"wrote {converter.convert(out=args.out, **options)}")


def add_convert_parsers(sub) -> None:
    """`vos-jax convert NAME`: one subcommand per importer (a family's, or a backbone's), its
    flags from the importer's options."""
    from vos_jax.families.options import flag_spec

    convert = sub.add_parser("convert", help="import published weights of an official model")
    names = convert.add_subparsers(dest="family", required=True, parser_class=_Parser)
    for name, c in converters().items():
        one = names.add_parser(name, help=f"{name}: {c.conventions}", description=c.conventions)
        for key, (parse, text, required) in flag_spec(c.options).items():
            default = None if required else c.options.__dataclass_fields__[key].default
            one.add_argument(f"--{key}", type=parse, required=required, default=default, help=text)
        one.add_argument("--out", required=True, help="the vos-jax checkpoint folder to write")
        one.set_defaults(func=run_convert)


def run_portrait(args: argparse.Namespace) -> None:
    from vos_jax.inference import portrait

    portrait.prefer_one_frame_cpu_flags()  # before JAX starts its backend
    done = portrait.run(
        args.input, args.out, args.model, args.effect, args.masks, args.overwrite, size=args.size
    )
    print(f"wrote {args.out}: {done['frames']} frames at {done['fps']} frames/s")


def run_bench(args: argparse.Namespace) -> None:
    import json

    from vos_jax.families import FAMILIES

    if args.family not in FAMILIES:
        raise ValueError(f"--family: expected one of {list(FAMILIES)}, got {args.family!r}")
    if args.plot and not args.plot.lower().endswith(".png"):
        raise ValueError(f"--plot {args.plot}: expected a .png file name")
    dtype = {"bf16": "bfloat16", "f32": "float32"}.get(args.dtype, args.dtype)
    lines = []
    for batch in args.batch or [None]:
        for objects in args.objects or [None]:
            lines.append(_bench_once(args, dtype, batch, objects))
            text = json.dumps(lines[-1])
            print(text, flush=True)
            if args.json:  # appended: earlier runs' lines are kept
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                with open(args.json, "a") as out:
                    out.write(text + "\n")
    if len(lines) > 1 or args.plot:
        from vos_jax.bench import sweep

        print(sweep.table(lines), file=sys.stderr)  # stdout stays JSON lines
        if args.plot:
            print(f"wrote {sweep.plot(lines, args.plot)}", file=sys.stderr)
    recompiled = [line for line in lines if line["recompiles"]]
    if recompiled:
        raise ValueError(f"{args.family}: recompiled after warm-up in {recompiled}")


def _bench_once(args: argparse.Namespace, dtype: str, batch, objects) -> dict:
    common = dict(variant=args.variant, size=args.size, objects=objects, batch=batch,
                  frames=args.frames, dtype=dtype, peak=args.peak_tflops)  # fmt: skip
    if args.mode == "train":
        from vos_jax.bench.train import train

        return train(args.family, steps=args.steps, fsdp=args.fsdp, config=args.config,
                     threads=args.threads, **common)  # fmt: skip
    from vos_jax.bench.infer import infer

    defaults = {"size": (240, 432), "objects": 3, "batch": 1, "frames": 10}
    return infer(args.family, **{**common, **{k: common[k] or v for k, v in defaults.items()}})


def run_export(args: argparse.Namespace) -> None:
    from vos_jax.families import load_model
    from vos_jax.inference.export import export_propagator
    from vos_jax.io.published import write_checksums

    propagator = load_propagator(args)  # checks the bundle's SHA256SUMS
    height, width = args.size
    inside = f"exported/b{args.batch}_{height}x{width}_o{propagator.max_objects}"
    out = Path(args.out or Path(args.checkpoint) / inside)
    if out.exists():
        raise FileExistsError(f"--out {out}: already exists; choose a new folder")
    meta = load_model(args.checkpoint)[3]
    about = {"family": meta["family"], "variant": meta["variant"], "checkpoint": args.checkpoint}
    export_propagator(propagator, out, args.size, args.batch, about=about)
    if args.out is None:  # beside the weights: the bundle's checksums cover the programs too
        write_checksums(args.checkpoint)
    print(f"wrote {out}: init.jax, step.jax, program.json")


def run_demo(args: argparse.Namespace) -> None:
    from vos_jax import demo

    demo.run(Path(args.out), config=args.config, steps=args.steps, preset=args.preset)


def _version() -> str:
    """The installed distribution's version (importlib.metadata), else the package's own."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vos-jax")
    except PackageNotFoundError:
        from vos_jax import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    from vos_jax.data.synthetic import PRESETS

    parser = _Parser(prog="vos-jax", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"vos-jax {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    synth = sub.add_parser("synth", help="write the built-in synthetic dataset")
    synth.add_argument("--out", required=True)
    synth.add_argument("--format", choices=["davis", "youtube"], default="davis")
    synth.add_argument("--videos", type=int, default=10)
    synth.add_argument("--frames", type=int, default=24)
    synth.add_argument("--size", type=_size, default=(96, 160), help="HxW")
    synth.add_argument("--objects", type=int, default=3)
    synth.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="davis",
        help="motion: as real DAVIS video, or faster with an object leaving and one entering",
    )
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--val", type=int, help="videos held out as val/valid (default: a fifth)")
    synth.set_defaults(func=run_synth)

    evaluate = sub.add_parser("eval", help="DAVIS J/F(/T) of a results folder")
    add_eval_arguments(evaluate)
    evaluate.set_defaults(func=run_eval)

    build = sub.add_parser("build-dataset", help="build davis_vos / youtube_vos with TFDS")
    build.add_argument("name", help="davis_vos or youtube_vos")
    build.add_argument("--config", required=True, help="e.g. 2017_480p, 2019")
    build.add_argument("--manual_dir", required=True, help="the extracted official files")
    build.add_argument("--data_dir", required=True, help="where TFDS writes the dataset")
    build.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a build made from other files (the old one is kept until the new succeeds)",
    )
    build.set_defaults(func=run_build_dataset)

    segment = sub.add_parser("segment", help="segment a video from its first-frame mask")
    segment.add_argument(
        "--model", "--family", default=None, help="family, checked against the checkpoint"
    )
    segment.add_argument("--checkpoint", required=True)
    segment.add_argument(
        "--frames",
        required=True,
        help="folder of frames or a video file; or a folder of those (every video, --batch at a "
        "time; --masks then holds <video>/ or <video>.png)",
    )
    segment.add_argument(
        "--masks",
        default=None,
        help="first-frame PNG, or a folder of PNGs (none for a zero-shot model)",
    )
    segment.add_argument(
        "--boxes",
        default=None,
        help="trackers: first-frame boxes 'x,y,w,h;x,y,w,h' (pixels) instead of --masks",
    )
    segment.add_argument("--out", required=True, help="results root: <out>/<video>/<frame>.png")
    segment.add_argument("--no_overlay", action="store_true")
    segment.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a video's whole earlier result (PNG folder, overlay, tracks) when it is done",
    )
    segment.add_argument(
        "--max_size",
        default=None,
        help="working resolution: N (longer side at most N px), HxW (fit in HxW) or none; larger "
        "frames are segmented downscaled, masks written at the frame size (default 854: 480p)",
    )
    segment.add_argument("--no_progress", action="store_true", help="no progress bar on stderr")
    segment.add_argument(
        "--batch",
        type=_positive_int,
        default=1,
        help="videos per compiled call (a folder of videos)",
    )
    add_engine_arguments(segment)
    segment.set_defaults(func=run_segment)

    add_convert_parsers(sub)

    portrait = sub.add_parser(
        "portrait", help="a person mask on every frame of a video, and an effect drawn with it"
    )
    portrait.add_argument("input", help="an .mp4 (any video OpenCV reads) or a folder of frames")
    portrait.add_argument(
        "--model",
        default="selfie",
        help="selfie, selfie_landscape or hair (MediaPipe's models, from an installed mediapipe "
        "package or $VOS_JAX_MEDIAPIPE), a .tflite file, or a portrait checkpoint folder",
    )
    portrait.add_argument(
        "--effect",
        default="keep-colour",
        help="keep-colour (background grey), blur, replace=IMAGE (of the video's size), matte",
    )
    portrait.add_argument("--out", required=True, help="the edited video (.mp4)")
    portrait.add_argument("--masks", default=None, help="also write the masks as PNGs here")
    portrait.add_argument("--size", type=_size, default=None, help="model input HxW")
    portrait.add_argument("--overwrite", action="store_true")
    portrait.set_defaults(func=run_portrait)

    bench = sub.add_parser(
        "bench",
        help="throughput of a family's inference step or training step (one JSON line)",
        description="Compile s, ms per step, frames/s, FLOPs (XLA cost analysis), TFLOP/s, MFU, "
        "memory and recompiles after warm-up of a family's streaming inference step (infer) or "
        "training step (train) at a static shape; random weights.",
    )
    bench.add_argument("--family", required=True)
    bench.add_argument("--variant", default="tiny")
    bench.add_argument("--mode", choices=["infer", "train"], default="infer")
    bench.add_argument("--size", type=_size, default=None, help="HxW (train: the crop)")
    bench.add_argument(
        "--objects", type=_int_list, default=None, help="object slots (a list: a sweep)"
    )
    bench.add_argument(
        "--batch", type=_int_list, default=None, help="videos (infer) or clips (train); a list "
        "(1,8,32): a sweep, with a table on stderr",
    )  # fmt: skip
    bench.add_argument("--plot", default=None, help="a PNG of frames/s vs batch per object count")
    bench.add_argument(
        "--frames", type=int, default=None, help="infer: frames timed; train: clip length"
    )
    bench.add_argument("--dtype", default="float32", choices=["float32", "f32", "bfloat16", "bf16"])
    bench.add_argument("--steps", type=int, default=5, help="train: steps timed")
    bench.add_argument("--fsdp", type=int, default=1, help="train: the mesh's fsdp axis")
    bench.add_argument(
        "--config", default=None, help="train: a config of the family (default: its synthetic one)"
    )
    bench.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="train: also time steps fed by the input pipeline with N threads (stall)",
    )
    bench.add_argument(
        "--peak_tflops", type=float, default=None, help="the device's dense peak (for MFU)"
    )
    bench.add_argument("--json", default=None, help="also append the line to this file")
    bench.set_defaults(func=run_bench)

    exporter = sub.add_parser(
        "export",
        help="a checkpoint's inference step as serialized StableHLO (jax.export, cpu + cuda)",
    )
    exporter.add_argument("--checkpoint", required=True, help="a vos-jax checkpoint folder")
    exporter.add_argument(
        "--out", default=None, help="the new folder to write (default: in the checkpoint, "
        "exported/b<B>_<H>x<W>_o<O>, its SHA256SUMS updated)",
    )  # fmt: skip
    exporter.add_argument("--size", type=_size, required=True, help="the frames' HxW")
    exporter.add_argument("--batch", type=int, default=1, help="videos per call")
    exporter.add_argument(
        "--objects", type=int, dest="max_objects", default=None, help="object slots baked in"
    )
    add_engine_arguments(exporter)  # --max_objects etc.: the slots and options baked in
    exporter.set_defaults(func=run_export)

    demo = sub.add_parser(
        "demo", help="train the default model on synthetic videos, evaluate it, write an overlay"
    )
    demo.add_argument("--out", default="demo_out")
    demo.add_argument(
        "--config", default=None, help="training config (default: the package's demo config)"
    )
    demo.add_argument(
        "--steps",
        type=_non_negative_int,
        default=None,
        help="training steps (default: the config's; 0: none)",
    )
    demo.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=None,
        help="synthetic motion (default: the config's)",
    )
    demo.set_defaults(func=run_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vos-jax` console script; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a bad argument already reported in one line
        return int(exit_.code or 0)
    try:
        args.func(args)
    except (
        ValueError,
        MaskFileError,
        FileNotFoundError,
        FileExistsError,
        PermissionError,
        NotADirectoryError,
        IsADirectoryError,
    ) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
