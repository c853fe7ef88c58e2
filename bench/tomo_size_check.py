"""A size check on tomogram picks, measured offline on the localization benchmark's kept models (not part of the
picker: the measurement behind that decision).

    .venv/bin/python bench/tomo_bench.py --seeds 0 1 2 3 4 5                        # models (bench/work/tomo)
    .venv/bin/python bench/tomo_bench.py --species mtor --labels 50 --seeds 0 1 2 3 4 5 --results tomo_mtor
    .venv/bin/python bench/tomo_size_check.py [--runs ribosome:10 cct:10 ...] [--seeds 0 1 2 3 4 5]

The check: the local energy of detail at the particle's radius (:func:`fewpick.ops.filters.energy_response`, the
exploration's candidate score, on the tomogram as the network sees it: binned, smoothed, standardised) grows with
the mass in a blob of that size. Two levels: **label**, half the faintest label's energy in the training
tomograms (from the benchmark's label files); **relative**, half the median energy of this tomogram's confident picks (the
peaks at or above its automatic cut; no check where there are fewer than 5), which follows the energy's scale
from one tomogram to the next and needs nothing from training. Each level used two ways, on the same heat maps
and peaks (NMS at 0.05, the peaks the automatic cut sees): **veto**, the automatic cut of the scores as they are
and the peaks under the level dropped; **low**, the peaks under the level put at the lowest score the automatic
cut reads (0.05, among the background) and the cut fitted again. (A third way, each peak's probability scaled by
its energy's share of the label level and the cut fitted again, was measured by an earlier version of this
script: docs/benchmarks.md.)

For each run (species:labels) and seed: F1 at the automatic cut without the check and with each way, precision,
recall, best-threshold F1 and the species of the picks kept.

Writes bench/results/tomo_size_check.{json,md}.
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
from tomo_profile_check import species_of  # noqa: E402

RUNS = ("ribosome:10", "ribosome:50", "ribosome:200", "cct:10", "cct:50", "cct:200", "mtor:50")
WAYS = ("off", "veto", "low", "rel_veto", "rel_low")
MARGIN = 0.5  # the level: this share of the faintest label's energy, or of the confident picks' median
CONFIDENT = 5  # the relative level needs at least this many confident picks


def prepared(model, volume) -> np.ndarray:
    """``volume`` (an array) as the model's network sees it: binned, smoothed, standardised."""
    from fewpick.pickers.tomo.data import prepare

    return prepare(np.asarray(volume), model.settings.bin)


def energy_at(model, volume: np.ndarray, zyx: np.ndarray) -> np.ndarray:
    """The energy of detail at the particle's radius at the nearest voxel of each binned ``(z, y, x)``."""
    from fewpick.ops.filters import energy_response

    energy = energy_response(volume, model.settings.geometry().radius(minimum=1.0))
    idx = np.clip(np.round(zyx).astype(int), 0, np.array(energy.shape) - 1)
    return energy[tuple(idx.T)]


def level_of(model, labels: pd.DataFrame) -> float:
    """:data:`MARGIN` × the lowest energy at a label in its training tomogram."""
    from fewpick.io import read_volume

    geo = model.settings.geometry()
    lowest = min(float(energy_at(model, prepared(model, read_volume(WORK / "data" / f"{m}.mrc").data),
                                 geo.to_working(g[["z", "y", "x"]].to_numpy(float))).min())
                 for m, g in labels.groupby("micrograph"))
    return MARGIN * lowest


