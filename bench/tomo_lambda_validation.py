"""How strongly the contrast is weighted against the heat-map loss (issue 7), chosen without the test tomograms.

    .venv/bin/python bench/tomo_lambda_validation.py [--scales 1 4 16 64] [--runs ribosome:0 cct:0 ribosome:1]
        [--labels 50] [--keep]

The tomogram benchmark's training tomograms split in two: models train on labels drawn from simulated seeds
21–23 and are scored on seed 24 (the benchmark's test tomograms 25 and 26 are not read). Each scale multiplies
the paper's contrast weights (λ = 0.1, 0.5, 0.1); ``--runs`` names species and seed pairs. F1 at the automatic
cut and at the best cut, matching radius half the diameter (the benchmark's scoring, ``tomo_bench.run_fewpick``).

Writes bench/results/tomo_lambda_validation.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tomo_bench as tb  # noqa: E402
from _common import write_results  # noqa: E402

PAPER = (0.1, 0.5, 0.1)


def variant(scale: float) -> str:
    return f"x{scale:g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", type=float, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--runs", nargs="+", default=["ribosome:0", "cct:0", "ribosome:1"])
    ap.add_argument("--labels", type=int, default=50)
    ap.add_argument("--keep", action="store_true", help="reuse models already trained in bench/work/tomo_validation")
    args = ap.parse_args()
    shared = tb.WORK / "data"  # the benchmark's simulated tomograms, simulated once for both scripts
    shared.mkdir(parents=True, exist_ok=True)
    tb.WORK = tb.ROOT / "bench" / "work" / "tomo_validation"
    tb.WORK.mkdir(parents=True, exist_ok=True)
    if not (tb.WORK / "data").exists():
        (tb.WORK / "data").symlink_to(shared, target_is_directory=True)
    tb.TRAIN_SEEDS, tb.TEST_SEEDS = (21, 22, 23), (24,)
    tb.KEEP = args.keep
    for s in (*tb.TRAIN_SEEDS, *tb.TEST_SEEDS):
        tb.simulate(s)
    rows = []
    for run in args.runs:
        species, seed = run.split(":")
        for scale in args.scales:
            tb.VARIANTS[variant(scale)] = ["--lambdas", *(f"{scale * w:g}" for w in PAPER)]
            truth = tb.truth_of(species, tb.TEST_SEEDS)
            r = tb.run_fewpick(species, args.labels, int(seed), float(truth["diameter_px"].iloc[0]), truth,
                               variant=variant(scale))
            rows.append({**r, "scale": scale})
            write_results("tomo_lambda_validation", {"rows": rows}, table(rows))


def table(rows: list[dict]) -> str:
    md = ["Trained on simulated tomograms 21–23, scored on 24 (not the benchmark's test tomograms).", "",
          "| species | seed | contrast scale (× 0.1, 0.5, 0.1) | F1 (auto threshold) | precision | recall | "
          "best-threshold F1 |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['species']} | {r['seed']} | {r['scale']:g} | {r['f1']:.3f} | {r['precision']:.3f} | "
                  f"{r['recall']:.3f} | {r['best_f1']:.3f} |")
    md += ["", "| contrast scale | mean F1 (auto) | mean best-threshold F1 | runs |", "|---|---|---|---|"]
    for scale in sorted({r["scale"] for r in rows}):
        g = [r for r in rows if r["scale"] == scale]
        md.append(f"| {scale:g} | {np.mean([r['f1'] for r in g]):.3f} | {np.mean([r['best_f1'] for r in g]):.3f} | "
                  f"{len(g)} |")
    return "\n".join(md)


if __name__ == "__main__":
    main()
