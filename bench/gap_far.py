"""Where the gap between two clear groups of peak scores lies far from the count: ways of placing the default cut,
measured on the same models, the same score maps.

    .venv/bin/python bench/gap_far.py [--parts real simulated small]

The default cut of a model with a count (given, or counted by the general model) goes to the gap between two clear
groups of the pooled peak scores of the micrographs picked where that gap keeps within a factor 1.5 of the count
(``fewpick.pickers.threshold.SPLIT_RANGE``); elsewhere the count's own cut stands (or, for a model that counted the
particles itself, its calibrated cut). Each alternative below changes one thing:

- *the count's cut*: the count's own cut, never the gap;
- *gap anywhere*: the gap wherever it lies, where the scores fall into two clear groups;
- *range 2*: the gap within a factor 2 of the count instead of 1.5;
- *mixture's cut*: the gap placed where a two-Gaussian mixture's upper component takes over
  (``fewpick.ops.thresholds.threshold_gmm``) instead of the sparsest point between the groups;
- *upper edge*: the gap moved up from the sparsest point to where the scores are twice as dense (there at least
  half the peaks are particles, if the background thins out upwards);
- *calibrated*: the cut the model set on its training micrographs;
- *checked on training*: the gap wherever it lies, where the same split of the training micrographs' pooled peaks
  keeps within a factor 1.5 of the count (the count describes those micrographs); else the default.

Models: the 15-label PU networks started from the general model (``bench/general_score.py --init general``, with
and without ``--without-count``; seeds 0–2), finished as ``fewpick train`` finishes them by default, the general
model's score beside the network's where it serves and its count where clearly larger (:func:`fewpick.pickers.pu.
train.refit`); ``simulated``: the ribosome at 176, 60 and 36 px (``--simulated``); ``small``: the sparse sets of small
or faint particles (``--small``, seed 0, with the count only). Trained where missing, as that benchmark trains
them. Box F1 (boxes of D, IoU ≥ 0.5) at each cut over the best box F1 of every peak; the count, the picks per
micrograph the test micrographs' gap keeps and the training micrographs' gap keeps, each over the count.
Writes bench/results/gap_far.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fewpick.pickers.threshold as threshold_module  # noqa: E402
from _common import write_results  # noqa: E402
from fewpick.io import read_micrograph, read_picks  # noqa: E402
from fewpick.ops.thresholds import score_spacing, threshold_gmm, threshold_knn_density  # noqa: E402
from fewpick.pickers import pu  # noqa: E402
from fewpick.pickers.pu.train import refit  # noqa: E402
from fewpick.pickers.threshold import Calibrated, Count, Fixed, clear_gap, near_count  # noqa: E402
from general_score import network, simulated_set, small_sets  # noqa: E402
from real2d import default_cut_scores, load_set  # noqa: E402

CUTS = ("default", "the count's cut", "gap anywhere", "range 2", "mixture's cut", "upper edge", "calibrated",
        "checked on training")


def upper_edge(scores: np.ndarray, k: int = 5) -> float:
    """The sparsest point between two groups of scores (as :func:`threshold_knn_density` finds it), moved up to
    where the scores lie twice as densely."""
    s, spacing, i = score_spacing(scores, k)
    if i is None:
        return float(np.median(s)) if len(s) else 0.0
    j = i
    while j > 0 and spacing[j] > spacing[i] / 2:
        j -= 1
    return float(s[j])


def pooled_peaks(model, images) -> list[np.ndarray]:
    return [model.peaks(model.score_map(im), Count(score=-np.inf))[1] for im in images]


def with_patch(name: str, value, run):
    old = getattr(threshold_module, name)
    setattr(threshold_module, name, value)
    try:
        return run()
    finally:
        setattr(threshold_module, name, old)


def measure(rs, seed: int, with_count: bool) -> dict:
    model_file, labels = network(rs, seed, "15", with_count, "general")
    train = [read_micrograph(p) for p in rs.train]
    test = [read_micrograph(p) for p in rs.test]
    model = pu.load_model(model_file, "cpu")
    model.settings = replace(model.settings, general_score=True)  # finished as 'fewpick train' finishes it
    refit(model, train, read_picks(labels))
    count = model.expected_count() or model.estimated_count()
    on_train = clear_gap(pooled_peaks(model, train))
    maps = {im.name: model.score_map(im) for im in test}
    model.score_map = lambda im, **_: maps[im.name]  # every cut picks from the same score maps
    on_test = clear_gap(pooled_peaks(model, test))
    every = model.pick_images(test, -1e9)
    default = model.pick_images(test)
    trusted = on_train is not None and near_count(on_train[1], count)
    picks = {
        "default": default,
        "the count's cut": model.pick_images(test, Count(count)),
        "gap anywhere": model.pick_images(test, Fixed(on_test[0])) if on_test else default,
        "range 2": with_patch("SPLIT_RANGE", 2.0, lambda: model.pick_images(test)),
        "mixture's cut": with_patch("threshold_knn_density", threshold_gmm, lambda: model.pick_images(test)),
        "upper edge": with_patch("threshold_knn_density", upper_edge, lambda: model.pick_images(test)),
        "calibrated": model.pick_images(test, Calibrated()),
        "checked on training": model.pick_images(test, Fixed(on_test[0])) if on_test and trusted else default,
    }
    row = {"set": rs.name, "seed": seed, "count_given": with_count, "per_image": count,
           "present": len(rs.test_truth) / len(test), "test_gap_kept": on_test[1] if on_test else None,
           "train_gap_kept": on_train[1] if on_train else None}
    for name in CUTS:
        scored = default_cut_scores(every, picks[name], rs)
        row[name] = {"box_f1": scored["default_box_f1"], "ratio": scored["ratio"],
                     "per_micrograph": len(picks[name]) / len(test)}
    row["best_box_f1"] = scored["best_box_f1"]
    print({k: (round(v["ratio"], 3) if isinstance(v, dict) else v) for k, v in row.items()}, flush=True)
    assert threshold_module.threshold_knn_density is threshold_knn_density and threshold_module.SPLIT_RANGE == 1.5
    return row


def table(rows: list[dict]) -> str:
    df = pd.DataFrame(rows)
    md = ["| set | count | seeds | count per micrograph (present) | test gap ÷ count | training gap ÷ count | "
          + " | ".join(CUTS) + " |", "|" + "---|" * (6 + len(CUTS))]

    def ratios(values) -> str:
        return ", ".join("–" if v is None or pd.isna(v) else f"{v:.2f}" for v in values)

    for (name, given), g in df.groupby(["set", "count_given"], sort=False):
        md.append(f"| {name} | {'given' if given else 'counted'} | {', '.join(map(str, g.seed))} | "
                  f"{g.per_image.mean():.0f} ({g.present.mean():.1f}) | {ratios(g.test_gap_kept / g.per_image)} | "
                  f"{ratios(g.train_gap_kept / g.per_image)} | "
                  + " | ".join(f"{np.mean([r['ratio'] for r in g[c]]):.2f}" for c in CUTS) + " |")
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=["real", "simulated", "small"],
                    choices=["real", "simulated", "small"])
    a = ap.parse_args()
    runs = []
    if "real" in a.parts:
        runs += [(load_set(n), s, c) for n in ("10059", "10947", "apoferritin_ab", "apoferritin_ba")
                 for c in (True, False) for s in (0, 1, 2)]
    if "simulated" in a.parts:
        runs += [(simulated_set(d), s, c) for d in (176.0, 60.0, 36.0) for c in (True, False) for s in (0, 1, 2)]
    if "small" in a.parts:
        runs += [(rs, 0, True) for rs in small_sets()]
    rows = [measure(rs, seed, c) for rs, seed, c in runs]
    md = ("15-label PU models (started from the general model), box F1 at each cut ÷ the same model's best box F1 "
          "on the test micrographs, means over the seeds; count given: the training micrographs' mean, counted: "
          "the general model's count. The gaps: picks per micrograph kept by the gap between two clear groups of "
          "the pooled peak scores (– where the scores form one group), per seed, over the count. The cuts are "
          "described in the script's docstring; *default* is the one picking uses.\n\n" + table(rows))
    write_results("gap_far", {"rows": rows}, md)


if __name__ == "__main__":
    main()