def picks_by_way(model, tests: list, level: float) -> dict:
    """For each way, the picks at its automatic cut and (``<way>_every``) every peak it ranks, from one heat map
    per tomogram."""
    from fewpick.ops.peaks import nms
    from fewpick.ops.thresholds import auto_threshold
    from fewpick.pickers.base import picks_table

    out: dict = {}
    r = model.settings.geometry().radius(minimum=1.0)
    for im in tests:
        smap = model.score_map(im)
        zyx, s = nms(smap.scores, r, 0.05, footprint="box")
        energy = energy_at(model, prepared(model, im.data), zyx)
        cut = auto_threshold(s)
        confident = s >= cut
        relative = MARGIN * np.median(energy[confident]) if confident.sum() >= CONFIDENT else -np.inf
        xyz = smap.to_original(zyx)
        ways = {"off": (s, confident, np.ones(len(s), bool))}
        for name, lv in (("", level), ("rel_", relative)):
            passes = energy >= lv
            low = np.where(passes, s, 0.05)
            ways[name + "veto"] = (s, confident & passes, passes)
            ways[name + "low"] = (low, (low >= auto_threshold(low)) & passes, np.ones(len(s), bool))
        for way, (score, keep, ranked) in ways.items():
            out.setdefault(way, []).append(picks_table(im.name, xyz[keep], score[keep]))
            out.setdefault(way + "_every", []).append(picks_table(im.name, xyz[ranked], score[ranked]))
    return {k: pd.concat(v, ignore_index=True) for k, v in out.items()}


def measure(picks: dict, way: str, truth: pd.DataFrame, every: pd.DataFrame, radius: float) -> dict:
    from fewpick.evaluate import evaluate

    kept = picks[way]
    a = evaluate(kept, truth, radius=radius)["all_picks"]
    best = evaluate(picks[way + "_every"], truth, radius=radius)["best"] or {}
    kinds = pd.Series(species_of(kept, every, radius)).value_counts()
    return {"f1": a["f1"], "precision": a["precision"], "recall": a["recall"], "best_f1": best.get("f1", 0.0),
            "kept": {str(k): int(v) for k, v in kinds.items()}}


def main() -> None:
    import torch

    from fewpick.io import read_picks, read_volume
    from fewpick.pickers.tomo import load_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", default=list(RUNS), help="species:labels")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    a = ap.parse_args()
    torch.set_num_threads(2)
    every = every_truth(TEST_SEEDS)
    tests = [read_volume(WORK / "data" / f"tomo_{s}.mrc") for s in TEST_SEEDS]
    rows = []
    for sp, n, seed, (model_file, labels_file), truth, radius in kept_runs(a.runs, a.seeds):
        model = load_model(model_file, "cpu")
        level = level_of(model, read_picks(labels_file))
        picks = picks_by_way(model, tests, level)
        row = {"species": sp, "labels": n, "seed": seed, "level": level,
               **{way: measure(picks, way, truth, every, radius) for way in WAYS}}
        rows.append(row)
        print(f"{sp}_{n}_{seed}: F1 " + ", ".join(f"{w} {row[w]['f1']:.3f}" for w in WAYS) + "; best "
              + ", ".join(f"{row[w]['best_f1']:.3f}" for w in WAYS), flush=True)
    report(rows)


def report(rows: list) -> None:
    def kept(d: dict) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))

    def ways(r: dict, key: str) -> str:
        return " / ".join(f"{r[w][key]:.3f}" for w in WAYS)

    md = ["## F1 at the automatic cut on the two held-out tomograms (same heat maps)", "",
          "Each cell: no check / label veto / label low / relative veto / relative low. Level: the label level.", "",
          "| species | labels | seed | level | F1 | precision | recall | best-threshold F1 | picks kept, no check | "
          "picks kept, relative veto |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['species']} | {r['labels']} | {r['seed']} | {r['level']:.3f} | {ways(r, 'f1')} | "
                  f"{ways(r, 'precision')} | {ways(r, 'recall')} | {ways(r, 'best_f1')} | {kept(r['off']['kept'])} | "
                  f"{kept(r['rel_veto']['kept'])} |")
    md += ["", "| species | labels | seeds | F1 no check / label veto / label low / relative veto / relative low (mean) | precision | recall | best-threshold F1 |",
           "|---|---|---|---|---|---|---|"]
    for sp, n in dict.fromkeys((r["species"], r["labels"]) for r in rows):
        sel = [r for r in rows if (r["species"], r["labels"]) == (sp, n)]
        mean = {w: {k: float(np.mean([r[w][k] for r in sel])) for k in ("f1", "precision", "recall", "best_f1")}
                for w in WAYS}
        md.append(f"| {sp} | {n} | {len(sel)} | {ways(mean, 'f1')} | {ways(mean, 'precision')} | "
                  f"{ways(mean, 'recall')} | {ways(mean, 'best_f1')} |")
    write_results("tomo_size_check", {"rows": rows}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
