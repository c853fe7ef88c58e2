"""What ranking close picks last does on the simulated benchmark, model for model: the PU models of
``bench/pu_vs_topaz.py`` (mTOR among four other species, 10 and 100 labels, three draws) pick the test
micrographs with the rule (a pick closer than two thirds of a diameter to a better one scored down, after every
other pick) and without it (the picks as they were before the rule), from the same score maps.

    .venv/bin/python bench/pu_data.py && .venv/bin/python bench/pu_vs_topaz.py   # once: the data and models
    .venv/bin/python bench/close_picks.py

Reported for each: AUPRC (centre within D/2, every peak), box F1 (boxes of D, IoU ≥ 0.5) at the model's default
cut (the expected count on the test micrographs) beside the best-threshold box F1, and the duplicates at that
cut (picks beyond the first within D/2 of one true particle). Writes bench/results/close_picks.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from fewpick.evaluate import duplicates, evaluate  # noqa: E402
from fewpick.io import read_micrograph  # noqa: E402
from fewpick.pickers.pu import (
    load_model,  # noqa: E402
    model as pu_model,  # noqa: E402
)
from pu_data import DATA, expected_per_micrograph, target_truth  # noqa: E402

RUNS = Path(__file__).resolve().parent / "work" / "pu_vs_topaz"


def measure(model_path: Path, images, truth: pd.DataFrame, diameter: float, rule: bool) -> dict:
    reach = pu_model.CLOSE_PICKS
    pu_model.CLOSE_PICKS = reach if rule else 0.0  # 0: nothing ranked last, the picks as they were
    try:
        model = load_model(model_path, "cpu")
        every = model.pick_images(images, threshold=-1e9)
        default = model.pick_images(images, threshold="count")
    finally:
        pu_model.CLOSE_PICKS = reach
    box = evaluate(every, truth, box=diameter)["best"]["f1"]
    at = evaluate(default, truth, box=diameter)["all_picks"]
    return {"auprc": evaluate(every, truth, radius=diameter / 2)["auprc"], "best_box_f1": box,
            "default_box_f1": at["f1"], "default_picks": int(at["n_pred"]),
            "duplicate_rate": duplicates(default, truth, diameter / 2)["rate"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    truth = target_truth("test")
    diameter = float(truth.diameter_px.iloc[0])
    images = [read_micrograph(p) for p in sorted((DATA / "test").glob("*.mrc"))]
    rows = []
    for n in args.labels:
        for seed in args.seeds:
            path = RUNS / f"n{n}_s{seed}" / "fewpick.pt"
            if not path.is_file():
                raise SystemExit(f"{path} is missing: run bench/pu_vs_topaz.py first")
            for rule in (False, True):
                rows.append({"labels": n, "seed": seed, "rule": rule,
                             **measure(path, images, truth, diameter, rule)})
                print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    lines = ["| labels | close picks | AUPRC | box F1 at the default (picks) | best box F1 | duplicates at the default |",
             "|---|---|---|---|---|---|"]
    for (n, rule), g in df.groupby(["labels", "rule"]):
        lines.append(f"| {n} | {'ranked last' if rule else 'kept in place (before)'} | {g.auprc.mean():.3f} | "
                     f"{g.default_box_f1.mean():.3f} ({g.default_picks.mean():.0f}) | {g.best_box_f1.mean():.3f} | "
                     f"{100 * g.duplicate_rate.mean():.1f} % |")
    intro = (f"Simulated mTOR ({diameter:.0f} px) among four other species, {len(truth)} test particles in "
             f"{len(images)} micrographs; the PU models of bench/pu_vs_topaz.py, each picking with and without the "
             f"rule from the same score maps; default cut: {expected_per_micrograph()} picks per micrograph (the "
             f"expected count) on the test micrographs pooled. Means over seeds {args.seeds}.")
    write_results("close_picks", {"runs": rows}, intro + "\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
