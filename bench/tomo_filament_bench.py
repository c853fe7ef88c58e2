"""Filament benchmark of the tomogram localization (issue 7, benchmark 3).

    .venv/bin/python bench/tomo_filament_bench.py [--seeds 0 1 2] [--every 8] [--rescore | --keep]

On the simulated tomograms of bench/tomo_bench.py (realistic preset: 1–3 microtubules each), a filament
model is trained from every ``--every``-th centre-line point of the microtubules in the four training tomograms
(``fewpick tomo train --filament``), and ``fewpick tomo pick`` traces the two held-out tomograms. Scores:
the fraction of the true centre line (points every 2 nm) within 2 voxels of an output point, and the output
points with no true centre-line point within 2 voxels, per 100 nm of true filament.

Writes bench/results/tomo_filaments.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mib_of, write_results  # noqa: E402
from tomo_bench import FEWPICK, TEST_SEEDS, TRAIN_SEEDS, WORK, simulate, truth_of  # noqa: E402

TOL = 2.0  # voxels


def line_length_nm(truth: pd.DataFrame, voxel_nm: float = 1.0) -> float:
    """Length of the true centre lines (sum over tubes of the distance between consecutive points)."""
    total = 0.0
    for _, g in truth.groupby(["micrograph", "rlnHelicalTubeID"]):
        p = g[["x", "y", "z"]].to_numpy(float)
        total += float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())
    return total * voxel_nm


def scores(picks: pd.DataFrame, truth: pd.DataFrame) -> dict:
    covered, false, n_out = 0, 0, 0
    for name, t in truth.groupby("micrograph"):
        tp = t[["x", "y", "z"]].to_numpy(float)
        pp = picks[picks["micrograph"].astype(str) == str(name)][["x", "y", "z"]].to_numpy(float)
        n_out += len(pp)
        if len(pp):
            covered += int((cKDTree(pp).query(tp)[0] <= TOL).sum())
            false += int((cKDTree(tp).query(pp)[0] > TOL).sum())
    per_tube = {}
    for (name, tube), t in truth.groupby(["micrograph", "rlnHelicalTubeID"]):
        pp = picks[picks["micrograph"].astype(str) == str(name)][["x", "y", "z"]].to_numpy(float)
        tp = t[["x", "y", "z"]].to_numpy(float)
        d = tp[-1] - tp[0]
        key = f"{name}/{int(tube)} ({np.degrees(np.arctan2(abs(d[1]), abs(d[0]))):.0f}° from x)"
        per_tube[key] = float((cKDTree(pp).query(tp)[0] <= TOL).mean()) if len(pp) else 0.0
    length_nm = line_length_nm(truth)  # 10 Å voxels: 1 voxel = 1 nm
    return {"coverage": covered / max(1, len(truth)), "coverage_per_tube": per_tube,
            "false_per_100nm": 100 * false / max(length_nm, 1e-9),
            "output_points": n_out, "true_length_nm": length_nm,
            "tubes_out": int(picks.groupby(["micrograph", "rlnHelicalTubeID"]).ngroups) if len(picks) else 0,
            "tubes_true": int(truth.groupby(["micrograph", "rlnHelicalTubeID"]).ngroups)}


def main() -> None:
    from fewpick.io import read_picks, write_picks

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--every", type=int, default=8, help="label every n-th true centre-line point (every 16 nm)")
    ap.add_argument("--rescore", action="store_true", help="score the picks of the last run again (no training)")
    ap.add_argument("--keep", action="store_true", help="reuse the models of the last run (its training time and "
                    "memory) and pick again: for a change that touches picking only")
    a = ap.parse_args()
    for s in TRAIN_SEEDS + TEST_SEEDS:
        simulate(s)
    train_truth = truth_of("microtubule", TRAIN_SEEDS)
    test_truth = truth_of("microtubule", TEST_SEEDS)
    rows = []
    if a.rescore:
        from _common import RESULTS

        for r in json.loads((RESULTS / "tomo_filaments.json").read_text())["rows"]:
            rows.append({**r, **scores(read_picks(WORK / f"picks_mt_{r['seed']}.star"), test_truth)})
        a.seeds = []
    for seed in a.seeds:
        labels = train_truth.iloc[seed % a.every :: a.every]
        lab_path = WORK / f"labels_mt_{seed}.star"
        write_picks(labels[["micrograph", "x", "y", "z"]], lab_path)
        model = WORK / f"model_mt_{seed}.pt"
        tomos = [str(WORK / "data" / f"tomo_{s}.mrc") for s in TRAIN_SEEDS]
        meta = model.with_suffix(".json")
        if a.keep and model.exists() and meta.exists():
            train_s, train_mib = json.loads(meta.read_text())[:2]
        else:
            train_s, train_mib, _ = peak_rss_mib_of([FEWPICK, "tomo", "train", *tomos, "--labels", str(lab_path),
                                                     "--particle-diameter", "25", "--filament", "--out", str(model),
                                                     "--seed", str(seed)])
            meta.write_text(json.dumps([train_s, train_mib]))
        out = WORK / f"picks_mt_{seed}.star"
        tests = [str(WORK / "data" / f"tomo_{s}.mrc") for s in TEST_SEEDS]
        pick_s, pick_mib, _ = peak_rss_mib_of([FEWPICK, "tomo", "pick", *tests, "--model", str(model),
                                               "--out", str(out)])
        res = scores(read_picks(out), test_truth)
        rows.append({"seed": seed, "labels": len(labels), **res, "train_s": train_s, "train_peak_mib": train_mib,
                     "pick_s_per_tomogram": pick_s / len(tests), "pick_peak_mib": pick_mib})
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    md = ["## Filaments (microtubules): two held-out 512×512×200 tomograms", "",
          f"Labels: every {a.every}th true centre-line point (2 nm apart) of the microtubules in the four training "
          "tomograms. Coverage: true centre-line points within 2 voxels of an output point. False: output points "
          "with no true centre-line point within 2 voxels, per 100 nm of true filament.", "",
          "| seed | labels | coverage | false / 100 nm | filaments out / true | train s | pick s / tomogram |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['seed']} | {r['labels']} | {r['coverage']:.3f} | {r['false_per_100nm']:.1f} | "
                  f"{r['tubes_out']} / {r['tubes_true']} | {r['train_s']:.0f} | {r['pick_s_per_tomogram']:.1f} |")
    md.append(f"| mean | | {df.coverage.mean():.3f} ± {df.coverage.std(ddof=0):.3f} | "
              f"{df.false_per_100nm.mean():.1f} | | {df.train_s.mean():.0f} | {df.pick_s_per_tomogram.mean():.1f} |")
    md += ["", "Coverage of each true filament (its direction in the xy plane; the tilt axis is y), per seed:", "",
           "| filament | " + " | ".join(f"seed {r['seed']}" for r in rows) + " |", "|---|" + "---|" * len(rows)]
    for key in rows[0]["coverage_per_tube"]:
        md.append(f"| {key} | " + " | ".join(f"{r['coverage_per_tube'][key]:.2f}" for r in rows) + " |")
    write_results("tomo_filaments", {"rows": rows, "every": a.every}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
