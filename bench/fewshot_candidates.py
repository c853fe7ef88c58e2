"""Feasibility of a faster few-shot picking: candidates from the correlation with the exemplars' rotational average
(its peaks, suppressed as the picker suppresses), each scored by the ViT on one window centred there, instead of
every window of the sliding grid. Not the picker's method: a measurement for the next step.

    .venv/bin/python bench/fewshot_candidates.py [--run real2d_fewshot_alone]

Each set's seed-0 few-shot model of the bench/real2d.py run picks the test micrographs; the cut is the reference
micrograph's k-th best candidate score (k = the expected count), as the picker calibrates its own. Scores: the mean
of similarity and correlation (as the picker), the similarity alone, or 3:1. Suppression: the picker's, or 3/4 of
it. Box F1 at the cut, AUPRC of every candidate, seconds per test micrograph (the grid picker's:
bench/results/fewshot_stride.md). Writes bench/results/fewshot_candidates.{json,md}.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from fewpick.evaluate import evaluate  # noqa: E402
from fewpick.geometry import Geometry  # noqa: E402
from fewpick.io import read_micrograph  # noqa: E402
from fewpick.ops.peaks import nms
from fewpick.ops.templates import template_score_map  # noqa: E402
from fewpick.ops.thresholds import threshold_at_count  # noqa: E402
from fewpick.pickers import fewshot  # noqa: E402
from fewpick.pickers.base import picks_table  # noqa: E402
from real2d import SETS_ALL, WORK, load_set  # noqa: E402

SCORES = {"mean": (0.5, 0.5), "similarity": (1.0, 0.0), "3:1": (0.75, 0.25)}

@torch.inference_mode()
def cand_pick(m, image, sup_frac=1.0):
    """Candidates of one micrograph (correlation peaks at least half a window from the edges), scored every way
    of SCORES: {score name: picks table, best first}."""
    s = m.settings
    img = fewshot.prepare(image, s.scale, threads=s.threads)
    scale = Geometry.scale(image.data.shape, img.shape)
    template, mr = m.template()
    corr = template_score_map(img, template[None], mr)
    geo = s.geometry()
    rad = geo.radius(2 * s.suppress) * sup_frac
    yx, cv = nms(corr, max(rad, 1.0), -np.inf)
    h = (s.size - 1) / 2
    ok = (yx[:, 0] >= h) & (yx[:, 1] >= h) & (yx[:, 0] <= img.shape[0] - 1 - h) & (yx[:, 1] <= img.shape[1] - 1 - h)
    yx, cv = yx[ok], cv[ok]
    ex = m.exemplar_features()
    sims = []
    for i in range(0, len(yx), 4096):
        w = np.stack([fewshot.window_at(img, y, x, s.size) for y, x in yx[i:i + 4096]])
        f = F.normalize(m.net.features(torch.from_numpy(np.ascontiguousarray(w))[:, None]).float(), dim=1)
        sims.append((f @ ex.T).amax(-1).numpy())
    sim = np.concatenate(sims) if sims else np.zeros(0)
    out = {}
    for k, (a, b) in SCORES.items():
        score = a * sim + b * cv
        o = np.argsort(-score)
        out[k] = picks_table(getattr(image, "name", "x"), yx[o] * scale, score[o].astype(np.float32))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="real2d_fewshot_alone")
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for name in SETS_ALL:
        rs = load_set(name)
        m = fewshot.load_model(WORK / args.run / name / "fewshot_15_s0" / "fewshot.pt", "cpu")
        ims = [read_micrograph(p) for p in rs.test]
        ref = read_micrograph(rs.reference)
        for frac in (1.0, 0.75):
            on_ref = cand_pick(m, ref, frac)
            t0 = time.perf_counter()
            res = [cand_pick(m, im, frac) for im in ims]
            seconds = (time.perf_counter() - t0) / len(ims)
            for k in SCORES:
                cut = threshold_at_count([on_ref[k].score.to_numpy()], [rs.expected])
                every = pd.concat([r[k] for r in res], ignore_index=True)
                row = {"set": name, "suppression": frac, "score": k,
                       "box_f1": evaluate(every[every.score >= cut], rs.test_truth, box=rs.diameter)["all_picks"]["f1"],
                       "auprc": evaluate(every, rs.test_truth, radius=rs.diameter / 2)["auprc"],
                       "s_per_micrograph": seconds, "candidates_per_micrograph": len(every) / len(ims)}
                rows.append(row)
                print(row, flush=True)
    md = ["Few-shot picking from correlation candidates (see the script); seed-0 models of the run named in the "
          "command. The grid picker on the same models: box F1 0.534 / 0.300 / 0.947 / 0.915, AUPRC 0.647 / 0.367 / "
          "0.964 / 0.949, 0.82 / 0.26 / 0.32 / 0.33 s per test micrograph (bench/results/fewshot_stride.md).", "",
          "| set | suppression (× the picker's) | score | box F1 | AUPRC | s per test micrograph | candidates per micrograph |",
          "|---|---|---|---|---|---|---|"]
    md += [f"| {r['set']} | {r['suppression']:g} | {r['score']} | {r['box_f1']:.3f} | {r['auprc']:.3f} | "
           f"{r['s_per_micrograph']:.2f} | {r['candidates_per_micrograph']:.0f} |" for r in rows]
    write_results("fewshot_candidates", {"run": args.run, "rows": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
