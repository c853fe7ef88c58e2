"""What the few-shot picker's encoder contributes where its fast network's agreement stays near 0 (the CryoPPP sets),
against apoferritin where it has learned the particle.

    .venv/bin/python bench/fewshot_encoder_role.py [--run real2d_fewshot] [--seeds 0 1 2]

Models: the 15-exemplar models that ``bench/real2d.py --out RUN`` trained (seeds ``--seeds`` on the CryoPPP sets,
seed 0 on apoferritin). Each picks its test micrographs, its cut calibrated on the reference with the set's
expected count, in these ways:

- ``encoder, stride S``: the encoder scores every window at a stride of S resampled px (4, the default: a sixth of
  the 24 px window; 2, 3, 6, 8);
- ``random scores``: the encoder's map replaced by uniform noise (amplitude 0.001) on the default grid, so the
  peaks are random points at least the suppression radius apart, each then centred on the best correlation with
  the exemplars' rotational average, as every scoring's peaks are;
- ``correlation``: that correlation alone, read at the windows' centres (what such a model now picks with).

And, for the encoder at its default stride, every peak (after centring) is scored twice, by its two terms: the
encoder's similarity and the correlation at the centred position; the AUC of each against the annotations
(a peak within D/2 of a particle is positive) says which of them ranks particles, and the spread of the encoder's
term how much it changes the ranking at all.

Writes bench/results/fewshot_encoder_role.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from fewpick.io import read_micrograph  # noqa: E402
from fewpick.ops.peaks import best_within, nms, refine_peaks  # noqa: E402
from fewpick.pickers import fewshot  # noqa: E402
from fewshot_fast import measure  # noqa: E402
from real2d import WORK, load_set  # noqa: E402

ENCODER = fewshot.encoder_scores


def random_scores(model, img, match, stride, mask=None):
    """Uniform noise on the encoder's window grid (seeded by the micrograph, so a rerun draws the same)."""
    s = model.settings
    shape = fewshot.window_grid(img.shape, s.size, stride)
    rng = np.random.default_rng(int(abs(float(img[:8, :8].sum())) * 1000) % 2**32)
    return rng.random(shape).astype(np.float32) * 1e-3


def peak_terms(model: fewshot.FewShotModel, images, truth, diameter: float) -> dict:
    """Every default-stride encoder peak, centred: AUC of its encoder term and of its correlation term."""
    m = replace(model, scoring_override="encoder")
    s = m.settings
    enc, corr, pos = [], [], []
    for im in images:
        smap = m.score_map(im)
        geo, stride = s.geometry(), smap.extra["stride"]
        ij, values = nms(smap.scores, max(geo.radius(2 * s.suppress) / stride, 1.0), -np.inf, max_picks=None)
        ij = refine_peaks(smap.scores, ij)
        match = smap.extra["match"]
        best = best_within(match, ij * stride + (s.size - 1) / 2, s.centre * geo.working_diameter)
        yx = best * np.asarray(smap.extra["scale"])
        t = truth[truth.micrograph == im.name][["y", "x"]].to_numpy()
        d, _ = cKDTree(t).query(yx)
        enc.append(values)
        corr.append(match[best[:, 0], best[:, 1]])
        pos.append(d <= diameter / 2)
    enc, corr, pos = map(np.concatenate, (enc, corr, pos))
    return {"peaks": int(len(pos)), "positive": float(pos.mean()), "auc_encoder": float(roc_auc_score(pos, enc)),
            "auc_correlation": float(roc_auc_score(pos, corr)), "sd_encoder": float(enc.std()),
            "sd_correlation": float(corr.std())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="real2d_fewshot")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the CryoPPP sets' models")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    jobs = [(s, seed) for s in ("10059", "10947") for seed in args.seeds] + [("apoferritin_ab", 0), ("apoferritin_ba", 0)]
    rows, terms = [], []
    for name, seed in jobs:
        path = WORK / args.run / name / f"fewshot_15_s{seed}" / "fewshot.pt"
        if not path.is_file():
            print(f"{name} seed {seed}: no model at {path}; skipped", flush=True)
            continue
        rs = load_set(name)
        ref, tests = read_micrograph(rs.reference), [read_micrograph(p) for p in rs.test]
        model = fewshot.load_model(path, "cpu")
        model.settings.threads = args.threads
        variants = [(f"encoder, stride {k}", "encoder", k, ENCODER) for k in (4, 2, 3, 6, 8)]
        variants += [("random scores", "encoder", 4, random_scores), ("correlation", "correlation", None, ENCODER)]
        for label, how, stride, scores in variants:
            fewshot.encoder_scores = scores
            try:
                m = replace(model, scoring_override=how, settings=replace(model.settings, stride=stride))
                r = {"set": name, "seed": seed, "scoring": label,
                     **measure(m, ref, tests, rs.test_truth, rs.diameter, True)}
            finally:
                fewshot.encoder_scores = ENCODER
            rows.append(r)
            print(r, flush=True)
        t = {"set": name, "seed": seed, "agreement": model.fast_info.get("agreement"),
             **peak_terms(model, tests, rs.test_truth, rs.diameter)}
        terms.append(t)
        print(t, flush=True)
    labels = list(dict.fromkeys(r["scoring"] for r in rows))
    md = ["Box F1 at the model's own cut (calibrated on the reference with the expected count) / AUPRC of every pick, "
          "mean over the seeds; the encoder's default stride is 4 resampled px (see the script).", "",
          "| set | models | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    for name in dict.fromkeys(r["set"] for r in rows):
        cells = []
        for lab in labels:
            sel = [r for r in rows if r["set"] == name and r["scoring"] == lab]
            cells.append(f"{np.mean([r['box_f1'] for r in sel]):.3f} / {np.mean([r['auprc'] for r in sel]):.3f}")
        n = len({r["seed"] for r in rows if r["set"] == name})
        md.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    md += ["", "The two terms of every encoder peak (default stride, after centring), against the annotations:", "",
           "| set | seed | agreement | peaks | on a particle | AUC: encoder term | AUC: correlation term | sd: encoder term "
           "| sd: correlation term |", "|---|---|---|---|---|---|---|---|---|"]
    for t in terms:
        md.append(f"| {t['set']} | {t['seed']} | {t['agreement']:.2f} | {t['peaks']} | {t['positive']:.2f} | "
                  f"{t['auc_encoder']:.3f} | {t['auc_correlation']:.3f} | {t['sd_encoder']:.3f} | {t['sd_correlation']:.3f} |")
    write_results("fewshot_encoder_role", {"run": args.run, "rows": rows, "terms": terms}, "\n".join(md))


if __name__ == "__main__":
    main()
