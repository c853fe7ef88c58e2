"""How far the close-pick rule should reach, on the real sets: a pick closer than ``reach`` diameters to a better
one is ranked after every other (now two thirds of a diameter); farther reaches remove more of the duplicates
left at the default cut, and cost the default cut the particles that do lie that close to a neighbour.

    .venv/bin/python bench/close_reach.py [--sets ...] [--reach 0.667 0.72 0.76 0.8]

Models, as kept by the other benchmarks (nothing is trained here): the PU models of
``bench/default_threshold.py`` (15 labels, seeds 0–2, the training micrographs' expected count), finished with
the general model's score as ``bench/general_score.py`` finishes them, and every kept few-shot model of that
benchmark (seed 0 on every set; seeds 1 and 2 where they were run). Each model scores the test micrographs once;
each reach then picks them from the same score maps, every peak and at the model's default cut (the expected
count on the test micrographs, or the general model's where the model keeps that).

Reported for each: AUPRC (centre within D/2, every peak), best box F1 (boxes of D, IoU ≥ 0.5), box F1 at the
default cut and its ratio to the best, and the duplicates there (picks beyond the first within D/2 of one true
particle). Writes bench/results/close_reach.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from fewpick.io import read_micrograph, read_picks  # noqa: E402
from fewpick.pickers import fewshot, pu  # noqa: E402
from fewpick.pickers.fewshot import model as fewshot_model  # noqa: E402
from fewpick.pickers.pu import model as pu_model  # noqa: E402
from fewpick.pickers.pu.train import refit  # noqa: E402
from real2d import SETS_ALL, default_cut_scores, load_set  # noqa: E402

WORK = Path(__file__).resolve().parent / "work" / "default_threshold"
REACHES = (2 / 3, 0.72, 0.76, 0.8)


def models(rs):
    """(picker, seed, model) for every kept model of the set, finished as picking uses it now."""
    train = None
    for seed in (0, 1, 2):
        run = WORK / rs.name / f"pu_s{seed}"
        if (run / "pu.pt").is_file():
            with_reach(2 / 3)  # finished as picking finishes them now
            train = train or [read_micrograph(p) for p in rs.train]
            model = pu.load_model(run / "pu.pt", "cpu")
            model.settings = replace(model.settings, general_score=True)
            refit(model, train, read_picks(run / "labels.star"))
            yield "PU", seed, model
    for seed in (0, 1, 2):
        path = WORK / rs.name / f"fewshot_s{seed}" / "fewshot.pt"
        if path.is_file():
            yield "few-shot", seed, fewshot.load_model(path, "cpu")


def with_reach(reach: float):
    """Set the rule's reach in both pickers' modules (they read it when they pick)."""
    pu_model.CLOSE_PICKS = fewshot_model.CLOSE_PICKS = reach


def measure(rs, picker: str, seed: int, model, images, reaches) -> list[dict]:
    maps = {im.name: model.score_map(im) for im in images}
    model.score_map = lambda im, **_: maps[im.name]  # each reach picks from the same score maps
    rows = []
    for reach in reaches:
        with_reach(reach)
        every = model.pick_images(images, -1e9)
        default = model.pick_images(images)
        rows.append({"set": rs.name, "picker": picker, "seed": seed, "reach": reach,
                     **default_cut_scores(every, default, rs)})
        print(rows[-1], flush=True)
    return rows


def tables(rows: list[dict], reaches) -> str:
    df = pd.DataFrame(rows)
    md = ["| set | picker | seeds | reach (diameters) | AUPRC | best box F1 | box F1 at the default (÷ best) | "
          "duplicates |", "|---|---|---|---|---|---|---|---|"]
    for (name, picker), g in df.groupby(["set", "picker"], sort=False):
        for reach in reaches:
            r = g[np.isclose(g.reach, reach)]
            seeds = ", ".join(str(s) for s in r.seed)
            md.append(f"| {name} | {picker} | {seeds} | {reach:.2f} | {r.auprc.mean():.3f} | {r.best_box_f1.mean():.3f} "
                      f"| {r.default_box_f1.mean():.3f} ({r.ratio.mean():.2f}) | "
                      f"{100 * r.duplicate_rate.mean():.1f} % |")
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS_ALL))
    ap.add_argument("--reach", type=float, nargs="+", default=list(REACHES))
    a = ap.parse_args()
    rows = []
    for name in a.sets:
        rs = load_set(name)
        images = [read_micrograph(p) for p in rs.test]
        for picker, seed, model in models(rs):
            rows += measure(rs, picker, seed, model, images, a.reach)
    with_reach(2 / 3)
    md = ("A pick closer than the reach to a better one is ranked after every other pick (the default keeps none of "
          "them); 15 labels, means over the seeds listed; box F1 with boxes of D (IoU ≥ 0.5), AUPRC with a "
          "matching radius of D/2, duplicates: picks beyond the first within D/2 of one true particle, at the "
          "default cut. Now: two thirds of a diameter.\n\n" + tables(rows, a.reach))
    write_results("close_reach", {"rows": rows}, md)


if __name__ == "__main__":
    main()
