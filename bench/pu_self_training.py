"""Self-training the PU picker on its own confident picks, on the real sets: does a second training, on the 15
labels and the first model's picks above its default cut on the training micrographs, rank better?

    .venv/bin/python bench/pu_self_training.py [--sets ...] [--seeds 0 1 2]

First models: ``fewpick train`` with 15 labels (the draws of ``bench/default_threshold.py``) and the expected
count, as a user runs it. Each picks the training micrographs at its default cut; those picks (``--share F``: the best fraction F of each
micrograph's, by score; less any within D/2 of a label) join the labels, and ``fewpick train`` runs again with the same options and seed. Both models pick the test micrographs
(every peak, and at the default cut). Reported: AUPRC (centre within D/2), best box F1 (boxes of D, IoU ≥ 0.5),
box F1 at the default cut and the duplicates there, and the second training's labels. Writes
bench/results/pu_self_training.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from default_threshold import fewpick  # noqa: E402
from fewpick.io import read_picks, write_picks  # noqa: E402
from real2d import SETS_ALL, default_cut_scores, draw_labels, load_set  # noqa: E402

WORK = Path(__file__).resolve().parent / "work" / "pu_self_training"


def scores(rs, run: Path, model: Path, tag: str) -> dict:
    every, default = run / f"test_all{tag}.star", run / f"test_default{tag}.star"
    if not every.is_file():
        fewpick("pick", *rs.test, "--model", model, "-t", "-1e9", "--out", every)
    if not default.is_file():
        fewpick("pick", *rs.test, "--model", model, "--out", default)
    return default_cut_scores(read_picks(every), read_picks(default), rs)


def measure(rs, seed: int, share: float = 1.0) -> dict:
    run = WORK / rs.name / f"s{seed}"
    run.mkdir(parents=True, exist_ok=True)
    tag = "" if share >= 1 else f"_{share:g}"
    first, second = run / "pu.pt", run / f"pu_selftrained{tag}.pt"
    if not first.is_file():
        write_picks(draw_labels(rs, "15", seed), run / "labels.star")
        fewpick("train", *rs.train, "--labels", run / "labels.star", "-d", f"{rs.diameter:g}", "-n", rs.expected,
                "--seed", seed, "--out", first)
    labels = read_picks(run / "labels.star")
    if not second.is_file():
        picked = run / "train_default.star"
        fewpick("pick", *rs.train, "--model", first, "--out", picked)
        picks = read_picks(picked)
        keep = []
        for name, g in picks.groupby(picks["micrograph"].astype(str)):
            lab = labels[labels["micrograph"].astype(str) == name][["x", "y"]].to_numpy(float)
            xy = g[["x", "y"]].to_numpy(float)
            far = cKDTree(lab).query(xy)[0] > rs.diameter / 2 if len(lab) else np.ones(len(g), bool)
            best = g["score"].rank(ascending=False, method="first").to_numpy() <= np.ceil(share * len(g))
            keep.append(g[far & best])
        joined = pd.concat([labels, *[k[["micrograph", "x", "y"]] for k in keep]], ignore_index=True)
        write_picks(joined[["micrograph", "x", "y"]], run / f"labels_selftrained{tag}.star")
        fewpick("train", *rs.train, "--labels", run / f"labels_selftrained{tag}.star", "-d", f"{rs.diameter:g}",
                "-n", rs.expected, "--seed", seed, "--out", second)
    n2 = len(read_picks(run / f"labels_selftrained{tag}.star"))
    row = {"set": rs.name, "seed": seed, "share": share, "labels": len(labels), "labels_second": n2,
           "first": scores(rs, run, first, ""), "second": scores(rs, run, second, f"_selftrained{tag}")}
    print(row, flush=True)
    return row


def table(rows: list[dict]) -> str:
    md = ["| set | seed | share of the picks | labels (second training) | AUPRC first → second | best box F1 | box F1 at the default "
          "(÷ best) | duplicates |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a, b = r["first"], r["second"]
        md.append(f"| {r['set']} | {r['seed']} | {r.get('share', 1.0):g} | {r['labels']} ({r['labels_second']}) | {a['auprc']:.3f} → "
                  f"{b['auprc']:.3f} | {a['best_box_f1']:.3f} → {b['best_box_f1']:.3f} | {a['default_box_f1']:.3f} "
                  f"({a['ratio']:.2f}) → {b['default_box_f1']:.3f} ({b['ratio']:.2f}) | "
                  f"{100 * a['duplicate_rate']:.1f} → {100 * b['duplicate_rate']:.1f} % |")
    df = pd.DataFrame([{"set": r["set"], "share": r.get("share", 1.0), **{f"{k}_{m}": r[k][m] for k in ("first", "second")
                                             for m in ("auprc", "best_box_f1", "default_box_f1")}} for r in rows])
    md += ["", "Means over the seeds:", "", "| set | share | AUPRC first → second | best box F1 | box F1 at the default |",
           "|---|---|---|---|---|"]
    for (name, share), g in df.groupby(["set", "share"], sort=False):
        md.append(f"| {name} | {share:g} | {g.first_auprc.mean():.3f} → {g.second_auprc.mean():.3f} | "
                  f"{g.first_best_box_f1.mean():.3f} → {g.second_best_box_f1.mean():.3f} | "
                  f"{g.first_default_box_f1.mean():.3f} → {g.second_default_box_f1.mean():.3f} |")
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS_ALL))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--share", type=float, nargs="+", default=[1.0],
                    help="fractions of each micrograph's default picks (the best) that join the labels")
    a = ap.parse_args()
    rows = [measure(load_set(name), seed, share) for share in a.share for seed in a.seeds for name in a.sets]
    write_results("pu_self_training", {"rows": rows}, table(rows))


if __name__ == "__main__":
    main()
