"""Wall time of `eval.py` on the davis-mini cases, against the official toolkit's evaluation loop.

    python benchmarks/eval_speed.py [--davis-mini ../shared/data/davis-mini]
        [--cases semi,multi,unsup] [--no-baseline]

Cases (as in ../shared/fixtures/davis_official_metrics.json): `semi` real ground truth vs OSVOS,
`multi` OSVOS vs OSVOS lagged one frame (multi-object), `unsup` OSVOS as ground truth vs RVOS's 20
proposals on all 30 sequences (the expensive one). eval.py runs as a user runs it (a fresh process,
all CPUs); the baseline runs `toolkit_baseline.py` (the toolkit's loop, one process, as the toolkit
does). Both must agree on every per-object J and F. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import toolkit_baseline  # noqa: E402
from davis_mini import build_davis_mini_case  # noqa: E402


def case_sequences(mini: Path, case: str) -> list[str]:
    fixture = mini.parent.parent / "fixtures" / "davis_official_metrics.json"
    if case == "unsup":
        return sorted(p.name for p in (mini / "results/unsupervised/rvos").iterdir())
    return json.loads(fixture.read_text())[case]["sequences"]


def run_case(mini: Path, case: str, baseline: bool, work: Path) -> dict:
    seqs = case_sequences(mini, case)
    root, results = build_davis_mini_case(mini, case, seqs, work / case)
    task = "unsupervised" if case == "unsup" else "semi-supervised"
    out = work / case / "eval"
    cmd = [sys.executable, str(REPO / "eval.py"), "--davis_root", str(root), "--results"]
    cmd += [str(results), "--task", task, "--sequences", ",".join(seqs), "--output", str(out)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    ours = time.perf_counter() - start
    row = {"sequences": len(seqs), "vos_jax_s": round(ours, 2)}
    report = json.loads((out / "results-val.json").read_text())["per_object"]
    row["objects"] = len(report)
    if baseline:
        gt_folder = "Annotations" if task == "semi-supervised" else "Annotations_unsupervised"
        start = time.perf_counter()
        worst = 0.0
        for seq in seqs:
            j, f = toolkit_baseline.evaluate_sequence(
                root / gt_folder / "480p" / seq, results / seq, task
            )
            for k in range(len(j)):
                mine = report[f"{seq}_{k + 1}"]
                worst = max(worst, abs(mine["JM"] - j[k].mean()), abs(mine["FM"] - f[k].mean()))
        row["toolkit_loop_s"] = round(time.perf_counter() - start, 2)
        row["speedup"] = round(row["toolkit_loop_s"] / ours, 2)
        row["max_abs_diff_JM_FM"] = float(worst)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis-mini", default=str(REPO.parent / "shared/data/davis-mini"))
    parser.add_argument("--cases", default="semi,multi,unsup")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    mini = Path(args.davis_mini)
    if not (mini / "results").is_dir():
        sys.exit(f"error: --davis-mini {mini}: expected the davis-mini folder (results/, DAVIS/)")
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            c: run_case(mini, c, not args.no_baseline, Path(tmp)) for c in args.cases.split(",")
        }
    line = {"benchmark": "eval_speed", "cpus": os.cpu_count(), "machine": platform.machine()}
    line["cases"] = cases
    if not args.no_baseline:
        total_ours = sum(c["vos_jax_s"] for c in cases.values())
        line["speedup_total"] = round(
            sum(c["toolkit_loop_s"] for c in cases.values()) / total_ours, 2
        )
    line["numpy"] = np.__version__
    print(json.dumps(line))


if __name__ == "__main__":
    main()
