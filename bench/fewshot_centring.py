"""Ablation of the few-shot picker's picking steps on the real sets and the simulated benchmark (no training).

    .venv/bin/python bench/fewshot_centring.py [--real-run real2d_fewshot] [--sets 10059 10947 apoferritin_ab]
                                               [--sim-seeds 0 1 2]

Re-picks trained few-shot models four ways, each row adding one step to the one before:
1. the former picking: windows at stride size/8 (3 px of 24), each micrograph cut where its sorted peak scores are
   sparsest (``-t auto``);
2. + the default cut calibrated on the reference with the expected particle count (real sets only: the simulated
   benchmark trains without a count, so its cut stays the density-based one);
3. + centring: each peak moved to the best correlation with the exemplars' rotational average within half a
   diameter, scored by the mean of the two;
4. + stride size/6 (4 px), the default.

Real sets: the seed-0 models of ``bench/real2d.py`` (``--real-run``), scored as there (AUPRC and best F1 by centre
distance D/2; box F1, IoU ≥ 0.5, at the cut). Simulated: the models of ``bench/fewshot_vs_topaz.py``, scored as
there. Results in bench/results/fewshot_centring.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from fewpick.evaluate import evaluate  # noqa: E402
from fewpick.io import read_image  # noqa: E402
from fewpick.ops.thresholds import threshold_knn_density  # noqa: E402
from fewpick.pickers import fewshot as fs  # noqa: E402
from real2d import (
    WORK as REAL_WORK,  # noqa: E402
    load_set,  # noqa: E402
)

STEPS = [("former: stride 3 px, density cut", dict(stride=3, centre=0.0), "auto"),
         ("+ calibrated cut", dict(stride=3, centre=0.0), None),
         ("+ centring", dict(stride=3, centre=0.5), None),
         ("+ stride 4 px (default)", dict(stride=4, centre=0.5), None)]


def variant(path: Path, reference, change: dict, expected: float | None) -> fs.FewShotModel:
    m = fs.load_model(path, "cpu")
    for k, v in change.items():
        setattr(m.settings, k, v)
    if expected is not None:
        m.settings.expected_particles = expected
        m.threshold = fs.calibrate_threshold(m, [reference])
    return m


def score(model: fs.FewShotModel, images, truth, diameter: float, threshold) -> dict:
    t0 = time.time()
    every = fs.pick_images(model, images, threshold=-1e9)
    seconds = (time.time() - t0) / len(images)
    # the cut applied to every peak, as picking does it: a score, or each micrograph's density-based cut
    threshold = model.threshold if threshold is None else threshold
    if threshold is None or threshold == "auto":
        cuts = every.groupby("micrograph")["score"].transform(lambda v: threshold_knn_density(v.to_numpy(), k=5))
    else:
        cuts = float(threshold)
    cut = every[every["score"] >= cuts]
    centre = evaluate(every, truth, radius=diameter / 2)
    box = evaluate(cut, truth, box=diameter)["all_picks"]
    return {"auprc": centre["auprc"], "best_f1": centre["best"]["f1"] if centre["best"] else 0.0,
            "box_f1": box["f1"], "box_precision": box["precision"], "box_recall": box["recall"], "picks": box["n_pred"],
            "pick_s_per_micrograph": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real-run", default="real2d_fewshot")
    ap.add_argument("--sets", nargs="+", default=["10059", "10947", "apoferritin_ab"])
    ap.add_argument("--sim-seeds", type=int, nargs="*", default=[0, 1, 2])
    args = ap.parse_args()
    rows = []
    for name in args.sets:
        rs = load_set(name)
        path = REAL_WORK / args.real_run / name / "fewshot_15_s0" / "fewshot.pt"
        images, reference = [read_image(p) for p in rs.test], read_image(rs.reference)
        for label, change, thr in STEPS:
            m = variant(path, reference, change, None if thr == "auto" else rs.expected)
            rows.append({"data": name, "step": label, **score(m, images, rs.test_truth, rs.diameter, thr)})
            print(rows[-1], flush=True)
    if args.sim_seeds:
        from fewshot_vs_topaz import WORK as SIM_WORK
        from pu_data import DATA, target_truth

        images = [read_image(p) for p in sorted((DATA / "test").glob("*.mrc"))]
        truth = target_truth("test")
        for label, change, thr in STEPS:
            if thr is None and change["centre"] == 0:
                continue  # no expected count in that benchmark: the cut stays the density-based one
            per_seed = []
            for seed in args.sim_seeds:
                m = variant(SIM_WORK / "fewshot_vs_topaz" / f"s{seed}" / "fewshot.pt", None, change, None)
                per_seed.append(score(m, images, truth, m.settings.diameter, "auto"))
            mean = {k: float(np.mean([r[k] for r in per_seed])) for k in per_seed[0]}
            sd = {f"{k}_sd": float(np.std([r[k] for r in per_seed], ddof=1)) for k in ("auprc", "box_f1")}
            rows.append({"data": f"simulated (seeds {' '.join(map(str, args.sim_seeds))})", "step": label, **mean, **sd})
            print(rows[-1], flush=True)
    md = ["Few-shot picker, 15 exemplars, the models trained once and picked again four ways (each row adds one step "
          "to the one above). Real sets: seed-0 models, AUPRC / best F1 by centre distance D/2, box F1 (IoU ≥ 0.5) at "
          "the cut; simulated: mTOR among four other species, mean over the seeds, box F1 at the density-based cut "
          "(trained without an expected count). Seconds per micrograph of picking on 2 cores (other jobs may have "
          "shared them).", "",
          "| data | picking | AUPRC | best F1 | box F1 at the cut | box P / R | picks | pick s / micrograph |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sd = f" ± {r['box_f1_sd']:.3f}" if "box_f1_sd" in r else ""
        md.append(f"| {r['data']} | {r['step']} | {r['auprc']:.3f} | {r['best_f1']:.3f} | {r['box_f1']:.3f}{sd} | "
                  f"{r['box_precision']:.3f} / {r['box_recall']:.3f} | {r['picks']:.0f} | {r['pick_s_per_micrograph']:.2f} |")
    write_results("fewshot_centring", {"runs": rows}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
