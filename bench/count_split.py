"""The expected count as a quota or as a guide, on the same models: the default cut keeps the count per
micrograph (pooled over the micrographs picked), or, where their peak scores fall into two clear groups, goes to
the gap between them when that keeps within a factor 1.5 of the count (``fewpick.pickers.threshold.cut_for_count``,
the default now).

    .venv/bin/python bench/count_split.py [--sets ...] [--simulated 176 60] [--pickers ...] [--seeds ...] [--refit]
        [--kept] [--out NAME]

Models, as kept by the other benchmarks (trained here only where missing): the 15-label PU models of
``bench/default_threshold.py`` (seeds 0–2, the training micrographs' expected count), finished with the general
model's score as ``bench/general_score.py`` finishes them; that benchmark's few-shot models, with the count given
and without it (``fewshot_sN``, ``fewshot_sN_nocount``), where kept; and ``bench/general_score.py
--simulated``'s PU models of the simulated ribosome at each diameter given, and few-shot models of those sets
trained as that benchmark trains them on a real set (15 exemplars on the reference, the training micrographs for
pre-training; with and without the count; bench/work/general_score/simD/fewshot_sN[_nocount]). Each model
scores the test micrographs once; both cuts pick from the same score maps.

Reported for each: the count, Ashman's D of the pooled peak scores (two groups above 2), the picks per
micrograph each cut keeps (and the model's own default, as ``fewpick pick`` cuts), box F1 (boxes of D, IoU ≥ 0.5) and its ratio to the best box F1 of every peak, and
the duplicates (picks beyond the first within D/2 of one true particle). Writes bench/results/count_split.{json,md}.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import refit_fewshot, write_results  # noqa: E402
from fewpick.io import read_micrograph, read_picks, write_picks  # noqa: E402
from fewpick.ops.thresholds import ashman_d, two_group_mixture  # noqa: E402
from fewpick.pickers import fewshot, pu  # noqa: E402
from fewpick.pickers.pu.train import refit  # noqa: E402
from fewpick.pickers.threshold import Count  # noqa: E402
from general_score import network, simulated_set  # noqa: E402
from real2d import FEWPICK, SETS_ALL, default_cut_scores, draw_exemplars, load_set  # noqa: E402

WORK = Path(__file__).resolve().parent / "work" / "default_threshold"
SIM_WORK = Path(__file__).resolve().parent / "work" / "general_score"
PICKERS = ("PU", "few-shot", "few-shot, counted")


def pu_model(rs, seed: int):
    path, labels = network(rs, seed, "15", True)
    model = pu.load_model(path, "cpu")
    model.settings = replace(model.settings, general_score=True)
    refit(model, [read_micrograph(p) for p in rs.train], read_picks(labels))
    return model


def fewshot_simulated(rs, seed: int, with_count: bool, train: bool = True) -> Path:
    """A few-shot model of a simulated set (trained here if missing, and ``train``) as
    ``bench/default_threshold.py`` trains one on a real set: 15 exemplars on the reference, the training
    micrographs for pre-training."""
    run = SIM_WORK / f"sim{rs.diameter:g}" / f"fewshot_s{seed}{'' if with_count else '_nocount'}"
    model = run / "fewshot.pt"
    if not model.is_file() and train:
        run.mkdir(parents=True, exist_ok=True)
        write_picks(draw_exemplars(rs, seed), run / "exemplars.star")
        count = ["-n", str(rs.expected)] if with_count else []
        proc = subprocess.run([str(FEWPICK), "fewshot", "train", str(rs.reference), "--exemplars",
                               str(run / "exemplars.star"), "-d", f"{rs.diameter:g}",
                               *[a for p in rs.pretrain for a in ("--pretrain-images", str(p))], *count,
                               "--seed", str(seed), "--out", str(model)], capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"training failed:\n{proc.stderr[-2000:]}")
    return model


def models(rs, pickers=PICKERS, refit_fewshot_models: bool = False, seeds=(0, 1, 2), train: bool = True):
    """(picker, seed, model) for every model of the set of the ``pickers`` named, finished as picking uses it now
    (the few-shot models finished again first as training now finishes them, with ``refit_fewshot_models``; a
    missing few-shot model of a simulated set trained only with ``train``)."""
    if "PU" in pickers:
        for seed in seeds:
            yield "PU", seed, pu_model(rs, seed)
    for suffix, what in (("", "few-shot"), ("_nocount", "few-shot, counted")):
        if what not in pickers:
            continue
        for seed in seeds:
            if rs.name.startswith("simulated"):
                path = fewshot_simulated(rs, seed, not suffix, train)
            else:
                path = WORK / rs.name / f"fewshot_s{seed}{suffix}" / "fewshot.pt"
            if path.is_file():
                if refit_fewshot_models:
                    refit_fewshot(path, Path(rs.reference), [Path(p) for p in rs.pretrain],
                                  path.parent / "exemplars.star")
                yield what, seed, fewshot.load_model(path, "cpu")


def measure(rs, picker: str, seed: int, model, images) -> dict:
    maps = {im.name: model.score_map(im) for im in images}
    model.score_map = lambda im, **_: maps[im.name]  # both cuts pick from the same score maps
    count = model.expected_count()
    pooled = np.concatenate([model.peaks(maps[im.name], Count(score=-np.inf))[1] for im in images])
    gmm = two_group_mixture(pooled)
    every = model.pick_images(images, -1e9)
    row = {"set": rs.name, "picker": picker, "seed": seed, "count": count,
           "ashman_d": ashman_d(gmm) if gmm is not None else None}
    for name, cut in (("quota", Count(count)), ("guide", Count(count, split=True)), ("default", None)):
        kept = model.pick_images(images, cut)
        row[name] = {**default_cut_scores(every, kept, rs), "per_micrograph": len(kept) / len(images)}
    print({k: v for k, v in row.items()}, flush=True)
    return row


def table(rows: list[dict]) -> str:
    md = ["| set | picker | seeds | count | Ashman's D | picks per micrograph, count / guide / default | box F1 at "
          "the count (÷ best) | box F1 at the guide (÷ best) | box F1 at the model's default (÷ best) | duplicates, "
          "count / guide / default |", "|---|---|---|---|---|---|---|---|---|---|"]
    df = pd.DataFrame(rows)
    for (name, picker), g in df.groupby(["set", "picker"], sort=False):
        q, s, m = (pd.DataFrame(list(g[k])) for k in ("quota", "guide", "default"))
        d = ", ".join(f"{x:.1f}" for x in g.ashman_d)
        md.append(f"| {name} | {picker} | {', '.join(map(str, g.seed))} | {g['count'].mean():.0f} | {d} | "
                  f"{q.per_micrograph.mean():.1f} / {s.per_micrograph.mean():.1f} / {m.per_micrograph.mean():.1f} | "
                  + " | ".join(f"{c.default_box_f1.mean():.3f} ({c.ratio.mean():.2f})" for c in (q, s, m)) + " | "
                  + " / ".join(f"{100 * c.duplicate_rate.mean():.1f}" for c in (q, s, m)) + " % |")
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="*", default=list(SETS_ALL))
    ap.add_argument("--simulated", type=float, nargs="*", default=[176.0, 60.0],
                    help="diameters of the simulated ribosome sets (bench/general_score.py --simulated)")
    ap.add_argument("--pickers", nargs="+", default=list(PICKERS), choices=PICKERS,
                    help="the models measured: the PU picker's, the few-shot picker's trained with the count, without")
    ap.add_argument("--refit", action="store_true",
                    help="finish each few-shot model again first as training now finishes it (for a change to the "
                         "steps after its networks' training: the count, the spacing, the calibrated cut)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--kept", action="store_true", help="only the few-shot models kept in bench/work (none trained)")
    ap.add_argument("--out", default="count_split")
    a = ap.parse_args()
    rows = []
    sets = [load_set(n) for n in a.sets] + [simulated_set(d) for d in a.simulated]
    for rs in sets:
        images = [read_micrograph(p) for p in rs.test]
        for picker, seed, model in models(rs, a.pickers, a.refit, a.seeds, not a.kept):
            rows.append(measure(rs, picker, seed, model, images))
    md = ("15 labels (few-shot: 15 exemplars on one micrograph), means over the seeds listed. Count: the model's "
          "expected count (the training micrographs' mean given, or the general model's where clearly larger; "
          "few-shot, counted: trained without a count, the general model's count settled on its own scores, or "
          "the reference's peaks scoring as the exemplars do where it is more than twice those). "
          "The count cut keeps that many picks per micrograph, pooled over the test micrographs; the guide (the "
          "default) goes to the gap between two groups of the pooled peak scores where Ashman's D > 2 and the gap "
          "keeps within a factor 1.5 of the count. The model's default: the guide, except for a model that counted "
          "the particles itself (PU and few-shot trained without a count), whose default is its calibrated cut "
          "where no gap replaces it.\n\n" + table(rows))
    write_results(a.out, {"rows": rows}, md)


if __name__ == "__main__":
    main()
