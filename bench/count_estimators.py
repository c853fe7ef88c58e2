"""How close the general model's particle count comes without a count given, and two candidate counts beside it,
on the real sets and the simulated ones (nothing trained: the shipped general model, the labels of the benchmarks'
draws).

    .venv/bin/python bench/count_estimators.py [--seeds 0 1 2]

For each set and draw (15 labels, drawn as ``bench/real2d.py`` draws them), on the training micrographs as
``fewpick train`` counts them (:func:`fewpick.pickers.pu.general.estimate_particles`):

- ``estimate``: the automatic cut's median count over the micrographs, divided by the share of the labels it
  finds (at least a third);
- ``like``: the peaks scoring at least the labels' lowest tenth, over 0.9, divided by the share of the labels
  that have any peak within a radius;
- ``used``: what training takes now (``like`` with the share of the labels the automatic cut finds, where
  ``estimate`` is more than twice that), and ``min(estimate, like)``, the candidate.

Error: the natural logarithm of the count over the particles per training micrograph (on EMPIAR-10947, over
the fewest disks its curated masks hold, :func:`annotation_check.disk_count`: the annotated centres miss at
least one particle in six). Writes bench/results/count_estimators.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from annotation_check import disk_count  # noqa: E402
from fewpick.io import read_micrograph  # noqa: E402
from fewpick.pickers.pu import general as G  # noqa: E402
from fewpick.pickers.threshold import Auto, Count  # noqa: E402
from general_score import simulated_set, small_sets  # noqa: E402
from real2d import draw_labels, load_set  # noqa: E402


def peaks_of(model, image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The automatic cut's picks, every peak (original px, x y) and the peaks' scores, as estimate_particles reads them."""
    smap = model.score_map(image)
    auto = smap.to_original(model.peaks(smap, Auto())[0])[:, ::-1]
    coords, scores = model.peaks(smap, Count(score=-np.inf))
    return auto, smap.to_original(coords)[:, ::-1], scores


def counts(rs, seed: int, peaks: dict, truth: float) -> dict:
    """The three counts of one draw and their errors against ``truth`` particles per training micrograph."""
    labels = draw_labels(rs, "15", seed)
    found = total = peaked = 0
    autos, every, labelled = [], [], []
    for image in peaks:
        auto, xy, scores = peaks[image]
        autos.append(len(auto))
        every.append(scores)
        rows = labels[labels.micrograph == image]
        if not len(rows):
            continue
        clicks = rows[["x", "y"]].to_numpy(float)
        total += len(rows)
        found += int((cKDTree(auto).query(clicks)[0] <= rs.diameter / 2).sum()) if len(auto) else 0
        d, j = cKDTree(xy).query(clicks)
        near = d <= rs.diameter / 2
        labelled += scores[j[near]].tolist()
        peaked += int(near.sum())
    share = max(found / total, G.MIN_FOUND)
    estimate = float(np.median(autos)) / share
    level = np.quantile(labelled, G.LABEL_QUANTILE)
    above = float(np.median([np.sum(s >= level) for s in every])) / (1 - G.LABEL_QUANTILE)
    like, like_before = above / max(peaked / total, G.MIN_FOUND), above / share
    out = {"set": rs.name, "seed": seed, "particles": truth, "estimate": estimate, "like": like,
           "used": like_before if estimate > G.COUNT_RATIO * like_before else estimate, "min": min(estimate, like)}
    return {**out, **{f"error_{k}": float(np.log(out[k] / truth)) for k in ("estimate", "like", "used", "min")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    sets = ([load_set(n) for n in ("10059", "10947", "apoferritin_ab", "apoferritin_ba")]
            + [simulated_set(d) for d in (176, 60, 36)] + small_sets())
    rows = []
    for rs in sets:
        model = G.general_model(rs.diameter, None, "cpu", 2, None)
        peaks = {p.stem: peaks_of(model, read_micrograph(p)) for p in rs.train[: G.COUNT_SAMPLE]}
        truth = disk_count(rs)["train"]["fewest_disks"] if rs.name == "10947" else len(rs.train_truth) / len(rs.train)
        for seed in args.seeds:
            rows.append(counts(rs, seed, peaks, truth))
            print({k: round(v, 2) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
    write_results("count_estimators", {"rows": rows}, table(rows))


def table(rows: list[dict]) -> str:
    lines = ["Counts per training micrograph without a count given, 15 labels; error: ln(count / particles), mean of "
             "the draws per set; last rows: the mean and the largest absolute error over every draw.", "",
             "| set | particles | estimate | like | used now | min(estimate, like) |", "|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["set"] for r in rows):
        mine = [r for r in rows if r["set"] == name]
        cells = [f"{np.mean([r[k] for r in mine]):.0f} ({np.mean([r['error_' + k] for r in mine]):+.2f})"
                 for k in ("estimate", "like", "used", "min")]
        lines.append(f"| {name} | {mine[0]['particles']:.1f} | " + " | ".join(cells) + " |")
    for label, f in (("mean absolute error", np.mean), ("largest absolute error", np.max)):
        lines.append(f"| {label} | | " + " | ".join(f"{f([abs(r['error_' + k]) for r in rows]):.2f}"
                                                  for k in ("estimate", "like", "used", "min")) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
