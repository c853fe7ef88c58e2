"""A radial-profile check on tomogram picks, measured offline on the localization benchmark's kept models (not
part of the picker: the measurement behind that decision).

    .venv/bin/python bench/tomo_bench.py --species mtor --labels 50 --results tomo_mtor --keep   # models, picks
    .venv/bin/python bench/tomo_profile_check.py [--runs mtor:50 ribosome:10 cct:10] [--seeds 0 1 2]

The check: every label's radial density profile (the mean density in shells about its centre of mass, out to
one diameter, on the tomogram as the network sees it: binned, smoothed, standardised) gives a mean and a spread
per shell; a peak whose profile lies further from that mean (root-mean-square of the per-shell z-scores) than
the least typical label lies from the others is not taken as the particle. The cut stays each tomogram's
automatic threshold: Otsu's split of all its peaks, then the lookalike band's cut fitted to the peaks above the
split that pass the check.

For each run and seed, from the kept ``model_*.pt``, ``labels_*.star`` and ``picks_*_every.star`` (every peak on
the two held-out tomograms) in bench/work/tomo: F1 at the automatic cut without and with the check, the species
of the picks kept, and the best-threshold F1. Then, for each run's seed-0 labels, the share of every species'
true particles that passes the check on the tomograms of ``bench/explore_robust.py``'s conditions grid at 10 Å
(other defocus, dose, ice, alignment, crowding; made by that benchmark): what the check would cost on tomograms
unlike the labelled ones.

Writes bench/results/tomo_profile_check.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from tomo_bench import TEST_SEEDS, WORK, every_truth, kept_runs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "bench" / "work" / "explore_robust" / "data"
GRID_10A = ("default", "aligned", "misaligned", "crowded", "sparse", "defocus2um", "defocus6um", "dose60", "thin_ice",
            "thick_ice", "membrane", "no_membrane", "tilt40", "tilt60step3")
SPECIES = ("ribosome", "cct", "mtor", "ruvab")


class ProfileCheck:
    """The labels' radial profiles on their prepared tomograms, and the distance of any other profile from them."""

    def __init__(self, model, labels: pd.DataFrame):
        from fewpick.io import read_volume
        from fewpick.pickers.tomo.data import prepare

        self.settings = model.settings
        self.geo = self.settings.geometry()
        self.volumes: dict[str, np.ndarray] = {}
        self._prepare = lambda path: prepare(np.asarray(read_volume(path).data), self.settings.bin)
        rows = [self.profiles(WORK / "data" / f"{m}.mrc", g) for m, g in labels.groupby("micrograph")]
        lab = np.concatenate(rows)
        self.mean, self.sd = lab.mean(0), lab.std(0) + 1e-6
        loo = [self._distance(lab[i : i + 1], np.delete(lab, i, 0).mean(0), np.delete(lab, i, 0).std(0) + 1e-6)[0]
               for i in range(len(lab))]
        self.limit = float(max(loo))

    def profiles(self, path: Path, table: pd.DataFrame) -> np.ndarray:
        from fewpick.pickers.tomo.selftrain import centred, radial_profiles

        key = str(path)
        if key not in self.volumes:
            self.volumes = {key: self._prepare(path)}  # one tomogram at a time: 200 MB each
        v = self.volumes[key]
        r = self.geo.radius()
        c = self.geo.to_working(table[["z", "y", "x"]].to_numpy(float))
        return radial_profiles(v, centred(v, c, r), 2 * r)

    @staticmethod
    def _distance(p: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
        return np.sqrt((((p - mean) / sd) ** 2).mean(1))

    def distance(self, path: Path, table: pd.DataFrame) -> np.ndarray:
        return self._distance(self.profiles(path, table), self.mean, self.sd)


def species_of(picks: pd.DataFrame, truth: pd.DataFrame, radius: float) -> np.ndarray:
    from scipy.spatial import cKDTree

    out = np.full(len(picks), "background", object)
    for m, g in picks.groupby("micrograph"):
        t = truth[truth["micrograph"] == m]
        d, i = cKDTree(t[["x", "y", "z"]].to_numpy(float)).query(g[["x", "y", "z"]].to_numpy(float))
        out[picks.index.get_indexer(g.index)] = np.where(d <= radius, t["species"].to_numpy()[i], "background")
    return out


def cuts(peaks: pd.DataFrame, passes: np.ndarray | None) -> np.ndarray:
    """Which peaks each tomogram's automatic cut keeps; with ``passes``, the lookalike band fitted to the peaks
    that pass the check and only those kept."""
    from fewpick.ops.thresholds import auto_threshold, otsu_split, upper_band_cut

    keep = np.zeros(len(peaks), bool)
    for _, g in peaks.groupby("micrograph"):
        i = peaks.index.get_indexer(g.index)
        s = g["score"].to_numpy(float)
        if passes is None:
            keep[i] = s >= auto_threshold(s)
            continue
        ok = passes[i]
        valid = (s >= 0.05) & (s <= 1)
        t1 = otsu_split(s[valid]) if valid.sum() >= 10 else 0.5
        band = upper_band_cut(s[valid & ok & (s >= t1)])
        keep[i] = ok & (s >= (t1 if band is None else max(t1, band)))
    return keep


def scored(picks: pd.DataFrame, truth: pd.DataFrame, radius: float) -> dict:
    from fewpick.evaluate import evaluate

    a = evaluate(picks, truth, radius=radius)["all_picks"]
    return {"f1": a["f1"], "precision": a["precision"], "recall": a["recall"]}


def main() -> None:
    import torch

    from fewpick.evaluate import evaluate
    from fewpick.io import read_picks
    from fewpick.pickers.tomo import load_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", default=["mtor:50", "ribosome:10", "cct:10"], help="species:labels")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a = ap.parse_args()
    torch.set_num_threads(2)
    every = every_truth(TEST_SEEDS)
    rows, grid = [], []
    names = ("model_{tag}.pt", "labels_{tag}.star", "picks_{tag}_every.star")  # every peak, as tomo_bench keeps it
    for sp, n, seed, files, test_truth, radius in kept_runs(a.runs, a.seeds, names):
        tag = f"{sp}_{n}_{seed}"
        check = ProfileCheck(load_model(files[0], "cpu"), read_picks(files[1]))
        peaks = read_picks(files[2]).reset_index(drop=True)
        dist = np.zeros(len(peaks))
        for m, g in peaks.groupby("micrograph"):
            dist[peaks.index.get_indexer(g.index)] = check.distance(WORK / "data" / f"{m}.mrc", g)
        passes = dist <= check.limit
        kinds = species_of(peaks, every, radius)
        row = {"species": sp, "labels": n, "seed": seed, "limit": check.limit}
        for name, keep in (("auto", cuts(peaks, None)), ("checked", cuts(peaks, passes))):
            row[name] = {**scored(peaks[keep], test_truth, radius),
                         "kept": {k: int(v) for k, v in pd.Series(kinds[keep]).value_counts().items()}}
        row["best_f1"] = (evaluate(peaks, test_truth, radius=radius)["best"] or {}).get("f1", 0.0)
        row["best_f1_checked"] = (evaluate(peaks[passes], test_truth, radius=radius)["best"] or {}).get("f1", 0.0)
        rows.append(row)
        print(f"{tag}: F1 {row['auto']['f1']:.3f} -> {row['checked']['f1']:.3f} (limit {check.limit:.2f})", flush=True)
        if seed == a.seeds[0] and GRID.exists():
            for cond in GRID_10A:
                path = GRID / f"{cond}_21.mrc"
                if not path.exists():
                    continue
                truth = read_picks(GRID / f"{cond}_21_truth.csv")
                share = {}
                for other in SPECIES:
                    t = truth[truth["species"] == other]
                    if len(t):
                        share[other] = float(np.mean(check.distance(path, t) <= check.limit))
                grid.append({"species": sp, "labels": n, "seed": seed, "condition": cond, "passes": share})
    report(rows, grid)


def report(rows: list, grid: list) -> None:
    def kept(d: dict) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))

    md = ["## F1 at the automatic cut on the two held-out tomograms, without and with the profile check", "",
          "| species | labels | seed | limit | F1 auto → checked | P auto → checked | R auto → checked | "
          "best F1 → with the check | picks kept, auto | picks kept, checked |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        x, y = r["auto"], r["checked"]
        md.append(f"| {r['species']} | {r['labels']} | {r['seed']} | {r['limit']:.2f} | {x['f1']:.3f} → **{y['f1']:.3f}** | "
                  f"{x['precision']:.2f} → {y['precision']:.2f} | {x['recall']:.2f} → {y['recall']:.2f} | "
                  f"{r['best_f1']:.3f} → {r['best_f1_checked']:.3f} | {kept(x['kept'])} | {kept(y['kept'])} |")
    for sp, n in dict.fromkeys((r["species"], r["labels"]) for r in rows):
        sel = [r for r in rows if (r["species"], r["labels"]) == (sp, n)]
        md.append(f"| {sp} | {n} | mean | | {np.mean([r['auto']['f1'] for r in sel]):.3f} → "
                  f"**{np.mean([r['checked']['f1'] for r in sel]):.3f}** | | | | | |")
    if grid:
        md += ["", "## Share of each species' true particles that passes the check on the conditions grid "
               "(labels of seed 0, tomograms of bench/explore_robust.py at 10 Å)", "",
               "| labels of | condition | " + " | ".join(SPECIES) + " |", "|---|---|" + "---|" * len(SPECIES)]
        for g in grid:
            md.append(f"| {g['species']}, {g['labels']} | {g['condition']} | "
                      + " | ".join(f"{g['passes'][s]:.2f}" if s in g["passes"] else "–" for s in SPECIES) + " |")
    write_results("tomo_profile_check", {"rows": rows, "grid": grid}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
